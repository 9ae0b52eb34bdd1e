// Official LLaMA-Adapter v1 checkpoints (.pth) imported without Python give the reference logits;
// export writes the same format back. Fixtures: tools/make_official_adapter_fixture.py.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Adapter, disposeAdapter } from '../src-main/engine/adapter.js';
import { loadAdapter, saveAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { EngineError } from '../src-main/engine/errors.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { disposeModel, forward } from '../src-main/engine/model.js';
import { exportOfficialAdapter, importOfficialAdapter, readOfficialAdapter } from '../src-main/interop/official-adapter.js';
import { TorchFile, writeTorchFile } from '../src-main/interop/torch-file.js';
import { makeTempDir } from './helpers/tmp.js';

const ROOT = join(import.meta.dirname, 'fixtures', 'interop', 'official');
const PARITY = join(import.meta.dirname, 'fixtures', 'parity');
const TOLERANCE = 1e-4;

interface Fixture {
  adapter_len: number;
  adapter_layers: number[];
  input_ids: number[][];
  logits: Record<'tanh' | 'raw' | 'fp16_tanh' | 'bf16_tanh', number[][][]>;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function logits(model: LoadedModel, ids: number[][], adapter: Adapter | null): Float32Array {
  const input = tf.tensor2d(ids, [ids.length, ids[0].length], 'int32');
  const out = forward(model, input, { adapter });
  const values = out.dataSync() as Float32Array;
  tf.dispose([input, out]);
  return values;
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe.each(['mha', 'gqa'])('official adapter: %s', (name) => {
  const dir = join(ROOT, name);
  const f = JSON.parse(readFileSync(join(dir, 'fixture.json'), 'utf8')) as Fixture;
  let model: LoadedModel;
  beforeAll(() => {
    model = loadModel(join(PARITY, name, 'model'));
    return () => disposeModel(model);
  });

  it('imports a release extract with the raw gate of the inference code (example.py) by default', () => {
    const { adapter, gateForm, gateFormSource } = importOfficialAdapter(join(dir, 'adapter.pth'), model);
    expect([gateForm, gateFormSource]).toEqual(['raw', 'release extract']);
    expect(adapter.spec.gateMode).toBe('per-head');
    expect(maxAbsDiff(logits(model, f.input_ids, adapter), f.logits.raw.flat(2))).toBeLessThan(TOLERANCE);
    disposeAdapter(adapter);
  });

  it('imports the training form (tanh gates) with the reference logits when asked', () => {
    const { adapter, contents } = importOfficialAdapter(join(dir, 'adapter.pth'), model, { gateForm: 'tanh' });
    expect(adapter.spec).toEqual({ adapterLen: f.adapter_len, layers: f.adapter_layers, gateMode: 'per-head-tanh' });
    // The file holds gates for every layer; K is recovered from which of them are non-zero.
    expect(contents.adapterLenSource).toBe('gates');
    const out = logits(model, f.input_ids, adapter);
    expect(maxAbsDiff(out, f.logits.tanh.flat(2))).toBeLessThan(TOLERANCE);
    expect(maxAbsDiff(out, logits(model, f.input_ids, null))).toBeGreaterThan(1e-2); // the adapter matters
    disposeAdapter(adapter);
  });


  it.each([
    ['adapter_fp16.pth', 'fp16_tanh'],
    ['adapter_bf16.pth', 'bf16_tanh'],
  ] as const)('reads %s storages', (file, key) => {
    const { adapter, contents } = importOfficialAdapter(join(dir, file), model, { gateForm: 'tanh' });
    expect(contents.dtype).toBe(key.startsWith('fp16') ? 'float16' : 'bfloat16');
    expect(maxAbsDiff(logits(model, f.input_ids, adapter), f.logits[key].flat(2))).toBeLessThan(TOLERANCE);
    disposeAdapter(adapter);
  });

  it.each(['adapter_strided.pth', 'adapter_deflated.pth'])('reads %s (strided view / deflated archive) with the same values', (file) => {
    const { adapter } = importOfficialAdapter(join(dir, file), model, { gateForm: 'tanh' });
    expect(maxAbsDiff(logits(model, f.input_ids, adapter), f.logits.tanh.flat(2))).toBeLessThan(TOLERANCE);
    disposeAdapter(adapter);
  });

  it("reads a full training checkpoint, taking K from its args and skipping the base weights", () => {
    const { adapter, contents, gateForm, gateFormSource } = importOfficialAdapter(join(dir, 'checkpoint-4.pth'), model);
    expect(contents.adapterLenSource).toBe('checkpoint args');
    expect([gateForm, gateFormSource]).toEqual(['tanh', 'training checkpoint']);
    expect(maxAbsDiff(logits(model, f.input_ids, adapter), f.logits.tanh.flat(2))).toBeLessThan(TOLERANCE);
    disposeAdapter(adapter);
  });

  it('exports to the official format and reads back the same values', async () => {
    const tmp = makeTempDir('official-export');
    const { adapter } = importOfficialAdapter(join(dir, 'adapter.pth'), model, { gateForm: 'tanh' });
    await exportOfficialAdapter(join(tmp, 'out.pth'), adapter, model.config);
    const original = TorchFile.open(join(dir, 'adapter.pth'));
    const ours = TorchFile.open(join(tmp, 'out.pth'));
    try {
      const [a, b] = [original.tensors(), ours.tensors()];
      expect([...b.keys()]).toEqual([...a.keys()]); // same names, same order
      for (const [key, t] of a) {
        expect(b.get(key)!.shape).toEqual(t.shape);
        expect(ours.readF32(b.get(key)!, key)).toEqual(original.readF32(t, key));
      }
    } finally {
      original.close();
      ours.close();
    }
    disposeAdapter(adapter);
  });

  it('round-trips through our adapter folder and the raw form', async () => {
    const tmp = makeTempDir('official-roundtrip');
    const { adapter } = importOfficialAdapter(join(dir, 'adapter.pth'), model, { gateForm: 'tanh' });
    await saveAdapter(join(tmp, 'ours'), adapter, model.config, { baseFingerprint: model.fingerprint });
    const again = loadAdapter(join(tmp, 'ours'), model);
    // tanh -> raw stores tanh(g); imported as raw it must give the same logits as the tanh original.
    await exportOfficialAdapter(join(tmp, 'raw.pth'), again, model.config, { gateForm: 'raw', dtype: 'float32' });
    const raw = importOfficialAdapter(join(tmp, 'raw.pth'), model, { gateForm: 'raw', adapterLen: f.adapter_len }).adapter;
    expect(maxAbsDiff(logits(model, f.input_ids, raw), f.logits.tanh.flat(2))).toBeLessThan(TOLERANCE);
    for (const a of [adapter, again, raw]) disposeAdapter(a);
  });
});

describe('official adapter: errors', () => {
  let mha: LoadedModel;
  let gqa: LoadedModel;
  beforeAll(() => {
    mha = loadModel(join(PARITY, 'mha', 'model'));
    gqa = loadModel(join(PARITY, 'gqa', 'model'));
    return () => {
      disposeModel(mha);
      disposeModel(gqa);
    };
  });

  it('refuses an adapter trained for another model size, naming the tensor and both sizes', () => {
    expect(() => importOfficialAdapter(join(ROOT, 'gqa', 'adapter.pth'), mha)).toThrow(/adapter_query\.weight" has shape \[6,48\]; the base model needs \[L \* K, 32\]/);
  });

  it('refuses a K that contradicts the gates, suggesting the right one', () => {
    // mha: K=5, L=2 -> 10 rows. K=10 would adapt only the last layer, but layer 1's gates are non-zero.
    expect(() => readOfficialAdapter(join(ROOT, 'mha', 'adapter.pth'), mha.config, { adapterLen: 10 })).toThrow(
      /layer 1 has a non-zero gate, but with K=10 only layers 2-2 get a prompt; the adapter length is probably 5 \(--adapter-len 5\)/,
    );
    expect(() => readOfficialAdapter(join(ROOT, 'mha', 'adapter.pth'), mha.config, { adapterLen: 3 })).toThrow(/10 rows, which is not a multiple of the adapter length 3/);
  });

  it('refuses a pickle that calls anything outside the tensor allow-list, without running it', () => {
    // evil.pth's pickle is os.system("echo pwned"): the VM stops at the GLOBAL, before any call.
    expect(() => TorchFile.open(join(ROOT, 'evil.pth'))).toThrow(/refers to the Python name "os\.system".*refusing/);
  });

  it('names the missing tensor when the file is not an adapter', () => {
    const tmp = makeTempDir('not-adapter');
    writeTorchFile(join(tmp, 'x.pth'), [{ name: 'tok_embeddings.weight', shape: [2, 2], data: new Float32Array(4) }]);
    expect(() => readOfficialAdapter(join(tmp, 'x.pth'), mha.config)).toThrow(/not a LLaMA-Adapter v1 checkpoint: no "adapter_query\.weight" tensor \(found 1 tensors: tok_embeddings\.weight\)/);
  });

  it('refuses V2-style extra weights instead of importing half an adapter', () => {
    const tmp = makeTempDir('v2');
    const c = mha.config;
    writeTorchFile(join(tmp, 'v2.pth'), [
      { name: 'adapter_query.weight', shape: [10, c.dim], data: new Float32Array(10 * c.dim) },
      { name: 'layers.2.attention.gate', shape: [1, c.nHeads, 1, 1], data: new Float32Array(c.nHeads).fill(0.1) },
      { name: 'layers.2.attention.wq.bias', shape: [c.dim], data: new Float32Array(c.dim) },
    ]);
    expect(() => readOfficialAdapter(join(tmp, 'v2.pth'), c)).toThrow(/tensors a LLaMA-Adapter v1 checkpoint does not have \("layers\.2\.attention\.wq\.bias"\)/);
  });

  it('reports a truncated file clearly', () => {
    const tmp = makeTempDir('truncated');
    const bytes = readFileSync(join(ROOT, 'mha', 'adapter.pth'));
    writeFileSync(join(tmp, 'cut.pth'), bytes.subarray(0, bytes.length - 200));
    expect(() => readOfficialAdapter(join(tmp, 'cut.pth'), mha.config)).toThrow(EngineError);
    expect(() => readOfficialAdapter(join(tmp, 'cut.pth'), mha.config)).toThrow(/cut\.pth/);
  });

  it('refuses a raw gate outside (-1, 1) for the tanh form, naming layer and head', async () => {
    const tmp = makeTempDir('range');
    const { adapter } = importOfficialAdapter(join(ROOT, 'mha', 'adapter.pth'), mha, { gateForm: 'raw' });
    const layer = adapter.spec.layers[0];
    adapter.byLayer.get(layer)!.gate.assign(tf.tensor1d([0.5, 1.5, 0, 0]));
    await expect(exportOfficialAdapter(join(tmp, 'x.pth'), adapter, mha.config, { gateForm: 'tanh' })).rejects.toThrow(
      new RegExp(`layer ${layer}, head 1: gate 1\\.5 cannot be written in the tanh form`),
    );
    disposeAdapter(adapter);
  });
});

// PyTorch itself reads what we write (weights_only=True: only tensor records). Needs python3 with torch.
describe.runIf(process.env.RUN_SLOW === '1')('official adapter: torch.load reads our export (slow tier)', () => {
  it('torch.load(weights_only=True) gives the values we exported', async () => {
    const model = loadModel(join(PARITY, 'gqa', 'model'));
    const tmp = makeTempDir('official-torch');
    const { adapter } = importOfficialAdapter(join(ROOT, 'gqa', 'adapter.pth'), model);
    for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
      const out = join(tmp, `ours_${dtype}.pth`);
      await exportOfficialAdapter(out, adapter, model.config, { dtype });
      const report = execFileSync('python3', [join(import.meta.dirname, '..', 'tools', 'check_official_export.py'), out, join(ROOT, 'gqa', 'adapter.pth'), dtype], { encoding: 'utf8' });
      expect(JSON.parse(report)).toMatchObject({ ok: true, dtype });
    }
    disposeAdapter(adapter);
    disposeModel(model);
  });
});
