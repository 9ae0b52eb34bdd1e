// Types for what TypeScript code (the tests' child bundles) imports from build-app.mjs.
import type { BuildOptions } from 'esbuild';

export function esmNode(root: string): BuildOptions;
export function buildApp(opts?: { root?: string; only?: string[] | null }): Promise<string[]>;
