// Issue 7 end to end without a browser: train LLaMA-Adapter, LoRA and a full fine-tune of the tiny model on
// the color task, evaluate them beside the base model and an imported reference column, read the method
// table, cancel and resume an evaluation, rate blind, and let an LLM judge (a real HTTP server speaking
// OpenAI's chat API, deterministic) give its verdicts. Real workspace, real engine processes.

import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ApiEventOf, RunSummary } from '../src-shared/api.js';
import { methodTableCsv, methodTableMarkdown } from '../src-shared/method-table.js';
import { type AppFixture, buildAppParts, FAST_RECIPE, startApp, writeColorDataset, writeTinyModel } from './helpers/app-fixture.js';
import { COLOR_DATA, COLORS } from './helpers/color-task.js';
import { type JudgeServer, startJudgeServer } from './helpers/judge-server.js';
import { makeTempDir } from './helpers/tmp.js';

let app: AppFixture;
let dir: string;
let modelId: string;
let datasetId: string;
const runs: Record<'adapter' | 'lora' | 'full', string> = { adapter: '', lora: '', full: '' };

const runEvent = (runId: string, status: RunSummary['status']) => (e: ApiEvent): e is ApiEventOf<'run.updated'> =>
  e.type === 'run.updated' && e.run.id === runId && e.run.status === status;
const taskFinished = (taskId: string) => (e: ApiEvent): e is ApiEventOf<'task.progress'> => e.type === 'task.progress' && e.taskId === taskId && e.finished;

beforeAll(async () => {
  buildAppParts('host');
  dir = makeTempDir('evals');
  app = startApp(join(dir, 'workspace'));
  modelId = (await app.call('models.add', { path: writeTinyModel(dir), name: 'tiny' })).id;
  datasetId = (await app.call('datasets.import', { source: { kind: 'path', path: writeColorDataset(dir) }, name: 'colors' })).dataset.id;
  // One after the other through the queue, as a user would launch them.
  const adapter = await app.call('runs.start', { modelId, datasetId, name: 'adapter', recipe: FAST_RECIPE });
  const lora = await app.call('runs.start', { modelId, datasetId, name: 'lora', recipe: { method: 'lora', epochs: 60, warmupEpochs: 1, lr: 0.05, batchSize: 3, accumSteps: 2, maxSeqLen: 256 } });
  const full = await app.call('runs.start', { modelId, datasetId, name: 'full', recipe: { method: 'full', epochs: 20, warmupEpochs: 1, lr: 0.003, batchSize: 3, accumSteps: 2, maxSeqLen: 256 } });
  Object.assign(runs, { adapter: adapter.id, lora: lora.id, full: full.id });
  for (const id of Object.values(runs)) await app.waitFor(runEvent(id, 'completed'), { timeoutMs: 240_000 });
}, 300_000);

afterAll(async () => {
  await app?.close();
});

const references = JSON.stringify(COLOR_DATA.map((e) => ({ prompt: e.instruction, response: e.output })));
const columns = () => [
  { kind: 'model' as const, model: { modelId } },
  { kind: 'model' as const, model: { modelId, adapterRunId: runs.adapter } },
  { kind: 'model' as const, model: { modelId, adapterRunId: runs.lora } },
  { kind: 'model' as const, model: { modelId, adapterRunId: runs.full } },
  { kind: 'references' as const, label: 'Alpaca outputs', fileName: 'alpaca.json', content: references },
];

let suiteId: string;

describe('an evaluation of base, adapter, LoRA, full fine-tune and imported references', () => {
  it('answers and scores every example in every column, stored in SQLite', async () => {
    const started = await app.call('evals.start', { name: 'colors held in', set: { kind: 'split', datasetId, split: 'all' }, systems: columns(), maxNewTokens: 4 });
    suiteId = started.suiteId;
    const end = await app.waitFor(taskFinished(started.taskId), { timeoutMs: 120_000 });
    expect(end.error).toBeNull();
    expect(end.done).toBe(6 * 5);

    const suite = await app.call('evals.get', { suiteId });
    expect(suite.status).toBe('completed');
    expect(suite.columns.map((c) => c.kind)).toEqual(['base', 'adapter', 'lora', 'full', 'references']);
    expect(suite.rows).toHaveLength(6);
    for (const row of suite.rows) expect(row.outputs.every((o) => o !== null)).toBe(true);
    const [base, adapter, , , refs] = suite.columns;
    // The imported column is the references themselves; the base model has learned nothing.
    expect(refs.metrics).toMatchObject({ count: 6, exactMatch: 1, rougeL: 1, tokenF1: 1, perplexity: null });
    expect(adapter.metrics.exactMatch!).toBeGreaterThan(base.metrics.exactMatch!);
    expect(adapter.metrics.tokenF1!).toBeGreaterThanOrEqual(adapter.metrics.exactMatch!);
    // The trained answers are far more likely under the adapter than under the base model.
    expect(adapter.metrics.perplexity!).toBeLessThan(base.metrics.perplexity! / 2);
    const answered = suite.rows.map((r) => r.outputs[1]!.text);
    expect(answered.filter((t, i) => t === COLOR_DATA[i].output).length / 6).toBeCloseTo(adapter.metrics.exactMatch!, 6);

    // Every answer is a row in the workspace database, with its scores.
    const db = new Database(join(dir, 'workspace', 'workspace.sqlite'), { readonly: true });
    try {
      const rows = db.prepare('SELECT count(*) AS n FROM evaluation_outputs o JOIN evaluations e ON e.id = o.evaluation_id WHERE json_extract(e.config, \'$.suite\') = ?').get(suiteId) as { n: number };
      expect(rows.n).toBe(30);
    } finally {
      db.close();
    }
  });

  it("gives the paper's method table, exportable as CSV and Markdown", async () => {
    const table = await app.call('evals.methodTable', { suiteId });
    const byKind = Object.fromEntries(table.map((r) => [r.kind, r]));
    const plan = await app.call('runs.plan', { modelId, datasetId, recipe: FAST_RECIPE });
    expect(byKind.adapter.trainableParameters).toBe(plan.trainableParameters);
    const info = await app.call('models.info', { modelId });
    expect(byKind.full.trainableParameters).toBe(info.parameters);
    expect(byKind.lora.trainableParameters!).toBeGreaterThan(0);
    expect(byKind.base.trainableParameters).toBe(0);
    // What each method saves: prompts and gates < the whole model.
    expect(byKind.adapter.storageBytes!).toBeLessThan(byKind.full.storageBytes!);
    for (const k of ['adapter', 'lora', 'full'] as const) {
      expect(byKind[k].trainingSeconds!).toBeGreaterThan(0);
      expect(byKind[k].peakMemoryBytes!).toBeGreaterThan(1e6);
      expect(byKind[k].tokensPerSec!).toBeGreaterThan(0);
    }
    expect(byKind.references.trainingSeconds).toBeNull();
    // Every run trained on all six evaluated questions: the table says so, and so does a new run's plan.
    for (const k of ['adapter', 'lora', 'full'] as const) expect(byKind[k].seenItems).toBe(6);
    expect(byKind.base.seenItems).toBeNull();
    expect(plan.warnings).toEqual([expect.stringMatching(/^6 of the 6 items of the evaluation “colors held in” are in this training data.*train on the train split/)]);

    const csv = methodTableCsv(table).trim().split('\r\n');
    expect(csv).toHaveLength(6);
    expect(csv[0]).toContain('trainable_params');
    expect(csv[2].split(',')[2]).toBe(String(byKind.adapter.trainableParameters));
    const md = methodTableMarkdown(table);
    expect(md.split('\n').filter((l) => l.startsWith('|'))).toHaveLength(7);
    expect(md).toContain('| Alpaca outputs | references |');
  });

  it('makes a blind A/B session from two columns', async () => {
    const { comparisonId } = await app.call('evals.blind', { suiteId, columns: [0, 1] });
    const pairs = await app.call('compare.blind', { comparisonId });
    expect(pairs).toHaveLength(6);
    const rated = await app.call('compare.rate', { comparisonId, itemId: pairs[0].itemId, rating: 'a' });
    expect(rated.winner).not.toBeNull();
    expect((await app.call('compare.tally', { comparisonId })).rated).toBe(1);
  });
});

describe('bad input and interruptions', () => {
  it('refuses a reference file that lacks a prompt, naming the file and the prompt, and stores nothing', async () => {
    const before = (await app.call('evals.list', {})).length;
    const partial = JSON.stringify(COLOR_DATA.slice(1).map((e) => ({ instruction: e.instruction, output: e.output })));
    const err = await app
      .call('evals.start', { set: { kind: 'split', datasetId, split: 'all' }, systems: [{ kind: 'references', label: 'refs', fileName: 'partial.json', content: partial }] })
      .catch((e) => e);
    expect(err.message).toMatch(/partial\.json has no response for 1 of the 6 prompts, the first being "What color is sky\?"/);
    const broken = await app
      .call('evals.start', { set: { kind: 'split', datasetId, split: 'all' }, systems: [{ kind: 'references', label: 'refs', fileName: 'broken.json', content: '[{"prompt": 3}]' }] })
      .catch((e) => e);
    expect(broken.message).toMatch(/broken\.json: entry 0: field "prompt" must be a string/);
    expect((await app.call('evals.list', {})).length).toBe(before);
  });

  it('cancels an evaluation part-way and resumes it where it stopped', async () => {
    const prompts = Array.from({ length: 24 }, (_, i) => `What color is ${Object.keys(COLORS)[i % 6]}? (${i})`);
    const started = await app.call('evals.start', { name: 'long', set: { kind: 'prompts', prompts }, systems: columns().slice(0, 2), maxNewTokens: 8 });
    await app.waitFor((e) => e.type === 'task.progress' && e.taskId === started.taskId && e.done >= 4);
    await app.call('tasks.cancel', { taskId: started.taskId });
    const stopped = await app.waitFor(taskFinished(started.taskId));
    expect(stopped.error).toBe('cancelled');
    const cancelled = await app.call('evals.get', { suiteId: started.suiteId });
    expect(cancelled.status).toBe('cancelled');
    const doneBefore = cancelled.columns.reduce((n, c) => n + c.done, 0);
    expect(doneBefore).toBeGreaterThanOrEqual(4);
    expect(doneBefore).toBeLessThan(48);

    const resumed = await app.call('evals.resume', { suiteId: started.suiteId });
    const end = await app.waitFor(taskFinished(resumed.taskId), { timeoutMs: 120_000 });
    expect(end.error).toBeNull();
    const suite = await app.call('evals.get', { suiteId: started.suiteId });
    expect(suite.status).toBe('completed');
    expect(suite.columns.map((c) => c.done)).toEqual([24, 24]);
    // No references: nothing to score, and no answer missing or doubled.
    expect(suite.columns[0].metrics.exactMatch).toBeNull();
    expect(suite.rows.map((r) => r.position)).toEqual([...Array(24).keys()]);
    expect(suite.rows.every((r) => r.outputs.every((o) => o !== null))).toBe(true);
  });
});

describe('LLM-as-judge', () => {
  let judge: JudgeServer;
  beforeAll(async () => {
    judge = await startJudgeServer('coal');
    await app.call('settings.update', { openai: { url: judge.url, model: 'test-judge', apiKey: '' } });
  });
  afterAll(() => judge.close());

  it('judges base against references pairwise, alternating the order, and labels the session', async () => {
    const { taskId, comparisonId } = await app.call('evals.judge', { suiteId, columns: [0, 4], judge: { kind: 'openai' } });
    const end = await app.waitFor(taskFinished(taskId));
    expect(end.error).toBe('1 of 6 replies held no scores (left unrated)');
    expect(judge.prompts).toHaveLength(6);
    // The order alternates: the reference answer is shown first for half of the items.
    const refFirst = judge.prompts.filter((p, i) => p.includes(`Assistant 1's Answer]\n${COLOR_DATA[i].output}\n`));
    expect(refFirst.length).toBe(3);
    const tally = await app.call('compare.tally', { comparisonId });
    expect(tally.rated).toBe(5);
    expect(tally.unrated).toBe(1);
    const suite = await app.call('evals.get', { suiteId });
    const baseRight = suite.rows.filter((r, i) => r.outputs[0]!.text === COLOR_DATA[i].output && COLOR_DATA[i].instruction !== 'What color is coal?').length;
    expect(tally.wins[1]).toBe(5 - baseRight);
    const list = await app.call('compare.list', {});
    expect(list.find((c) => c.id === comparisonId)?.name).toMatch(/^LLM judge \(test-judge\)/);
    // The method table reports the references' win rate against the first column.
    const table = await app.call('evals.methodTable', { suiteId });
    expect(table[4].judgeWinRate).toBeCloseTo(tally.wins[1] / 5, 6);
  });

  it('can use a local model as the judge, and says why one that cannot take the review prompt fails', async () => {
    const { taskId, comparisonId } = await app.call('evals.judge', { suiteId, columns: [0, 1], judge: { kind: 'local', model: { modelId } } });
    const end = await app.waitFor(taskFinished(taskId), { timeoutMs: 120_000 });
    // The tiny model's context is far shorter than the review prompt: the first item stops the session, clearly.
    expect(end.error).toMatch(/^judging item 1 of 6: the prompt has \d+ tokens/);
    const tally = await app.call('compare.tally', { comparisonId });
    expect(tally).toMatchObject({ rated: 0, unrated: 6 });
  });
});

describe('after the fact', () => {
  it('renames a run: the list, its summary and an event say so; an empty name is refused', async () => {
    const since = app.events.length;
    const renamed = await app.call('runs.rename', { runId: runs.lora, name: '  lora, rank 8  ' });
    expect(renamed.name).toBe('lora, rank 8');
    expect((await app.call('runs.list', {})).find((r) => r.id === runs.lora)?.name).toBe('lora, rank 8');
    expect(app.events.slice(since).some((e) => e.type === 'run.updated' && e.run.id === runs.lora && e.run.name === 'lora, rank 8')).toBe(true);
    await expect(app.call('runs.rename', { runId: runs.lora, name: '   ' })).rejects.toThrow(/field "name": must not be empty/);
  });

  it('keeps an evaluation readable when a run behind a column is deleted', async () => {
    await app.call('runs.remove', { runId: runs.lora });
    const suite = await app.call('evals.get', { suiteId });
    expect(suite.columns[2]).toMatchObject({ kind: 'lora', status: 'completed' });
    expect(suite.rows[0].outputs[2]).not.toBeNull();
    const table = await app.call('evals.methodTable', { suiteId });
    expect(table[2]).toMatchObject({ kind: 'lora', trainingSeconds: null, storageBytes: null });
    expect(table[2].metrics.count).toBe(6);
    expect((await app.call('evals.list', {})).some((s) => s.id === suiteId)).toBe(true);
  });
});
