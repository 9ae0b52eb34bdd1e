// Full-parameter training of a LLaMA model from scratch (next-token loss on packed plain text), and
// writing the result as a Hugging Face model folder that load.ts reads like any downloaded model.
//
// Every weight of an ordinary LlamaWeights is a tf.Variable here, so model.forward runs unchanged.
// One gap in tfjs has to be bridged: the embedding lookup is a `gather`, whose backward needs
// UnsortedSegmentSum, which the wasm (and so the native) backend lacks. While a step's gradients are
// computed, gather's gradient is swapped for the equivalent one-hot product
// dEmbed = oneHot(ids, V)^T @ dy, which every backend runs (see withOneHotGatherGradient).

import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_PROJECTIONS, layerNormNames, toHfConfig, type LlamaConfig } from './config.js';
import { EngineError } from './errors.js';
import { crossEntropy, shiftedTargets } from './loss.js';
import { forward, type LayerWeights, type LlamaModel, type LlamaWeights } from './model.js';
import { type AdamWState, adamWStep, disposeAdamWState, learningRate, newAdamWState } from './optimizer.js';
import { Rng } from './rng.js';
import { writeAtomically, writeSafetensors, type TensorToWrite, type WritableDtype } from './safetensors.js';
import { type Encoder, epochOrder } from './data.js';
import { yieldToEventLoop } from './cancel.js';

// ---------------------------------------------------------------------------------------------
// Initial weights

let modelInstances = 0;

/**
 * Fresh trainable weights, as transformers initialises LlamaForCausalLM: every matrix ~ N(0, 0.02),
 * norms 1. The two projections that write into the residual stream (wo, wDown) are further scaled
 * by 1/sqrt(2 * nLayers) (GPT-2's rule) so the residual stream does not grow with depth.
 */
export function initTrainableWeights(c: LlamaConfig, rng: Rng, std = 0.02): LlamaWeights {
  const id = modelInstances++;
  // tf.variable keeps its own reference to the initial value's data: dispose the initial tensor.
  const variable = <R extends tf.Rank>(initial: tf.Tensor<R>, name: string): tf.Variable<R> => {
    const v = tf.variable(initial, true, `full${id}.${name}`);
    initial.dispose();
    return v;
  };
  const normal = (shape: [number, number], scale: number, name: string) => {
    const data = new Float32Array(shape[0] * shape[1]);
    for (let i = 0; i < data.length; i++) data[i] = scale * rng.normal();
    return variable(tf.tensor2d(data, shape), name);
  };
  const ones = (n: number, name: string) => variable(tf.ones([n]) as tf.Tensor1D, name);
  const residualStd = std / Math.sqrt(2 * c.nLayers);
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.nLayers; i++) {
    const p = `layers.${i}`;
    layers.push({
      attnNorm: ones(c.dim, `${p}.attnNorm`),
      wq: normal([c.dim, q], std, `${p}.wq`),
      wk: normal([c.dim, kv], std, `${p}.wk`),
      wv: normal([c.dim, kv], std, `${p}.wv`),
      wo: normal([q, c.dim], residualStd, `${p}.wo`),
      mlpNorm: ones(c.dim, `${p}.mlpNorm`),
      wGate: normal([c.dim, c.ffnDim], std, `${p}.wGate`),
      wUp: normal([c.dim, c.ffnDim], std, `${p}.wUp`),
      wDown: normal([c.ffnDim, c.dim], residualStd, `${p}.wDown`),
    });
  }
  return {
    embed: normal([c.vocabSize, c.dim], std, 'embed'),
    layers,
    norm: ones(c.dim, 'norm'),
    lmHead: c.tieEmbeddings ? null : normal([c.dim, c.vocabSize], std, 'lmHead'),
  };
}

/** Every weight tensor with its HF name; linear weights are in the engine's [in, out] layout. */
export function namedWeights(model: LlamaModel): { name: string; tensor: tf.Tensor; linear: boolean }[] {
  if (model.config.family === 'gpt2') throw new EngineError('namedWeights covers the LLaMA layout; GPT-2 folders are written by gpt2Tensors');
  const w = model.weights;
  const out: { name: string; tensor: tf.Tensor; linear: boolean }[] = [{ name: 'model.embed_tokens.weight', tensor: w.embed, linear: false }];
  const norms = layerNormNames(model.config);
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}`;
    out.push(
      { name: `${p}.input_layernorm.weight`, tensor: l.attnNorm, linear: false },
      { name: `${p}.self_attn.q_proj.weight`, tensor: l.wq, linear: true },
      { name: `${p}.self_attn.k_proj.weight`, tensor: l.wk, linear: true },
      { name: `${p}.self_attn.v_proj.weight`, tensor: l.wv, linear: true },
      { name: `${p}.self_attn.o_proj.weight`, tensor: l.wo, linear: true },
      ...(['q', 'k', 'v', 'o'] as const).flatMap((x) => {
        const b = l[`b${x}`];
        return b ? [{ name: `${p}.self_attn.${x}_proj.bias`, tensor: b, linear: false }] : [];
      }),
      ...(l.qNorm && l.kNorm
        ? [
            { name: `${p}.self_attn.q_norm.weight`, tensor: l.qNorm, linear: false },
            { name: `${p}.self_attn.k_norm.weight`, tensor: l.kNorm, linear: false },
          ]
        : []),
      { name: `${p}.${norms.mlpNorm}.weight`, tensor: l.mlpNorm, linear: false },
      ...(l.postAttnNorm && l.postMlpNorm && norms.postAttnNorm && norms.postMlpNorm
        ? [
            { name: `${p}.${norms.postAttnNorm}.weight`, tensor: l.postAttnNorm, linear: false },
            { name: `${p}.${norms.postMlpNorm}.weight`, tensor: l.postMlpNorm, linear: false },
          ]
        : []),
      ...(l.wGate ? [{ name: `${p}.mlp.gate_proj.weight`, tensor: l.wGate, linear: true }] : []),
      { name: `${p}.mlp.up_proj.weight`, tensor: l.wUp, linear: true },
      { name: `${p}.mlp.down_proj.weight`, tensor: l.wDown, linear: true },
    );
  });
  out.push({ name: 'model.norm.weight', tensor: w.norm, linear: false });
  if (w.lmHead) out.push({ name: 'lm_head.weight', tensor: w.lmHead, linear: true });
  return out;
}

// ---------------------------------------------------------------------------------------------
// The embedding gradient

/**
 * gather(x, indices) along axis 0 with no batch dims, differentiated as oneHot(indices)^T @ dy:
 * the same sum of dy rows per looked-up id that UnsortedSegmentSum computes, built from OneHot and
 * a matrix product, which every backend has.
 */
const oneHotGatherGradient: tf.GradConfig = {
  kernelName: tf.GatherV2,
  inputsToSave: ['x', 'indices'],
  gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs?: tf.NamedAttrMap) => {
    const [x, indices] = saved;
    const { axis, batchDims } = attrs as unknown as tf.GatherV2Attrs;
    if (axis !== 0 || batchDims !== 0 || x.rank !== 2) {
      throw new EngineError(`one-hot gather gradient supports a 2-D table on axis 0 only (got rank ${x.rank}, axis ${axis}, batchDims ${batchDims})`);
    }
    const rows = x.shape[0];
    return {
      x: () => {
        const flatIds = tf.reshape(indices, [-1]) as tf.Tensor1D; // [N]
        const upstream = tf.reshape(dy as tf.Tensor, [-1, x.shape[1]!]); // [N, dim]
        return tf.matMul(tf.oneHot(tf.cast(flatIds, 'int32'), rows), upstream, true, false); // [rows, dim]
      },
      indices: () => tf.zerosLike(indices),
    };
  },
};

/**
 * Run `fn` (which computes gradients) with gather's gradient replaced by the one-hot form; the
 * original is restored afterwards. Synchronous, so nothing else can observe the swap.
 */
export function withOneHotGatherGradient<T>(fn: () => T): T {
  const original = tf.getGradient(tf.GatherV2);
  tf.registerGradient(oneHotGatherGradient);
  try {
    return fn();
  } finally {
    if (original) tf.registerGradient(original);
  }
}

// ---------------------------------------------------------------------------------------------
// Data: documents packed into fixed-length windows

/** Each text as BOS + tokens + EOS: the unit that packDocuments concatenates. */
export function tokenizeDocuments(tok: Encoder, texts: string[]): number[][] {
  return texts.map((t) => tok.encode(t, { bos: true, eos: true }));
}

/**
 * Concatenate tokenised documents (each already BOS ... EOS) into one stream and cut it into
 * windows of `seqLen` tokens [count, seqLen]; the tail shorter than a window is dropped.
 * Every position is a training target, as in LLaMA pre-training.
 */
export function packDocuments(docs: number[][], seqLen: number): { windows: Int32Array; count: number } {
  let total = 0;
  for (const d of docs) total += d.length;
  const count = Math.floor(total / seqLen);
  const windows = new Int32Array(count * seqLen);
  let at = 0;
  outer: for (const d of docs) {
    for (const id of d) {
      if (at >= windows.length) break outer;
      windows[at++] = id;
    }
  }
  return { windows, count };
}

function windowBatch(windows: Int32Array, seqLen: number, which: number[]): Int32Array {
  const ids = new Int32Array(which.length * seqLen);
  which.forEach((w, b) => ids.set(windows.subarray(w * seqLen, (w + 1) * seqLen), b * seqLen));
  return ids;
}

/** Mean next-token loss (nats per predicted token) of `model` over packed windows, in batches. */
export async function evaluateLoss(model: LlamaModel, windows: Int32Array, seqLen: number, batchSize = 8): Promise<number> {
  const count = windows.length / seqLen;
  if (!Number.isInteger(count) || count === 0) throw new EngineError(`evaluation needs whole windows of ${seqLen} tokens, got ${windows.length} tokens`);
  let sum = 0;
  let tokens = 0;
  for (let start = 0; start < count; start += batchSize) {
    await yieldToEventLoop(); // a long evaluation must not starve the process's I/O
    const which = Array.from({ length: Math.min(batchSize, count - start) }, (_, i) => start + i);
    const ids = windowBatch(windows, seqLen, which);
    const targets = shiftedTargets(ids, which.length, seqLen);
    const input = tf.tensor2d(ids, [which.length, seqLen], 'int32');
    const loss = tf.tidy(() => crossEntropy(forward(model, input), targets));
    sum += (await loss.data())[0] * targets.count;
    tokens += targets.count;
    tf.dispose([loss, input, targets.labels, targets.mask]);
  }
  return sum / tokens;
}

// ---------------------------------------------------------------------------------------------
// Training

export interface PretrainSettings {
  seqLen: number; // tokens per window
  batchSize: number; // windows per step
  epochs: number; // passes over the windows (fractional allowed)
  lr: number; // peak learning rate
  minLr: number; // floor of the cosine schedule
  warmupSteps: number;
  weightDecay: number; // applied to matrices only; norms and the embedding are not decayed
  betas: [number, number];
  eps: number;
  clipNorm: number; // global gradient-norm clip; 0 = off
  seed: number;
}

export const DEFAULT_PRETRAIN: Omit<PretrainSettings, 'seqLen' | 'batchSize' | 'epochs'> = {
  lr: 3e-3,
  minLr: 3e-4,
  warmupSteps: 100,
  weightDecay: 0.1,
  betas: [0.9, 0.95],
  eps: 1e-8,
  clipNorm: 1,
  seed: 0,
};

export type PretrainEvent =
  | { type: 'start'; totalSteps: number; stepsPerEpoch: number; windows: number; params: number }
  | { type: 'step'; step: number; totalSteps: number; loss: number; lr: number; gradNorm: number; stepSeconds: number; elapsedSec: number; etaSec: number };

export interface PretrainOptions {
  config: LlamaConfig;
  windows: Int32Array; // packed training windows [count, seqLen]
  settings: PretrainSettings;
  /** Start from these weights (variables, e.g. a resumed run) instead of a fresh init. */
  initial?: LlamaWeights;
  /** Stop after this many steps even if the schedule is longer (the schedule keeps its length). */
  maxSteps?: number;
  /** Stop (after the current step) once this many seconds have passed; the schedule keeps its length. */
  maxSeconds?: number;
  signal?: AbortSignal;
  onEvent?: (e: PretrainEvent) => void;
}

export interface PretrainResult {
  model: LlamaModel; // weights are tf.Variables; dispose with disposeModel
  steps: number;
  losses: number[]; // per step
  seconds: number;
}

function isDecayed(name: string): boolean {
  return /\.(wq|wk|wv|wo|wGate|wUp|wDown|lmHead)$/.test(name);
}

/** Train every weight of a LLaMA model on packed windows: next-token loss, AdamW, warmup + cosine. */
export async function pretrain(opts: PretrainOptions): Promise<PretrainResult> {
  const { config: c, windows, settings: s } = opts;
  const count = windows.length / s.seqLen;
  if (!Number.isInteger(count) || count < s.batchSize) {
    throw new EngineError(`pre-training needs at least ${s.batchSize} windows of ${s.seqLen} tokens, got ${windows.length} tokens`);
  }
  if (s.seqLen > c.maxPositions) throw new EngineError(`seqLen ${s.seqLen} exceeds max_position_embeddings ${c.maxPositions}`);
  const rng = new Rng(s.seed);
  const weights = opts.initial ?? initTrainableWeights(c, rng);
  const model: LlamaModel = { config: c, weights };
  const vars = namedWeights(model).map((n) => n.tensor as tf.Variable);
  const decayed = vars.filter((v) => isDecayed(v.name));
  const plain = vars.filter((v) => !isDecayed(v.name));
  // One optimizer state per group so each group's step count (bias correction) stays right.
  const decayedState: AdamWState = newAdamWState(decayed);
  const plainState: AdamWState = newAdamWState(plain);

  const stepsPerEpoch = Math.floor(count / s.batchSize);
  const totalSteps = Math.max(1, Math.round(stepsPerEpoch * s.epochs));
  const runSteps = Math.min(totalSteps, opts.maxSteps ?? totalSteps);
  const params = vars.reduce((n, v) => n + v.size, 0);
  opts.onEvent?.({ type: 'start', totalSteps: runSteps, stepsPerEpoch, windows: count, params });
  // optimizer.ts's schedule counts in epochs; here its unit is one step (warmup, then cosine to the end).
  const schedule = { lr: s.lr, minLr: s.minLr, warmupEpochs: s.warmupSteps, epochs: totalSteps };

  const losses: number[] = [];
  const started = performance.now();
  let step = 0;
  try {
    while (step < runSteps) {
      if (opts.signal?.aborted) break;
      const stepStart = performance.now();
      const epoch = Math.floor(step / stepsPerEpoch);
      const order = epochOrder(count, s.seed, epoch);
      const first = (step % stepsPerEpoch) * s.batchSize;
      const ids = windowBatch(windows, s.seqLen, order.slice(first, first + s.batchSize));
      const targets = shiftedTargets(ids, s.batchSize, s.seqLen);
      const input = tf.tensor2d(ids, [s.batchSize, s.seqLen], 'int32');
      const { value, grads } = withOneHotGatherGradient(() =>
        tf.variableGrads(() => crossEntropy(forward(model, input), targets), vars),
      );
      tf.dispose([input, targets.labels, targets.mask]);
      const lr = learningRate(step, schedule);
      const { clipped, norm } = clipByGlobalNorm(grads, s.clipNorm);
      const loss = (await value.data())[0];
      const gradNorm = (await norm.data())[0];
      tf.dispose([value, norm]);
      if (!Number.isFinite(loss)) {
        tf.dispose(Object.values(clipped));
        throw new EngineError(`pre-training diverged: the loss is ${loss} at step ${step + 1}; lower the learning rate`);
      }
      adamWStep(decayed, clipped, decayedState, lr, { betas: s.betas, eps: s.eps, weightDecay: s.weightDecay });
      adamWStep(plain, clipped, plainState, lr, { betas: s.betas, eps: s.eps, weightDecay: 0 });
      tf.dispose(Object.values(clipped));
      step += 1;
      losses.push(loss);
      const elapsedSec = (performance.now() - started) / 1000;
      opts.onEvent?.({
        type: 'step',
        step,
        totalSteps: runSteps,
        loss,
        lr,
        gradNorm,
        stepSeconds: (performance.now() - stepStart) / 1000,
        elapsedSec,
        etaSec: (elapsedSec / step) * (runSteps - step),
      });
      if (opts.maxSeconds !== undefined && elapsedSec >= opts.maxSeconds) break;
    }
  } finally {
    disposeAdamWState(decayedState);
    disposeAdamWState(plainState);
  }
  return { model, steps: step, losses, seconds: (performance.now() - started) / 1000 };
}

/** Scale all gradients by min(1, maxNorm / globalNorm); disposes the inputs it replaces. */
function clipByGlobalNorm(grads: tf.NamedTensorMap, maxNorm: number): { clipped: tf.NamedTensorMap; norm: tf.Scalar } {
  const norm = tf.tidy(() => tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
  if (maxNorm <= 0) return { clipped: grads, norm };
  const clipped = tf.tidy(() => {
    const scale = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
    return Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, scale)]));
  });
  tf.dispose(Object.values(grads));
  return { clipped, norm };
}

// ---------------------------------------------------------------------------------------------
// Writing an HF model folder

export interface ModelFolderOptions {
  dtype?: WritableDtype; // stored dtype of every weight; F16 by default
  /** Copied into the folder when given: tokenizer.json, tokenizer_config.json, special_tokens_map.json. */
  tokenizerDir?: string;
  /** Extra generation_config.json fields (eos/bos ids are always written from the config). */
  generation?: Record<string, unknown>;
  metadata?: Record<string, string>; // safetensors __metadata__ ("format": "pt" is always set)
}

/**
 * Save `model` as a Hugging Face LLaMA folder: config.json (toHfConfig), model.safetensors with
 * linear weights transposed back to HF's [out, in], generation_config.json, and the tokenizer
 * files. load.ts (and transformers) read it like any downloaded checkpoint.
 */
export async function writeModelFolder(dir: string, model: LlamaModel, opts: ModelFolderOptions = {}): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const dtype = opts.dtype ?? 'F16';
  const tensors: TensorToWrite[] = model.config.family === 'gpt2' ? await gpt2Tensors(model, dtype) : [];
  for (const { name, tensor, linear } of model.config.family === 'gpt2' ? [] : namedWeights(model)) {
    const stored = linear ? tf.transpose(tensor) : tensor; // [in, out] -> [out, in]
    tensors.push({ name, shape: stored.shape, data: new Float32Array(await stored.data()), dtype });
    if (stored !== tensor) stored.dispose();
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), model.config.fusedProjections ? fuseProjections(tensors, model.config.nLayers) : tensors, { format: 'pt', ...opts.metadata });
  const c = model.config;
  const hf = { ...toHfConfig(c), torch_dtype: dtype === 'F16' ? 'float16' : dtype === 'BF16' ? 'bfloat16' : 'float32' };
  writeJson(path.join(dir, 'config.json'), hf);
  writeJson(path.join(dir, 'generation_config.json'), {
    bos_token_id: c.bosId,
    eos_token_id: c.eosIds.length === 1 ? c.eosIds[0] : c.eosIds,
    ...opts.generation,
  });
  if (opts.tokenizerDir) {
    for (const file of ['tokenizer.json', 'vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) {
      const from = path.join(opts.tokenizerDir, file);
      if (fs.existsSync(from)) {
        writeBytes(path.join(dir, file), fs.readFileSync(from));
      }
    }
  }
}

/**
 * GPT-2's layout, as GPT2LMHeadModel saves it: Conv1D weights in the engine's own [in, out], q/k/v joined into c_attn
 * (columns and bias), LayerNorm biases, the position table; an untied head back to [vocab, dim].
 */
async function gpt2Tensors(model: LlamaModel, dtype: WritableDtype): Promise<TensorToWrite[]> {
  const w = model.weights;
  const out: TensorToWrite[] = [];
  const put = async (name: string, t: tf.Tensor | undefined, make?: () => tf.Tensor) => {
    const value = make ? make() : t;
    if (!value) throw new EngineError(`a GPT-2 model without its ${name}`);
    out.push({ name, shape: value.shape, data: new Float32Array(await value.data()), dtype });
    if (make) value.dispose();
  };
  await put('transformer.wte.weight', w.embed);
  await put('transformer.wpe.weight', w.positions);
  for (const [i, l] of w.layers.entries()) {
    const p = `transformer.h.${i}`;
    await put(`${p}.ln_1.weight`, l.attnNorm);
    await put(`${p}.ln_1.bias`, l.attnNormBias);
    await put(`${p}.attn.c_attn.weight`, undefined, () => tf.concat([l.wq, l.wk, l.wv], 1));
    await put(`${p}.attn.c_attn.bias`, undefined, () => tf.concat([l.bq!, l.bk!, l.bv!], 0));
    await put(`${p}.attn.c_proj.weight`, l.wo);
    await put(`${p}.attn.c_proj.bias`, l.bo);
    await put(`${p}.ln_2.weight`, l.mlpNorm);
    await put(`${p}.ln_2.bias`, l.mlpNormBias);
    await put(`${p}.mlp.c_fc.weight`, l.wUp);
    await put(`${p}.mlp.c_fc.bias`, l.bUp);
    await put(`${p}.mlp.c_proj.weight`, l.wDown);
    await put(`${p}.mlp.c_proj.bias`, l.bDown);
  }
  await put('transformer.ln_f.weight', w.norm);
  await put('transformer.ln_f.bias', w.normBias);
  if (w.lmHead) await put('lm_head.weight', undefined, () => tf.transpose(w.lmHead!));
  return out;
}

/** Phi-3's layout: each group of FUSED_PROJECTIONS written as one tensor, its parts' [out, in] rows stacked in order. */
function fuseProjections(tensors: TensorToWrite[], nLayers: number): TensorToWrite[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const replaced = new Map<string, TensorToWrite | null>(); // a part's name -> the fused tensor at the first part, null at the rest
  for (let i = 0; i < nLayers; i++) {
    for (const { fused, parts } of FUSED_PROJECTIONS) {
      const ts = parts.map((part) => byName.get(`model.layers.${i}.${part}`)!);
      const data = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
      let at = 0;
      for (const t of ts) {
        data.set(t.data, at);
        at += t.data.length;
      }
      const shape = [ts.reduce((n, t) => n + t.shape[0]!, 0), ts[0]!.shape[1]!];
      ts.forEach((t, k) => replaced.set(t.name, k === 0 ? { name: `model.layers.${i}.${fused}`, shape, data, dtype: t.dtype } : null));
    }
  }
  return tensors.flatMap((t) => {
    const r = replaced.get(t.name);
    return r === undefined ? [t] : r ? [r] : [];
  });
}

function writeJson(file: string, value: unknown): void {
  writeBytes(file, Buffer.from(JSON.stringify(value, null, 2) + '\n'));
}

function writeBytes(file: string, bytes: Uint8Array): void {
  writeAtomically(file, (fd) => {
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
  });
}
