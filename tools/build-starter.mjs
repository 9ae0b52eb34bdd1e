#!/usr/bin/env node
// Rebuilds the starter workspace in assets/starter/ (see tools/starter/build.ts and
// assets/starter/MODEL_CARD.md). Bundles the TypeScript build with esbuild, which also makes tfjs's
// gradient registrations loadable (plain Node cannot import them), then runs it.
//
//   node tools/build-starter.mjs                      everything (about an hour on 2 cores)
//   node tools/build-starter.mjs --stage demo         one stage (data, tokenizer, pretrain, demo, card)
//
// Needs Debian's wordnet-base package (/usr/share/wordnet) and Python 3 with `tokenizers`
// (tokenizer stage only). On a machine shared with other work, OPENBLAS_NUM_THREADS=1 is faster.

import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outfile = path.join(root, 'dist', 'starter-build', 'build.mjs');

await build({
  entryPoints: [path.join(root, 'tools', 'starter', 'build.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // tfjs packages declare themselves side-effect free, but their backend imports register kernels.
  ignoreAnnotations: true,
  logLevel: 'warning',
  // CommonJS dependencies and Emscripten's wasm loader expect require and __dirname.
  banner: {
    js: [
      "import { createRequire as __createRequire } from 'node:module';",
      "import { fileURLToPath as __fileURLToPath } from 'node:url';",
      "import { dirname as __pathDirname } from 'node:path';",
      'const require = __createRequire(import.meta.url);',
      'const __filename = __fileURLToPath(import.meta.url);',
      'const __dirname = __pathDirname(__filename);',
    ].join('\n'),
  },
});

const run = spawnSync(process.execPath, [outfile, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(run.status ?? 1);
