// The installed adapter-studio folder, found from wherever this code runs: src-main/ under vitest, or a bundle in
// dist/ after esbuild. Native binaries and wasm files are looked up relative to it.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'adapter-studio';

function moduleDir(): string {
  // A CommonJS bundle has __dirname and no import.meta.url; an ES module has the reverse.
  if (typeof __dirname === 'string') return __dirname;
  return path.dirname(fileURLToPath(import.meta.url));
}

function isPackageRoot(dir: string): boolean {
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
    return manifest.name === PACKAGE_NAME;
  } catch {
    return false;
  }
}

let cached: string | null = null;

/** Walks up from this module (then from the working directory) to the package.json named adapter-studio. */
export function findPackageRoot(): string {
  if (cached !== null) return cached;
  for (const start of [moduleDir(), process.cwd()]) {
    for (let dir = start; ; dir = path.dirname(dir)) {
      if (isPackageRoot(dir)) return (cached = dir);
      if (path.dirname(dir) === dir) break;
    }
  }
  throw new Error(`cannot find the ${PACKAGE_NAME} package folder above ${moduleDir()} or ${process.cwd()}`);
}
