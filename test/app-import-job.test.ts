// runs.importJob end to end on a real service: a run trained here is exported as a scale-out job from the
// workspace (the CLI's export-job --workspace), its adapter is written back the way train.py leaves it
// (PEFT adapter_model.safetensors + trainer_state.json), and the app imports it: the conversion runs in the
// inference engine process, the run lands in the history with the job's loss curve, and generation with
// its adapter answers what the trained run learned. Then bad folders, a wrong-shaped adapter and double
// imports, each leaving no run and no files behind.

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEventOf, ApiInput, ImportedJob, MetricPoint } from '../src-shared/api.js';
import { ApiError } from '../src-shared/api.js';
import { disposeAdapter, makeAdapter } from '../src-main/engine/adapter.js';
import { exportPeftAdapter, loadAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { disposeModel } from '../src-main/engine/model.js';
import { exportJobCommand } from '../src-main/cli/interop-commands.js';
import { type AppFixture, buildAppParts, FAST_RECIPE, startApp, writeColorDataset, writeTinyModel } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

let app: AppFixture;
let dir: string;
let wsDir: string;
let modelDir: string;
let model: LoadedModel;
let modelId: string;
let datasetId: string;
let trainedId: string;
let trainedMetrics: MetricPoint[];

beforeAll(async () => {
  buildAppParts('host');
  await initBackend('cpu'); // this process writes the job's fake output (tensors), as train.py would
  dir = makeTempDir('app-import-job');
  wsDir = join(dir, 'workspace');
  app = startApp(wsDir);
  modelDir = writeTinyModel(dir);
  model = loadModel(modelDir);
  modelId = (await app.call('models.add', { path: modelDir, name: 'tiny' })).id;
  datasetId = (await app.call('datasets.import', { source: { kind: 'path', path: writeColorDataset(dir) }, name: 'colors' })).dataset.id;
  // PEFT has per-layer gates only: a run trained with them exports to PEFT and back unchanged.
  const run = await app.call('runs.start', { modelId, datasetId, name: 'trained here', recipe: { ...FAST_RECIPE, gateMode: 'per-layer' } });
  trainedId = run.id;
  await app.waitFor((e) => e.type === 'run.updated' && e.run.id === run.id && ['completed', 'failed'].includes(e.run.status), { timeoutMs: 240_000 });
  trainedMetrics = await app.call('runs.metrics', { runId: run.id });
}, 300_000);

afterAll(async () => {
  await app?.close();
  if (model) disposeModel(model);
});

const io = { stdout: () => undefined, stderr: () => undefined };

/** export-job --workspace from the colors dataset, with the trained run's recipe (its adapter_config.json). */
async function exportFromWorkspace(name: string): Promise<{ jobDir: string; jobId: string }> {
  const jobDir = join(dir, name);
  const args = ['--workspace', wsDir, '--dataset', datasetId, '--model', modelId, '--out', jobDir, '--recipe', join(wsDir, 'runs', trainedId, 'adapter_config.json')];
  expect(await exportJobCommand(args, io)).toBe(0);
  return { jobDir, jobId: JSON.parse(readFileSync(join(jobDir, 'job.json'), 'utf8')).jobId };
}

/** What train.py leaves in output/: the trained run's adapter as PEFT, and its loss curve as log_history. */
async function writeJobOutput(jobDir: string, jobId: string): Promise<void> {
  const adapter = loadAdapter(join(wsDir, 'runs', trainedId), model);
  await exportPeftAdapter(join(jobDir, 'output'), adapter, model.config);
  disposeAdapter(adapter);
  const log = trainedMetrics.map((m) => ({ step: m.step, loss: m.loss, learning_rate: m.lr, tokens_per_sec: 1234, elapsed_s: m.step / 10 }));
  const state = { global_step: log.length, log_history: [...log, { step: log.length, train_runtime: 12.5, train_loss: 1 }], adapter_studio: { job: jobId, world_size: 4, device: 'cuda:0', completed: true } };
  writeFileSync(join(jobDir, 'output', 'trainer_state.json'), JSON.stringify(state));
}

async function refusal(input: ApiInput<'runs.importJob'>): Promise<ApiError> {
  const e = await app.call('runs.importJob', input).catch((err: unknown) => err);
  expect(e).toBeInstanceOf(ApiError);
  return e as ApiError;
}

/** The runs folder holds one folder per run with an adapter, and nothing half-written (no staging folders). */
function runFolders(): string[] {
  return readdirSync(join(wsDir, 'runs')).sort();
}

async function answer(adapterRunId: string): Promise<string> {
  const { streamId } = await app.call('generate.start', { model: { modelId, adapterRunId }, prompt: 'What color is sky?', sampling: { temperature: 0, maxNewTokens: 8 } });
  const end = await app.waitFor((e): e is ApiEventOf<'stream.end'> => e.type === 'stream.end' && e.streamId === streamId);
  return end.result.text;
}

describe('runs.importJob', () => {
  let imported: ImportedJob;
  let jobDir: string;
  let jobId: string;

  it('records the job as a completed adapter run, converted by the engine, with the job loss per step', async () => {
    expect((await app.call('runs.get', { runId: trainedId })).status).toBe('completed');
    ({ jobDir, jobId } = await exportFromWorkspace('job'));
    await writeJobOutput(jobDir, jobId);

    const since = app.events.length;
    imported = await app.call('runs.importJob', { jobDir, name: 'cluster colors' });
    expect(imported).toMatchObject({ jobId, steps: trainedMetrics.length, completed: true, datasetNote: null });
    expect(imported.run).toMatchObject({
      name: 'cluster colors',
      method: 'adapter',
      status: 'completed',
      modelId,
      modelName: 'tiny',
      datasetId,
      datasetName: 'colors',
      datasetVersion: 1,
      split: 'all',
      backend: 'imported from PEFT job (4 processes on cuda:0)',
      adapterPath: join(wsDir, 'runs', imported.run.id),
      queuePosition: null,
    });
    // The UI hears of it like any run.
    const updated = app.events.slice(since).find((e): e is ApiEventOf<'run.updated'> => e.type === 'run.updated' && e.run.id === imported.run.id);
    expect(updated?.run.status).toBe('completed');
    expect((await app.call('runs.list', {})).map((r) => r.id)).toContain(imported.run.id);

    const metrics = await app.call('runs.metrics', { runId: imported.run.id });
    expect(metrics.map((m) => m.loss)).toEqual(trainedMetrics.map((m) => m.loss));
    expect(metrics.map((m) => m.lr)).toEqual(trainedMetrics.map((m) => m.lr));
    expect(metrics.at(-1)).toMatchObject({ tokensPerSec: 1234, elapsedMs: trainedMetrics.length * 100 });

    const detail = await app.call('runs.get', { runId: imported.run.id });
    expect(detail.recipe).toMatchObject({ method: 'adapter', gateMode: 'per-layer', adapterLen: FAST_RECIPE.adapterLen, lr: FAST_RECIPE.lr });
    expect(detail.trainableParameters).toBe(2 * (10 * 32 + 1));
    expect(detail.trainingSeconds).toBeCloseTo(trainedMetrics.length / 10, 6);
    expect((await app.call('models.info', { modelId })).adapters.map((a) => a.runId)).toContain(imported.run.id);
    expect(runFolders()).toEqual([trainedId, imported.run.id].sort());
  });

  it('generation with the imported adapter answers what the trained run learned', async () => {
    const learned = await answer(trainedId);
    expect(learned).toBe('blue');
    expect(await answer(imported.run.id)).toBe(learned);
  });

  it('refuses a folder that is missing or not a job, a job without output and an unknown model, naming what is wrong', async () => {
    const before = (await app.call('runs.list', {})).length;
    const missing = join(dir, 'nowhere');
    let e = await refusal({ jobDir: missing });
    expect(e.code).toBe('user');
    expect(e.message).toBe(`${missing}: no such folder`);

    const notAJob = join(dir, 'not-a-job');
    mkdirSync(notAJob);
    e = await refusal({ jobDir: notAJob });
    expect(e.message).toBe(`${notAJob}: not a job folder (no job.json)`);

    const fresh = await exportFromWorkspace('job-not-run');
    e = await refusal({ jobDir: fresh.jobDir });
    expect(e.message).toMatch(new RegExp(`^${fresh.jobDir}/output: adapter_config\\.json is missing \\(did the job finish`));

    e = await refusal({ jobDir, outputDir: join(dir, 'elsewhere') });
    expect(e.message).toMatch(/elsewhere: adapter_config\.json is missing/);

    e = await refusal({ jobDir: fresh.jobDir, modelId: 'model_none' });
    expect(e.code).toBe('not_found');
    expect(e.message).toMatch(/model_none/);

    e = await refusal({ jobDir: '  ' });
    expect(e.code).toBe('invalid_input');
    expect(e.message).toMatch(/field "jobDir": must not be empty/);

    expect((await app.call('runs.list', {})).length).toBe(before);
    expect(runFolders()).toEqual([trainedId, imported.run.id].sort());
  });

  it('refuses an adapter whose shapes do not fit the base model, naming the file (the engine checks it)', async () => {
    const job = await exportFromWorkspace('job-wrong-shape');
    // Prompts 16 wide where the model's hidden size is 32: trained for another model.
    const narrow = makeAdapter({ adapterLen: 10, layers: [0, 1], gateMode: 'per-layer' }, () => ({ prompt: tf.zeros([10, 16]) as tf.Tensor2D, gate: tf.tensor1d([0]) }));
    await exportPeftAdapter(join(job.jobDir, 'output'), narrow, { ...model.config, dim: 16 });
    disposeAdapter(narrow);
    writeFileSync(join(job.jobDir, 'output', 'trainer_state.json'), JSON.stringify({ log_history: [{ step: 1, loss: 2 }], adapter_studio: { job: job.jobId } }));
    const e = await refusal({ jobDir: job.jobDir });
    expect(e.code).toBe('user');
    expect(e.message).toMatch(/adapter_model\.safetensors: tensor ".*" has shape \[1,10,16\], expected \[1,10,32\] for this base model/);
    expect(runFolders()).toEqual([trainedId, imported.run.id].sort());
  });

  it('refuses a job already in the run history, also when two imports of it race', async () => {
    const again = await refusal({ jobDir });
    expect(again.code).toBe('user');
    expect(again.message).toBe(`${jobDir}: job ${jobId} is already in the run history as run "cluster colors" (${imported.run.id})`);

    // Both pass the first check and both convert; the one that records second is refused and its files go.
    const twice = await exportFromWorkspace('job-twice');
    await writeJobOutput(twice.jobDir, twice.jobId);
    const results = await Promise.allSettled([app.call('runs.importJob', { jobDir: twice.jobDir }), app.call('runs.importJob', { jobDir: twice.jobDir })]);
    const won = results.filter((r): r is PromiseFulfilledResult<ImportedJob> => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won.length).toBe(1);
    expect(lost.length).toBe(1);
    expect(String(lost[0].reason.message)).toMatch(new RegExp(`job ${twice.jobId} is already in the run history as run "colors \\(PEFT job ${twice.jobId.slice(0, 8)}\\)"`));
    const fromJob = (await app.call('runs.list', {})).filter((r) => r.backend.startsWith('imported from PEFT job'));
    expect(fromJob.map((r) => r.id).sort()).toEqual([imported.run.id, won[0].value.run.id].sort());
    expect(runFolders()).toEqual([trainedId, imported.run.id, won[0].value.run.id].sort());
  });
});
