// Matrix-product throughput of the `wasm` and `native` backends, and of the addon's sgemm alone (the ceiling).
// A measurement, not a test:   npx vite-node bench/matmul-gflops.ts
//
// Shapes: the 1024^3 product plain and with each transpose (backprop multiplies by transposed weights), batched
// 8 x 512^3, and the attention-score product of the issue-5 reference config (batch 4 x 8 heads, seq 256,
// head dim 64: [32, 256, 64] x [32, 256, 64]^T).

import * as tf from '@tensorflow/tfjs-core';
import { initNativeBackend, loadNativeAddon, NATIVE_BACKEND } from '../src-main/engine/backends/native.js';

interface Case {
  name: string;
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

const cases: Case[] = [
  { name: '1024^3 A @ B', a: [1024, 1024], b: [1024, 1024], transposeA: false, transposeB: false },
  { name: '1024^3 A @ B^T', a: [1024, 1024], b: [1024, 1024], transposeA: false, transposeB: true },
  { name: '1024^3 A^T @ B', a: [1024, 1024], b: [1024, 1024], transposeA: true, transposeB: false },
  { name: '8 x 512^3 batched', a: [8, 512, 512], b: [8, 512, 512], transposeA: false, transposeB: false },
  { name: 'attention [32,256,64] @ ^T', a: [32, 256, 64], b: [32, 256, 64], transposeA: false, transposeB: true },
];

function flops(c: Case): number {
  const m = c.transposeA ? c.a[c.a.length - 1] : c.a[c.a.length - 2];
  const k = c.transposeA ? c.a[c.a.length - 2] : c.a[c.a.length - 1];
  const n = c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
  const batch = c.a.slice(0, -2).reduce((p, d) => p * d, 1);
  return 2 * batch * m * n * k;
}

/** Best GFLOP/s over repeats lasting ~`budgetMs` (at least 2 after a warm-up). */
function measure(run: () => void, flopCount: number, budgetMs = 1500): number {
  run();
  let best = Infinity;
  const start = performance.now();
  for (let i = 0; i < 2 || performance.now() - start < budgetMs; i++) {
    const t0 = performance.now();
    run();
    best = Math.min(best, performance.now() - t0);
    if (i >= 50) break;
  }
  return flopCount / (best / 1000) / 1e9;
}

async function backendRow(backend: string, c: Case): Promise<number> {
  await tf.setBackend(backend);
  const a = tf.randomUniform(c.a, -1, 1);
  const b = tf.randomUniform(c.b, -1, 1);
  // wasm and native kernels run synchronously, so the call's duration is the kernel's.
  const gflops = measure(() => tf.tidy(() => tf.matMul(a, b, c.transposeA, c.transposeB)).dispose(), flops(c));
  tf.dispose([a, b]);
  return gflops;
}

async function main(): Promise<void> {
  const status = await initNativeBackend();
  if (!status.ok) throw new Error(`native backend unavailable: ${status.reason}`);
  const addon = loadNativeAddon();
  console.log(`${addon.blasInfo()}; default threads ${addon.getThreads()}`);

  const n = 1024;
  const x = new Float32Array(n * n).map(() => Math.random() - 0.5);
  const y = new Float32Array(n * n).map(() => Math.random() - 0.5);
  const z = new Float32Array(n * n);
  const defaultThreads = addon.getThreads();
  for (let threads = 1; threads <= defaultThreads; threads++) {
    addon.setThreads(threads);
    const g = measure(() => addon.sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n), 2 * n ** 3);
    console.log(`addon sgemm alone, 1024^3, ${threads} thread(s): ${g.toFixed(1)} GFLOP/s`);
  }
  addon.setThreads(defaultThreads);

  console.log('\n| product | wasm GFLOP/s | native GFLOP/s | native / wasm |');
  console.log('|---|---:|---:|---:|');
  for (const c of cases) {
    const wasm = await backendRow('wasm', c);
    const native = await backendRow(NATIVE_BACKEND, c);
    console.log(`| ${c.name} | ${wasm.toFixed(1)} | ${native.toFixed(1)} | ${(native / wasm).toFixed(1)}x |`);
  }
}

await main();
