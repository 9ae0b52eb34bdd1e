// Bundles a test's child-process entry as tools/build.mjs bundles the CLI (tfjs inside: plain node cannot load
// its gradient modules), into test-output/ inside the repository so that node resolves the native packages
// (better-sqlite3, sharp) from node_modules.

import { join } from 'node:path';
import { build } from 'esbuild';

const ROOT = join(import.meta.dirname, '..', '..');

/** Returns the bundled file; `name` keeps two test files' bundles apart. */
export async function bundleChild(entry: string, name: string): Promise<string> {
  const outfile = join(ROOT, 'test-output', `${name}-${process.pid}.mjs`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    external: ['better-sqlite3', 'sharp', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'electron', 'webgpu'],
    mainFields: ['module', 'main'],
    banner: {
      js: [
        "import { createRequire as __createRequire } from 'node:module';",
        "import { fileURLToPath as __fileURLToPath } from 'node:url';",
        'const require = __createRequire(import.meta.url);',
        'const __filename = __fileURLToPath(import.meta.url);',
        "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
      ].join(' '),
    },
    logLevel: 'warning',
  });
  return outfile;
}
