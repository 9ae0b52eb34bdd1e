// Products with a few rows, x [M, K] @ w [K, N] for M <= GEMV_MAX_ROWS: every decoding step's projections and
// vocabulary head. tfjs-backend-webgpu tiles them 32 x 32, so 31 of every 32 rows of work are padding. Here a
// workgroup owns 32 output columns for all M rows: its 256 lanes are 8 slices of the inner dimension x 32 columns,
// so each warp-sized group of lanes reads 32 consecutive floats of one row of w (coalesced), w is read exactly
// once, and the 8 partial sums per column meet in workgroup memory.

import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { runRows } from './program.js';

/** Rows up to which this kernel beats tfjs's tiled product (it keeps one accumulator per row per lane). */
export const GEMV_MAX_ROWS = 4;
const COLUMNS = 32;
const SLICES = 8;

/** a [M, K] (M <= GEMV_MAX_ROWS) @ b [K, N] -> outShape (M * N values), float32, no transposes. */
export function gemv(backend: WebGPUBackend, a: TensorInfo, b: TensorInfo, outShape: number[]): TensorInfo {
  const [M, K] = a.shape.slice(-2);
  const N = b.shape[b.shape.length - 1];
  if (M > GEMV_MAX_ROWS) throw new Error(`gemv: ${M} rows, at most ${GEMV_MAX_ROWS}`);
  return runRows(backend, {
    key: `gemv_${M}`,
    inputs: ['a', 'b'],
    outputShape: outShape,
    rows: Math.ceil(N / COLUMNS),
    threads: COLUMNS * SLICES,
    uniforms: [
      { name: 'K', type: 'i32', value: K },
      { name: 'N', type: 'i32', value: N },
    ],
    declarations: `var<workgroup> partial : array<f32, ${M * COLUMNS * SLICES}>;`,
    body: `
      let column = row * ${COLUMNS} + lane % ${COLUMNS};
      let slice = lane / ${COLUMNS};
      var acc : array<f32, ${M}>;
      if (column < uniforms.N) {
        for (var k = slice; k < uniforms.K; k = k + ${SLICES}) {
          let w = b[k * uniforms.N + column];
          for (var r = 0; r < ${M}; r = r + 1) { acc[r] = acc[r] + a[r * uniforms.K + k] * w; }
        }
      }
      for (var r = 0; r < ${M}; r = r + 1) { partial[r * ROW_THREADS + lane] = acc[r]; }
      workgroupBarrier();
      if (slice == 0 && column < uniforms.N) {
        for (var r = 0; r < ${M}; r = r + 1) {
          var sum = 0.0;
          for (var s = 0; s < ${SLICES}; s = s + 1) { sum = sum + partial[r * ROW_THREADS + s * ${COLUMNS} + lane]; }
          result[r * uniforms.N + column] = sum;
        }
      }`,
  }, [a, b]);
}
