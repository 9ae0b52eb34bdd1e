// Shared check: pause a run at `pauseAt`, resume it, and compare every loss with an uninterrupted run.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { train, type TrainEvent } from '../../src-main/engine/train.js';
import { COLOR_DATA, type TinyTrainer } from './color-task.js';

export async function expectPauseResumeReplays(t: TinyTrainer, outDir: string, pauseAt: number, uninterrupted: number[], epochs?: number): Promise<void> {
  const recipe = t.recipe(epochs ? { epochs } : {});
  const controller = new AbortController();
  const first = await train({
    model: t.model, tokenizer: t.tokenizer, data: COLOR_DATA, recipe, outDir, signal: controller.signal, onAbort: 'pause',
    onEvent: (e) => e.type === 'step' && e.step === pauseAt && controller.abort(),
  });
  expect(first).toMatchObject({ status: 'paused', steps: pauseAt });
  expect(existsSync(join(outDir, 'adapter_config.json'))).toBe(false); // no final adapter yet
  const events: TrainEvent[] = [];
  const second = await train({ model: t.model, tokenizer: t.tokenizer, data: COLOR_DATA, recipe, outDir, resume: true, onEvent: (e) => events.push(e) });
  expect(events[0]).toMatchObject({ type: 'start', resumedFrom: pauseAt, resumedFromPath: expect.stringMatching(new RegExp(`step-0*${pauseAt}$`)) });
  // The checkpoint remembers every step before it, for a recorder that missed some.
  const start = events[0] as Extract<TrainEvent, { type: 'start' }>;
  expect(start.history.map((r) => r.step)).toEqual(first.losses.map((_, i) => i + 1));
  expect(start.history.map((r) => r.loss)).toEqual(first.losses);
  expect(second.status).toBe('completed');
  const replayed = [...first.losses, ...second.losses];
  expect(replayed.length).toBe(uninterrupted.length);
  replayed.forEach((loss, i) => expect(Math.abs(loss - uninterrupted[i])).toBeLessThanOrEqual(1e-6));
}
