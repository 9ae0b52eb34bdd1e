// Causal self-attention with LLaMA-Adapter's gated prompt attention, forward and backward, in WGSL: the math of
// native/src/attention.c, in the layout the projections produce (no transposes, no [B, H, T, S] tensors):
//   q [B, T, H * hd],  k, v [B, S, Hkv * hd],  out [B, T, H * hd]   (query head h reads kv head h / (H / Hkv))
//   prompt keys/values kp, vp [Bp, K, Hkv * hd] (Bp = 1: shared by the batch, or B); gate [G].
// Query row i sits at position past + i and sees keys 0 .. past + i.
//
//   P   = softmax_causal(scale * q k^T)      lse[b, h, i]  = log of P's normaliser
//   Pp  = softmax(scale * q kp^T)            lseP[b, h, i] = log of Pp's normaliser
//   out = P v + g_h * Pp vp,   g_h = tanh(gate[h]) | gate[h] | gate[0]   (per-head-tanh | per-head | per-layer)
//
// Backward recomputes P and Pp from the saved log-normalisers (FlashAttention's way: nothing of size T x S is kept):
//   dP = dO v^T,  D = rowsum(P * dP),  dS = P * (dP - D),  dq = scale dS k,  dk = scale dS^T q,  dv = P^T dO;
//   the prompt alike with dPp = g_h dO vp^T; dg_h = sum(dO * (Pp vp)), through tanh when the mode has it.
//
// Each program is one dispatch. Row programs give one workgroup to one query row (or key row), whose lanes split
// the keys (or query rows) in chunks of ROW_THREADS: each lane scores one key of the chunk into workgroup memory,
// then every lane accumulates its own slice of the head dimension over the chunk, reading V rows coalesced.

import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { MAX_HEAD_DIM, ROW_THREADS, runRows, type Uniform } from './program.js';

export type GateMode = 'per-head-tanh' | 'per-head' | 'per-layer';

export interface AttentionDims {
  B: number;
  T: number;
  S: number;
  H: number;
  Hkv: number;
  hd: number;
  past: number;
  K: number; // prompt length (0: no prompt)
  Bp: number;
}

/** Head-dimension values each lane accumulates: lane, lane + ROW_THREADS, ... */
const SLICES = MAX_HEAD_DIM / ROW_THREADS;

function dimUniforms(d: AttentionDims): Uniform[] {
  return [
    { name: 'B', type: 'i32', value: d.B },
    { name: 'T', type: 'i32', value: d.T },
    { name: 'S', type: 'i32', value: d.S },
    { name: 'H', type: 'i32', value: d.H },
    { name: 'Hkv', type: 'i32', value: d.Hkv },
    { name: 'hd', type: 'i32', value: d.hd },
    { name: 'past', type: 'i32', value: d.past },
    { name: 'K', type: 'i32', value: d.K },
    { name: 'Bp', type: 'i32', value: d.Bp },
    { name: 'scale', type: 'f32', value: 1 / Math.sqrt(d.hd) },
  ];
}

function gateExpression(mode: GateMode): string {
  return mode === 'per-head-tanh' ? 'tanh(gate[h])' : mode === 'per-head' ? 'gate[h]' : 'gate[0]';
}

// Index helpers shared by every program: rows of q/out/dout are (b, i) with heads side by side; rows of k/v are
// (b, j); prompt rows are (pb, t).
const HELPERS = `
  fn qOffset(b : i32, i : i32, h : i32) -> i32 { return (b * uniforms.T + i) * uniforms.H * uniforms.hd + h * uniforms.hd; }
  fn kvOffset(b : i32, j : i32, kvh : i32) -> i32 { return (b * uniforms.S + j) * uniforms.Hkv * uniforms.hd + kvh * uniforms.hd; }
  fn promptOffset(pb : i32, t : i32, kvh : i32) -> i32 { return (pb * uniforms.K + t) * uniforms.Hkv * uniforms.hd + kvh * uniforms.hd; }
  fn statOffset(b : i32, h : i32, i : i32) -> i32 { return (b * uniforms.H + h) * uniforms.T + i; }
  // Keys query row i may read: 0 .. visibleKeys(i) - 1.
  fn visibleKeys(i : i32) -> i32 { return min(uniforms.past + i + 1, uniforms.S); }
`;

/** Workgroup copies of one head vector (a q or dO row) and a chunk of per-key coefficients. */
const SHARED = `
  var<workgroup> rowA : array<f32, ${MAX_HEAD_DIM}>;
  var<workgroup> rowB : array<f32, ${MAX_HEAD_DIM}>;
  var<workgroup> coef : array<f32, ${ROW_THREADS}>;
  var<workgroup> coef2 : array<f32, ${ROW_THREADS}>;
`;

/** Loads `count` floats from array `source` at `offset` into workgroup array `target` (all lanes). */
const load = (target: string, source: string, offset: string) => `
  for (var d = lane; d < uniforms.hd; d = d + ROW_THREADS) { ${target}[d] = ${source}[${offset} + d]; }
  workgroupBarrier();`;

/** A WGSL function computing the dot product of a workgroup row with a storage row, for each pair used. */
function dotFunction(name: string, shared: string, source: string): string {
  return `
  fn ${name}(offset : i32) -> f32 {
    var acc = 0.0;
    for (var d = 0; d < uniforms.hd; d = d + 1) { acc = acc + ${shared}[d] * ${source}[offset + d]; }
    return acc;
  }`;
}
function checkDims(d: AttentionDims): void {
  if (d.hd > MAX_HEAD_DIM) throw new Error(`webgpu attention: head size ${d.hd} is over the kernel's ${MAX_HEAD_DIM}`);
}

/**
 * Log-normalisers [B, H, T] of the causal token softmax (prompt = false) or of the prompt softmax (prompt = true).
 * One workgroup per (b, h, i); lanes take keys lane, lane + ROW_THREADS, ... with an online max and sum.
 */
function logNormalisers(backend: WebGPUBackend, q: TensorInfo, keys: TensorInfo, d: AttentionDims, prompt: boolean): TensorInfo {
  return runRows(backend, {
    key: `attnLse_${prompt ? 'prompt' : 'tokens'}`,
    inputs: ['q', 'keys'],
    outputShape: [d.B, d.H, d.T],
    rows: d.B * d.H * d.T,
    uniforms: dimUniforms(d),
    declarations: HELPERS + SHARED + dotFunction('qDot', 'rowA', 'keys'),
    body: `
      let i = row % uniforms.T;
      let h = (row / uniforms.T) % uniforms.H;
      let b = row / (uniforms.T * uniforms.H);
      let kvh = h / (uniforms.H / uniforms.Hkv);
      ${load('rowA', 'q', 'qOffset(b, i, h)')}
      let count = ${prompt ? 'uniforms.K' : 'visibleKeys(i)'};
      var m = -uniforms.INFINITY;
      var sum = 0.0;
      for (var j = lane; j < count; j = j + ROW_THREADS) {
        let s = uniforms.scale * qDot(${prompt ? 'promptOffset(select(b, 0, uniforms.Bp == 1), j, kvh)' : 'kvOffset(b, j, kvh)'});
        let next = max(m, s);
        sum = sum * exp(m - next) + exp(s - next);
        m = next;
      }
      let rowMax = workgroupMax(m);
      let total = workgroupSum(select(sum * exp(m - rowMax), 0.0, sum == 0.0));
      if (lane == 0) { result[row] = rowMax + log(total); }`,
  }, [q, keys]);
}

/**
 * For the row loaded in workgroup memory: acc[slice] += sum over n < count of w(n) * source[vector(n)], each lane
 * owning its slice of the head dimension. Lane n % ROW_THREADS computes w(n) (WGSL in `weight`, with `n` in scope)
 * into workgroup memory, then every lane reads the chunk's vectors coalesced. `count` must be uniform; `vector`
 * is WGSL for the offset of item NN's vector.
 */
function accumulate(acc: string, count: string, weight: string, source: string, vector: string): string {
  return `
      for (var n0 = 0; n0 < ${count}; n0 = n0 + ROW_THREADS) {
        let n = n0 + lane;
        var w = 0.0;
        if (n < ${count}) { w = ${weight}; }
        coef[lane] = w;
        workgroupBarrier();
        let chunk = min(ROW_THREADS, ${count} - n0);
        for (var c = 0; c < chunk; c = c + 1) {
          let vo = ${vector.replaceAll('NN', '(n0 + c)')};
          let wc = coef[c];
          for (var u = 0; u < ${SLICES}; u = u + 1) {
            let dd = lane + u * ROW_THREADS;
            if (dd < uniforms.hd) { ${acc}[u] = ${acc}[u] + wc * ${source}[vo + dd]; }
          }
        }
        workgroupBarrier();
      }`;
}

const writeSlices = (acc: string, offset: string, factor = '') => `
      for (var u = 0; u < ${SLICES}; u = u + 1) {
        let dd = lane + u * ROW_THREADS;
        if (dd < uniforms.hd) { result[${offset} + dd] = ${factor}${acc}[u]; }
      }`;

/** out [B, T, H * hd] given the log-normalisers. One workgroup per (b, i, h). */
function attentionOutput(backend: WebGPUBackend, inputs: { q: TensorInfo; k: TensorInfo; v: TensorInfo; lse: TensorInfo; kp?: TensorInfo; vp?: TensorInfo; gate?: TensorInfo; lseP?: TensorInfo }, d: AttentionDims, mode: GateMode | null): TensorInfo {
  const withPrompt = mode !== null;
  const names = ['q', 'keys', 'values', 'lse', ...(withPrompt ? ['promptKeys', 'promptValues', 'gate', 'lseP'] : [])];
  const tensors = [inputs.q, inputs.k, inputs.v, inputs.lse, ...(withPrompt ? [inputs.kp!, inputs.vp!, inputs.gate!, inputs.lseP!] : [])];
  return runRows(backend, {
    key: `attnOut_${mode ?? 'base'}`,
    inputs: names,
    outputShape: inputs.q.shape,
    rows: d.B * d.T * d.H,
    uniforms: dimUniforms(d),
    declarations: HELPERS + SHARED + dotFunction('qDot', 'rowA', 'keys') + (withPrompt ? dotFunction('qDotPrompt', 'rowA', 'promptKeys') : ''),
    body: `
      let h = row % uniforms.H;
      let i = (row / uniforms.H) % uniforms.T;
      let b = row / (uniforms.H * uniforms.T);
      let kvh = h / (uniforms.H / uniforms.Hkv);
      ${load('rowA', 'q', 'qOffset(b, i, h)')}
      let count = visibleKeys(i);
      let l = lse[statOffset(b, h, i)];
      var acc : array<f32, ${SLICES}>;
      ${accumulate('acc', 'count', 'exp(uniforms.scale * qDot(kvOffset(b, n, kvh)) - l)', 'values', 'kvOffset(b, NN, kvh)')}
      ${
        withPrompt
          ? `
      let pb = select(b, 0, uniforms.Bp == 1);
      let lp = lseP[statOffset(b, h, i)];
      let g = ${gateExpression(mode!)};
      var accP : array<f32, ${SLICES}>;
      ${accumulate('accP', 'uniforms.K', 'exp(uniforms.scale * qDotPrompt(promptOffset(pb, n, kvh)) - lp)', 'promptValues', 'promptOffset(pb, NN, kvh)')}
      for (var u = 0; u < ${SLICES}; u = u + 1) { acc[u] = acc[u] + g * accP[u]; }`
          : ''
      }
      ${writeSlices('acc', 'qOffset(b, i, h)')}`,
  }, tensors);
}

export interface AttentionInputs {
  q: TensorInfo;
  k: TensorInfo;
  v: TensorInfo;
  prompt?: { kp: TensorInfo; vp: TensorInfo; gate: TensorInfo; mode: GateMode };
}

/** Forward: [out, lse] or, with a prompt, [out, lse, lseP]. */
export function attention(backend: WebGPUBackend, x: AttentionInputs, d: AttentionDims): TensorInfo[] {
  checkDims(d);
  const lse = logNormalisers(backend, x.q, x.k, d, false);
  if (!x.prompt) return [attentionOutput(backend, { ...x, lse }, d, null), lse];
  const { kp, vp, gate, mode } = x.prompt;
  const lseP = logNormalisers(backend, x.q, kp, d, true);
  return [attentionOutput(backend, { ...x, lse, kp, vp, gate, lseP }, d, mode), lse, lseP];
}

export interface AttentionGradInputs extends AttentionInputs {
  dout: TensorInfo;
  lse: TensorInfo;
  lseP?: TensorInfo;
}

const ROW_INDEX_BIH = `
      let i = row % uniforms.T;
      let h = (row / uniforms.T) % uniforms.H;
      let b = row / (uniforms.T * uniforms.H);
      let kvh = h / (uniforms.H / uniforms.Hkv);`;

/**
 * D [B, H, T]: rowsum(P * dP) for the tokens, or for the prompt (then scaled by g_h, as dPp = g_h dO vp^T).
 * One workgroup per (b, h, i), q in rowA and dO in rowB.
 */
function deltas(backend: WebGPUBackend, x: AttentionGradInputs, d: AttentionDims, prompt: boolean): TensorInfo {
  const mode = x.prompt?.mode;
  const names = ['q', 'dout', 'keys', 'values', 'stats', ...(prompt ? ['gate'] : [])];
  const tensors = prompt ? [x.q, x.dout, x.prompt!.kp, x.prompt!.vp, x.lseP!, x.prompt!.gate] : [x.q, x.dout, x.k, x.v, x.lse];
  const offset = prompt ? 'promptOffset(select(b, 0, uniforms.Bp == 1), j, kvh)' : 'kvOffset(b, j, kvh)';
  return runRows(backend, {
    key: `attnDelta_${prompt ? mode : 'tokens'}`,
    inputs: names,
    outputShape: [d.B, d.H, d.T],
    rows: d.B * d.H * d.T,
    uniforms: dimUniforms(d),
    declarations: HELPERS + SHARED + dotFunction('qDot', 'rowA', 'keys') + dotFunction('doDot', 'rowB', 'values'),
    body: `${ROW_INDEX_BIH}
      ${load('rowA', 'q', 'qOffset(b, i, h)')}
      ${load('rowB', 'dout', 'qOffset(b, i, h)')}
      let count = ${prompt ? 'uniforms.K' : 'visibleKeys(i)'};
      let l = stats[statOffset(b, h, i)];
      var sum = 0.0;
      for (var j = lane; j < count; j = j + ROW_THREADS) {
        sum = sum + exp(uniforms.scale * qDot(${offset}) - l) * doDot(${offset});
      }
      let total = workgroupSum(sum);
      if (lane == 0) { result[row] = ${prompt ? `${gateExpression(mode!)} * total` : 'total'}; }`,
  }, tensors);
}

/** dq [B, T, H * hd] = scale (dS k + dSp kp). One workgroup per (b, i, h). */
function queryGrad(backend: WebGPUBackend, x: AttentionGradInputs, d: AttentionDims, delta: TensorInfo, deltaP: TensorInfo | null): TensorInfo {
  const mode = x.prompt?.mode ?? null;
  const names = ['q', 'dout', 'keys', 'values', 'lse', 'delta', ...(mode ? ['promptKeys', 'promptValues', 'gate', 'lseP', 'deltaP'] : [])];
  const tensors = [x.q, x.dout, x.k, x.v, x.lse, delta, ...(mode ? [x.prompt!.kp, x.prompt!.vp, x.prompt!.gate, x.lseP!, deltaP!] : [])];
  return runRows(backend, {
    key: `attnDq_${mode ?? 'base'}`,
    inputs: names,
    outputShape: x.q.shape,
    rows: d.B * d.T * d.H,
    uniforms: dimUniforms(d),
    declarations:
      HELPERS + SHARED + dotFunction('qDot', 'rowA', 'keys') + dotFunction('doDot', 'rowB', 'values') +
      (mode ? dotFunction('qDotPrompt', 'rowA', 'promptKeys') + dotFunction('doDotPrompt', 'rowB', 'promptValues') : ''),
    body: `
      let h = row % uniforms.H;
      let i = (row / uniforms.H) % uniforms.T;
      let b = row / (uniforms.H * uniforms.T);
      let kvh = h / (uniforms.H / uniforms.Hkv);
      ${load('rowA', 'q', 'qOffset(b, i, h)')}
      ${load('rowB', 'dout', 'qOffset(b, i, h)')}
      let l = lse[statOffset(b, h, i)];
      let D = delta[statOffset(b, h, i)];
      var acc : array<f32, ${SLICES}>;
      ${accumulate('acc', 'visibleKeys(i)', 'exp(uniforms.scale * qDot(kvOffset(b, n, kvh)) - l) * (doDot(kvOffset(b, n, kvh)) - D)', 'keys', 'kvOffset(b, NN, kvh)')}
      ${
        mode
          ? `
      let pb = select(b, 0, uniforms.Bp == 1);
      let lp = lseP[statOffset(b, h, i)];
      let Dp = deltaP[statOffset(b, h, i)];
      let g = ${gateExpression(mode)};
      ${accumulate('acc', 'uniforms.K', 'exp(uniforms.scale * qDotPrompt(promptOffset(pb, n, kvh)) - lp) * (g * doDotPrompt(promptOffset(pb, n, kvh)) - Dp)', 'promptKeys', 'promptOffset(pb, NN, kvh)')}`
          : ''
      }
      ${writeSlices('acc', 'qOffset(b, i, h)', 'uniforms.scale * ')}`,
  }, tensors);
}

/**
 * dk (which = 'keys') = scale dS^T q, or dv (which = 'values') = P^T dO, [B, S, Hkv * hd]. One workgroup per key
 * row (b, j, kvh), summing over the query heads that read it and the query rows that see it; k_j in rowA, v_j in rowB.
 */
function keyValueGrad(backend: WebGPUBackend, x: AttentionGradInputs, d: AttentionDims, delta: TensorInfo, which: 'keys' | 'values'): TensorInfo {
  const probability = 'exp(uniforms.scale * kDot(qOffset(b, first + n, h)) - lse[statOffset(b, h, first + n)])';
  const weight = which === 'keys' ? `${probability} * (vDot(qOffset(b, first + n, h)) - delta[statOffset(b, h, first + n)])` : probability;
  return runRows(backend, {
    key: `attnDkv_${which}`,
    inputs: ['q', 'dout', 'keys', 'values', 'lse', 'delta'],
    outputShape: x.k.shape,
    rows: d.B * d.S * d.Hkv,
    uniforms: dimUniforms(d),
    declarations: HELPERS + SHARED + dotFunction('kDot', 'rowA', 'q') + dotFunction('vDot', 'rowB', 'dout'),
    body: `
      let kvh = row % uniforms.Hkv;
      let j = (row / uniforms.Hkv) % uniforms.S;
      let b = row / (uniforms.Hkv * uniforms.S);
      let rep = uniforms.H / uniforms.Hkv;
      ${load('rowA', 'keys', 'kvOffset(b, j, kvh)')}
      ${load('rowB', 'values', 'kvOffset(b, j, kvh)')}
      // Query row i sees key j when past + i >= j.
      let first = max(j - uniforms.past, 0);
      var acc : array<f32, ${SLICES}>;
      for (var h = kvh * rep; h < (kvh + 1) * rep; h = h + 1) {
        ${accumulate('acc', '(uniforms.T - first)', weight, which === 'keys' ? 'q' : 'dout', 'qOffset(b, first + NN, h)')}
      }
      ${writeSlices('acc', 'kvOffset(b, j, kvh)', which === 'keys' ? 'uniforms.scale * ' : '')}`,
  }, [x.q, x.dout, x.k, x.v, x.lse, delta]);
}

/**
 * dkp (which = 'keys') = scale dSp^T q, or dvp (which = 'values') = g Pp^T dO, shaped like kp. One workgroup per
 * prompt row (pb, t, kvh); a prompt shared by the batch (Bp = 1) sums over every sequence.
 */
function promptGrad(backend: WebGPUBackend, x: AttentionGradInputs, d: AttentionDims, deltaP: TensorInfo, which: 'keys' | 'values'): TensorInfo {
  const { kp, vp, gate, mode } = x.prompt!;
  const weight =
    which === 'keys'
      ? 'exp(uniforms.scale * kDot(qOffset(b, n, h)) - lseP[statOffset(b, h, n)]) * (g * vDot(qOffset(b, n, h)) - deltaP[statOffset(b, h, n)])'
      : 'g * exp(uniforms.scale * kDot(qOffset(b, n, h)) - lseP[statOffset(b, h, n)])';
  return runRows(backend, {
    key: `attnDprompt_${which}_${mode}`,
    inputs: ['q', 'dout', 'promptKeys', 'promptValues', 'gate', 'lseP', 'deltaP'],
    outputShape: kp.shape,
    rows: d.Bp * d.K * d.Hkv,
    uniforms: dimUniforms(d),
    declarations: HELPERS + SHARED + dotFunction('kDot', 'rowA', 'q') + dotFunction('vDot', 'rowB', 'dout'),
    body: `
      let kvh = row % uniforms.Hkv;
      let t = (row / uniforms.Hkv) % uniforms.K;
      let pb = row / (uniforms.Hkv * uniforms.K);
      let rep = uniforms.H / uniforms.Hkv;
      ${load('rowA', 'promptKeys', 'promptOffset(pb, t, kvh)')}
      ${load('rowB', 'promptValues', 'promptOffset(pb, t, kvh)')}
      let firstB = select(pb, 0, uniforms.Bp == 1);
      let lastB = select(pb + 1, uniforms.B, uniforms.Bp == 1);
      var acc : array<f32, ${SLICES}>;
      for (var b = firstB; b < lastB; b = b + 1) {
        for (var h = kvh * rep; h < (kvh + 1) * rep; h = h + 1) {
          let g = ${gateExpression(mode)};
          ${accumulate('acc', 'uniforms.T', weight, which === 'keys' ? 'q' : 'dout', 'qOffset(b, NN, h)')}
        }
      }
      ${writeSlices('acc', 'promptOffset(pb, t, kvh)', which === 'keys' ? 'uniforms.scale * ' : '')}`,
  }, [x.q, x.dout, kp, vp, gate, x.lseP!, deltaP]);
}

/**
 * d gate [G]: dg_h = sum over (b, i) of dO · (Pp vp), summed over heads for a per-layer gate, times
 * 1 - tanh^2(gate[h]) for per-head-tanh. One workgroup per gate entry; each lane takes whole query rows.
 */
function gateGrad(backend: WebGPUBackend, x: AttentionGradInputs, d: AttentionDims): TensorInfo {
  const { kp, vp, gate, mode } = x.prompt!;
  const G = gate.shape[0];
  return runRows(backend, {
    key: `attnDgate_${mode}`,
    inputs: ['q', 'dout', 'promptKeys', 'promptValues', 'gate', 'lseP'],
    outputShape: gate.shape,
    rows: G,
    uniforms: dimUniforms(d),
    declarations: HELPERS,
    body: `
      // Heads this gate entry scales: all of them for a per-layer gate.
      let heads = ${mode === 'per-layer' ? 'uniforms.H' : '1'};
      let items = uniforms.B * heads * uniforms.T;
      var sum = 0.0;
      for (var item = lane; item < items; item = item + ROW_THREADS) {
        let i = item % uniforms.T;
        let h = ${mode === 'per-layer' ? '(item / uniforms.T) % heads' : 'row'};
        let b = item / (uniforms.T * heads);
        let kvh = h / (uniforms.H / uniforms.Hkv);
        let pb = select(b, 0, uniforms.Bp == 1);
        let qo = qOffset(b, i, h);
        let lp = lseP[statOffset(b, h, i)];
        for (var t = 0; t < uniforms.K; t = t + 1) {
          let po = promptOffset(pb, t, kvh);
          var s = 0.0;
          var dv = 0.0;
          for (var dd = 0; dd < uniforms.hd; dd = dd + 1) {
            s = s + q[qo + dd] * promptKeys[po + dd];
            dv = dv + dout[qo + dd] * promptValues[po + dd];
          }
          sum = sum + exp(uniforms.scale * s - lp) * dv;
        }
      }
      let total = workgroupSum(sum);
      if (lane == 0) {
        ${mode === 'per-head-tanh' ? 'let th = tanh(gate[row]);\n        result[row] = total * (1.0 - th * th);' : 'result[row] = total;'}
      }`,
  }, [x.q, x.dout, kp, vp, gate, x.lseP!]);
}

/** Backward: [dq, dk, dv] or, with a prompt, [dq, dk, dv, dkp, dvp, dgate]. Intermediates are released. */
export function attentionGrad(backend: WebGPUBackend, x: AttentionGradInputs, d: AttentionDims): TensorInfo[] {
  checkDims(d);
  const delta = deltas(backend, x, d, false);
  const deltaP = x.prompt ? deltas(backend, x, d, true) : null;
  try {
    const dq = queryGrad(backend, x, d, delta, deltaP);
    const dk = keyValueGrad(backend, x, d, delta, 'keys');
    const dv = keyValueGrad(backend, x, d, delta, 'values');
    if (!x.prompt) return [dq, dk, dv];
    return [dq, dk, dv, promptGrad(backend, x, d, deltaP!, 'keys'), promptGrad(backend, x, d, deltaP!, 'values'), gateGrad(backend, x, d)];
  } finally {
    backend.disposeData(delta.dataId);
    if (deltaP) backend.disposeData(deltaP.dataId);
  }
}
