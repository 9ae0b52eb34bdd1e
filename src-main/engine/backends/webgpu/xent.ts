// Masked softmax cross-entropy straight from a batch's logits, as native/src/xent.c defines it.
//
// Logical row n (one predicted token) reads physical logits row p(n) = (n / rowsPerSeq) * seqStride + n % rowsPerSeq,
// so logits [B, T, V] serve next-token targets [B * (T - 1)] without slicing (rowsPerSeq = T - 1, seqStride = T).
//   lse[n] = log sum_v exp(logits[p(n), v]),   nll[n] = mask[n] * (lse[n] - logits[p(n), label[n]])
//   dlogits[p(n), v] = dnll[n] * mask[n] * (softmax(logits[p(n)])[v] - [v == label[n]]); other rows 0.
// Masked rows (mask 0) get nll 0 and never read their label.

import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { runElementwise, runRows, type Uniform } from './program.js';

export interface RowLayout {
  rowsPerSeq: number;
  seqStride: number;
}

const layoutUniforms = (layout: RowLayout, vocab: number): Uniform[] => [
  { name: 'rowsPerSeq', type: 'i32', value: layout.rowsPerSeq },
  { name: 'seqStride', type: 'i32', value: layout.seqStride },
  { name: 'vocab', type: 'i32', value: vocab },
];

const PHYSICAL_ROW = `(n / uniforms.rowsPerSeq) * uniforms.seqStride + n % uniforms.rowsPerSeq`;

/** logits [..., V], labels [N] int32, mask [N] -> [nll [N], lse [N]]. */
export function crossEntropy(backend: WebGPUBackend, logits: TensorInfo, labels: TensorInfo, mask: TensorInfo, layout: RowLayout): [TensorInfo, TensorInfo] {
  const V = logits.shape[logits.shape.length - 1];
  const N = labels.shape[0];
  const lse = runRows(backend, {
    key: 'crossEntropyLse',
    inputs: ['logits', 'mask'],
    outputShape: [N],
    rows: N,
    uniforms: layoutUniforms(layout, V),
    body: `
      let n = row;
      let base = (${PHYSICAL_ROW}) * uniforms.vocab;
      // Online max and sum per lane, then combined: one pass over the row.
      var m = -uniforms.INFINITY;
      var sum = 0.0;
      for (var v = lane; v < uniforms.vocab; v = v + ROW_THREADS) {
        let x = logits[base + v];
        let next = max(m, x);
        sum = sum * exp(m - next) + exp(x - next);
        m = next;
      }
      let rowMax = workgroupMax(m);
      let total = workgroupSum(select(sum * exp(m - rowMax), 0.0, sum == 0.0));
      if (lane == 0) { result[n] = select(rowMax + log(total), 0.0, mask[n] == 0.0); }`,
  }, [logits, mask]);
  const nll = runElementwise(backend, {
    key: 'crossEntropyNll',
    inputs: ['logits', 'labels', 'mask', 'lse'],
    outputShape: [N],
    uniforms: layoutUniforms(layout, V),
    body: `
      let n = index;
      if (mask[n] == 0.0) { result[n] = 0.0; return; }
      let base = (${PHYSICAL_ROW}) * uniforms.vocab;
      result[n] = mask[n] * (lse[n] - logits[base + labels[n]]);`,
  }, [logits, labels, mask, lse]);
  return [nll, lse];
}

/** d logits [same shape as logits] from dnll [N]. */
export function crossEntropyGrad(backend: WebGPUBackend, dnll: TensorInfo, logits: TensorInfo, labels: TensorInfo, mask: TensorInfo, lse: TensorInfo, layout: RowLayout): TensorInfo {
  const V = logits.shape[logits.shape.length - 1];
  return runElementwise(backend, {
    key: 'crossEntropyGrad',
    inputs: ['dnll', 'logits', 'labels', 'mask', 'lse'],
    outputShape: logits.shape,
    uniforms: [...layoutUniforms(layout, V), { name: 'N', type: 'i32', value: labels.shape[0] }],
    body: `
      let p = index / uniforms.vocab;
      let v = index % uniforms.vocab;
      let inSeq = p % uniforms.seqStride;
      let n = (p / uniforms.seqStride) * uniforms.rowsPerSeq + inSeq;
      if (inSeq >= uniforms.rowsPerSeq || n >= uniforms.N || mask[n] == 0.0) { result[index] = 0.0; return; }
      let softmax = exp(logits[index] - lse[n]);
      result[index] = dnll[n] * mask[n] * (softmax - select(0.0, 1.0, v == labels[n]));`,
  }, [dnll, logits, labels, mask, lse]);
}

/** y[p(n)] = dnll[n] * x[p(n)] over x [physRows, cols]; rows no logical row reads get 0. */
export function scaleRows(backend: WebGPUBackend, x: TensorInfo, dnll: TensorInfo, layout: RowLayout): TensorInfo {
  const cols = x.shape[x.shape.length - 1];
  return runElementwise(backend, {
    key: 'scaleRows',
    inputs: ['x', 'dnll'],
    outputShape: x.shape,
    uniforms: [...layoutUniforms(layout, cols), { name: 'N', type: 'i32', value: dnll.shape[0] }],
    body: `
      let p = index / uniforms.vocab;
      let inSeq = p % uniforms.seqStride;
      let n = (p / uniforms.seqStride) * uniforms.rowsPerSeq + inSeq;
      if (inSeq >= uniforms.rowsPerSeq || n >= uniforms.N) { result[index] = 0.0; return; }
      result[index] = dnll[n] * x[index];`,
  }, [x, dnll]);
}
