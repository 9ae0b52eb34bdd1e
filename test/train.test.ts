// The real engine trains a real adapter on a tiny random model: the loss falls, only adapter
// tensors change, resume replays an uninterrupted run exactly, cancel stops cleanly, and the
// trained adapter generates what it learned.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeAdapter } from '../src-main/engine/adapter.js';
import { loadAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { formatAlpacaPrompt, type Instruction } from '../src-main/engine/data.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { paperRecipe, type Recipe } from '../src-main/engine/recipe.js';
import { Rng } from '../src-main/engine/rng.js';
import { generate } from '../src-main/engine/sample.js';
import { loadTokenizer, type TextTokenizer } from '../src-main/engine/tokenizer.js';
import { train, type TrainEvent } from '../src-main/engine/train.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

const COLORS: Record<string, string> = { sky: 'blue', grass: 'green', snow: 'white', coal: 'black', blood: 'red', sun: 'yellow' };
const DATA: Instruction[] = Object.entries(COLORS).map(([thing, color]) => ({ instruction: `What color is ${thing}?`, input: '', output: color }));

let dir: string;
let model: LoadedModel;
let tokenizer: TextTokenizer;

function recipe(overrides: Partial<Recipe> = {}): Recipe {
  return { ...paperRecipe(model.config), adapterLen: 4, adapterLayers: 2, epochs: 30, warmupEpochs: 1, lr: 3e-2, batchSize: 3, accumSteps: 2, maxSeqLen: 128, ...overrides };
}

async function weightChecksum(m: LoadedModel): Promise<number> {
  const all = [m.weights.embed, m.weights.norm, ...m.weights.layers.flatMap((l) => Object.values(l))];
  let sum = 0;
  for (const t of all) for (const [i, v] of (await t.data()).entries()) sum += v * ((i % 7) + 1);
  return sum;
}

beforeAll(async () => {
  await initBackend('cpu');
  dir = makeTempDir('train-test');
  writeTinyLlama(join(dir, 'model'), { seed: 3 });
  model = loadModel(join(dir, 'model'));
  tokenizer = await loadTokenizer(join(dir, 'model'), { bosId: model.config.bosId, eosIds: model.config.eosIds });
});

describe('adapter training', () => {
  let losses: number[];
  const out = () => join(dir, 'full-run');

  it('the loss falls well below its start and only adapter tensors change', async () => {
    const before = await weightChecksum(model);
    const tensorsBefore = tf.memory().numTensors;
    const result = await train({ model, tokenizer, data: DATA, recipe: recipe(), outDir: out() });
    losses = result.losses;
    expect(result.status).toBe('completed');
    expect(losses.length).toBe(30); // 6 examples / batch 3 = 2 micro-batches = 1 step per epoch
    expect(losses.at(-1)!).toBeLessThan(losses[0] * 0.25);
    expect(await weightChecksum(model)).toBe(before);
    expect(tf.memory().numTensors).toBe(tensorsBefore); // nothing leaked
    const config = JSON.parse(readFileSync(join(out(), 'adapter_config.json'), 'utf8'));
    expect(config.baseFingerprint).toBe(model.fingerprint);
    expect(config.layers).toEqual([0, 1]);
  });

  it('the trained adapter answers what it learned; the base model does not', async () => {
    const adapter = loadAdapter(out(), model);
    const answer = async (thing: string, withAdapter: boolean) =>
      (
        await generate({
          model,
          adapter: withAdapter ? adapter : null,
          promptIds: tokenizer.encode(formatAlpacaPrompt(`What color is ${thing}?`), { bos: true }),
          sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, maxNewTokens: 8, stop: [] },
          rng: new Rng(0),
          eosIds: model.config.eosIds,
          tokenizer,
        })
      ).text;
    const adapted = await Promise.all(Object.keys(COLORS).map((t) => answer(t, true)));
    const base = await Promise.all(Object.keys(COLORS).map((t) => answer(t, false)));
    const correct = (texts: string[]) => texts.filter((t, i) => t.trim() === Object.values(COLORS)[i]).length;
    expect(correct(adapted)).toBeGreaterThanOrEqual(5);
    expect(correct(base)).toBe(0);
    disposeAdapter(adapter);
  });

  it('pausing at step 12 and resuming replays the uninterrupted run exactly', async () => {
    const outDir = join(dir, 'paused-run');
    const controller = new AbortController();
    const first = await train({
      model, tokenizer, data: DATA, recipe: recipe(), outDir, signal: controller.signal, onAbort: 'pause',
      onEvent: (e) => e.type === 'step' && e.step === 12 && controller.abort(),
    });
    expect(first.status).toBe('paused');
    expect(first.steps).toBe(12);
    expect(existsSync(join(outDir, 'adapter_config.json'))).toBe(false); // no final adapter yet
    const events: TrainEvent[] = [];
    const second = await train({ model, tokenizer, data: DATA, recipe: recipe(), outDir, resume: true, onEvent: (e) => events.push(e) });
    expect(events[0]).toMatchObject({ type: 'start', resumedFrom: 12 });
    expect(second.status).toBe('completed');
    const replayed = [...first.losses, ...second.losses];
    expect(replayed.length).toBe(losses.length);
    replayed.forEach((l, i) => expect(Math.abs(l - losses[i])).toBeLessThanOrEqual(1e-6));
  });

  it('resume refuses a changed recipe or dataset, naming the reason', async () => {
    const outDir = join(dir, 'paused-run');
    await expect(train({ model, tokenizer, data: DATA, recipe: recipe({ lr: 1e-3 }), outDir, resume: true })).rejects.toThrow(/recipe differs/);
    await expect(train({ model, tokenizer, data: DATA.slice(1), recipe: recipe(), outDir, resume: true })).rejects.toThrow(/dataset differs/);
    await expect(train({ model, tokenizer, data: DATA, recipe: recipe(), outDir: join(dir, 'nothing-here'), resume: true })).rejects.toThrow(/no checkpoint/);
  });

  it('cancel stops at once and saves no adapter', async () => {
    const outDir = join(dir, 'cancelled-run');
    const controller = new AbortController();
    const result = await train({
      model, tokenizer, data: DATA, recipe: recipe(), outDir, signal: controller.signal, onAbort: 'cancel',
      onEvent: (e) => e.type === 'step' && e.step === 2 && controller.abort(),
    });
    expect(result).toMatchObject({ status: 'cancelled', steps: 2, adapterDir: null });
    expect(existsSync(join(outDir, 'adapter_config.json'))).toBe(false);
  });

  it('a diverging run stops with a clear error', async () => {
    await expect(train({ model, tokenizer, data: DATA, recipe: recipe({ lr: 1e30, warmupEpochs: 0 }), outDir: join(dir, 'nan-run') })).rejects.toThrow(
      /loss is (NaN|Infinity|-Infinity) at step \d+/,
    );
  });
});
