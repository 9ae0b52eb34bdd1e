// Where the training process's memory goes, for issue #5's peak-RSS target: trains the bench's reference adapter
// on the native backend (as `engine-bench train` does) and prints, after start-up, loading, each forward pass and
// each step, the process RSS split into the wasm heap's resident pages and everything else, the heap's size, the
// tensor buffers live in it (their peak, and the highest address any reached: the heap never shrinks, so that
// high-water mark is what the process keeps), and V8's own heap and external memory. Linux only (/proc/self/smaps).
//
//   node bench/run.mjs --probe-memory [--steps 3]        (bundles this file and prepares dist/bench/data first)
//   node dist/bench/mem-probe.mjs --dir dist/bench/data [--steps 3] [--threads N] [--maps] [--trace]
//     --maps   at the end, every mapping outside the wasm heap with more than 256 KB resident
//     --trace  each allocation that raises the heap's high-water mark, with the JS frames that made it

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { adapterVariables, initAdapter, topLayers } from '../src-main/engine/adapter.js';
import { initBackend } from '../src-main/engine/backend.js';
import { loadNativeAddon } from '../src-main/engine/backends/native.js';
import { loadModel } from '../src-main/engine/load.js';
import { nextTokenLoss, shiftedTargets } from '../src-main/engine/loss.js';
import { adamWStep, newAdamWState } from '../src-main/engine/optimizer.js';
import { Rng } from '../src-main/engine/rng.js';

// engine-bench.ts's REFERENCE adapter (importing that file would run it).
const ADAPTER = { adapterLen: 10, adapterLayers: 6, gateMode: 'per-layer' as const };

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const dir = flag('dir', 'dist/bench/data');
const steps = Number(flag('steps', '3'));
const threads = Number(flag('threads', String(os.availableParallelism())));
const trace = args.includes('--trace');

const MB = (bytes: number) => (bytes / 1e6).toFixed(0).padStart(4);

interface Mapping {
  begin: bigint;
  end: bigint;
  line: string;
  perm: string;
  rss: number;
}

function mappings(): Mapping[] {
  const maps: Mapping[] = [];
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+)/.exec(line);
    if (head) maps.push({ begin: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), perm: head[3], line, rss: 0 });
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) maps[maps.length - 1].rss = Number(rss[1]) * 1024;
  }
  return maps;
}

/**
 * The wasm memory's mappings: V8 reserves it as one region of several GB (guard pages included), whose accessible
 * part is the rw-p mapping(s) directly below the inaccessible rest.
 */
function wasmMappings(maps: Mapping[]): Set<Mapping> {
  const wasm = new Set<Mapping>();
  for (let i = 1; i < maps.length; i++) {
    if (maps[i].perm !== '---p' || maps[i].end - maps[i].begin < 4n << 30n) continue;
    for (let j = i - 1; j >= 0 && maps[j].perm === 'rw-p' && maps[j].end === maps[j + 1].begin; j--) wasm.add(maps[j]);
  }
  return wasm;
}

/** The backend's tensor buffers in its heap (tfjs allocates each through the module's _malloc / _free). */
const heap = { blocks: new Map<number, number>(), live: 0, peak: 0, top: 0 };

/** The JS functions on the stack, tfjs's own plumbing left out. */
const caller = () =>
  (new Error().stack ?? '')
    .split('\n')
    .slice(3)
    .map((l) => /at (\S+)/.exec(l)?.[1] ?? '')
    .filter((f) => f && !/^(_Engine|kernelFunc|Array|file|scopedRun|BackendWasm|Object\.kernelFunc)/.test(f))
    .slice(0, 6)
    .join(' < ');

function trackAllocations(wasm: { _malloc(n: number): number; _free(p: number): void }): void {
  // Emscripten's export stubs replace themselves with the real export on their first call: make it first.
  wasm._free(wasm._malloc(4));
  const malloc = wasm._malloc.bind(wasm);
  const free = wasm._free.bind(wasm);
  wasm._malloc = (n: number) => {
    const p = malloc(n) >>> 0;
    heap.blocks.set(p, n);
    heap.live += n;
    heap.peak = Math.max(heap.peak, heap.live);
    if (p + n > heap.top) {
      if (trace && p + n - heap.top > 100_000) {
        process.stdout.write(`    high-water ${MB(p + n)} MB (+${((p + n - heap.top) / 1e6).toFixed(1)}): ${(n / 1e6).toFixed(1)} MB, live ${MB(heap.live)} MB, ${caller()}\n`);
      }
      heap.top = p + n;
    }
    return p;
  };
  wasm._free = (p: number) => {
    heap.live -= heap.blocks.get(p >>> 0) ?? 0;
    heap.blocks.delete(p >>> 0);
    free(p);
  };
}

/** Free stretches between live buffers below the high-water mark (what fragmentation costs), largest first. */
function holes(): string {
  const blocks = [...heap.blocks].sort((a, b) => a[0] - b[0]);
  const gaps: number[] = [];
  for (let i = 1; i < blocks.length; i++) {
    const gap = blocks[i][0] - (blocks[i - 1][0] + blocks[i - 1][1]);
    if (gap > 256 * 1024) gaps.push(gap);
  }
  gaps.sort((a, b) => b - a);
  const total = gaps.reduce((a, b) => a + b, 0);
  return `holes over 256 KB: ${(total / 1e6).toFixed(1)} MB (${gaps.slice(0, 8).map((g) => (g / 1e6).toFixed(1)).join(', ')})`;
}

type WasmBackend = BackendWasm & { wasm: { HEAPU8: Uint8Array; _malloc(n: number): number; _free(p: number): void } };
let backend: WasmBackend | null = null;

function report(label: string, extra = ''): void {
  const maps = mappings();
  const wasm = wasmMappings(maps);
  let wasmRss = 0;
  let otherRss = 0;
  for (const m of maps) {
    if (wasm.has(m)) wasmRss += m.rss;
    else otherRss += m.rss;
  }
  const m = process.memoryUsage();
  process.stdout.write(
    `${label.padEnd(20)} rss ${MB(m.rss)} (peak ${MB(process.resourceUsage().maxRSS * 1024)}) | ` +
      `wasm heap ${MB(backend?.wasm.HEAPU8.length ?? 0)}, resident ${MB(wasmRss)}, tensors live ${MB(heap.live)} ` +
      `peak ${MB(heap.peak)} high-water ${MB(heap.top)} | rest ${MB(otherRss)}: v8 heap ${MB(m.heapTotal)}, ` +
      `array buffers ${MB(m.arrayBuffers)}${extra ? ` | ${extra}` : ''}\n`,
  );
}

process.stdout.write('MB (1e6 bytes)\n');
report('start');
await initBackend('native');
loadNativeAddon().setThreads(threads);
// Only now: tf.backend() before initBackend would start the highest-priority backend (plain wasm) on the way.
const active = tf.backend() as unknown as WasmBackend;
backend = active;
trackAllocations(active.wasm);
report('backend');
const model = loadModel(path.join(dir, 'model'));
report('loaded');

const batches = JSON.parse(fs.readFileSync(path.join(dir, 'batches.json'), 'utf8')) as { input_ids: number[][]; labels: number[][] };
const B = batches.input_ids.length;
const T = batches.input_ids[0].length;
const ids = tf.tensor2d(batches.input_ids.flat(), [B, T], 'int32');
const targets = shiftedTargets(Int32Array.from(batches.labels.flat()), B, T);
const layers = topLayers(model.config.nLayers, ADAPTER.adapterLayers);
const adapter = initAdapter(model.config, { adapterLen: ADAPTER.adapterLen, layers, gateMode: ADAPTER.gateMode }, new Rng(0));
const vars = adapterVariables(adapter);
const optimizer = newAdamWState(vars);
for (let i = 1; i <= steps; i++) {
  const { value, grads } = tf.variableGrads(() => {
    const loss = nextTokenLoss(model, ids, targets, { adapter });
    report(`  end of forward ${i}`, holes());
    return loss;
  }, vars);
  adamWStep(vars, grads, optimizer, 1e-3, { betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.02 });
  const loss = (await value.data())[0];
  tf.dispose([value, ...Object.values(grads)]);
  report(`step ${i}`, `loss ${loss.toFixed(4)}`);
}

if (args.includes('--maps')) {
  const maps = mappings();
  const wasm = wasmMappings(maps);
  for (const m of maps) {
    if (wasm.has(m) || m.rss <= 256 * 1024) continue;
    const mapped = Number(m.end - m.begin) / 2 ** 20;
    process.stdout.write(`${(m.rss / 2 ** 20).toFixed(1).padStart(7)} MiB of ${mapped.toFixed(1).padStart(8)} MiB  ${m.line}\n`);
  }
}
process.exit(0);
