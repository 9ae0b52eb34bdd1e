// The `webgpu` tfjs backend in Node: Dawn (the `webgpu` npm package, its binary inside the package) provides
// `navigator.gpu`, and @tensorflow/tfjs-backend-webgpu runs every tfjs kernel as WGSL compute shaders on it.
// Dawn drives Vulkan (Linux, Windows: NVIDIA, AMD, Intel), Metal (macOS) or D3D12, so no CUDA install is needed.
//
// Order matters: tfjs-backend-webgpu registers itself only if `navigator.gpu` exists when it is first imported,
// so the adapter is found and the global set before the dynamic import. We then register our own factory that
// hands tfjs the device we opened, so that the device's name and limits can be reported and the device released.
//
// Software adapters (Mesa's lavapipe, SwiftShader) run shaders on the CPU, far slower than the `native` backend:
// an automatic choice skips them; asking for `webgpu` by name (tests on CI) accepts them.

import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { gemv, GEMV_MAX_ROWS } from './webgpu/gemv.js';
import { FUSED_STORAGE_BUFFERS, registerFusedWebgpuKernels } from './webgpu/kernels.js';

export const WEBGPU_BACKEND = 'webgpu';

/** What the UI and `info` show about the GPU behind the webgpu backend. */
export interface WebgpuDeviceInfo {
  vendor: string; // e.g. "nvidia", "mesa"
  architecture: string; // e.g. "hopper", "software"
  device: string; // e.g. "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)"
  description: string;
  /** A CPU implementation of the API (lavapipe, SwiftShader): correct but slow. */
  software: boolean;
  /** Largest single buffer, i.e. the largest tensor (bytes). WebGPU does not report the GPU's total memory. */
  maxBufferBytes: number;
  /** Largest buffer one shader may bind (bytes): the largest tensor a kernel can read whole. */
  maxStorageBindingBytes: number;
  features: string[];
}

export interface WebgpuStartOptions {
  /** Accept a software adapter (lavapipe, SwiftShader). Off for automatic selection. */
  allowSoftware?: boolean;
  /** Register the fused WGSL kernels (attention with prompt, RMSNorm, SwiGLU, cross-entropy). Default true. */
  fusedKernels?: boolean;
}

export type WebgpuStatus = { ok: true; info: WebgpuDeviceInfo } | { ok: false; reason: string };

interface OpenDevice {
  gpu: GPU;
  device: GPUDevice;
  info: WebgpuDeviceInfo;
  restoreNavigator: () => void;
  lostReason: string | null;
}

let opened: OpenDevice | null = null;

/** The device behind the running webgpu backend, or null when it has not started (or was shut down). */
export function describeWebgpuDevice(): WebgpuDeviceInfo | null {
  return opened ? { ...opened.info, features: [...opened.info.features] } : null;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function formatBytes(bytes: number): string {
  return bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${Math.round(bytes / MiB)} MiB`;
}

/** One line for logs and the backend display, e.g. "NVIDIA H100 80GB HBM3 (nvidia hopper), max buffer 4.0 GiB". */
export function formatWebgpuDevice(info: WebgpuDeviceInfo): string {
  const kind = [info.vendor, info.architecture].filter(Boolean).join(' ');
  const name = info.device || info.description || 'unknown GPU';
  const software = info.software ? ', software rendering on the CPU' : '';
  return `${name}${kind ? ` (${kind}${software})` : software ? ` (${software.slice(2)})` : ''}, max buffer ${formatBytes(info.maxBufferBytes)}, max binding ${formatBytes(info.maxStorageBindingBytes)}`;
}

let starting: Promise<WebgpuStatus> | null = null;

/**
 * Opens a GPU through Dawn and makes `webgpu` the active tfjs backend. Never throws: a missing package, a
 * machine without a Vulkan/Metal/D3D12 driver, or a device that fails its first computation gives
 * `{ ok: false, reason }` naming the cause, and leaves no globals behind. A second call returns the first result
 * while the backend is up.
 */
export function initWebgpuBackend(opts: WebgpuStartOptions = {}): Promise<WebgpuStatus> {
  if (opened && !opened.lostReason) {
    if (opened.info.software && !opts.allowSoftware) return Promise.resolve({ ok: false, reason: softwareRefusal(opened.info) });
    const info = opened.info;
    return activate().then(() => ({ ok: true as const, info }), failure);
  }
  starting ??= start(opts).finally(() => {
    starting = null;
  });
  return starting;
}

function failure(error: unknown): WebgpuStatus {
  return { ok: false, reason: error instanceof Error ? error.message : String(error) };
}

async function start(opts: WebgpuStartOptions): Promise<WebgpuStatus> {
  let dawn: { create: (flags: string[]) => GPU; globals: object };
  try {
    dawn = (await import('webgpu')) as unknown as typeof dawn;
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    return {
      ok: false,
      reason: /Cannot find (package|module) 'webgpu'/.test(message)
        ? 'the webgpu package is not installed'
        : `Dawn (the webgpu package) failed to load: ${message}`,
    };
  }

  const gpu = dawn.create([]);
  let device: GPUDevice | null = null;
  let restoreNavigator: (() => void) | null = null;
  try {
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) {
      throw new Error(
        'no WebGPU adapter: no Vulkan, Metal or D3D12 driver was found (on Linux install the GPU vendor\'s Vulkan driver and libvulkan1; a CPU-only machine can use Mesa >= 25 lavapipe, see tools/setup-lavapipe.sh)',
      );
    }
    const info = deviceInfo(adapter);
    if (info.software && !opts.allowSoftware) {
      throw new Error(softwareRefusal(info));
    }
    device = await adapter.requestDevice({
      requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
      // The adapter's own maxima, as tfjs-backend-webgpu asks: the defaults (128 MiB bindings) are too small for
      // a 7B model's embedding and MLP weights.
      requiredLimits: {
        maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
        maxComputeWorkgroupsPerDimension: adapter.limits.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
        maxComputeWorkgroupSizeX: adapter.limits.maxComputeWorkgroupSizeX,
        maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
        // The fused attention gradient binds 11 inputs and its output; the default allows 8.
        maxStorageBuffersPerShaderStage: adapter.limits.maxStorageBuffersPerShaderStage,
      },
    });
    info.maxBufferBytes = device.limits.maxBufferSize;
    info.maxStorageBindingBytes = device.limits.maxStorageBufferBindingSize;

    restoreNavigator = installNavigatorGpu(dawn.globals, gpu);
    const backendModule = await import('@tensorflow/tfjs-backend-webgpu');
    const open: OpenDevice = { gpu, device, info, restoreNavigator, lostReason: null };
    void device.lost.then((lost) => {
      open.lostReason = `${lost.reason}: ${lost.message}`;
    });
    registerFactory(backendModule.WebGPUBackend, device, adapter.info);
    routeAroundKernelGaps();
    if (opts.fusedKernels !== false && device.limits.maxStorageBuffersPerShaderStage >= FUSED_STORAGE_BUFFERS) registerFusedWebgpuKernels();
    opened = open;
    await activate();
    await smokeTest();
    return { ok: true, info };
  } catch (error) {
    shutdownQuietly(device, restoreNavigator);
    opened = null;
    return failure(error);
  }
}

function softwareRefusal(info: WebgpuDeviceInfo): string {
  return `only a software adapter was found (${info.device || info.description}); it is slower than the CPU backends, so it is used only when the webgpu backend is asked for by name`;
}

function deviceInfo(adapter: GPUAdapter): WebgpuDeviceInfo {
  const a = adapter.info;
  const text = `${a.vendor} ${a.architecture} ${a.device} ${a.description}`;
  return {
    vendor: a.vendor ?? '',
    architecture: a.architecture ?? '',
    device: a.device ?? '',
    description: a.description ?? '',
    software: (a as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || /software|llvmpipe|lavapipe|swiftshader/i.test(text),
    maxBufferBytes: adapter.limits.maxBufferSize,
    maxStorageBindingBytes: adapter.limits.maxStorageBufferBindingSize,
    features: [...adapter.features].sort(),
  };
}

/**
 * Dawn's WebGPU classes (GPUBufferUsage, ...) as globals, which tfjs-backend-webgpu reads, and `navigator.gpu`.
 * Node >= 21 has a `navigator` of its own (a getter on globalThis): there `gpu` is added to it instead.
 * Returns the undo.
 */
function installNavigatorGpu(globals: object, gpu: GPU): () => void {
  const added = Object.keys(globals).filter((k) => !(k in globalThis));
  Object.assign(globalThis, Object.fromEntries(added.map((k) => [k, (globals as Record<string, unknown>)[k]])));
  const g = globalThis as { navigator?: object };
  let undoNavigator: () => void;
  if (g.navigator && typeof g.navigator === 'object') {
    const nav = g.navigator;
    Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
    undoNavigator = () => delete (nav as { gpu?: unknown }).gpu;
  } else {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    undoNavigator = () => delete g.navigator;
  }
  return () => {
    undoNavigator();
    for (const k of added) delete (globalThis as Record<string, unknown>)[k];
  };
}

type WebGPUBackendClass = new (device: GPUDevice, adapterInfo?: GPUAdapterInfo) => WebGPUBackend;

function registerFactory(Backend: WebGPUBackendClass, device: GPUDevice, adapterInfo: GPUAdapterInfo): void {
  // The package registered a factory of its own that opens a second device; ours hands over the one we hold.
  if (tf.findBackendFactory(WEBGPU_BACKEND) != null) tf.removeBackend(WEBGPU_BACKEND);
  tf.registerBackend(WEBGPU_BACKEND, async () => new Backend(device, adapterInfo), 3);
}

async function activate(): Promise<void> {
  if (!(await tf.setBackend(WEBGPU_BACKEND))) throw new Error('tfjs could not initialise the webgpu backend');
  await tf.ready();
}

/**
 * A product and a reduction whose answers are known: a driver that hands out an adapter but cannot run
 * compute shaders fails here, at start-up, rather than in the middle of training.
 */
async function smokeTest(): Promise<void> {
  const [product, total] = tf.tidy(() => {
    const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = tf.tensor2d([1, 0, 0, 1, 1, 1], [3, 2]);
    return [tf.matMul(a, b), tf.sum(tf.range(0, 4096))];
  });
  const got = [...(await product.data()), ...(await total.data())];
  tf.dispose([product, total]);
  const want = [4, 5, 10, 11, (4095 * 4096) / 2];
  if (got.some((v, i) => v !== want[i])) {
    throw new Error(`the GPU computed wrong results in a start-up check (got [${got}], expected [${want}])`);
  }
  if (opened?.lostReason) throw new Error(`the GPU device was lost during start-up (${opened.lostReason})`);
}

let gapsRouted = false;

/**
 * Kernels of tfjs-backend-webgpu 4.22 that mishandle valid arguments, wrapped to normalise them first.
 * - Cumsum / Cumprod with a negative axis fail ("axis must be the last dimension"): turn it positive.
 * - BatchMatMul / _FusedMatMul give wrong numbers (errors of 100s) with transposeB in the split-K program, which
 *   tfjs picks for a small output over a long inner dimension (>= 2000): B is transposed first there. Such a B
 *   is small (the output has few columns), so the copy is cheap.
 * And one that is slow: a BatchMatMul of 1-4 rows (each decoding step's products) wastes 31/32 of tfjs's 32 x 32
 * tiles; webgpu/gemv.ts runs those.
 */
function routeAroundKernelGaps(): void {
  if (gapsRouted) return;
  gapsRouted = true;
  for (const name of [tf.BatchMatMul, tf._FusedMatMul]) {
    const original = tf.getKernel(name, WEBGPU_BACKEND);
    if (!original) continue;
    tf.unregisterKernel(name, WEBGPU_BACKEND);
    tf.registerKernel({
      ...original,
      kernelFunc: (args) => {
        const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
        const attrs = args.attrs as { transposeA: boolean; transposeB: boolean };
        if (name === tf.BatchMatMul && usesGemv(a, b, attrs.transposeA, attrs.transposeB)) {
          return gemv(args.backend as WebGPUBackend, a, b, [a.shape[0], b.shape[1]]);
        }
        if (!attrs.transposeB || !picksSplitK(args.backend as WebGPUBackend, a, b, attrs.transposeA, true)) return original.kernelFunc(args);
        const rank = b.shape.length;
        const perm = [...Array(rank - 2).keys(), rank - 1, rank - 2];
        const transpose = tf.getKernel(tf.Transpose, WEBGPU_BACKEND)!;
        const bT = transpose.kernelFunc({ inputs: { x: b }, backend: args.backend, attrs: { perm } }) as tf.TensorInfo;
        try {
          return original.kernelFunc({ ...args, inputs: { ...args.inputs, b: bT }, attrs: { ...args.attrs, transposeB: false } });
        } finally {
          (args.backend as WebGPUBackend).disposeData(bT.dataId);
        }
      },
    });
  }
  for (const name of [tf.Cumsum, tf.Cumprod]) {
    const original = tf.getKernel(name, WEBGPU_BACKEND);
    if (!original) continue;
    tf.unregisterKernel(name, WEBGPU_BACKEND);
    tf.registerKernel({
      ...original,
      kernelFunc: (args) => {
        const axis = (args.attrs as { axis: number }).axis;
        const rank = (args.inputs as { x: tf.TensorInfo }).x.shape.length;
        const attrs = axis < 0 ? { ...args.attrs, axis: axis + rank } : args.attrs;
        return original.kernelFunc({ ...args, attrs });
      },
    });
  }
}

/**
 * Whether a product goes to our few-row kernel (webgpu/gemv.ts) instead of tfjs's 32 x 32 tiles: 2-D float32,
 * no transposes, at most GEMV_MAX_ROWS rows, and a weight big enough for the difference to matter.
 */
function usesGemv(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): boolean {
  return (
    !transposeA && !transposeB && a.shape.length === 2 && b.shape.length === 2 && a.dtype === 'float32' && b.dtype === 'float32' &&
    a.shape[0] <= GEMV_MAX_ROWS && b.shape[0] * b.shape[1] >= 65536
  );
}

/** Whether tfjs-backend-webgpu's BatchMatMul (kernels/BatchMatMul_impl.ts) would run MatMulSplitKProgram. */
function picksSplitK(backend: WebGPUBackend, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): boolean {
  if (tf.env().getNumber('WEBGPU_MATMUL_PROGRAM_TYPE') >= 0) return false;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const outerA = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const outerB = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  const innerB = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const batch = Math.max(a.shape.slice(0, -2).reduce((p, d) => p * d, 1), b.shape.slice(0, -2).reduce((p, d) => p * d, 1));
  const flag = tf.env().getNumber('WEBGPU_THRESHOLD_TO_INCREASE_WORKGROUPS_FOR_MATMUL');
  const threshold = flag > 0 ? flag : (backend as unknown as { thresholdToIncreaseWorkgroups: number }).thresholdToIncreaseWorkgroups;
  const workgroups = batch * Math.ceil(outerA / 32) * Math.ceil(outerB / 32);
  const few = workgroups <= threshold || (outerA <= 8 && workgroups <= threshold * 2);
  return few && batch * outerA * outerB > 128 && batch === 1 && innerB >= 2000;
}

function shutdownQuietly(device: GPUDevice | null, restoreNavigator: (() => void) | null): void {
  try {
    if (tf.findBackendFactory(WEBGPU_BACKEND) != null) tf.removeBackend(WEBGPU_BACKEND);
  } catch {
    // Nothing registered: nothing to remove.
  }
  try {
    device?.destroy();
  } catch {
    // Already destroyed or lost.
  }
  restoreNavigator?.();
}

/**
 * Releases the GPU: disposes the backend's buffers, destroys the device and removes the globals, so that the
 * process can exit and another backend can be chosen. Tensors on the webgpu backend are lost.
 */
export function shutdownWebgpu(): void {
  if (!opened) return;
  const { device, restoreNavigator } = opened;
  opened = null;
  shutdownQuietly(device, restoreNavigator);
}

/** Why the device stopped working (driver reset, out of memory), or null while it is healthy. */
export function webgpuDeviceLost(): string | null {
  return opened?.lostReason ?? null;
}

/** The raw device, for kernels and tools that need it (error scopes in the GPU check). */
export function webgpuDevice(): GPUDevice | null {
  return opened?.device ?? null;
}
