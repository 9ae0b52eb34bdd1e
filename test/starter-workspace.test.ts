// A new user's first start (serve --starter, the desktop app's first run): the workspace gets both halves of the
// paper out of the box: the starter LLaMA with its instruction demo, and the starter CLIP tower (a model of kind
// vision) with the ScienceQA-style picture demo, pictures stored.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AppFixture, buildAppParts, startApp } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

let app: AppFixture;

beforeAll(() => {
  buildAppParts('host');
  app = startApp(join(makeTempDir('starter-workspace'), 'ws'), { seedStarter: true });
});
afterAll(async () => {
  await app?.close();
});

describe('the starter workspace', () => {
  it('holds the starter LLaMA and the starter vision tower, and both demo datasets', async () => {
    const until = Date.now() + 60_000;
    let datasets = await app.call('datasets.list', {});
    while (datasets.length < 2 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      datasets = await app.call('datasets.list', {});
    }
    const models = await app.call('models.list', {});
    expect(models.map((m) => m.kind).sort()).toEqual(['llama', 'vision']);
    const pictures = datasets.find((d) => d.name === 'demo: ScienceQA-style pictures')!;
    expect(pictures).toMatchObject({ examples: 948, images: 576 });
    expect(pictures.splits).toMatchObject({ train: 720, test: 228 });
  });
});
