// Builds the app's pieces beside the CLI (called from tools/build.mjs; also runnable alone):
//   dist/engine-host.mjs     the engine process (training, generation), forked by serve mode and Electron
//   dist/serve.mjs           `adapter-studio serve` on its own (tools/start.mjs, the e2e tests)
//   dist/electron/main.cjs   Electron main process (CommonJS: what Electron loads without flags)
//   dist/electron/preload.cjs the sandboxed preload (one file: a sandboxed preload cannot require our modules)
//   dist/renderer/           the Svelte UI (vite)
//
// Usage: node tools/build-app.mjs [--only host,serve,electron,renderer]

import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The same settings as the CLI bundle (tools/build.mjs): tfjs bundled, native modules and Electron outside. */
export function esmNode(root) {
  return {
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: true,
    external: ['better-sqlite3', 'sharp', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'electron', 'webgpu'],
    logLevel: 'warning',
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
    absWorkingDir: root,
  };
}

export async function buildApp({ root = join(here, '..'), only = null } = {}) {
  const want = (part) => only === null || only.includes(part);
  const dist = join(root, 'dist');
  mkdirSync(dist, { recursive: true });
  const done = [];

  if (want('host')) {
    await build({ ...esmNode(root), entryPoints: { 'engine-host': join(root, 'src-main/host/engine-host.ts') }, outdir: dist, outExtension: { '.js': '.mjs' } });
    done.push('dist/engine-host.mjs');
  }
  if (want('serve')) {
    await build({ ...esmNode(root), entryPoints: { serve: join(root, 'src-main/server/serve-main.ts') }, outdir: dist, outExtension: { '.js': '.mjs' } });
    done.push('dist/serve.mjs');
  }
  if (want('electron')) {
    const cjs = {
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      sourcemap: true,
      logLevel: 'warning',
      absWorkingDir: root,
      mainFields: ['module', 'main'],
    };
    await build({
      ...cjs,
      entryPoints: { main: join(root, 'src-main/electron/main.ts') },
      outdir: join(dist, 'electron'),
      outExtension: { '.js': '.cjs' },
      external: ['electron', 'better-sqlite3', 'sharp', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'webgpu'],
      // CommonJS has no import.meta.url; modules that find files beside themselves get this file's URL.
      banner: { js: "const __importMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
      define: { 'import.meta.url': '__importMetaUrl' },
    });
    await build({ ...cjs, entryPoints: { preload: join(root, 'src-main/electron/preload.ts') }, outdir: join(dist, 'electron'), outExtension: { '.js': '.cjs' }, external: ['electron'] });
    done.push('dist/electron/main.cjs', 'dist/electron/preload.cjs');
  }
  if (want('renderer')) {
    const { build: viteBuild } = await import('vite');
    await viteBuild({ configFile: join(root, 'src-renderer/vite.config.ts'), logLevel: 'warn' });
    done.push('dist/renderer/');
  }
  return done;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--only');
  const only = i > 0 ? process.argv[i + 1].split(',') : null;
  const built = await buildApp({ only });
  console.log(`built ${built.join(', ')}`);
}
