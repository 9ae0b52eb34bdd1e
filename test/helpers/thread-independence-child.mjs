// Runs every kernel of the native addon that splits work over threads (products in each blocking branch, the
// fused attention forward and backward with a prompt, RMSNorm and its weight gradient, the fused vocabulary
// projection + cross-entropy) at several thread counts and reports which outputs differ in any bit.
// Plain Node on the addon's Float32Array API, so a parent test can run it once per OPENBLAS_CORETYPE: the BLAS
// picks its kernels when the library loads, before any code of ours runs.
//
//   node test/helpers/thread-independence-child.mjs ADDON_PATH   -> one JSON line { blas, mismatches: [...] }

import { createRequire } from 'node:module';

const addon = createRequire(import.meta.url)(process.argv[2]);
const THREAD_COUNTS = [1, 2, 3, 5];

let seed = 12345;
/** Uniform in [-1, 1) from a fixed LCG: the same inputs in every process. */
function random(n) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    out[i] = seed / 2 ** 31 - 1;
  }
  return out;
}

/** A product C [m, n] = op(A) op(B) with fresh inputs; returns C. */
function product(ta, tb, m, n, k) {
  const a = random(m * k), b = random(k * n);
  return () => {
    const c = new Float32Array(m * n);
    addon.sgemm(ta, tb, m, n, k, 1, a, ta ? m : k, b, tb ? k : n, 0, c, n);
    return [c];
  };
}

function batched(m, n, k, batch) {
  const a = random(batch * m * k), b = random(batch * k * n);
  return () => {
    const c = new Float32Array(batch * m * n);
    addon.sgemmStridedBatched(false, true, m, n, k, 1, a, k, m * k, b, k, k * n, 0, c, n, m * n, batch);
    return [c];
  };
}

function attention() {
  const [B, T, H, Hkv, hd, K] = [2, 70, 4, 2, 16, 10];
  const q = random(B * T * H * hd), k = random(B * T * Hkv * hd), v = random(B * T * Hkv * hd);
  const kp = random(B * K * Hkv * hd), vp = random(B * K * Hkv * hd), gate = random(H), dout = random(B * T * H * hd);
  const dims = [B, T, T, H, Hkv, hd, 0, K, B, 1, 1];
  return () => {
    const out = new Float32Array(B * T * H * hd), lse = new Float32Array(B * H * T), lseP = new Float32Array(B * H * T);
    addon.attention(q, k, v, kp, vp, gate, dims, 1 / Math.sqrt(hd), out, lse, lseP);
    const [dq, dk, dv] = [q, k, v].map((x) => new Float32Array(x.length));
    const [dkp, dvp, dgate] = [kp, vp, gate].map((x) => new Float32Array(x.length));
    addon.attentionBackward(dout, q, k, v, kp, vp, gate, lse, lseP, dims, 1 / Math.sqrt(hd), dq, dk, dv, dkp, dvp, dgate);
    return [out, lse, lseP, dq, dk, dv, dkp, dvp, dgate];
  };
}

function rmsNorm() {
  const [rows, cols] = [700, 96];
  const x = random(rows * cols), weight = random(cols), dy = random(rows * cols);
  return () => {
    const y = new Float32Array(rows * cols), rstd = new Float32Array(rows), dw = new Float32Array(cols);
    addon.rmsNorm(x, weight, 1e-5, rows, cols, y, rstd);
    addon.rmsNormWeightGrad(dy, x, rstd, rows, cols, dw);
    return [y, rstd, dw];
  };
}

function lmHeadCrossEntropy() {
  const [rows, dim, vocab] = [96, 64, 3000];
  const hidden = random(rows * dim), weight = random(dim * vocab);
  const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % vocab);
  const mask = Float32Array.from({ length: rows }, (_, i) => (i % 5 === 0 ? 0 : 1));
  return () => {
    const nll = new Float32Array(rows), dunit = new Float32Array(rows * dim);
    addon.lmHeadCrossEntropy(hidden, weight, false, labels, mask, rows, dim, vocab, rows, rows, rows, nll, dunit);
    return [nll, dunit];
  };
}

const cases = {
  'sgemm columns 300x500x64': product(false, false, 300, 500, 64),
  'sgemm columns transposed B 300x700x64': product(false, true, 300, 700, 64),
  'sgemm columns transposed A 200x600x96': product(true, false, 200, 600, 96),
  'sgemm one row 1x5000x256 (gemv)': product(false, false, 1, 5000, 256),
  'sgemm one row transposed B 1x3000x96': product(false, true, 1, 3000, 96),
  'sgemm rows 3000x64x64': product(false, false, 3000, 64, 64),
  'sgemm rows, large B 1200x600x3600': product(false, false, 1200, 600, 3600),
  'sgemmStridedBatched 3x(200x300x64)': batched(200, 300, 64, 3),
  'attention + prompt, forward and backward': attention(),
  'rmsNorm + weight gradient': rmsNorm(),
  'lmHeadCrossEntropy': lmHeadCrossEntropy(),
};

const sameBits = (a, b) => a.length === b.length && Buffer.compare(Buffer.from(a.buffer), Buffer.from(b.buffer)) === 0;

const mismatches = [];
const before = addon.getThreads();
try {
  for (const [name, run] of Object.entries(cases)) {
    addon.setThreads(THREAD_COUNTS[0]);
    const reference = run();
    for (const threads of THREAD_COUNTS.slice(1)) {
      addon.setThreads(threads);
      const result = run();
      result.forEach((out, i) => {
        if (sameBits(out, reference[i])) return;
        const at = out.findIndex((x, j) => !Object.is(x, reference[i][j]));
        mismatches.push(`${name}: output ${i} at ${threads} threads, index ${at}: ${out[at]} vs ${reference[i][at]} at 1 thread`);
      });
    }
  }
} finally {
  addon.setThreads(before);
}
console.log(JSON.stringify({ blas: addon.blasInfo(), mismatches }));
