// Resume exactness on the reference cpu backend (slow, so a short run): losses after resuming
// equal an uninterrupted run to 1e-6.

import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import { train } from '../src-main/engine/train.js';
import { COLOR_DATA, type TinyTrainer, tinyTrainer } from './helpers/color-task.js';
import { expectPauseResumeReplays } from './helpers/resume-check.js';
import { makeTempDir } from './helpers/tmp.js';

let dir: string;
let t: TinyTrainer;

beforeAll(async () => {
  await initBackend('cpu');
  dir = makeTempDir('train-cpu');
  t = await tinyTrainer(dir);
});

it('cpu backend: pause at step 3 of 6 and resume replays the uninterrupted run to 1e-6', async () => {
  const full = await train({ model: t.model, tokenizer: t.tokenizer, data: COLOR_DATA, recipe: t.recipe({ epochs: 6 }), outDir: join(dir, 'full') });
  expect(full.losses.length).toBe(6);
  expect(full.losses.at(-1)!).toBeLessThan(full.losses[0]);
  await expectPauseResumeReplays(t, join(dir, 'paused'), 3, full.losses, 6);
});
