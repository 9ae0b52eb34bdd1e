// The GPU check: on a machine with a GPU (and perhaps no network), start the webgpu backend, run the parity
// checks against the transformers + PEFT fixtures, then time adapter training, a forward pass and KV-cached
// decoding on a LLaMA-shaped model with random weights made on the GPU: 7B, or the largest shape that fits the
// GPU's buffer limits and memory; with the engine's fused WGSL kernels and with tfjs's composite ops. A plain Node
// program (bundled by tools/make-gpu-bundle.sh, run by bench/gpu-check.sh; docs/GPU.md).
//
// Environment (all optional):
//   GPU_CHECK_SHAPE     auto (default) | 7b | 3b | 1b | small | tiny
//   GPU_CHECK_BUDGET_S  seconds for everything (default 400); phases shrink to fit
//   GPU_CHECK_MEMORY_MIB  the GPU's memory (bench/gpu-check.sh reads it from nvidia-smi); WebGPU cannot tell
//   GPU_CHECK_BATCH, GPU_CHECK_SEQ  training micro-batch (default 1 x 512; 1 x 64 for small/tiny)
//   GPU_CHECK_STEPS     timed training steps (default 3), GPU_CHECK_DECODE  decoded tokens (default 32)
//   GPU_CHECK_FIXTURES  folder of parity cases (default: fixtures/parity beside the bundle, or test/fixtures/parity)
//   GPU_CHECK_RESULT    write the summary as JSON to this file
// Exit status: 0 all passed, 1 a parity check failed, 2 the webgpu backend did not start, 3 the benchmark failed.

import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { type Adapter, adapterVariables, disposeAdapter, initAdapter, topLayers } from '../../src-main/engine/adapter.js';
import { describeWebgpuDevice, formatWebgpuDevice, initWebgpuBackend, shutdownWebgpu, webgpuDevice } from '../../src-main/engine/backends/webgpu.js';
import { type LlamaConfig, PLAIN_LLAMA } from '../../src-main/engine/config.js';
import { memoryEstimate } from '../../src-main/engine/load.js';
import { crossEntropy, shiftedTargets } from '../../src-main/engine/loss.js';
import { fusedKernels, setFusedKernelsEnabled } from '../../src-main/engine/kernels.js';
import { disposeKVCache, disposeModel, forward, type LlamaModel, newKVCache } from '../../src-main/engine/model.js';
import { adamWStep, disposeAdamWState, newAdamWState } from '../../src-main/engine/optimizer.js';
import { Rng } from '../../src-main/engine/rng.js';
import { formatCheck, PARITY_TOLERANCE, parityCases, runParityCase } from './parity.js';
import { randomLlama } from './random-weights.js';

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const env = (name: string) => process.env[name]?.trim() || undefined;
const intEnv = (name: string, fallback: number) => {
  const v = env(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${v}"`);
  return n;
};
const budget = intEnv('GPU_CHECK_BUDGET_S', 400);
const remaining = () => budget - elapsed();
const log = (line: string) => console.log(`[${elapsed().toFixed(1).padStart(6)}s] ${line}`);
const GiB = 1024 ** 3;
const gib = (bytes: number) => `${(bytes / GiB).toFixed(2)} GiB`;

function llama(name: string, o: Omit<LlamaConfig, 'family' | 'attentionBias' | 'headDim' | 'normEps' | 'ropeTheta' | 'ropeScaling' | 'maxPositions' | 'tieEmbeddings' | 'bosId' | 'eosIds'>): [string, LlamaConfig] {
  return [name, { ...PLAIN_LLAMA, ...o, headDim: o.dim / o.nHeads, normEps: 1e-5, ropeTheta: 10000, ropeScaling: null, maxPositions: 4096, tieEmbeddings: false, bosId: 1, eosIds: [2] }];
}

/** Largest first. 7b: LLaMA-2 7B; 3b: OpenLLaMA 3B; 1b: TinyLlama 1.1B (grouped-query attention). */
const SHAPES = new Map<string, LlamaConfig>([
  llama('7b', { vocabSize: 32000, dim: 4096, ffnDim: 11008, nLayers: 32, nHeads: 32, nKvHeads: 32 }),
  llama('3b', { vocabSize: 32000, dim: 3200, ffnDim: 8640, nLayers: 26, nHeads: 32, nKvHeads: 32 }),
  llama('1b', { vocabSize: 32000, dim: 2048, ffnDim: 5632, nLayers: 22, nHeads: 32, nKvHeads: 4 }),
  llama('small', { vocabSize: 32000, dim: 512, ffnDim: 1376, nLayers: 4, nHeads: 8, nKvHeads: 8 }),
  llama('tiny', { vocabSize: 1000, dim: 128, ffnDim: 344, nLayers: 4, nHeads: 4, nKvHeads: 2 }),
]);

function parameterBytes(c: LlamaConfig): number {
  const perLayer = 2 * c.dim + c.dim * c.headDim * (2 * c.nHeads + 2 * c.nKvHeads) + 3 * c.dim * c.ffnDim;
  return 4 * (c.nLayers * perLayer + c.dim + 2 * c.vocabSize * c.dim);
}

function largestTensorBytes(c: LlamaConfig): number {
  return 4 * Math.max(c.vocabSize * c.dim, c.dim * c.ffnDim, c.dim * c.nHeads * c.headDim);
}

interface Plan {
  name: string;
  config: LlamaConfig;
  batch: number;
  seq: number;
}

/** The requested shape, or the largest whose tensors fit the binding limit and whose total fits the memory. */
function choosePlans(maxBinding: number, memoryBytes: number | null): Plan[] {
  const requested = env('GPU_CHECK_SHAPE') ?? 'auto';
  const names = requested === 'auto' ? ['7b', '3b', '1b', 'small'] : [requested];
  const plans: Plan[] = [];
  for (const name of names) {
    const config = SHAPES.get(name);
    if (!config) throw new Error(`GPU_CHECK_SHAPE: unknown shape "${name}"; choose auto, ${[...SHAPES.keys()].join(', ')}`);
    const big = config.dim >= 2048;
    const plan = { name, config, batch: intEnv('GPU_CHECK_BATCH', 1), seq: intEnv('GPU_CHECK_SEQ', big ? 512 : 64) };
    const largest = largestTensorBytes(config);
    const weights = parameterBytes(config);
    const activations = memoryEstimate(config, plan.batch, plan.seq).activationBytes;
    // tfjs keeps every intermediate of the adapted layers for backprop, ~2x the estimate of a fused trainer.
    const needed = weights + 2 * activations;
    if (largest > maxBinding) {
      log(`shape ${name}: skipped, its largest tensor (${gib(largest)}) exceeds the GPU's storage binding limit (${gib(maxBinding)})`);
    } else if (memoryBytes !== null && needed > 0.9 * memoryBytes) {
      log(`shape ${name}: skipped, needs ~${gib(needed)} (weights ${gib(weights)}) of the GPU's ${gib(memoryBytes)}`);
    } else {
      plans.push(plan);
    }
  }
  return plans;
}

/** Runs `fn` inside WebGPU error scopes, so that an allocation the GPU refused is reported, not silently zero. */
async function checkedOnGpu<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const device = webgpuDevice();
  device?.pushErrorScope('out-of-memory');
  device?.pushErrorScope('validation');
  let result: T;
  try {
    result = await fn();
  } finally {
    const validation = await device?.popErrorScope();
    const oom = await device?.popErrorScope();
    const error = oom ?? validation;
    if (error) throw new Error(`${what}: the GPU reported ${oom ? 'out of memory' : 'a validation error'}: ${error.message}`);
  }
  return result;
}

function gpuMemory(): { inUse: number; allocated: number } {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
  return { inUse: m.numBytesInGPU ?? 0, allocated: m.numBytesAllocatedInGPU ?? 0 };
}

function randomIds(rng: Rng, n: number, vocab: number): Int32Array {
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = 3 + Math.floor(rng.next() * (vocab - 3));
  return ids;
}

interface BenchResult {
  shape: string;
  params: number;
  weightsGiB: number;
  buildSeconds: number;
  batch: number;
  seq: number;
  adaptedLayers: number;
  adapterLen: number;
  afterWeightsGiB: number;
  variants: Partial<Record<'fused' | 'composite', VariantResult>>;
}

async function bench(plan: Plan): Promise<BenchResult> {
  const c = plan.config;
  const { batch: B, seq: T } = plan;
  const params = parameterBytes(c) / 4;
  log(`benchmark shape ${plan.name}: ${(params / 1e9).toFixed(2)}B parameters, dim ${c.dim}, ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} kv), ffn ${c.ffnDim}, vocab ${c.vocabSize}; float32 weights ${gib(params * 4)}`);

  let t0 = performance.now();
  let made: LlamaModel | null = null;
  try {
    await checkedOnGpu('making the random weights', async () => {
      made = randomLlama(c, 7);
      await made.weights.norm.data(); // waits for every queued fill
    });
  } catch (error) {
    if (made) disposeModel(made);
    throw error;
  }
  const model: LlamaModel = made!;
  try {
    return await benchModel(plan, model, (performance.now() - t0) / 1000);
  } finally {
    disposeModel(model);
  }
}

async function benchModel(plan: Plan, model: LlamaModel, buildSeconds: number): Promise<BenchResult> {
  const c = plan.config;
  const afterWeights = gpuMemory();
  log(`random weights made on the GPU in ${buildSeconds.toFixed(1)} s; GPU memory in use ${gib(afterWeights.inUse)}`);

  const rng = new Rng(11);
  // The paper's adapter: K = 10 prompt vectors on all layers but the first two.
  const adapter = initAdapter(c, { adapterLen: 10, layers: topLayers(c.nLayers, Math.max(1, c.nLayers - 2)), gateMode: 'per-head-tanh' }, rng);
  try {
    return await benchAdapter(plan, model, adapter, rng, buildSeconds, afterWeights);
  } finally {
    disposeAdapter(adapter);
  }
}

interface VariantResult {
  train: { firstStepSeconds: number; stepSeconds: number[]; tokensPerSec: number; losses: number[] };
  forwardTokensPerSec: number | null;
  decode: { promptTokens: number; prefillSeconds: number; tokens: number; tokensPerSec: number } | null;
  peakAllocatedGiB: number;
}

/**
 * The engine's kernels on this backend: 'fused' (one WGSL kernel per attention, norm, SwiGLU, RoPE and
 * cross-entropy; engine/kernels.ts) and 'composite' (tfjs's own ops). Fused only where the engine enables it.
 */
function variants(): ('fused' | 'composite')[] {
  setFusedKernelsEnabled(true);
  const fusedAvailable = fusedKernels() !== null;
  if (!fusedAvailable) log('fused kernels: not enabled for this backend in engine/kernels.ts; measuring the composite ops only');
  return fusedAvailable ? ['fused', 'composite'] : ['composite'];
}

async function benchAdapter(plan: Plan, model: LlamaModel, adapter: Adapter, rng: Rng, buildSeconds: number, afterWeights: { inUse: number }): Promise<BenchResult> {
  const c = plan.config;
  const params = parameterBytes(c) / 4;
  // Non-zero gates so that the prompt branch's gradient flows everywhere, as after the first steps of training.
  for (const l of adapter.byLayer.values()) tf.tidy(() => l.gate.assign(tf.fill(l.gate.shape, 0.1)));
  const results: Partial<Record<'fused' | 'composite', VariantResult>> = {};
  const list = variants();
  for (const [n, variant] of list.entries()) {
    // The first variant may use its share of the time left; a later one runs only with enough left.
    const share = remaining() / (list.length - n);
    if (n > 0 && remaining() < 90) {
      log(`${variant}: skipped, ${remaining().toFixed(0)} s left of the budget`);
      break;
    }
    setFusedKernelsEnabled(variant === 'fused');
    log(`-- ${variant} kernels --`);
    try {
      results[variant] = await measureVariant(plan, model, adapter, rng, performance.now() / 1000 + share);
    } finally {
      setFusedKernelsEnabled(true);
    }
  }
  return {
    shape: plan.name,
    params,
    weightsGiB: (params * 4) / GiB,
    buildSeconds,
    batch: plan.batch,
    seq: plan.seq,
    adaptedLayers: adapter.spec.layers.length,
    adapterLen: adapter.spec.adapterLen,
    afterWeightsGiB: afterWeights.inUse / GiB,
    variants: results,
  };
}

/** Training steps, a forward pass and KV-cached decoding, keeping within `until` (performance.now() seconds). */
async function measureVariant(plan: Plan, model: LlamaModel, adapter: Adapter, rng: Rng, until: number): Promise<VariantResult> {
  const c = plan.config;
  const { batch: B, seq: T } = plan;
  const left = () => Math.min(until - performance.now() / 1000, remaining());
  let t0: number;
  const vars = adapterVariables(adapter);
  const opt = newAdamWState(vars);
  const ids = randomIds(rng, B * T, c.vocabSize);
  const idsTensor = tf.tensor2d(ids, [B, T], 'int32');
  const targets = shiftedTargets(ids, B, T);

  const step = async () => {
    const { value, grads } = tf.variableGrads(() => crossEntropy(forward(model, idsTensor, { adapter }), targets), vars);
    const loss = (await value.data())[0];
    adamWStep(vars, grads, opt, 1e-3, { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.02 });
    tf.dispose([value, ...Object.values(grads)]);
    await vars[vars.length - 1].data(); // the update has run
    return loss;
  };

  const losses: number[] = [];
  const stepSeconds: number[] = [];
  let firstStepSeconds: number;
  try {
    t0 = performance.now();
    losses.push(await checkedOnGpu('the first training step', step));
    firstStepSeconds = (performance.now() - t0) / 1000;
    log(`train step 1 (compiles the shaders): ${firstStepSeconds.toFixed(2)} s, loss ${losses[0].toFixed(4)}`);
    const wantedSteps = intEnv('GPU_CHECK_STEPS', 3);
    for (let s = 0; s < wantedSteps; s++) {
      // Keep time for the forward pass and decoding: a step costs about what the last one did.
      const last = stepSeconds.at(-1) ?? firstStepSeconds;
      if (left() < 2 * last + 30) {
        log(`stopping training early: ${left().toFixed(0)} s left for this variant`);
        break;
      }
      t0 = performance.now();
      losses.push(await step());
      stepSeconds.push((performance.now() - t0) / 1000);
      log(`train step ${s + 2}: ${stepSeconds.at(-1)!.toFixed(2)} s (${((B * T) / stepSeconds.at(-1)!).toFixed(1)} tokens/s), loss ${losses.at(-1)!.toFixed(4)}`);
    }
  } finally {
    tf.dispose([idsTensor, targets.labels, targets.mask]);
    disposeAdamWState(opt);
  }
  const timed = stepSeconds.length ? stepSeconds : [firstStepSeconds];
  const tokensPerSec = (B * T) / (timed.reduce((a, b) => a + b, 0) / timed.length);
  log(`training: ${tokensPerSec.toFixed(1)} tokens/s (batch ${B} x ${T}, adapter K=${adapter.spec.adapterLen} on ${adapter.spec.layers.length} layers)`);
  const afterTrain = gpuMemory();

  // Forward only (no tape): the prompt-processing rate for evaluation and prefill.
  let forwardTokensPerSec: number | null = null;
  if (left() > 3 * timed[0] + 10) {
    const x = tf.tensor2d(ids, [B, T], 'int32');
    for (let i = 0; i < 2; i++) {
      t0 = performance.now();
      const logits = forward(model, x, { adapter });
      await logits.data();
      logits.dispose();
      forwardTokensPerSec = (B * T) / ((performance.now() - t0) / 1000);
    }
    x.dispose();
    log(`forward only: ${forwardTokensPerSec!.toFixed(1)} tokens/s (batch ${B} x ${T})`);
  }

  let decode: VariantResult['decode'] = null;
  if (left() > 10) {
    const promptTokens = Math.min(128, T);
    const cache = newKVCache(c);
    try {
      t0 = performance.now();
      let logits = forward(model, tf.tensor2d(randomIds(rng, promptTokens, c.vocabSize), [1, promptTokens], 'int32'), { adapter, cache });
      let row = await lastRow(logits, c.vocabSize);
      const prefillSeconds = (performance.now() - t0) / 1000;
      const wanted = intEnv('GPU_CHECK_DECODE', 32);
      let tokens = 0;
      t0 = performance.now();
      while (tokens < wanted && left() > 5) {
        const next = argmax(row); // greedy, read back as the app's sampler does
        logits = forward(model, tf.tensor2d([[next]], [1, 1], 'int32'), { adapter, cache });
        row = await lastRow(logits, c.vocabSize);
        tokens++;
        if (tokens === 1) t0 = performance.now(); // the first decode step compiles the 1-token shaders
      }
      const seconds = (performance.now() - t0) / 1000;
      decode = { promptTokens, prefillSeconds, tokens, tokensPerSec: tokens > 1 ? (tokens - 1) / seconds : 0 };
      log(`decode: prompt ${promptTokens} tokens in ${prefillSeconds.toFixed(2)} s, then ${decode.tokensPerSec.toFixed(2)} tokens/s (KV cache, ${tokens} tokens, greedy)`);
    } finally {
      disposeKVCache(cache);
    }
  }
  const peak = Math.max(afterTrain.allocated, gpuMemory().allocated);
  log(`GPU memory held by tfjs (peak, incl. its buffer pool): ${gib(peak)}`);
  return { train: { firstStepSeconds, stepSeconds, tokensPerSec, losses }, forwardTokensPerSec, decode, peakAllocatedGiB: peak / GiB };
}

async function lastRow(logits: tf.Tensor3D, vocab: number): Promise<Float32Array> {
  const T = logits.shape[1];
  const last = tf.tidy(() => tf.reshape(tf.slice(logits, [0, T - 1, 0], [1, 1, vocab]), [vocab]));
  const row = (await last.data()) as Float32Array;
  tf.dispose([logits, last]);
  return row;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

function defaultFixtures(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [join(here, '..', 'fixtures', 'parity'), join(here, 'fixtures', 'parity'), resolve('test', 'fixtures', 'parity')]) {
    if (existsSync(dir)) return dir;
  }
  throw new Error('no parity fixtures found; set GPU_CHECK_FIXTURES');
}

async function main(): Promise<number> {
  const summary: Record<string, unknown> = { node: process.version, budgetSeconds: budget };
  const finish = (code: number) => {
    summary.seconds = elapsed();
    summary.exitCode = code;
    console.log(`RESULT ${JSON.stringify(summary)}`);
    const out = env('GPU_CHECK_RESULT');
    if (out) writeFileSync(out, JSON.stringify(summary, null, 2) + '\n');
    shutdownWebgpu();
    return code;
  };

  const status = await initWebgpuBackend({ allowSoftware: true });
  if (!status.ok) {
    log(`the webgpu backend did not start: ${status.reason}`);
    summary.error = status.reason;
    return finish(2);
  }
  const info = describeWebgpuDevice()!;
  summary.device = info;
  log(`webgpu backend on ${formatWebgpuDevice(info)}`);
  if (info.software) log('note: a software adapter (CPU); timings say nothing about a GPU');

  // Parity: every fixture case, every check.
  const fixtures = env('GPU_CHECK_FIXTURES') ?? defaultFixtures();
  const checks = [];
  const t0 = performance.now();
  for (const name of parityCases(fixtures)) {
    const caseChecks = await runParityCase(fixtures, name);
    for (const c of caseChecks) if (!c.pass) log(formatCheck(c));
    const worst = Math.max(...caseChecks.filter((c) => c.kind === 'max-diff').map((c) => c.value));
    log(`parity ${name}: ${caseChecks.filter((c) => c.pass).length}/${caseChecks.length} checks passed, largest difference ${worst.toExponential(2)} (tolerance ${PARITY_TOLERANCE})`);
    checks.push(...caseChecks);
  }
  const failed = checks.filter((c) => !c.pass);
  summary.parity = { checks: checks.length, failed: failed.map(formatCheck), seconds: (performance.now() - t0) / 1000 };
  log(failed.length ? `PARITY FAILED: ${failed.length} of ${checks.length} checks` : `parity: all ${checks.length} checks passed`);

  const memoryMib = env('GPU_CHECK_MEMORY_MIB');
  const memoryBytes = memoryMib ? Number(memoryMib) * 1024 * 1024 : null;
  const plans = choosePlans(info.maxStorageBindingBytes, memoryBytes);
  if (plans.length === 0) {
    summary.error = 'no benchmark shape fits this GPU';
    return finish(3);
  }
  for (const plan of plans) {
    try {
      summary.bench = await bench(plan);
      break;
    } catch (error) {
      const message = (error as Error).message;
      log(`shape ${plan.name} failed: ${message}`);
      summary[`bench_${plan.name}_error`] = message;
      if (remaining() < 120) break;
    }
  }
  if (!summary.bench) return finish(3);
  return finish(failed.length ? 1 : 0);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 3;
  },
);
