// How a tfjs BatchMatMul / _FusedMatMul maps onto row-major BLAS calls: sizes, leading dimensions, and which
// matrix of each operand every output matrix reads once batch dimensions broadcast. Pure functions on shapes, so
// the native backend's kernels stay short and these rules can be tested without the addon.

/**
 * Which matrix of an operand output matrix `i` uses, over the flattened batch dimensions:
 * - `identity`: matrix i (the operand has the full batch), a constant stride apart;
 * - `broadcast`: always matrix 0 (the operand has batch size 1);
 * - `indexed`: `index[i]` (partial broadcasting such as [2, 1] against [2, 3]).
 */
export type BatchMap = { kind: 'identity' } | { kind: 'broadcast' } | { kind: 'indexed'; index: Int32Array };

export interface MatMulPlan {
  m: number; // rows of op(A) and of C
  n: number; // columns of op(B) and of C
  k: number; // the contracted dimension
  lda: number; // row length of A as stored: K, or M when transposed
  ldb: number; // row length of B as stored: N, or K when transposed
  aMatrixSize: number; // M * K: floats between consecutive matrices of A
  bMatrixSize: number; // K * N
  outShape: number[]; // [...broadcast batch dims, M, N]
  batch: number; // product of outShape's batch dims
  aBatch: BatchMap;
  bBatch: BatchMap;
}

const product = (dims: readonly number[]) => dims.reduce((p, d) => p * d, 1);

/** numpy broadcasting of two shapes; throws naming both when they are incompatible. */
export function broadcastShapes(what: string, x: readonly number[], y: readonly number[]): number[] {
  const rank = Math.max(x.length, y.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const dx = x[x.length - rank + i] ?? 1;
    const dy = y[y.length - rank + i] ?? 1;
    if (dx !== dy && dx !== 1 && dy !== 1) {
      throw new Error(`${what}: shapes [${x}] and [${y}] cannot be broadcast together`);
    }
    out[i] = dx === 1 ? dy : dx;
  }
  return out;
}

/** For each flattened index of `outDims`, the flattened index of `dims` that broadcasting reads. */
export function batchMap(dims: readonly number[], outDims: readonly number[]): BatchMap {
  const size = product(dims);
  const outSize = product(outDims);
  // Equal sizes with compatible shapes means every dim matches or is a leading 1: the identity.
  if (size === outSize) return { kind: 'identity' };
  if (size === 1) return { kind: 'broadcast' };
  const rank = outDims.length;
  const padded = [...new Array<number>(rank - dims.length).fill(1), ...dims];
  // Stride of each out dim in the operand; 0 where the operand broadcasts.
  const strides = new Array<number>(rank);
  for (let d = rank - 1, stride = 1; d >= 0; d--) {
    strides[d] = padded[d] === 1 ? 0 : stride;
    stride *= padded[d];
  }
  const index = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) {
    let rest = i;
    let at = 0;
    for (let d = rank - 1; d >= 0; d--) {
      at += (rest % outDims[d]) * strides[d];
      rest = Math.floor(rest / outDims[d]);
    }
    index[i] = at;
  }
  return { kind: 'indexed', index };
}

/** The matrix index an output batch entry reads under `map`. */
export function matrixIndex(map: BatchMap, i: number): number {
  return map.kind === 'identity' ? i : map.kind === 'broadcast' ? 0 : map.index[i];
}

/** Plans C = op(A) @ op(B) for tfjs shapes `a` [..., M, K] (or [..., K, M] transposed) and `b` likewise. */
export function planMatMul(
  aShape: readonly number[],
  bShape: readonly number[],
  transposeA: boolean,
  transposeB: boolean,
): MatMulPlan {
  if (aShape.length < 2 || bShape.length < 2) {
    throw new Error(`matMul: both operands need rank >= 2, got shapes [${aShape}] and [${bShape}]`);
  }
  const [aRows, aCols] = aShape.slice(-2);
  const [bRows, bCols] = bShape.slice(-2);
  const m = transposeA ? aCols : aRows;
  const k = transposeA ? aRows : aCols;
  const kB = transposeB ? bCols : bRows;
  const n = transposeB ? bRows : bCols;
  if (k !== kB) {
    throw new Error(
      `matMul: inner dimensions ${k} and ${kB} differ for shapes [${aShape}] and [${bShape}] ` +
        `(transposeA=${transposeA}, transposeB=${transposeB})`,
    );
  }
  const aBatchDims = aShape.slice(0, -2);
  const bBatchDims = bShape.slice(0, -2);
  const outBatchDims = broadcastShapes('matMul batch dimensions', aBatchDims, bBatchDims);
  return {
    m,
    n,
    k,
    lda: aCols,
    ldb: bCols,
    aMatrixSize: m * k,
    bMatrixSize: k * n,
    outShape: [...outBatchDims, m, n],
    batch: product(outBatchDims),
    aBatch: batchMap(aBatchDims, outBatchDims),
    bBatch: batchMap(bBatchDims, outBatchDims),
  };
}

/**
 * How an operand broadcast against an output of shape [...batchDims, M, N] is read (a bias or PReLU weights):
 * per-row and per-column strides (0 where it broadcasts), the floats between its matrices, and which of its
 * matrices each output matrix uses.
 */
export interface BroadcastPlan {
  strideRow: number;
  strideCol: number;
  matrixSize: number;
  batch: BatchMap;
}

export function planBroadcast(what: string, shape: readonly number[], outShape: readonly number[]): BroadcastPlan {
  const full = broadcastShapes(what, shape, outShape);
  if (full.length !== outShape.length || full.some((d, i) => d !== outShape[i])) {
    throw new Error(`${what}: shape [${shape}] does not broadcast to the output shape [${outShape}]`);
  }
  const padded = [...new Array<number>(Math.max(0, 2 - shape.length)).fill(1), ...shape];
  const rows = padded[padded.length - 2];
  const cols = padded[padded.length - 1];
  return {
    strideCol: cols === 1 ? 0 : 1,
    strideRow: rows === 1 ? 0 : cols,
    matrixSize: rows * cols,
    batch: batchMap(padded.slice(0, -2), outShape.slice(0, -2)),
  };
}
