// The app's API implementation end to end, without a browser: real workspace (SQLite), real engine processes
// (the bundled engine host), a tiny model. Import with a validation report, plan and queue runs, pause and
// resume, cancel, survive an engine crash, chat with the trained adapter, compare and rate blind.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ApiEventOf, RunSummary } from '../src-shared/api.js';
import { ApiError } from '../src-shared/api.js';
import { type AppFixture, buildAppParts, FAST_RECIPE, startApp, writeColorDataset, writeTinyModel } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';
import { STARTER, starterPath } from '../src-main/engine/starter.js';

let app: AppFixture;
let dir: string;
let modelId: string;
let datasetId: string;

const runEvent = (runId: string, status: RunSummary['status']) => (e: ApiEvent): e is ApiEventOf<'run.updated'> =>
  e.type === 'run.updated' && e.run.id === runId && e.run.status === status;

/** Child processes of this test process running the engine host in `role`. */
function enginePids(role: 'train' | 'inference'): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes('engine-host.mjs') && l.includes(`--role=${role}`))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

beforeAll(async () => {
  buildAppParts('host');
  dir = makeTempDir('app-service');
  app = startApp(join(dir, 'workspace'));
});

afterAll(async () => {
  await app?.close();
});

describe('models', () => {
  it('refuses a folder that is not a model, naming the folder', async () => {
    const err = await app.call('models.add', { path: join(dir, 'nowhere') }).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('user');
    expect(err.message).toContain('nowhere');
  });

  it('adds a model folder and reports config, parameters, memory and the backend', async () => {
    const info = await app.call('models.add', { path: writeTinyModel(dir), name: 'tiny' });
    modelId = info.id;
    expect(info.config!.nLayers).toBe(2);
    expect(info.parameters).toBeGreaterThan(10_000);
    expect(info.memory.weightsBytes).toBe(info.parameters * 4);
    expect(info.fingerprint).toMatch(/^[0-9a-f]{32}$/);
    expect(info.backend.name).not.toBeNull();
    expect((await app.call('models.list', {})).map((m) => m.id)).toEqual([modelId]);
  });
});

describe('presets', () => {
  it("starts a run on the bundled starter model from the starter's recipes, any other model from the method's preset", async () => {
    const starter = await app.call('models.add', { path: starterPath(STARTER.modelDir), name: 'starter' });
    try {
      expect(await app.call('runs.defaults', { modelId: starter.id, method: 'adapter' })).toMatchObject({ adapterLayers: 4, lr: 0.02, epochs: 3, batchSize: 8, accumSteps: 1 });
      expect(await app.call('runs.defaults', { modelId: starter.id, method: 'lora' })).toMatchObject({ method: 'lora', loraRank: 8, lr: 0.002, epochs: 3 });
      expect(await app.call('runs.defaults', { modelId: starter.id, method: 'full' })).toMatchObject({ method: 'full', lr: 0.0002, weightDecay: 0 });
      // The tiny model (2 layers) gets the paper's preset: the top nLayers - 2 layers (at least 1), blr 9e-3.
      expect(await app.call('runs.defaults', { modelId, method: 'adapter' })).toMatchObject({ adapterLayers: 1, lr: null, blr: 9e-3, epochs: 5 });
    } finally {
      await app.call('models.remove', { modelId: starter.id });
    }
  });
});

describe('datasets', () => {
  it('validates a malformed file without importing, naming line and field', async () => {
    const text = ['{"instruction": "a", "output": "b"}', '{"instruction": "c"}', '{"instruction": 3, "output": "d"}', 'not json'].join('\n');
    const report = await app.call('datasets.validate', { source: { kind: 'text', fileName: 'bad.jsonl', text } });
    expect(report.records).toBe(4);
    expect(report.invalidRecords).toBe(3);
    expect(report.issues.find((i) => i.line === 2)?.field).toBe('output');
    expect(report.issues.find((i) => i.line === 3)?.field).toBe('instruction');
    expect(await app.call('datasets.list', {})).toEqual([]);
    // Importing all-or-nothing refuses; importing the valid records takes the one good record.
    await expect(app.call('datasets.import', { source: { kind: 'text', fileName: 'bad.jsonl', text }, name: 'bad' })).rejects.toThrow(/invalid/);
    const partial = await app.call('datasets.import', { source: { kind: 'text', fileName: 'bad.jsonl', text }, name: 'partial', onInvalid: 'skip' });
    expect(partial.imported).toBe(1);
    await app.call('datasets.remove', { datasetId: partial.dataset.id });
  });

  it('imports a file, pages and searches it, edits and undoes', async () => {
    const result = await app.call('datasets.import', { source: { kind: 'path', path: writeColorDataset(dir) }, name: 'colors' });
    datasetId = result.dataset.id;
    expect(result.dataset.examples).toBe(6);
    const page = await app.call('datasets.query', { datasetId, search: 'sky' });
    expect(page.total).toBe(1);
    const sky = page.items[0];
    expect(sky.output).toBe('blue');
    await app.call('datasets.editExample', { datasetId, exampleId: sky.id, patch: { output: 'azure' } });
    expect((await app.call('datasets.query', { datasetId, search: 'sky' })).items[0].output).toBe('azure');
    await app.call('datasets.undo', { datasetId });
    expect((await app.call('datasets.query', { datasetId, search: 'sky' })).items[0].output).toBe('blue');
    const history = await app.call('datasets.history', { datasetId });
    expect(history.map((v) => v.kind)).toEqual(['undo', 'edit', 'import']);
  });

  it('finds duplicates, removes them as one undoable version, and splits with a seed', async () => {
    const dup = await app.call('datasets.import', {
      source: { kind: 'text', fileName: 'dups.jsonl', text: ['{"instruction":"Name a fruit.","output":"apple"}', '{"instruction":"name a  FRUIT.","output":"Apple"}', '{"instruction":"Name a fruit!","output":"pear"}', '{"instruction":"Count to three.","output":"1 2 3"}'].join('\n') },
      name: 'dups',
    });
    const ds = dup.dataset.id;
    const groups = await app.call('datasets.duplicates', { datasetId: ds, threshold: 0.5 });
    const exact = groups.find((g) => g.kind === 'exact')!;
    expect(exact.examples.map((e) => e.output)).toEqual(['apple', 'Apple']);
    await app.call('datasets.removeDuplicates', { datasetId: ds, groups: [{ ids: exact.examples.map((e) => e.id), keep: exact.keep }] });
    expect((await app.call('datasets.get', { datasetId: ds })).examples).toBe(3);
    await app.call('datasets.undo', { datasetId: ds });
    expect((await app.call('datasets.get', { datasetId: ds })).examples).toBe(4);
    const split = await app.call('datasets.split', { datasetId: ds, val: 0.25, test: 0.25, seed: 7 });
    expect(split.counts).toEqual({ train: 2, val: 1, test: 1 });
    expect(split.dataset.splits.unassigned).toBe(0);
    const exported = await app.call('datasets.export', { datasetId: ds, format: 'jsonl', split: 'train' });
    expect(exported.examples).toBe(2);
    expect(exported.content.trim().split('\n').map((l) => Object.keys(JSON.parse(l)))).toEqual([['instruction', 'input', 'output'], ['instruction', 'input', 'output']]);
    await app.call('datasets.remove', { datasetId: ds });
  });

  it('rejects bad requests with the field named', async () => {
    const err = await app.call('datasets.query', { datasetId, limit: 0 } as never).catch((e) => e);
    expect(err.code).toBe('invalid_input');
    expect(err.message).toContain('field "limit"');
    const err2 = await app.call('datasets.editExample', { datasetId, exampleId: 1, patch: { output: '   ' } }).catch((e) => e);
    expect(err2.message).toContain('field "patch.output"');
  });

  it('token-length statistics use the model tokenizer', async () => {
    const stats = await app.call('datasets.stats', { datasetId, modelId, maxSeqLen: 40, bins: 5 });
    expect(stats.count).toBe(6);
    expect(stats.histogram.reduce((n, bin) => n + bin.count, 0)).toBe(6);
    expect(stats.max).toBeGreaterThanOrEqual(stats.p50);
    expect(stats.overMaxSeqLen).toBe(6); // the Alpaca preamble alone is longer than 40 tokens
    const estimate = await app.call('datasets.stats', { datasetId, maxSeqLen: 512 });
    expect(estimate.tokenizer).toMatch(/estimate/);
    expect(estimate.overMaxSeqLen).toBe(0);
  });
});

describe('runs', () => {
  it('plans a run and names bad recipe fields', async () => {
    const plan = await app.call('runs.plan', { modelId, datasetId, recipe: { ...FAST_RECIPE, warmupEpochs: 500 } });
    expect(plan.problems).toEqual([{ field: 'warmupEpochs', message: expect.stringContaining('at most epochs') }]);
    const good = await app.call('runs.plan', { modelId, datasetId, recipe: FAST_RECIPE });
    expect(good.problems).toEqual([]);
    expect(good.totalSteps).toBe(120);
    expect(good.trainableParameters).toBe(2 * (10 * 32 + 4));
    await expect(app.call('runs.start', { modelId, datasetId, recipe: { ...FAST_RECIPE, warmupEpochs: 500 } })).rejects.toThrow(/recipe.warmupEpochs/);
  });

  let trained: string;
  it('trains a queued run to completion with metrics in the store', async () => {
    const run = await app.call('runs.start', { modelId, datasetId, name: 'colors', recipe: FAST_RECIPE });
    trained = run.id;
    await app.waitFor(runEvent(run.id, 'completed'));
    const metrics = await app.call('runs.metrics', { runId: run.id });
    expect(metrics.length).toBe(120);
    expect(metrics.at(-1)!.loss!).toBeLessThan(metrics[0].loss! * 0.5);
    const detail = await app.call('runs.get', { runId: run.id });
    expect(detail.adapterPath).not.toBeNull();
    expect(existsSync(join(detail.adapterPath!, 'adapter_config.json'))).toBe(true);
    expect(detail.trainingSeconds).toBeGreaterThan(0);
    const info = await app.call('models.info', { modelId });
    expect(info.adapters.map((a) => a.runId)).toEqual([run.id]);
  });

  it('runs one at a time: a second run waits, pause checkpoints, resume continues, cancel ends', async () => {
    const slow = { ...FAST_RECIPE, epochs: 1000, lr: 0.01, checkpointEvery: 5 };
    const a = await app.call('runs.start', { modelId, datasetId, name: 'A', recipe: slow });
    const b = await app.call('runs.start', { modelId, datasetId, name: 'B', recipe: slow });
    await app.waitFor(runEvent(a.id, 'running'));
    const waiting = (await app.call('runs.list', {})).find((r) => r.id === b.id)!;
    expect(waiting.status).toBe('queued');
    expect(waiting.queuePosition).toBe(1);

    await app.waitFor((e) => e.type === 'run.metric' && e.runId === a.id && e.point.step >= 6);
    await app.call('runs.pause', { runId: a.id });
    await app.waitFor(runEvent(a.id, 'paused'));
    const pausedAt = (await app.call('runs.get', { runId: a.id })).checkpoints.at(-1)!.step;
    // B starts when A stops training.
    await app.waitFor(runEvent(b.id, 'running'));
    await app.call('runs.cancel', { runId: b.id });
    await app.waitFor(runEvent(b.id, 'cancelled'));

    const since = app.events.length;
    await app.call('runs.resume', { runId: a.id });
    await app.waitFor(runEvent(a.id, 'running'), { since });
    const resumedStep = await app.waitFor((e): e is ApiEventOf<'run.metric'> => e.type === 'run.metric' && e.runId === a.id && e.point.step > pausedAt);
    expect(resumedStep.point.step).toBe(pausedAt + 1);
    await app.call('runs.cancel', { runId: a.id });
    await app.waitFor(runEvent(a.id, 'cancelled'));
  });

  it('an engine crash marks the run interrupted (resumable) and leaves the app working', async () => {
    const run = await app.call('runs.start', { modelId, datasetId, name: 'crash', recipe: { ...FAST_RECIPE, epochs: 1000, lr: 0.01, checkpointEvery: 3 } });
    await app.waitFor((e) => e.type === 'run.metric' && e.runId === run.id && e.point.step >= 4);
    const pids = enginePids('train');
    expect(pids.length).toBe(1);
    process.kill(pids[0], 'SIGKILL');
    const stopped = await app.waitFor(runEvent(run.id, 'interrupted'));
    expect(stopped.run.error).toMatch(/signal SIGKILL/);
    const list = await app.call('runs.list', {});
    expect(list.find((r) => r.id === run.id)!.status).toBe('interrupted');
    await app.call('runs.cancel', { runId: run.id });
    expect(trained).toBeTruthy();
  });

  it('chats with the trained adapter, streaming the reply and saving it', async () => {
    const chat = await app.call('chats.create', { model: { modelId, adapterRunId: trained }, sampling: { temperature: 0, maxNewTokens: 8 } });
    const sent = await app.call('chats.send', { chatId: chat.id, content: 'What color is sky?' });
    const end = await app.waitFor((e): e is ApiEventOf<'stream.end'> => e.type === 'stream.end' && e.streamId === sent.streamId);
    expect(end.result.text).toBe('blue');
    const deltas = app.events.filter((e): e is ApiEventOf<'stream.delta'> => e.type === 'stream.delta' && e.streamId === sent.streamId);
    expect(deltas.map((d) => d.text).join('').trim()).toBe('blue');
    await app.waitFor((e) => e.type === 'stream.closed' && e.streamId === sent.streamId);
    const saved = await app.call('chats.get', { chatId: chat.id });
    expect(saved.messages.map((m) => [m.role, m.content])).toEqual([
      ['user', 'What color is sky?'],
      ['assistant', 'blue'],
    ]);
    expect(saved.chat.title).toBe('What color is sky?');
  });

  it('a chat longer than the context leaves out its oldest turns, and says so; a message too long alone is refused', async () => {
    const chat = await app.call('chats.create', { model: { modelId, adapterRunId: trained }, sampling: { temperature: 0, maxNewTokens: 8 } });
    const long = (n: number) => `What color is sky? ${'and tell me more '.repeat(n)}`;
    await expect(app.call('chats.send', { chatId: chat.id, content: long(200) })).rejects.toThrow(/makes a prompt of \d+ tokens; .* reads 256 tokens in all/);
    expect((await app.call('chats.get', { chatId: chat.id })).messages).toEqual([]); // nothing stored
    for (let turn = 0; turn < 4; turn++) {
      const sent = await app.call('chats.send', { chatId: chat.id, content: long(5) });
      await app.waitFor((e) => e.type === 'stream.closed' && e.streamId === sent.streamId);
    }
    const saved = await app.call('chats.get', { chatId: chat.id });
    const replies = saved.messages.filter((m) => m.role === 'assistant');
    expect(replies).toHaveLength(4);
    expect(replies[0]!.meta.droppedTurns).toBeUndefined();
    expect(replies.at(-1)!.meta.droppedTurns).toBeGreaterThan(0);
    expect(replies.at(-1)!.meta.promptTokens as number).toBeLessThanOrEqual(256 - 8);
  });

  it('compares base and adapter side by side, then rates blind', async () => {
    const { comparisonId, streamId } = await app.call('compare.start', {
      prompts: ['What color is grass?', 'What color is snow?'],
      sides: [
        { kind: 'model', model: { modelId, adapterRunId: null } },
        { kind: 'model', model: { modelId, adapterRunId: trained } },
      ],
      sampling: { temperature: 0, maxNewTokens: 6 },
    });
    await app.waitFor((e) => e.type === 'stream.closed' && e.streamId === streamId);
    const cmp = await app.call('compare.get', { comparisonId });
    expect(cmp.sides.map((s) => s.label)).toEqual(['tiny', 'tiny + colors']);
    expect(cmp.cells.find((c) => c.prompt === 0 && c.side === 1)!.text).toBe('green');
    expect(cmp.cells.find((c) => c.prompt === 1 && c.side === 1)!.text).toBe('white');

    const pairs = await app.call('compare.blind', { comparisonId });
    expect(pairs.length).toBe(2);
    for (const pair of pairs) {
      // Pick the adapter's answer, whichever letter it got.
      const adapterIsA = pair.a === 'green' || pair.a === 'white';
      const answer = await app.call('compare.rate', { comparisonId, itemId: pair.itemId, rating: adapterIsA ? 'a' : 'b' });
      expect(answer.winner).toBe('tiny + colors');
    }
    const tally = await app.call('compare.tally', { comparisonId });
    expect(tally.wins).toEqual([0, 2]);
    expect(tally.unrated).toBe(0);
    expect(await app.call('compare.blind', { comparisonId })).toEqual([]);
  });
});
