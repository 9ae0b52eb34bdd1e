// Training the multi-modal adapter on a task only the image can answer: every example asks "What color is
// this?" and the answer is the colour its image feature encodes. A text-only adapter cannot do better than
// guessing; the multi-modal one learns it, saves and loads with its projection and tower record, answers from
// the image, refuses a different tower, and resumes exactly.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeAdapter } from '../src-main/engine/adapter.js';
import { loadAdapter } from '../src-main/engine/adapter-io.js';
import { initBackend } from '../src-main/engine/backend.js';
import { formatAlpacaPrompt, type Instruction } from '../src-main/engine/data.js';
import { checkVisionTower, type ImagePromptSpec } from '../src-main/engine/image-prompt.js';
import { DEFAULT_VISION_RECIPE } from '../src-main/engine/recipe.js';
import { Rng } from '../src-main/engine/rng.js';
import { generate } from '../src-main/engine/sample.js';
import { train, type TrainEvent } from '../src-main/engine/train.js';
import { type TinyTrainer, tinyTrainer } from './helpers/color-task.js';
import { makeTempDir } from './helpers/tmp.js';

const COLORS = ['red', 'green', 'blue', 'white'];
const FEATURE_DIM = 8;
const TOWER = { name: 'tiny-clip', fingerprint: 'tower-a', modelType: 'clip_vision_model', imageSize: 16, patchSize: 8, hiddenSize: 8, layers: 2, projectionDim: FEATURE_DIM };
const SPEC: ImagePromptSpec = { tower: TOWER, feature: { kind: 'projected' }, featureDim: FEATURE_DIM, hidden: 16 };

/** A fixed random feature per colour: what a frozen image encoder would give for a picture of it. */
function colourFeatures(): Map<string, Float32Array> {
  const rng = new Rng(11);
  return new Map(COLORS.map((c) => [c, Float32Array.from({ length: FEATURE_DIM }, () => rng.normal())]));
}

const DATA: Instruction[] = [...COLORS, ...COLORS].map((color) => ({ instruction: 'What color is this?', input: '', output: color }));

let dir: string;
let t: TinyTrainer;
const features = colourFeatures();
const rows = DATA.map((ex) => features.get(ex.output)!);

beforeAll(async () => {
  await initBackend('native');
  dir = makeTempDir('multimodal-train');
  t = await tinyTrainer(dir);
});

describe('multi-modal adapter training (native backend)', () => {
  const recipe = () => t.recipe({ epochs: 120, batchSize: 4, accumSteps: 2, lr: 0.3, vision: { ...DEFAULT_VISION_RECIPE, projectionHidden: 16 } });
  let multimodalLosses: number[];

  it('learns what only the image tells, where a text-only adapter cannot', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const multi = await train({ model: t.model, tokenizer: t.tokenizer, data: DATA, recipe: recipe(), vision: { spec: SPEC, features: rows }, outDir: join(dir, 'mm') });
    const { vision: _, ...textRecipe } = recipe();
    const text = await train({ model: t.model, tokenizer: t.tokenizer, data: DATA, recipe: textRecipe, outDir: join(dir, 'text') });
    multimodalLosses = multi.losses;
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    // Four equally likely answers to one prompt: the text-only loss cannot fall far below the answer's share of
    // log(4); the image makes the answer predictable.
    expect(multi.losses.at(-1)!).toBeLessThan(text.losses.at(-1)! * 0.5);
    const config = JSON.parse(readFileSync(join(dir, 'mm', 'adapter_config.json'), 'utf8'));
    expect(config.vision).toEqual(SPEC);
  });

  it('the saved adapter answers from the image; a different tower is refused by name', async () => {
    const adapter = loadAdapter(join(dir, 'mm'), t.model);
    expect(adapter.image?.spec).toEqual(SPEC);
    const promptIds = t.tokenizer.encode(formatAlpacaPrompt('What color is this?'), { bos: true, eos: false });
    const sampling = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, maxNewTokens: 8, stop: [] };
    for (const color of COLORS) {
      const { text } = await generate({ model: t.model, adapter, image: features.get(color)!, promptIds, tokenizer: t.tokenizer, rng: new Rng(0), eosIds: t.model.config.eosIds, sampling });
      expect(text.trim()).toBe(color);
    }
    expect(() => checkVisionTower(adapter, { ...TOWER, fingerprint: 'tower-b', name: 'other-clip' })).toThrow(/trained with the vision tower tiny-clip .*other-clip/);
    expect(() => checkVisionTower(adapter, TOWER)).not.toThrow();
    disposeAdapter(adapter);
  });

  it('pause and resume replay the uninterrupted run, projection and its optimizer state included', async () => {
    const controller = new AbortController();
    const outDir = join(dir, 'mm-resume');
    const vision = { spec: SPEC, features: rows };
    const first = await train({
      model: t.model, tokenizer: t.tokenizer, data: DATA, recipe: recipe(), vision, outDir, signal: controller.signal, onAbort: 'pause',
      onEvent: (e: TrainEvent) => e.type === 'step' && e.step === 25 && controller.abort(),
    });
    expect(first.status).toBe('paused');
    const second = await train({ model: t.model, tokenizer: t.tokenizer, data: DATA, recipe: recipe(), vision, outDir, resume: true });
    const replayed = [...first.losses, ...second.losses];
    expect(replayed.length).toBe(multimodalLosses.length);
    replayed.forEach((loss, i) => expect(Math.abs(loss - multimodalLosses[i])).toBeLessThanOrEqual(1e-6));
  });

  it('a vision recipe without features, or features without a vision recipe, is refused', async () => {
    await expect(train({ model: t.model, tokenizer: t.tokenizer, data: DATA, recipe: recipe(), outDir: join(dir, 'bad1') })).rejects.toThrow(/no vision tower was given/);
    const { vision: _, ...textRecipe } = recipe();
    await expect(train({ model: t.model, tokenizer: t.tokenizer, data: DATA, recipe: textRecipe, vision: { spec: SPEC, features: rows }, outDir: join(dir, 'bad2') })).rejects.toThrow(/recipe has no "vision" settings/);
    await expect(train({ model: t.model, tokenizer: t.tokenizer, data: DATA, recipe: { ...recipe(), method: 'lora' }, vision: { spec: SPEC, features: rows }, outDir: join(dir, 'bad3') })).rejects.toThrow(/only the adapter method reads images/);
  });
});
