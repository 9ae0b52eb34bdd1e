// The measurements behind `npm run bench` (bench/run.mjs bundles this file and runs each subcommand in its own
// process, so every peak-memory figure belongs to one engine). Each prints one JSON object on stdout.
//
//   prepare      --dir D                 the reference model as an HF folder, its GGUF export, the training batches
//   sgemm        [--threads N]           this machine's single-precision matrix-product peak through our addon
//   train        --dir D --backend B     adapter training steps (our engine), with a per-kernel profile
//   decode       --dir D                 greedy decoding with a KV cache (our engine)
//   decode-llama --dir D                 the same decoding in llama.cpp (node-llama-cpp, CPU build) on the GGUF
//   vision-features --dir D [--rounds R] image_embeds of a CLIP folder's PNGs (bench/clip_bench.py --make), images/s
//   multimodal-step --dir D              a multi-modal adapter step (ViT-L/14-sized image features, projection
//                                        width 128) against the text-only step, alternating in one process

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { adapterVariables, disposeAdapter, initAdapter, topLayers } from '../src-main/engine/adapter.js';
import { initBackend, type BackendChoice } from '../src-main/engine/backend.js';
import { loadNativeAddon } from '../src-main/engine/backends/native.js';
import { findPackageRoot } from '../src-main/engine/backends/package-root.js';
import { expectedWeights, type LlamaConfig } from '../src-main/engine/config.js';
import { exportGguf } from '../src-main/engine/gguf.js';
import { loadModel } from '../src-main/engine/load.js';
import { nextTokenLoss, shiftedTargets } from '../src-main/engine/loss.js';
import { disposeKVCache, forward, newKVCache } from '../src-main/engine/model.js';
import { batchImages, disposeBatchImages, initImageProjection } from '../src-main/engine/image-prompt.js';
import { adamWStep, disposeAdamWState, newAdamWState } from '../src-main/engine/optimizer.js';
import { Rng } from '../src-main/engine/rng.js';
import { loadImageEncoder } from '../src-main/engine/vision/encoder.js';
import { writeTinyLlama } from '../test/helpers/tiny-model.js';

/** The reference configuration. */
export const REFERENCE = {
  model: { dim: 512, nLayers: 8, nHeads: 8, nKvHeads: 8, headDim: 64, ffnDim: 1376, vocabSize: 32000, maxPositions: 2048 },
  batch: 4,
  seq: 256,
  adapterLen: 10,
  adapterLayers: 6,
  gateMode: 'per-layer' as const, // PEFT's adaption prompt form, so both engines train the same thing
  promptTokens: [64, 128] as const, // instruction part of each sequence, unlabelled (-100) as in Alpaca-style tuning
  decodePrompt: 32,
  decodeTokens: 128,
};

type Flags = Record<string, string>;

function parse(argv: string[]): { command: string; flags: Flags } {
  const [command = '', ...rest] = argv;
  const flags: Flags = {};
  for (let i = 0; i < rest.length; i++) {
    const key = rest[i];
    if (!key.startsWith('--')) throw new Error(`unexpected argument "${key}"`);
    flags[key.slice(2)] = rest[i + 1] === undefined || rest[i + 1].startsWith('--') ? 'true' : rest[++i];
  }
  return { command, flags };
}

const need = (flags: Flags, name: string): string => {
  if (!flags[name]) throw new Error(`missing --${name}`);
  return flags[name];
};
const threadsOf = (flags: Flags) => Number(flags.threads ?? os.availableParallelism());
const peakRss = () => process.resourceUsage().maxRSS * 1024;

interface Batches {
  input_ids: number[][];
  labels: number[][];
}

// ---------------------------------------------------------------------------------------------

/** The reference shape in another family's layout (`--family qwen2`: Qwen2's biased q/k/v, no BOS). */
const FAMILY_CONFIGS: Record<string, Partial<LlamaConfig>> = {
  llama: {},
  qwen2: { family: 'qwen2', attentionBias: { qkv: true, o: false } },
};

function prepare(flags: Flags) {
  const dir = need(flags, 'dir');
  const family = flags.family ?? 'llama';
  const familyConfig = FAMILY_CONFIGS[family];
  if (!familyConfig) throw new Error(`--family ${family}: one of ${Object.keys(FAMILY_CONFIGS).join(', ')}`);
  const config = { ...REFERENCE.model, ...familyConfig };
  const modelDir = path.join(dir, 'model');
  const stamp = path.join(dir, 'prepared.json');
  const wanted = JSON.stringify({ model: config, seed: 1, batch: REFERENCE.batch, seq: REFERENCE.seq, prompt: REFERENCE.promptTokens });
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === wanted) return { dir, reused: true };
  fs.rmSync(dir, { recursive: true, force: true });
  writeTinyLlama(modelDir, { config, seed: 1 });
  // GGUF (for llama.cpp) is written for plain LLaMA only: the exporter refuses other families by name.
  const gguf = family === 'llama' ? exportGguf(modelDir, path.join(dir, 'model.gguf'), { name: 'adapter-studio-bench' }) : null;
  // Same batches for every engine: random tokens; each row's first 64..128 positions are the "instruction",
  // unlabelled (-100), the rest is the response the loss is taken on.
  const rng = new Rng(7);
  const batches: Batches = { input_ids: [], labels: [] };
  for (let b = 0; b < REFERENCE.batch; b++) {
    const ids = Array.from({ length: REFERENCE.seq }, () => 3 + rng.int(REFERENCE.model.vocabSize - 3));
    const [lo, hi] = REFERENCE.promptTokens;
    const promptLength = lo + rng.int(hi - lo + 1);
    batches.input_ids.push(ids);
    batches.labels.push(ids.map((id, t) => (t < promptLength ? -100 : id)));
  }
  fs.writeFileSync(path.join(dir, 'batches.json'), JSON.stringify(batches));
  fs.writeFileSync(path.join(dir, 'decode-prompt.json'), JSON.stringify(decodePrompt())); // for bench/hf_decode.py
  fs.writeFileSync(stamp, wanted);
  return { dir, reused: false, ggufBytes: gguf?.bytes ?? null };
}

// ---------------------------------------------------------------------------------------------

/** Best GFLOP/s of the addon's sgemm (our pool + single-threaded OpenBLAS per block) on square and model shapes. */
async function sgemm(flags: Flags) {
  const addon = loadNativeAddon();
  addon.setThreads(threadsOf(flags));
  const shapes: [number, number, number][] = [
    [1024, 1024, 1024],
    [2048, 2048, 2048],
    [1024, 1376, 512], // gate / up projections of a step
    [1024, 32000, 512], // the vocabulary head
  ];
  const rows = [];
  for (const [m, n, k] of shapes) {
    const a = new Float32Array(m * k).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
    const b = new Float32Array(k * n).map((_, i) => ((i * 40503) % 1000) / 1000 - 0.5);
    const c = new Float32Array(m * n);
    addon.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
    let best = Infinity;
    const start = performance.now();
    for (let r = 0; r < 20 && (r < 3 || performance.now() - start < 3000); r++) {
      const t0 = performance.now();
      addon.sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n);
      best = Math.min(best, performance.now() - t0);
    }
    rows.push({ m, n, k, gflops: (2 * m * n * k) / (best / 1000) / 1e9 });
  }
  return { threads: addon.getThreads(), blas: addon.blasInfo(), shapes: rows, peakGflops: Math.max(...rows.map((r) => r.gflops)) };
}

// ---------------------------------------------------------------------------------------------

/** FLOPs one adapter training step needs (multiply-add = 2), forward and backward; see results.md for the terms. */
export function adapterStepFlops(c: LlamaConfig, B: number, T: number, K: number, adapted: number, labelled: number) {
  const N = B * T;
  const qkv = c.dim * (c.nHeads + 2 * c.nKvHeads) * c.headDim;
  const o = c.nHeads * c.headDim * c.dim;
  const mlp = 3 * c.dim * c.ffnDim;
  const causalPairs = B * c.nHeads * ((T * (T + 1)) / 2); // (query, visible key) pairs per layer
  const attention = 2 * 2 * causalPairs * c.headDim; // scores and weighted values
  const prompt = 2 * 2 * N * c.nHeads * K * c.headDim; // prompt scores and values per adapted layer
  const layerForward = 2 * N * (qkv + o + mlp) + attention;
  const head = 2 * labelled * c.dim * c.vocabSize; // only labelled positions need logits
  const forward = c.nLayers * layerForward + adapted * prompt + head;
  // Backward: input gradients only (the base is frozen). Layers above the lowest adapted one pass gradients all the
  // way through; the lowest needs them through wo and the MLP and the prompt branch, not into its own input.
  const fullLayers = adapted - 1;
  const layerBackward = 2 * N * (qkv + o + mlp) + 2 * attention;
  const lowest = 2 * N * (o + mlp) + 2 * prompt;
  const backward = fullLayers * (layerBackward + 2 * prompt) + lowest + head;
  return { forward, backward, total: forward + backward };
}

interface KernelRow {
  name: string;
  ms: number;
  calls: number;
}

/** Bytes the backward pass keeps: saved tensors on the tape, each buffer once, the model's weights excluded. */
function savedActivationBytes(exclude: Set<object>): number {
  const tape = (tf.engine().state as unknown as { activeTape: { saved?: tf.Tensor[] }[] | null }).activeTape ?? [];
  const seen = new Set<object>();
  let bytes = 0;
  for (const node of tape) {
    for (const t of node.saved ?? []) {
      if (t.isDisposed || exclude.has(t.dataId) || seen.has(t.dataId)) continue;
      seen.add(t.dataId);
      bytes += t.size * 4;
    }
  }
  return bytes;
}

async function train(flags: Flags) {
  const dir = need(flags, 'dir');
  const backend = need(flags, 'backend') as BackendChoice;
  const steps = Number(flags.steps ?? 5);
  const report = await initBackend(backend);
  if (report.name === 'native') loadNativeAddon().setThreads(threadsOf(flags));
  const model = loadModel(path.join(dir, 'model'));
  const c = model.config;
  const rssAfterLoad = process.memoryUsage().rss;
  const batches = JSON.parse(fs.readFileSync(path.join(dir, 'batches.json'), 'utf8')) as Batches;
  const B = batches.input_ids.length;
  const T = batches.input_ids[0].length;
  const ids = tf.tensor2d(batches.input_ids.flat(), [B, T], 'int32');
  const targets = shiftedTargets(Int32Array.from(batches.labels.flat()), B, T);
  const layers = topLayers(c.nLayers, REFERENCE.adapterLayers);
  const adapter = initAdapter(c, { adapterLen: REFERENCE.adapterLen, layers, gateMode: REFERENCE.gateMode }, new Rng(0));
  const vars = adapterVariables(adapter);
  const optimizer = newAdamWState(vars);
  const weightIds = new Set<object>([model.weights.embed, model.weights.norm, ...(model.weights.lmHead ? [model.weights.lmHead] : []), ...model.weights.layers.flatMap((l) => Object.values(l)), ...vars].map((t) => t.dataId));
  let activationBytes = 0;

  const step = async () => {
    const { value, grads } = tf.variableGrads(() => {
      const loss = nextTokenLoss(model, ids, targets, { adapter });
      activationBytes = savedActivationBytes(weightIds);
      return loss;
    }, vars);
    adamWStep(vars, grads, optimizer, 1e-3, { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.02 });
    const loss = (await value.data())[0];
    tf.dispose([value, ...Object.values(grads)]);
    return loss;
  };

  const losses = [await step()]; // warm-up
  const times: number[] = [];
  const rssAfterStep: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    losses.push(await step());
    times.push(performance.now() - t0);
    rssAfterStep.push(process.memoryUsage().rss);
  }
  const peakRssBytes = peakRss();

  // One more step under tf.profile: time per kernel, forward and backward together.
  let kernels: KernelRow[] = [];
  let profiledMs = 0;
  if (flags.profile !== 'false') {
    const t0 = performance.now();
    const profile = await tf.profile(async () => {
      await step();
    });
    profiledMs = performance.now() - t0;
    const byName = new Map<string, KernelRow>();
    for (const k of profile.kernels) {
      const row = byName.get(k.name) ?? { name: k.name, ms: 0, calls: 0 };
      row.ms += k.kernelTimeMs as number;
      row.calls += 1;
      byName.set(k.name, row);
    }
    kernels = [...byName.values()].sort((a, b) => b.ms - a.ms);
  }

  const weightBytes = [...expectedWeights(c).values()].reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1) * 4, 0);
  const trainable = vars.reduce((n, v) => n + v.size, 0);
  const labelled = targets.count;
  tf.dispose([ids, targets.labels, targets.mask]);
  disposeAdamWState(optimizer);
  disposeAdapter(adapter);
  const sorted = [...times].sort((a, b) => a - b);
  const medianMs = sorted[Math.floor(sorted.length / 2)];
  return {
    engine: 'adapter-studio',
    backend: report.name,
    threads: report.name === 'native' ? loadNativeAddon().getThreads() : 1,
    batch: B,
    seq: T,
    labelled,
    steps,
    step_ms: times,
    median_ms: medianMs,
    tokens_per_sec: (B * T) / (medianMs / 1000),
    losses,
    peak_rss_bytes: peakRssBytes,
    rss_after_load_bytes: rssAfterLoad,
    rss_after_step_bytes: rssAfterStep,
    weight_bytes: weightBytes,
    optimizer_bytes: trainable * 4 * 3, // values, first and second moments
    activation_bytes: activationBytes,
    flops: adapterStepFlops(c, B, T, REFERENCE.adapterLen, REFERENCE.adapterLayers, labelled),
    profile: { step_ms: profiledMs, kernels },
  };
}

// ---------------------------------------------------------------------------------------------

function decodePrompt(): number[] {
  const rng = new Rng(11);
  return Array.from({ length: REFERENCE.decodePrompt }, () => 3 + rng.int(REFERENCE.model.vocabSize - 3));
}

async function decode(flags: Flags) {
  const dir = need(flags, 'dir');
  const report = await initBackend((flags.backend ?? 'native') as BackendChoice);
  if (report.name === 'native') loadNativeAddon().setThreads(threadsOf(flags));
  const model = loadModel(path.join(dir, 'model'));
  const prompt = decodePrompt();
  const count = Number(flags.tokens ?? REFERENCE.decodeTokens);
  const run = () => {
    const cache = newKVCache(model.config);
    const tokens: number[] = [];
    const greedy = (input: number[]) =>
      tf.tidy(() => {
        const logits = forward(model, tf.tensor2d([input], [1, input.length], 'int32'), { cache }); // [1, T, V]
        const last = tf.slice(tf.reshape(logits, [input.length, -1]), [input.length - 1, 0], [1, -1]); // [1, V]
        return tf.argMax(last, 1).dataSync()[0];
      });
    const t0 = performance.now();
    tokens.push(greedy(prompt));
    const t1 = performance.now();
    while (tokens.length < count) tokens.push(greedy([tokens[tokens.length - 1]]));
    const t2 = performance.now();
    disposeKVCache(cache);
    return { tokens, prefillMs: t1 - t0, decodeMs: t2 - t1 };
  };
  run(); // warm-up
  const r = run();
  return {
    engine: 'adapter-studio',
    backend: report.name,
    prompt_tokens: prompt.length,
    generated: r.tokens.length,
    prefill_ms: r.prefillMs,
    decode_tokens_per_sec: (r.tokens.length - 1) / (r.decodeMs / 1000),
    tokens: r.tokens,
    peak_rss_bytes: peakRss(),
  };
}

async function decodeLlama(flags: Flags) {
  const dir = need(flags, 'dir');
  const { getLlama } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never' });
  const threads = threadsOf(flags);
  const model = await llama.loadModel({ modelPath: path.join(dir, 'model.gguf') });
  // F32 weights (the export) and F32 KV cache, no flash attention (its CPU kernel rounds queries to half): the
  // same arithmetic as ours, so the greedy tokens can be compared.
  const context = await model.createContext({
    contextSize: 512,
    threads,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    flashAttention: false,
  });
  const prompt = decodePrompt();
  const count = Number(flags.tokens ?? REFERENCE.decodeTokens);
  const run = async () => {
    const sequence = context.getSequence();
    const tokens: number[] = [];
    const t0 = performance.now();
    let t1 = 0;
    for await (const token of sequence.evaluate(prompt as never, { temperature: 0 })) {
      if (tokens.length === 0) t1 = performance.now();
      tokens.push(token as number);
      if (tokens.length >= count) break;
    }
    const t2 = performance.now();
    sequence.dispose();
    return { tokens, prefillMs: t1 - t0, decodeMs: t2 - t1 };
  };
  await run(); // warm-up
  const r = await run();
  const result = {
    engine: 'llama.cpp',
    version: `node-llama-cpp ${JSON.parse(fs.readFileSync(path.join(findPackageRoot(), 'node_modules', 'node-llama-cpp', 'package.json'), 'utf8')).version}`,
    threads,
    kv_cache: 'F32',
    flash_attention: false,
    prompt_tokens: prompt.length,
    generated: r.tokens.length,
    prefill_ms: r.prefillMs,
    decode_tokens_per_sec: (r.tokens.length - 1) / (r.decodeMs / 1000),
    tokens: r.tokens,
    peak_rss_bytes: peakRss(),
  };
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  return result;
}

/**
 * What the image term costs a training step: the same batch trained as text only and with an image feature per
 * example (F = 768, ViT-L/14's projected embedding; projection width 128, the paper's ~0.6M extra parameters at 7B),
 * steps alternating so that both see the same load. Features are precomputed (the tower is frozen and its features
 * cached), so this is the projection, its gradient and the per-example prompt keys/values.
 */
async function multimodalStep(flags: Flags) {
  const dir = need(flags, 'dir');
  const steps = Number(flags.steps ?? 6);
  const report = await initBackend('native');
  loadNativeAddon().setThreads(threadsOf(flags));
  const model = loadModel(path.join(dir, 'model'));
  const c = model.config;
  const batches = JSON.parse(fs.readFileSync(path.join(dir, 'batches.json'), 'utf8')) as Batches;
  const B = batches.input_ids.length;
  const T = batches.input_ids[0].length;
  const ids = tf.tensor2d(batches.input_ids.flat(), [B, T], 'int32');
  const targets = shiftedTargets(Int32Array.from(batches.labels.flat()), B, T);
  const layers = topLayers(c.nLayers, REFERENCE.adapterLayers);
  const featureDim = 768;
  const tower = { name: 'random', fingerprint: 'bench', modelType: 'clip_vision_model', imageSize: 224, patchSize: 14, hiddenSize: 1024, layers: 24, projectionDim: featureDim };
  const spec = { adapterLen: REFERENCE.adapterLen, layers, gateMode: 'per-head-tanh' as const };
  const rng = new Rng(0);
  const text = initAdapter(c, spec, rng);
  const multi = initAdapter(c, spec, rng, initImageProjection({ tower, feature: { kind: 'projected' }, featureDim, hidden: 128 }, c.dim, rng));
  const images = batchImages(Array.from({ length: B }, () => Float32Array.from({ length: featureDim }, () => rng.normal())), featureDim);
  const variants = [
    { name: 'text', adapter: text, images: null },
    { name: 'multimodal', adapter: multi, images },
  ].map((v) => ({ ...v, vars: adapterVariables(v.adapter), times: [] as number[] }));
  const optimizers = variants.map((v) => newAdamWState(v.vars));
  const step = async (i: number) => {
    const v = variants[i];
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => nextTokenLoss(model, ids, targets, { adapter: v.adapter, images: v.images }), v.vars);
    adamWStep(v.vars, grads, optimizers[i], 1e-3, { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.02 });
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
    return performance.now() - t0;
  };
  await step(0);
  await step(1); // warm-up
  for (let s = 0; s < steps; s++) for (const i of s % 2 === 0 ? [0, 1] : [1, 0]) variants[i].times.push(await step(i));
  const best = (t: number[]) => Math.min(...t);
  const median = (t: number[]) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)];
  const result = {
    backend: report.name,
    threads: loadNativeAddon().getThreads(),
    batch: B,
    seq: T,
    feature_dim: featureDim,
    projection_hidden: 128,
    trainable: Object.fromEntries(variants.map((v) => [v.name, v.vars.reduce((n, x) => n + x.size, 0)])),
    step_ms: Object.fromEntries(variants.map((v) => [v.name, v.times])),
    fastest_ms: Object.fromEntries(variants.map((v) => [v.name, best(v.times)])),
    median_ms: Object.fromEntries(variants.map((v) => [v.name, median(v.times)])),
    overhead_fastest: best(variants[1].times) / best(variants[0].times) - 1,
    overhead_median: median(variants[1].times) / median(variants[0].times) - 1,
  };
  tf.dispose([ids, targets.labels, targets.mask]);
  disposeBatchImages(images);
  optimizers.forEach(disposeAdamWState);
  disposeAdapter(text);
  disposeAdapter(multi);
  return result;
}

/** image_embeds of the PNGs in --dir (made by bench/clip_bench.py --make), batch 8, decode + preprocessing included. */
async function visionFeatures(flags: Flags) {
  const dir = need(flags, 'dir');
  const rounds = Number(flags.rounds ?? 2);
  await initBackend('native');
  loadNativeAddon().setThreads(threadsOf(flags));
  const encoder = loadImageEncoder(dir);
  const files = fs.readdirSync(dir).filter((f) => /^img\d+\.png$/.test(f)).sort();
  const bytes = files.map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f))));
  const seconds: number[] = [];
  for (let r = 0; r <= rounds; r++) {
    const started = performance.now();
    for (let i = 0; i < bytes.length; i += 8) await encoder.encode(bytes.slice(i, i + 8), { kind: 'projected' }, files.slice(i, i + 8));
    if (r > 0) seconds.push((performance.now() - started) / 1000); // round 0 warms up
  }
  encoder.dispose();
  return { engine: 'ours', threads: threadsOf(flags), images: files.length, seconds, images_per_sec: files.length / Math.min(...seconds) };
}

// ---------------------------------------------------------------------------------------------

const commands: Record<string, (flags: Flags) => unknown> = {
  prepare, sgemm, train, decode, 'decode-llama': decodeLlama, 'multimodal-step': multimodalStep, 'vision-features': visionFeatures,
};
const { command, flags } = parse(process.argv.slice(2));
const run = commands[command];
if (!run) {
  process.stderr.write(`usage: engine-bench ${Object.keys(commands).join('|')} [--flags]\n`);
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(await run(flags))}\n`);
process.exit(0);
