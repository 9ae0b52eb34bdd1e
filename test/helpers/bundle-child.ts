// Bundles a test's child-process entry with the app's own esbuild settings (tools/build-app.mjs: tfjs inside,
// since plain node cannot load its gradient modules), into test-output/ inside the repository so that node
// resolves the native packages (better-sqlite3, sharp) from node_modules.

import { join } from 'node:path';
import { build } from 'esbuild';
import { esmNode } from '../../tools/build-app.mjs';

const ROOT = join(import.meta.dirname, '..', '..');

/** Returns the bundled file; `name` keeps two test files' bundles apart. */
export async function bundleChild(entry: string, name: string): Promise<string> {
  const outfile = join(ROOT, 'test-output', `${name}-${process.pid}.mjs`);
  await build({ ...esmNode(ROOT), entryPoints: [entry], outfile, sourcemap: false });
  return outfile;
}
