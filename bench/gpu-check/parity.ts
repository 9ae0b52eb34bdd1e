// The parity checks of test/parity.test.ts as plain functions, so that they run on any backend both under
// vitest (test/webgpu-parity.test.ts) and in the GPU check program (bench/gpu-check/main.ts, plain Node).
// Fixtures: tiny HF model folders with transformers + PEFT outputs, made by tools/make_parity_fixtures.py.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type Adapter, disposeAdapter, type GateMode, gateSize, makeAdapter, namedAdapterVariables } from '../../src-main/engine/adapter.js';
import { loadAdapter } from '../../src-main/engine/adapter-io.js';
import { type LoadedModel, loadModel } from '../../src-main/engine/load.js';
import { crossEntropy, shiftedTargets } from '../../src-main/engine/loss.js';
import { disposeModel, forward } from '../../src-main/engine/model.js';

export const PARITY_TOLERANCE = 1e-4;

interface AdapterCase {
  prompts: Record<string, number[][]>;
  gates: Record<string, number | number[]>;
  logits: number[][][];
  loss: number;
  grads: { prompts: Record<string, number[][]>; gates: Record<string, number | number[]> };
}

interface Fixture {
  adapter_len: number;
  adapter_layers: number[];
  input_ids: number[][];
  labels: number[][];
  base: { logits: number[][][]; loss: number };
  /** null where PEFT's adaption prompt has no reference (Qwen2; a biased o_proj). */
  peft: AdapterCase | null;
  tanh: AdapterCase;
}

/** One comparison: `value` is a difference that must be below `limit` (max-diff), exactly 0 (exact), or above `limit` (min-diff). */
export interface ParityCheck {
  name: string;
  value: number;
  limit: number;
  kind: 'max-diff' | 'exact' | 'min-diff';
  pass: boolean;
}

/** The fixture case names (folders) under `fixturesDir`, sorted. */
export function parityCases(fixturesDir: string): string[] {
  return readdirSync(fixturesDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, what: string): number {
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} values, the reference has ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i] - b[i]);
    d = Number.isNaN(x) ? Infinity : Math.max(d, x);
  }
  return d;
}

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flat(Infinity as 1) : [x]) as number[];

// Reads are asynchronous: tfjs-backend-webgpu's readSync needs a browser's OffscreenCanvas.
async function logitsAndLoss(model: LoadedModel, f: Fixture, adapter: Adapter | null) {
  const [B, T] = [f.input_ids.length, f.input_ids[0].length];
  const ids = tf.tensor2d(f.input_ids, [B, T], 'int32');
  const targets = shiftedTargets(Int32Array.from(f.labels.flat()), B, T);
  const logits = forward(model, ids, { adapter });
  const loss = crossEntropy(logits, targets);
  const out = { logits: new Float32Array(await logits.data()), loss: (await loss.data())[0] };
  tf.dispose([ids, targets.labels, targets.mask, logits, loss]);
  return out;
}

async function gradients(model: LoadedModel, f: Fixture, adapter: Adapter): Promise<Record<string, Float32Array>> {
  const [B, T] = [f.input_ids.length, f.input_ids[0].length];
  const ids = tf.tensor2d(f.input_ids, [B, T], 'int32');
  const targets = shiftedTargets(Int32Array.from(f.labels.flat()), B, T);
  const named = namedAdapterVariables(adapter);
  const { value, grads } = tf.variableGrads(() => crossEntropy(forward(model, ids, { adapter }), targets), named.map(([, v]) => v));
  const byKey: Record<string, Float32Array> = {};
  for (const [key, v] of named) byKey[key] = new Float32Array(await grads[v.name].data());
  tf.dispose([ids, targets.labels, targets.mask, value, ...Object.values(grads)]);
  return byKey;
}

/**
 * Every check of one fixture case on the active backend: base logits and loss; zero gates give exactly the
 * base model in each gate mode; PEFT (per-layer) and official (per-head tanh) adapters' logits, loss and
 * gradients; a PEFT adapter folder imports with the same logits.
 */
export async function runParityCase(fixturesDir: string, name: string, tolerance = PARITY_TOLERANCE): Promise<ParityCheck[]> {
  const dir = join(fixturesDir, name);
  const f = JSON.parse(readFileSync(join(dir, 'fixture.json'), 'utf8')) as Fixture;
  const model = loadModel(join(dir, 'model'));
  const checks: ParityCheck[] = [];
  const below = (what: string, value: number, limit = tolerance) => checks.push({ name: `${name}: ${what}`, value, limit, kind: 'max-diff', pass: value < limit });
  const exact = (what: string, value: number) => checks.push({ name: `${name}: ${what}`, value, limit: 0, kind: 'exact', pass: value === 0 });
  const above = (what: string, value: number, limit: number) => checks.push({ name: `${name}: ${what}`, value, limit, kind: 'min-diff', pass: value > limit });
  try {
    const base = await logitsAndLoss(model, f, null);
    below('base logits', maxAbsDiff(base.logits, flat(f.base.logits), 'base logits'));
    below('base loss', Math.abs(base.loss - f.base.loss));

    for (const mode of ['per-head-tanh', 'per-head', 'per-layer'] as GateMode[]) {
      const adapter = makeAdapter({ adapterLen: f.adapter_len, layers: f.adapter_layers, gateMode: mode }, (layer) => ({
        prompt: tf.tensor2d(f.tanh.prompts[layer]),
        gate: tf.zeros([gateSize(model.config, mode)]),
      }));
      exact(`zero gates (${mode}) give the base logits`, maxAbsDiff((await logitsAndLoss(model, f, adapter)).logits, base.logits, 'zero-gate logits'));
      disposeAdapter(adapter);
    }

    for (const [form, mode] of [['peft', 'per-layer'], ['tanh', 'per-head-tanh']] as const) {
      const ref = f[form];
      if (!ref) continue;
      const adapter = makeAdapter({ adapterLen: f.adapter_len, layers: f.adapter_layers, gateMode: mode }, (layer) => ({
        prompt: tf.tensor2d(ref.prompts[layer]),
        gate: tf.tensor1d(flat(ref.gates[layer])),
      }));
      const out = await logitsAndLoss(model, f, adapter);
      below(`${form} adapter logits`, maxAbsDiff(out.logits, flat(ref.logits), `${form} logits`));
      below(`${form} adapter loss`, Math.abs(out.loss - ref.loss));
      // Non-zero gates really move the output, so the comparisons are not vacuous.
      above(`${form} adapter moves the logits`, maxAbsDiff(out.logits, flat(f.base.logits), 'logits'), 1e-2);
      const grads = await gradients(model, f, adapter);
      for (const layer of f.adapter_layers) {
        below(`${form} gradient of layers.${layer}.prompt`, maxAbsDiff(grads[`layers.${layer}.prompt`], flat(ref.grads.prompts[layer]), 'prompt gradient'));
        below(`${form} gradient of layers.${layer}.gate`, maxAbsDiff(grads[`layers.${layer}.gate`], flat(ref.grads.gates[layer]), 'gate gradient'));
      }
      disposeAdapter(adapter);
    }

    if (f.peft) {
      const imported = loadAdapter(join(dir, 'peft_adapter'), model);
      below('PEFT adapter folder logits', maxAbsDiff((await logitsAndLoss(model, f, imported)).logits, flat(f.peft.logits), 'imported logits'));
      disposeAdapter(imported);
    }
  } finally {
    disposeModel(model);
  }
  return checks;
}

export function formatCheck(c: ParityCheck): string {
  const rel = c.kind === 'exact' ? '== 0' : c.kind === 'max-diff' ? `< ${c.limit}` : `> ${c.limit}`;
  return `${c.pass ? 'ok  ' : 'FAIL'} ${c.name}: ${c.value.toExponential(2)} (${rel})`;
}
