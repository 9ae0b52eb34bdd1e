// Choosing the tfjs backend at start-up. Automatic order: tensorflow (tfjs-node-gpu / tfjs-node,
// optional installs) -> webgpu -> native (wasm + our BLAS addon) -> wasm -> cpu. A backend that
// fails to start is skipped with its reason recorded; the caller always learns which one runs.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
// Node's tfjs-core entry registers no gradients; the bundle (esbuild) and vitest resolve this ESM file.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { EngineError } from './errors.js';
import { useInstalledWasmBinaries } from './backends/wasm-paths.js';

export const BACKENDS = ['tensorflow', 'webgpu', 'native', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | 'auto';

export interface BackendReport {
  name: BackendName;
  /** The device it runs on, when the backend can tell (webgpu: GPU name and limits). */
  device?: string;
  /** Why each backend tried before this one did not start (empty when the first choice ran). */
  skipped: { name: BackendName; reason: string }[];
}

/** Starts one backend; `requested` is true when the user named it. May return a description of the device. */
type Starter = (requested: boolean) => Promise<string | void>;

async function startTensorflow(): Promise<void> {
  // Optional dependencies: present only where their native libtensorflow could be installed.
  const errors: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(/* @vite-ignore */ pkg);
      await activate('tensorflow');
      return;
    } catch (e) {
      errors.push(`${pkg}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const missing = errors.every((e) => /Cannot find (package|module)/.test(e));
  throw new Error(missing ? 'not installed' : errors.join('; '));
}

/**
 * Dawn through the `webgpu` package. Asked for by name it accepts a software adapter (lavapipe on CI);
 * chosen automatically it does not, since the CPU backends beat a GPU emulated on the CPU.
 */
async function startWebgpu(requested: boolean): Promise<string> {
  const { initWebgpuBackend, formatWebgpuDevice } = await import('./backends/webgpu.js');
  // Probing for a GPU on the way to another backend, Dawn's driver chatter ("vkCreateInstance failed", "... artificially
  // reduced ...") goes to a debug log, not the user's stderr; asked for by name (or ADAPTER_STUDIO_VERBOSE), it shows.
  const quiet = !requested && !process.env.ADAPTER_STUDIO_VERBOSE ? await quietStderr() : null;
  try {
    const status = await initWebgpuBackend({ allowSoftware: requested });
    if (!status.ok) throw new Error(status.reason);
    return formatWebgpuDevice(status.info);
  } finally {
    quiet?.();
  }
}

/** The file native libraries' stderr goes to while the backend probe is quiet. */
export function backendLogPath(): string {
  return join(tmpdir(), `adapter-studio-backend-${process.getuid?.() ?? 'user'}.log`);
}

/** Sends fd 2 to backendLogPath() until the returned function is called; null when the native addon is absent. */
async function quietStderr(): Promise<(() => void) | null> {
  try {
    const { loadNativeAddon } = await import('./backends/native.js');
    const addon = loadNativeAddon();
    if (typeof addon.redirectStderr !== 'function') return null; // an addon built before this existed
    const saved = addon.redirectStderr(backendLogPath());
    return saved < 0 ? null : () => addon.restoreStderr(saved);
  } catch {
    return null;
  }
}

async function startNative(): Promise<void> {
  const { initNativeBackend } = await import('./backends/native.js');
  const result = await initNativeBackend();
  if (!result.ok) throw new Error(result.reason);
  await activate('native');
}

async function startWasm(): Promise<void> {
  useInstalledWasmBinaries();
  await activate('wasm');
}

async function activate(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`tfjs could not initialise the ${name} backend`);
  await tf.ready();
}

const STARTERS: Record<BackendName, Starter> = {
  tensorflow: startTensorflow,
  webgpu: startWebgpu,
  native: startNative,
  wasm: startWasm,
  cpu: () => activate('cpu'),
};

/**
 * Start the requested backend, or the best available for 'auto'. An explicit choice that cannot
 * start is an error (the user asked for it); 'auto' falls through the list.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendReport> {
  if (choice !== 'auto' && !BACKENDS.includes(choice)) {
    throw new EngineError(`unknown backend "${choice}"; choose one of auto, ${BACKENDS.join(', ')}`);
  }
  const order: BackendName[] = choice === 'auto' ? [...BACKENDS] : [choice];
  const skipped: BackendReport['skipped'] = [];
  for (const name of order) {
    try {
      const device = await STARTERS[name](choice !== 'auto');
      return device ? { name, device, skipped } : { name, skipped };
    } catch (e) {
      skipped.push({ name, reason: (e as Error).message });
    }
  }
  const why = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  throw new EngineError(choice === 'auto' ? `no tfjs backend could start (${why})` : `the ${choice} backend could not start: ${why}`);
}

export function describeBackend(r: BackendReport): string {
  const fallbacks = r.skipped.length ? ` (not used: ${r.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')})` : '';
  return `backend: ${r.name}${r.device ? ` on ${r.device}` : ''}${fallbacks}`;
}
