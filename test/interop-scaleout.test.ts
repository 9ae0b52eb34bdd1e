// Scale-out job export and result import, without running Python (the slow tier,
// interop-scaleout.slow.test.ts, runs the generated train.py for real).

import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeAdapter, initAdapter, makeAdapter, topLayers } from '../src-main/engine/adapter.js';
import { exportPeftAdapter, loadAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { epochOrder, formatAlpacaPrompt, tokenizeExample } from '../src-main/engine/data.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { disposeModel } from '../src-main/engine/model.js';
import { paperRecipe, type Recipe } from '../src-main/engine/recipe.js';
import { Rng } from '../src-main/engine/rng.js';
import { loadTokenizer } from '../src-main/engine/tokenizer.js';
import { importJobAsRun } from '../src-main/interop/job-run.js';
import { exportJob, importJobResult, type JobFile, readJobResult, readTrainerState } from '../src-main/interop/scaleout.js';
import { servedModels } from '../src-main/service/completions.js';
import { openWorkspace, type Workspace } from '../src-main/store/index.js';
import { COLOR_DATA } from './helpers/color-task.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

let modelDir: string;
let model: LoadedModel;
let recipe: Recipe;

beforeAll(async () => {
  await initBackend('cpu');
  modelDir = path.join(makeTempDir('job-model'), 'model');
  writeTinyLlama(modelDir, { seed: 5 });
  model = loadModel(modelDir);
  recipe = { ...paperRecipe(model.config), adapterLen: 3, adapterLayers: 2, epochs: 3, warmupEpochs: 1, batchSize: 2, accumSteps: 2, maxSeqLen: 64, seed: 11 };
  return () => disposeModel(model);
});

async function exported(overrides: Partial<Recipe> = {}) {
  const out = path.join(makeTempDir('job'), 'job');
  const result = await exportJob({ modelDir, data: COLOR_DATA, recipe: { ...recipe, ...overrides }, outDir: out, baseFingerprint: model.fingerprint, dataset: { name: 'colors', version: 2 } });
  return { out, result };
}

describe('export-job', () => {
  it('writes the job folder with the run in it', async () => {
    const { out, result } = await exported();
    expect(result.files).toEqual([
      'README.md', 'accelerate_config.yaml', 'data/check_ids.json', 'data/order.json', 'data/train.jsonl',
      'init_adapter/adapter_config.json', 'init_adapter/adapter_model.safetensors', 'job.json', 'launch.sh', 'requirements.txt', 'templates.json', 'train.py',
    ]);
    const job = JSON.parse(fs.readFileSync(path.join(out, 'job.json'), 'utf8')) as JobFile;
    // 6 examples, batch 2 -> 3 micro-batches per epoch, 2 per step -> 2 steps per epoch, 3 epochs.
    expect(job.schedule).toMatchObject({ examples: 6, microBatchesPerEpoch: 3, stepsPerEpoch: 2, totalSteps: 6, effectiveBatch: 4 });
    expect(job.schedule.peakLr).toBeCloseTo((9e-3 * 4) / 256, 12);
    expect(job.peft).toMatchObject({ adapterLen: 3, adapterLayers: 2, layers: [0, 1], gate: 'per-layer' });
    expect(job.peft.gateNote).toMatch(/per-head-tanh gates; PEFT's adaption prompt has only one raw gate per layer/);
    expect(job.baseModel).toMatchObject({ fingerprint: model.fingerprint, bosId: 1, eosIds: [2], loadFrom: path.resolve(modelDir) });
    expect(job.dataset).toMatchObject({ name: 'colors', version: 2, examples: 6 });
    expect(job.recipe).toEqual(recipe);

    const lines = fs.readFileSync(path.join(out, 'data', 'train.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual(COLOR_DATA);
    const order = JSON.parse(fs.readFileSync(path.join(out, 'data', 'order.json'), 'utf8'));
    expect(order.epochs).toEqual([0, 1, 2].map((e) => epochOrder(6, 11, e)));
    const templates = JSON.parse(fs.readFileSync(path.join(out, 'templates.json'), 'utf8'));
    expect(templates.prompt_no_input.replace('{instruction}', 'Hi')).toBe(formatAlpacaPrompt('Hi'));
    expect(templates.prompt_input.replace('{instruction}', 'Hi').replace('{input}', 'x')).toBe(formatAlpacaPrompt('Hi', 'x'));
    const tok = await loadTokenizer(modelDir, { bosId: 1, eosIds: [2] });
    const checks = JSON.parse(fs.readFileSync(path.join(out, 'data', 'check_ids.json'), 'utf8'));
    expect(checks.tokenizerSha256).toBe(tok.hash);
    expect(checks.examples[0]).toEqual({ index: 0, ...tokenizeExample(tok, COLOR_DATA[0], 64) });
    const readme = fs.readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(readme).toMatch(/Gate form\.\*\* The recipe uses per-head-tanh gates/);
    expect(readme).toMatch(/\| batch x accumulation \| 2 x 2 = 4 \|/);
    expect(fs.statSync(path.join(out, 'train.py')).mode & 0o111).not.toBe(0);
  });

  it("starts the job from the engine's own initial adapter", async () => {
    const { out } = await exported();
    const init = loadAdapter(path.join(out, 'init_adapter'), model);
    const ours = initAdapter(model.config, { adapterLen: 3, layers: topLayers(2, 2), gateMode: 'per-head-tanh' }, new Rng(11));
    for (const layer of [0, 1]) {
      expect(init.byLayer.get(layer)!.prompt.dataSync()).toEqual(ours.byLayer.get(layer)!.prompt.dataSync());
      expect([...init.byLayer.get(layer)!.gate.dataSync()]).toEqual([0]);
    }
    disposeAdapter(init);
    disposeAdapter(ours);
  });

  it('refuses a recipe the model cannot take, and an occupied folder', async () => {
    await expect(exported({ adapterLayers: 5 })).rejects.toThrow(/recipe field "adapterLayers" must be an integer from 1 to 2/);
    const taken = makeTempDir('job-taken');
    fs.writeFileSync(path.join(taken, 'x'), '');
    await expect(exportJob({ modelDir, data: COLOR_DATA, recipe, outDir: taken })).rejects.toThrow(/already exists and is not an empty folder/);
  });
});

// What train.py leaves in output/: a PEFT adapter and trainer_state.json.
async function fakeOutput(jobDir: string, job: JobFile, gates: number[]) {
  const out = path.join(jobDir, 'output');
  const adapter = makeAdapter({ adapterLen: 3, layers: [0, 1], gateMode: 'per-layer' }, (layer) => ({
    prompt: tf.fill([3, model.config.dim], layer + 0.5) as tf.Tensor2D,
    gate: tf.tensor1d([gates[layer]]),
  }));
  await exportPeftAdapter(out, adapter, model.config);
  disposeAdapter(adapter);
  const log = Array.from({ length: 6 }, (_, i) => ({ step: i + 1, epoch: (i + 1) / 2, loss: 3 - i * 0.25, learning_rate: 1e-3, tokens_per_sec: 50, elapsed_s: i }));
  const state = { global_step: 6, log_history: [...log, { step: 6, train_runtime: 9.5, train_loss: 2.5 }], adapter_studio: { job: job.jobId, world_size: 2, device: 'cpu', completed: true } };
  fs.writeFileSync(path.join(out, 'trainer_state.json'), JSON.stringify(state));
  return out;
}

describe('import-job', () => {
  it('brings back the adapter in our format with its loss per step', async () => {
    const { out, result } = await exported({ gateMode: 'per-layer' });
    await fakeOutput(out, result.job, [0.25, -0.5]);
    const dest = path.join(makeTempDir('job-import'), 'adapter');
    const imported = await importJobResult(out, model, dest);
    expect(imported.metrics.map((m) => m.loss)).toEqual([3, 2.75, 2.5, 2.25, 2, 1.75]);
    expect(imported.metrics[2]).toEqual({ step: 3, loss: 2.5, valLoss: null, lr: 1e-3, tokensPerSec: 50, elapsedMs: 2000 });
    expect(imported.worldSize).toBe(2);
    disposeAdapter(imported.adapter);
    const again = loadAdapter(dest, model); // our format, checked against the base fingerprint
    expect(again.spec).toEqual({ adapterLen: 3, layers: [0, 1], gateMode: 'per-layer' });
    expect([...again.byLayer.get(1)!.gate.dataSync()]).toEqual([-0.5]);
    disposeAdapter(again);
    const cfg = JSON.parse(fs.readFileSync(path.join(dest, 'adapter_config.json'), 'utf8'));
    expect(cfg.recipe).toEqual({ ...result.job.recipe, gateMode: 'per-layer' });
    expect(cfg.source).toMatchObject({ kind: 'peft-job', jobId: result.job.jobId });
    expect(JSON.parse(fs.readFileSync(path.join(dest, 'metrics.json'), 'utf8')).metrics).toHaveLength(6);
  });

  it('reads the log_history of an HF Trainer run too', () => {
    const file = path.join(makeTempDir('trainer-state'), 'trainer_state.json');
    fs.writeFileSync(file, JSON.stringify({ log_history: [{ loss: 2.1, grad_norm: 1.3, learning_rate: 5e-4, epoch: 0.5, step: 10 }, { eval_loss: 2.4, epoch: 0.5, step: 10 }, { train_runtime: 3, step: 20 }] }));
    expect(readTrainerState(file).metrics).toEqual([{ step: 10, loss: 2.1, valLoss: 2.4, lr: 5e-4, tokensPerSec: null, elapsedMs: null }]);
  });

  it('names what is wrong with an unfinished or foreign output', async () => {
    const { out, result } = await exported();
    expect(() => readJobResult(out)).toThrow(/output: adapter_config\.json is missing \(did the job finish/);
    const output = await fakeOutput(out, result.job, [0, 0]);
    const state = JSON.parse(fs.readFileSync(path.join(output, 'trainer_state.json'), 'utf8'));
    fs.writeFileSync(path.join(output, 'trainer_state.json'), JSON.stringify({ ...state, adapter_studio: { ...state.adapter_studio, job: 'other' } }));
    expect(() => readJobResult(out)).toThrow(/this output belongs to job other, not to/);
    state.log_history[1].loss = 'NaN';
    fs.writeFileSync(path.join(output, 'trainer_state.json'), JSON.stringify(state));
    expect(() => readJobResult(out)).toThrow(/log_history\[1\]\.loss must be a finite number, got "NaN"/);
  });

  it('refuses to import onto a different base model', async () => {
    const { out, result } = await exported();
    await fakeOutput(out, result.job, [0, 0]);
    const otherDir = path.join(makeTempDir('job-other'), 'model');
    writeTinyLlama(otherDir, { seed: 6 });
    const other = loadModel(otherDir);
    await expect(importJobResult(out, other, path.join(makeTempDir('x'), 'a'))).rejects.toThrow(/the job was exported for the base model with fingerprint/);
    disposeModel(other);
  });
});

describe('import-job into a workspace', () => {
  /** A workspace holding the tiny model and the color task as dataset "colors" (version 1). */
  function workspace(opts: { registerModel: boolean }): { ws: Workspace; modelId: string | null; datasetId: string } {
    const ws = openWorkspace(makeTempDir('job-ws'));
    const registered = opts.registerModel ? ws.models.register({ name: 'tiny', path: modelDir, fingerprint: model.fingerprint, config: { llama: model.config } }) : null;
    const { dataset } = ws.datasets.createWith('colors', '', { kind: 'import', summary: 'the color task', inserts: COLOR_DATA });
    return { ws, modelId: registered?.id ?? null, datasetId: dataset.id };
  }

  it('records the job as a completed adapter run with its loss per step, and its adapter loads', async () => {
    const { ws, modelId, datasetId } = workspace({ registerModel: true });
    try {
      const data = ws.datasets.examplesAt(datasetId as never, 1).map((e) => ({ instruction: e.instruction, input: e.input, output: e.output }));
      const out = path.join(makeTempDir('job'), 'job');
      const { job } = await exportJob({
        modelDir, data, recipe: { ...recipe, gateMode: 'per-layer' }, outDir: out, baseFingerprint: model.fingerprint, dataset: { name: 'colors', version: 1 },
        origin: { workspace: ws.dir, modelId, datasetId, datasetVersion: 1, split: 'all' },
      });
      expect(JSON.parse(fs.readFileSync(path.join(out, 'job.json'), 'utf8')).origin).toEqual({ workspace: ws.dir, modelId, datasetId, datasetVersion: 1, split: 'all' });
      await fakeOutput(out, job, [0.25, -0.5]);

      const { run, datasetNote } = await importJobAsRun(ws, { jobDir: out });
      expect(datasetNote).toBeNull();
      const stored = ws.runs.get(run.id);
      expect(stored).toMatchObject({ method: 'adapter', status: 'completed', modelId, datasetId, datasetVersion: 1, backend: 'imported from PEFT job (2 processes on cpu)', name: `colors (PEFT job ${job.jobId.slice(0, 8)})` });
      expect(stored.recipe).toMatchObject({ ...recipe, gateMode: 'per-layer', split: 'all', source: { kind: 'peft-job', jobId: job.jobId, worldSize: 2, completed: true } });
      expect(stored.finishedAt).not.toBeNull();
      const metrics = ws.runs.metrics(run.id);
      expect(metrics.map((m) => m.loss)).toEqual([3, 2.75, 2.5, 2.25, 2, 1.75]);
      expect(metrics[2]).toMatchObject({ step: 3, lr: 1e-3, tokensPerSec: 50, elapsedMs: 2000 });

      // The adapter is where completed runs keep theirs, in our format, and nothing else was left behind.
      expect(fs.readdirSync(path.join(ws.dir, 'runs'))).toEqual([run.id]);
      const adapter = loadAdapter(ws.runDir(run.id), model);
      expect(adapter.spec).toEqual({ adapterLen: 3, layers: [0, 1], gateMode: 'per-layer' });
      expect([...adapter.byLayer.get(1)!.gate.dataSync()]).toEqual([-0.5]);
      disposeAdapter(adapter);
      // What chat, compare and the OpenAI API offer.
      expect(servedModels(ws).map((m) => m.id)).toEqual(['tiny', `tiny+${run.name}`]);

      await expect(importJobAsRun(ws, { jobDir: out })).rejects.toThrow(`job ${job.jobId} is already in the run history as run "${run.name}" (${run.id})`);
    } finally {
      ws.close();
    }
  });

  it('finds the base model by fingerprint and records no dataset it cannot vouch for', async () => {
    const { ws, datasetId } = workspace({ registerModel: false });
    try {
      const { out, result } = await exported({ gateMode: 'per-layer' }); // from files: no origin
      await fakeOutput(out, result.job, [0, 0]);
      await expect(importJobAsRun(ws, { jobDir: out })).rejects.toThrow(/the job's base model \(.*, fingerprint [0-9a-f]+\) is not in the workspace .*; add it there first/);
      expect(ws.runs.list()).toEqual([]);
      const registered = ws.models.register({ name: 'tiny', path: modelDir, fingerprint: model.fingerprint, config: { llama: model.config } });
      const { run, datasetNote } = await importJobAsRun(ws, { jobDir: out, name: 'from files' });
      expect(run).toMatchObject({ name: 'from files', modelId: registered.id, datasetId: null, status: 'completed' });
      expect(datasetNote).toMatch(/not from a workspace dataset/);

      // Claims to come from dataset version 1, but trained on other examples.
      const other = path.join(makeTempDir('job'), 'job');
      const { job } = await exportJob({ modelDir, data: COLOR_DATA.slice(0, 5), recipe: { ...recipe, gateMode: 'per-layer' }, outDir: other, baseFingerprint: model.fingerprint, origin: { workspace: ws.dir, modelId: registered.id, datasetId, datasetVersion: 1, split: 'all' } });
      await fakeOutput(other, job, [0, 0]);
      const second = await importJobAsRun(ws, { jobDir: other });
      expect(second.run.datasetId).toBeNull();
      expect(second.datasetNote).toMatch(/version 1 here holds other examples than the job trained on/);
    } finally {
      ws.close();
    }
  });
});
