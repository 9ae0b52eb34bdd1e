// The interop CLI commands end to end on real files: import-official, export-official,
// convert-meta, export-job and import-job.

import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeAdapter, makeAdapter } from '../src-main/engine/adapter.js';
import { exportPeftAdapter, loadAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { EngineError } from '../src-main/engine/errors.js';
import { loadModel } from '../src-main/engine/load.js';
import { disposeModel } from '../src-main/engine/model.js';
import { convertMetaCommand, exportJobCommand, exportOfficialCommand, importJobCommand, importOfficialCommand } from '../src-main/cli/interop-commands.js';
import type { IO } from '../src-main/cli/flags.js';
import { COLOR_DATA } from './helpers/color-task.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';
import { openWorkspace } from '../src-main/store/index.js';

const FIXTURES = path.join(import.meta.dirname, 'fixtures');
const MHA_MODEL = path.join(FIXTURES, 'parity', 'mha', 'model');

function capture(): IO & { out: string; err: string } {
  const io = { out: '', err: '', stdout: (s: string) => void (io.out += s), stderr: (s: string) => void (io.err += s) };
  return io;
}

beforeAll(async () => {
  await initBackend('cpu');
});

describe('interop CLI', () => {
  it('import-official then export-official round-trips the official file', async () => {
    const tmp = makeTempDir('cli-official');
    const io = capture();
    const src = path.join(FIXTURES, 'interop', 'official', 'mha', 'adapter.pth');
    const plain = capture();
    expect(await importOfficialCommand(['--model', MHA_MODEL, '--adapter', src, '--out', path.join(tmp, 'release')], plain)).toBe(0);
    expect(plain.out).toMatch(/raw gates, as the official example\.py applies them to a release file/);
    expect(await importOfficialCommand(['--model', MHA_MODEL, '--adapter', src, '--out', path.join(tmp, 'ours'), '--gate-form', 'tanh', '--json'], io)).toBe(0);
    expect(JSON.parse(io.out)).toMatchObject({ adapterLen: 5, adapterLenSource: 'gates', layers: [1, 2], gateMode: 'per-head-tanh', gateFormSource: 'option', storedDtype: 'float32' });
    const cfg = JSON.parse(fs.readFileSync(path.join(tmp, 'ours', 'adapter_config.json'), 'utf8'));
    expect(cfg.source).toMatchObject({ kind: 'official-llama-adapter-v1', gateForm: 'tanh' });

    const io2 = capture();
    expect(await exportOfficialCommand(['--model', MHA_MODEL, '--adapter', path.join(tmp, 'ours'), '--out', path.join(tmp, 'back.pth')], io2)).toBe(0);
    expect(io2.out).toMatch(/adapter_query\.weight \[10, 32\] and 3 gates \(tanh form, from per-head-tanh\), float32/);
    // The same bytes of tensor data as the original torch.save file (names, order, shapes, values).
    const io3 = capture();
    expect(await importOfficialCommand(['--model', MHA_MODEL, '--adapter', path.join(tmp, 'back.pth'), '--out', path.join(tmp, 'again'), '--gate-form', 'tanh', '--json'], io3)).toBe(0);
    const model = loadModel(MHA_MODEL);
    const [a, b] = [loadAdapter(path.join(tmp, 'ours'), model), loadAdapter(path.join(tmp, 'again'), model)];
    for (const layer of [1, 2]) {
      expect(b.byLayer.get(layer)!.prompt.dataSync()).toEqual(a.byLayer.get(layer)!.prompt.dataSync());
      expect(b.byLayer.get(layer)!.gate.dataSync()).toEqual(a.byLayer.get(layer)!.gate.dataSync());
    }
    disposeAdapter(a);
    disposeAdapter(b);
    disposeModel(model);
  });

  it('rejects a bad --gate-form with the allowed values', async () => {
    await expect(importOfficialCommand(['--model', MHA_MODEL, '--adapter', 'x.pth', '--out', 'y', '--gate-form', 'sigmoid'], capture())).rejects.toThrow(
      new EngineError('--gate-form must be one of tanh, raw, got "sigmoid"'),
    );
  });

  it('convert-meta writes a loadable folder and reports what it assumed', async () => {
    const out = path.join(makeTempDir('cli-meta'), 'hf');
    const io = capture();
    expect(await convertMetaCommand(['--src', path.join(FIXTURES, 'interop', 'meta', 'gqa-mp1-f32'), '--out', out, '--no-tokenizer'], io)).toBe(0);
    expect(io.out).toMatch(/3 layers, hidden 48, 6 heads \(2 KV\), vocab 80, from 1 model-parallel shard\(s\)/);
    expect(io.err).toMatch(/note: max_position_embeddings 8192 assumed \(Llama 3\)/); // rope_theta 500000
    expect(io.err).toMatch(/converted 30\/30 tensors/);
    const model = loadModel(out);
    expect(model.config.nKvHeads).toBe(2);
    disposeModel(model);
  });

  it('export-job then import-job (with an output as train.py leaves it)', async () => {
    const tmp = makeTempDir('cli-job');
    writeTinyLlama(path.join(tmp, 'model'), { seed: 2 });
    fs.writeFileSync(path.join(tmp, 'data.json'), JSON.stringify(COLOR_DATA));
    const io = capture();
    const job = path.join(tmp, 'job');
    const args = ['--model', path.join(tmp, 'model'), '--data', path.join(tmp, 'data.json'), '--out', job, '--adapter-len', '3', '--adapter-layers', '1', '--batch-size', '3', '--accum-steps', '1', '--epochs', '2', '--warmup-epochs', '1', '--fingerprint'];
    expect(await exportJobCommand(args, io)).toBe(0);
    expect(io.out).toMatch(/6 examples, 4 steps \(2\/epoch\)/);
    expect(io.err).toMatch(/note: The recipe uses per-head-tanh gates; PEFT's adaption prompt has only one raw gate per layer/);

    const model = loadModel(path.join(tmp, 'model'));
    const adapter = makeAdapter({ adapterLen: 3, layers: [1], gateMode: 'per-layer' }, () => ({ prompt: tf.ones([3, model.config.dim]) as tf.Tensor2D, gate: tf.tensor1d([0.125]) }));
    await exportPeftAdapter(path.join(job, 'output'), adapter, model.config);
    disposeAdapter(adapter);
    disposeModel(model);
    const jobId = JSON.parse(fs.readFileSync(path.join(job, 'job.json'), 'utf8')).jobId;
    const log = [1, 2, 3, 4].map((step) => ({ step, loss: 5 - step, learning_rate: 1e-3 }));
    fs.writeFileSync(path.join(job, 'output', 'trainer_state.json'), JSON.stringify({ log_history: log, adapter_studio: { job: jobId, world_size: 8, device: 'cuda:0', completed: true } }));

    const io2 = capture();
    expect(await importJobCommand(['--job', job, '--model', path.join(tmp, 'model'), '--out', path.join(tmp, 'imported')], io2)).toBe(0);
    expect(io2.out).toMatch(/4 steps on 8 process\(es\) \(cuda:0\), loss 4\.0000 -> 1\.0000/);
    expect(fs.existsSync(path.join(tmp, 'imported', 'metrics.json'))).toBe(true);
  });

  it('export-job --workspace then import-job --workspace: the job becomes a run of the workspace', async () => {
    const tmp = makeTempDir('cli-job-ws');
    const modelDir = path.join(tmp, 'model');
    writeTinyLlama(modelDir, { seed: 2 });
    const model = loadModel(modelDir);
    const wsDir = path.join(tmp, 'ws');
    const ws = openWorkspace(wsDir);
    ws.models.register({ name: 'tiny', path: modelDir, fingerprint: model.fingerprint, config: { llama: model.config } });
    ws.datasets.createWith('colors', '', { kind: 'import', summary: 'colors', inserts: COLOR_DATA.map((e, i) => ({ ...e, split: i < 4 ? 'train' : 'val' })) });
    ws.close();

    const job = path.join(tmp, 'job');
    const recipe = ['--adapter-len', '3', '--adapter-layers', '1', '--batch-size', '2', '--accum-steps', '1', '--epochs', '1', '--warmup-epochs', '1', '--gate-mode', 'per-layer'];
    await expect(exportJobCommand(['--workspace', wsDir, '--dataset', 'colors', '--model', 'nope', '--out', job, ...recipe], capture())).rejects.toThrow(/--model nope: no model of the workspace .* has this id, name or folder/);
    const io = capture();
    expect(await exportJobCommand(['--workspace', wsDir, '--dataset', 'colors', '--split', 'train', '--model', 'tiny', '--out', job, ...recipe], io)).toBe(0);
    expect(io.out).toMatch(/4 examples, 2 steps/);
    const jobFile = JSON.parse(fs.readFileSync(path.join(job, 'job.json'), 'utf8'));
    expect(jobFile.origin).toMatchObject({ datasetVersion: 1, split: 'train' });
    expect(jobFile.baseModel.fingerprint).toBe(model.fingerprint);

    const adapter = makeAdapter({ adapterLen: 3, layers: [1], gateMode: 'per-layer' }, () => ({ prompt: tf.ones([3, model.config.dim]) as tf.Tensor2D, gate: tf.tensor1d([0.25]) }));
    await exportPeftAdapter(path.join(job, 'output'), adapter, model.config);
    disposeAdapter(adapter);
    const log = [1, 2].map((step) => ({ step, loss: 3 - step, learning_rate: 1e-3 }));
    fs.writeFileSync(path.join(job, 'output', 'trainer_state.json'), JSON.stringify({ log_history: log, adapter_studio: { job: jobFile.jobId, world_size: 4, device: 'cuda:0', completed: true } }));

    await expect(importJobCommand(['--job', job, '--workspace', wsDir, '--out', path.join(tmp, 'x')], capture())).rejects.toThrow(/--out and --workspace exclude each other/);
    const io2 = capture();
    expect(await importJobCommand(['--job', job, '--workspace', wsDir, '--name', 'cluster run', '--json'], io2)).toBe(0);
    const summary = JSON.parse(io2.out);
    expect(summary).toMatchObject({ name: 'cluster run', steps: 2, datasetNote: null, backend: 'imported from PEFT job (4 processes on cuda:0)' });

    const again = openWorkspace(wsDir);
    const run = again.runs.get(summary.runId);
    expect(run).toMatchObject({ status: 'completed', method: 'adapter', datasetVersion: 1 });
    expect(again.runs.metrics(run.id).map((m) => m.loss)).toEqual([2, 1]);
    const loaded = loadAdapter(again.runDir(run.id), model);
    expect([...loaded.byLayer.get(1)!.gate.dataSync()]).toEqual([0.25]);
    disposeAdapter(loaded);
    again.close();
    disposeModel(model);
  });

  it('export-job refuses a non-adapter method', async () => {
    const tmp = makeTempDir('cli-job-lora');
    writeTinyLlama(path.join(tmp, 'model'), { seed: 2 });
    fs.writeFileSync(path.join(tmp, 'data.json'), JSON.stringify(COLOR_DATA));
    fs.writeFileSync(path.join(tmp, 'recipe.json'), JSON.stringify({ recipe: { method: 'lora' } }));
    await expect(exportJobCommand(['--model', path.join(tmp, 'model'), '--data', path.join(tmp, 'data.json'), '--out', path.join(tmp, 'job'), '--recipe', path.join(tmp, 'recipe.json')], capture())).rejects.toThrow(
      /a scale-out job trains LLaMA-Adapter \(PEFT's adaption prompt\); this recipe's method is "lora"/,
    );
  });
});
