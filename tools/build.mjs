// Builds what runs outside vitest: the Node-side bundles (esbuild) into dist/.
// tfjs is bundled, not external: its gradient registrations are ESM files that plain Node cannot load.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(root, 'dist'), { recursive: true });

// Packages that must stay outside the bundle: native modules, optional GPU backends, Electron.
const external = ['better-sqlite3', 'sharp', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'electron', 'webgpu'];

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  external,
  logLevel: 'warning',
  // ES module builds first: one copy of tfjs-core shared with register_all_gradients (itself ESM).
  mainFields: ['module', 'main'],
  // CommonJS code inside an ES module bundle still calls require/__dirname.
  banner: {
    js: [
      "import { createRequire as __createRequire } from 'node:module';",
      "import { fileURLToPath as __fileURLToPath } from 'node:url';",
      'const require = __createRequire(import.meta.url);',
      'const __filename = __fileURLToPath(import.meta.url);',
      "const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));",
    ].join(' '),
  },
};

await build({ ...common, entryPoints: { cli: join(root, 'src-main/cli/bin.ts') }, outdir: join(root, 'dist'), outExtension: { '.js': '.mjs' } });
console.log('built dist/cli.mjs');

// --- the app: engine host, serve entry, Electron shell and renderer (tools/build-app.mjs) ---
const { buildApp } = await import('./build-app.mjs');
console.log(`built ${(await buildApp({ root })).join(', ')}`);
