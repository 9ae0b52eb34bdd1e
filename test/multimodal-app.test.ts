// The multi-modal adapter through the app's API, end to end: real workspace (SQLite), real engine processes, a
// tiny LLaMA and a tiny CLIP folder (test/fixtures/clip). A vision tower is a model of kind "vision"; a run with
// `vision` trains the image projection on a ScienceQA folder's pictures; chat and generate hand a picture to the
// adapter; every wrong pairing is refused by name.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, type ApiEvent, type ApiEventOf, MAX_PICTURE_BYTES, type RunSummary } from '../src-shared/api.js';
import { storePicture } from '../src-main/service/images.js';
import { openWorkspace } from '../src-main/store/index.js';
import OpenAI from 'openai';
import { newToken } from '../src-main/server/auth.js';
import { type RunningServer, startHttpServer } from '../src-main/server/http-server.js';
import { type AppFixture, buildAppParts, startApp, writeTinyModel } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

const CLIP = join(import.meta.dirname, 'fixtures', 'clip');
const SQA = join(import.meta.dirname, 'fixtures', 'scienceqa');
const RECIPE = { adapterLen: 4, adapterLayers: 2, epochs: 4, warmupEpochs: 1, lr: 0.05, batchSize: 4, accumSteps: 1, maxSeqLen: 256 } as const;

let app: AppFixture;
let dir: string;
let llamaId: string;
let towerId: string;
let datasetId: string;

const runEvent = (runId: string, status: RunSummary['status']) => (e: ApiEvent): e is ApiEventOf<'run.updated'> =>
  e.type === 'run.updated' && e.run.id === runId && e.run.status === status;

beforeAll(async () => {
  buildAppParts('host');
  dir = makeTempDir('multimodal-app');
  app = startApp(join(dir, 'workspace'));
  llamaId = (await app.call('models.add', { path: writeTinyModel(dir), name: 'tiny' })).id;
  datasetId = (await app.call('datasets.import', { source: { kind: 'path', path: SQA }, options: { format: 'scienceqa' }, name: 'sqa', onInvalid: 'reject' })).dataset.id;
});

let server: RunningServer | null = null;
afterAll(async () => {
  await server?.close();
  await app?.close();
});

describe('vision towers as models', () => {
  it('adds a CLIP folder as a model of kind vision, with its config and size', async () => {
    const info = await app.call('models.add', { path: join(CLIP, 'clip-full') });
    towerId = info.id;
    expect(info.kind).toBe('vision');
    expect(info.config).toBeNull();
    expect(info.vision).toMatchObject({ modelType: 'clip', numLayers: 2, hiddenSize: 32, patchSize: 8, imageSize: 32, projectionDim: 16, activation: 'quick_gelu', crop: [32, 32] });
    expect(info.parameters).toBeGreaterThan(10_000);
    expect(info.memory.weightsBytes).toBe(info.parameters * 4);
    const kinds = (await app.call('models.list', {})).map((m) => [m.name, m.kind]);
    expect(kinds).toEqual(expect.arrayContaining([['tiny', 'llama'], ['clip-full', 'vision']]));
  });

  it('a vision tower is refused where a language model belongs, and the reverse', async () => {
    await expect(app.call('runs.plan', { modelId: towerId, datasetId, recipe: RECIPE })).rejects.toThrow(/"clip-full" is a vision tower, not a language model/);
    await expect(app.call('chats.create', { model: { modelId: towerId, adapterRunId: null } })).rejects.toThrow(/vision tower/);
    const plan = await app.call('runs.plan', { modelId: llamaId, datasetId, recipe: RECIPE, vision: { modelId: llamaId } });
    expect(plan.problems).toEqual([{ field: 'vision', message: expect.stringContaining('"tiny" is a language model, not a vision tower') }]);
  });
});

describe('a multi-modal run', () => {
  let runId: string;
  it('plans the projection into the trainable parameters and refuses a bad feature', async () => {
    const text = await app.call('runs.plan', { modelId: llamaId, datasetId, recipe: RECIPE });
    const mm = await app.call('runs.plan', { modelId: llamaId, datasetId, recipe: RECIPE, vision: { modelId: towerId, projectionHidden: 8 } });
    expect(mm.problems).toEqual([]);
    // fc1 [16, 8] + 8, fc2 [8, 32] + 32 on a width-32 model
    expect(mm.trainableParameters - text.trainableParameters).toBe(16 * 8 + 8 + 8 * 32 + 32);
    const bad = await app.call('runs.plan', { modelId: llamaId, datasetId, recipe: RECIPE, vision: { modelId: towerId, feature: 'class-tokens:7' } });
    expect(bad.problems[0]).toMatchObject({ field: 'vision', message: expect.stringContaining('layer 7') });
  });

  it('trains with the images of the dataset and saves the projection with the tower it used', async () => {
    const run = await app.call('runs.start', { modelId: llamaId, datasetId, name: 'mm', recipe: RECIPE, vision: { modelId: towerId, projectionHidden: 8 } });
    runId = run.id;
    await app.waitFor(runEvent(run.id, 'completed'), { timeoutMs: 120_000 });
    const detail = await app.call('runs.get', { runId });
    const config = JSON.parse(readFileSync(join(detail.adapterPath!, 'adapter_config.json'), 'utf8'));
    expect(config.vision).toMatchObject({ featureDim: 16, hidden: 8, feature: { kind: 'projected' } });
    expect(config.vision.tower.modelType).toBe('clip');
    // The run says it reads pictures (the chat offers to attach one only then).
    expect(detail.visionModelId).toBe(towerId);
  });

  it('chats with a picture: the adapter reads it; the message keeps it', async () => {
    const picture = readFileSync(join(CLIP, 'images', 'rgb.jpg')).toString('base64');
    const uploaded = await app.call('images.upload', { fileName: 'rgb.jpg', base64: picture });
    expect(uploaded).toMatchObject({ format: 'jpeg', width: 90, height: 70 });
    const chat = await app.call('chats.create', { model: { modelId: llamaId, adapterRunId: runId }, sampling: { temperature: 0, maxNewTokens: 4 } });
    const sent = await app.call('chats.send', { chatId: chat.id, content: 'Which animal is a fish?', image: uploaded.sha256 });
    const end = await app.waitFor((e) => (e.type === 'stream.end' || e.type === 'stream.error') && 'streamId' in e && e.streamId === sent.streamId);
    expect(end.type).toBe('stream.end');
    await app.waitFor((e) => e.type === 'stream.closed' && e.streamId === sent.streamId);
    const saved = await app.call('chats.get', { chatId: chat.id });
    expect(saved.messages[0]).toMatchObject({ role: 'user', meta: { image: uploaded.sha256 } });
    expect((await app.call('images.get', { sha256: uploaded.sha256 })).base64).toBe(picture);
  });

  it("evaluates both columns on the ScienceQA test split and gives ScienceQA's table and results files", async () => {
    const started = await app.call('evals.start', {
      name: 'sqa',
      set: { kind: 'split', datasetId, split: 'test', limit: null },
      systems: [{ kind: 'model', model: { modelId: llamaId, adapterRunId: null } }, { kind: 'model', model: { modelId: llamaId, adapterRunId: runId } }],
      maxNewTokens: 8,
    });
    await app.waitFor((e) => e.type === 'task.progress' && e.taskId === started.taskId && e.finished, { timeoutMs: 120_000 });
    const table = await app.call('evals.scienceqa', { suiteId: started.suiteId });
    expect(table.map((c) => c.kind)).toEqual(['base', 'multimodal']);
    for (const c of table) {
      expect(c.questions).toBe(8);
      expect(Object.keys(c.results).sort()).toEqual(['10', '11', '12', '5', '6', '7', '8', '9']);
      expect(c.scores.acc_average).toBeCloseTo((100 * c.correct) / 8, 2);
    }
    // The method table names the multi-modal adapter's row as such.
    expect((await app.call('evals.methodTable', { suiteId: started.suiteId })).map((r) => r.kind)).toEqual(['base', 'multimodal']);

    // The answers and the blind A/B pairs show each question's picture beside it.
    const test = (await app.call('datasets.query', { datasetId, split: 'test', limit: 100 })).items;
    const rows = (await app.call('evals.get', { suiteId: started.suiteId })).rows;
    expect(rows.map((r) => r.image)).toEqual(test.map((e) => e.image));
    expect(rows.filter((r) => r.image).length).toBe(4);
    const { comparisonId } = await app.call('evals.blind', { suiteId: started.suiteId, columns: [0, 1] });
    const pairs = await app.call('compare.blind', { comparisonId });
    expect(pairs.filter((p) => p.image).length).toBe(4);
    for (const p of pairs) expect(p.image).toBe(test.find((e) => p.prompt.startsWith(e.instruction))!.image);
  });

  it('compares a text-only and a multi-modal column on one picture; the stored session keeps it', async () => {
    const uploaded = await app.call('images.upload', { fileName: 'rgb.jpg', base64: readFileSync(join(CLIP, 'images', 'rgb.jpg')).toString('base64') });
    const base = { kind: 'model' as const, model: { modelId: llamaId, adapterRunId: null } };
    const mm = { kind: 'model' as const, model: { modelId: llamaId, adapterRunId: runId } };
    const { comparisonId, streamId } = await app.call('compare.start', { prompts: ['Which animal is a fish?'], sides: [base, mm], sampling: { temperature: 0, maxNewTokens: 4 }, image: uploaded.sha256 });
    await app.waitFor((e) => e.type === 'stream.closed' && e.streamId === streamId, { timeoutMs: 60_000 });
    const cmp = await app.call('compare.get', { comparisonId });
    // The text-only column answered the words alone instead of failing on the picture.
    expect(cmp.cells.map((c) => c.error)).toEqual([null, null]);
    expect(cmp.images).toEqual([uploaded.sha256]);
    expect((await app.call('compare.blind', { comparisonId }))[0]!.image).toBe(uploaded.sha256);
    await expect(app.call('compare.start', { prompts: ['hi'], sides: [base, base], image: uploaded.sha256 })).rejects.toThrow(/no column reads pictures/);
  });

  it('refuses a picture for a model that cannot see it, and a file that is not a picture', async () => {
    const uploaded = await app.call('images.upload', { fileName: 'grey.png', base64: readFileSync(join(CLIP, 'images', 'grey.png')).toString('base64') });
    await expect(app.call('generate.start', { model: { modelId: llamaId, adapterRunId: null }, prompt: 'hi', image: uploaded.sha256 })).rejects.toThrow(/tiny takes no pictures/);
    await expect(app.call('images.upload', { fileName: 'notes.png', base64: Buffer.from('hello').toString('base64') })).rejects.toThrow(/notes\.png/);
  });

  it('refuses a picture over the size limit, saying its size and the limit, before storing anything', async () => {
    const huge = 'A'.repeat(Math.ceil((MAX_PICTURE_BYTES + 3) / 3) * 4);
    const parsed = API['images.upload'].input.safeParse({ fileName: 'huge.png', base64: huge });
    expect(parsed.success).toBe(false);
    expect(JSON.stringify(parsed.error?.issues)).toContain('a picture of up to 64 MiB');
    const ws = openWorkspace(join(dir, 'limit-workspace'));
    try {
      await expect(storePicture(ws, new Uint8Array(MAX_PICTURE_BYTES + 1), 'huge.png')).rejects.toThrow('huge.png is 64.0 MiB; pictures of up to 64 MiB are accepted');
      expect(ws.db.prepare('SELECT count(*) AS n FROM images').get()).toEqual({ n: 0 });
    } finally {
      ws.close();
    }
  });
});

describe('the OpenAI-compatible API with pictures', () => {
  let client: OpenAI;
  beforeAll(async () => {
    const token = newToken();
    server = await startHttpServer({ service: app.service, token, host: '127.0.0.1', port: 0, staticDir: null });
    client = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: token, maxRetries: 0 });
  });
  const picture = () => `data:image/png;base64,${readFileSync(join(CLIP, 'images', 'rgb-32.png')).toString('base64')}`;

  it('answers an image_url part with a multi-modal adapter', async () => {
    const models = (await client.models.list()).data.map((m) => m.id);
    const mm = models.find((id) => id.endsWith('+mm'))!;
    expect(mm).toBeDefined();
    const reply = await client.chat.completions.create({
      model: mm,
      max_tokens: 4,
      temperature: 0,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: picture() } }, { type: 'text', text: 'Which animal is a fish?' }] }],
    });
    expect(reply.choices[0]!.finish_reason).toMatch(/stop|length/);
  });

  it('refuses a picture for a text-only model, and URLs it would have to fetch, naming the part', async () => {
    const err = await client.chat.completions
      .create({ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: picture() } }] }] })
      .catch((e) => e);
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/messages\[0\]\.content\[1\]\.image_url\.url.*takes no images/);
    const remote = await client.chat.completions
      .create({ model: 'tiny', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] })
      .catch((e) => e);
    expect(remote.status).toBe(400);
    expect(remote.message).toMatch(/data: URLs/);
  });
});
