// Slow tier (RUN_SLOW=1): the exported job's train.py really runs, on CPU, on a tiny model with
// pip-installed torch + transformers + peft, once as one process and once as two (torchrun, gloo).
// Its loss per step must match our own engine's run of the same recipe, and its adapter must
// import back with the logits PyTorch computed.
//
//   RUN_SLOW=1 npx vitest run test/interop-scaleout.slow.test.ts

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeAdapter } from '../src-main/engine/adapter.js';
import { initBackend } from '../src-main/engine/backend.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { disposeModel, forward } from '../src-main/engine/model.js';
import { paperRecipe, type Recipe } from '../src-main/engine/recipe.js';
import { loadTokenizer } from '../src-main/engine/tokenizer.js';
import { train } from '../src-main/engine/train.js';
import { exportJob, importJobResult, readJobResult } from '../src-main/interop/scaleout.js';
import { COLOR_DATA } from './helpers/color-task.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

const DATA = [
  ...COLOR_DATA,
  { instruction: 'Name the opposite.', input: 'hot', output: 'cold' },
  { instruction: 'Name the opposite.', input: 'up', output: 'down' },
  { instruction: 'Repeat the word twice.', input: 'alpaca', output: 'alpaca alpaca' },
];

describe.runIf(process.env.RUN_SLOW === '1')('scale-out job on CPU (slow tier)', () => {
  let dir: string;
  let model: LoadedModel;
  let recipe: Recipe;
  let engineLosses: number[];
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    await initBackend('cpu');
    dir = makeTempDir('scaleout');
    writeTinyLlama(path.join(dir, 'model'), { seed: 3, finalNormScale: 3 });
    model = loadModel(path.join(dir, 'model'));
    // 9 examples, batch 2 x 2: 5 micro-batches and 3 steps per epoch (the last step has one micro-batch),
    // 2.5 epochs -> 8 steps, the last epoch cut short: every edge of the schedule is exercised.
    recipe = { ...paperRecipe(model.config), adapterLen: 4, adapterLayers: 2, gateMode: 'per-layer', epochs: 2.5, warmupEpochs: 1, lr: 0.3, minLr: 0.001, batchSize: 2, accumSteps: 2, maxSeqLen: 200, seed: 7 };
    const tokenizer = await loadTokenizer(path.join(dir, 'model'), { bosId: model.config.bosId, eosIds: model.config.eosIds });
    const t0 = performance.now();
    const result = await train({ model, tokenizer, data: DATA, recipe, outDir: path.join(dir, 'engine-run') });
    timings.engineSeconds = (performance.now() - t0) / 1000;
    engineLosses = result.losses;
    return () => {
      disposeModel(model);
      console.log('scale-out timings (s):', JSON.stringify(timings));
    };
  });

  async function runJob(name: string, command: string[], env: Record<string, string> = {}) {
    const jobDir = path.join(dir, name);
    await exportJob({ modelDir: path.join(dir, 'model'), data: DATA, recipe, outDir: jobDir, baseFingerprint: model.fingerprint });
    const t0 = performance.now();
    const log = execFileSync(command[0], [...command.slice(1), path.join(jobDir, 'train.py'), '--threads', '1', '--check-logits'], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    timings[name] = (performance.now() - t0) / 1000;
    return { jobDir, log };
  }

  function expectSameRun(jobDir: string) {
    const result = readJobResult(jobDir);
    expect(result.metrics.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const losses = result.metrics.map((m) => m.loss!);
    expect(engineLosses).toHaveLength(8);
    for (let i = 0; i < 8; i++) expect(Math.abs(losses[i] - engineLosses[i])).toBeLessThan(2e-4);
    timings[`${path.basename(jobDir)} max |loss - engine loss|`] = Math.max(...losses.map((l, i) => Math.abs(l - engineLosses[i])));
    // It learned: the comparison is not of two flat lines (each step sees other examples, so compare thirds).
    expect(losses.slice(5).reduce((a, b) => a + b) / 3).toBeLessThan(losses.slice(0, 3).reduce((a, b) => a + b) / 3 - 0.5);
    return result;
  }

  it('one process: the same loss per step as our engine, and the adapter imports with PyTorch\'s logits', async () => {
    const { jobDir, log } = await runJob('job-1', ['python3']);
    expect(log).toMatch(/done: 8 steps/);
    const result = expectSameRun(jobDir);
    expect(result.worldSize).toBe(1);

    const imported = await importJobResult(jobDir, model, path.join(dir, 'imported-1'));
    const check = JSON.parse(fs.readFileSync(path.join(jobDir, 'output', 'check_logits.json'), 'utf8')) as { input_ids: number[][]; logits: number[][][] };
    const ids = tf.tensor2d(check.input_ids, [1, check.input_ids[0].length], 'int32');
    const logits = forward(model, ids, { adapter: imported.adapter });
    const ours = logits.dataSync();
    const theirs = check.logits.flat(2);
    let worst = 0;
    for (let i = 0; i < theirs.length; i++) worst = Math.max(worst, Math.abs(ours[i] - theirs[i]));
    expect(worst).toBeLessThan(1e-4);
    tf.dispose([ids, logits]);
    disposeAdapter(imported.adapter);
  });

  it('two processes (torchrun, gloo): still the same steps', async () => {
    const { jobDir } = await runJob('job-2', ['python3', '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2']);
    expect(expectSameRun(jobDir).worldSize).toBe(2);
  });
});
