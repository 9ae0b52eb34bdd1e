// Where the tfjs wasm backend finds its .wasm binaries in Node.
//
// Emscripten looks beside the script that loaded it; once the engine is bundled into dist/ that is the wrong
// folder, so both the `wasm` and the `native` backend point it at the package's own dist/ folder instead.

import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { findPackageRoot } from './package-root.js';

let configured = false;

/** Points tfjs-backend-wasm at its .wasm files; call before the first `tf.setBackend('wasm' | 'native')`. */
export function useInstalledWasmBinaries(): void {
  if (configured) return;
  const root = findPackageRoot();
  const require = createRequire(pathToFileURL(path.join(root, 'package.json')));
  const wasmPackage = require.resolve('@tensorflow/tfjs-backend-wasm/package.json');
  // A prefix, not a file map: the loader picks the SIMD or plain binary itself. Must end with a separator.
  setWasmPaths(path.join(path.dirname(wasmPackage), 'dist') + path.sep);
  configured = true;
}
