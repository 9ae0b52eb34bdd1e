// Sweeps end to end through the app's service (real workspace, real engine processes, the tiny model): the
// paper's ablations over adapted layers and zero vs random init, each point an ordinary run evaluated on the
// held-out split, the table and plots; a data-amount plan with nested subsets; refusals named by field; cancel.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ApiEventOf, SweepResults } from '../src-shared/api.js';
import { ApiError } from '../src-shared/api.js';
import { sweepCsv, sweepMarkdown, sweepPlots } from '../src-shared/sweep-report.js';
import { type AppFixture, buildAppParts, FAST_RECIPE, startApp, writeTinyModel } from './helpers/app-fixture.js';
import { COLORS } from './helpers/color-task.js';
import { makeTempDir } from './helpers/tmp.js';

let app: AppFixture;
let dir: string;
let modelId: string;
let datasetId: string;

const sweepEnded = (sweepId: string) => (e: ApiEvent): e is ApiEventOf<'sweep.updated'> => e.type === 'sweep.updated' && e.sweep.id === sweepId && e.sweep.status !== 'running';
const QUICK = { ...FAST_RECIPE, maxSteps: 3, accumSteps: 1 };

beforeAll(async () => {
  buildAppParts('host');
  dir = makeTempDir('sweeps');
  app = startApp(join(dir, 'workspace'));
  modelId = (await app.call('models.add', { path: writeTinyModel(dir), name: 'tiny' })).id;
  // 24 colour questions; a quarter held out as the test split.
  const records = Object.entries(COLORS).flatMap(([thing, color]) => [0, 1, 2, 3].map((i) => ({ instruction: `What color is ${thing}? (${i})`, input: '', output: color })));
  const file = join(dir, 'colors.json');
  writeFileSync(file, JSON.stringify(records));
  datasetId = (await app.call('datasets.import', { source: { kind: 'path', path: file }, name: 'colors' })).dataset.id;
  const split = await app.call('datasets.split', { datasetId, val: 0, test: 0.25, seed: 1 });
  expect(split.counts).toEqual({ train: 18, val: 0, test: 6 });
}, 120_000);

afterAll(async () => {
  await app?.close();
});

describe('planning a sweep', () => {
  it('expands the axes into every combination with their sizes, and nests data subsets', async () => {
    const plan = await app.call('sweeps.plan', { modelId, datasetId, recipe: QUICK, vary: [{ field: 'adapterLayers', values: ['1', 2] }, { field: 'init', values: ['zero', 'random'] }] });
    expect(plan.problems).toEqual([]);
    expect(plan.points.map((p) => p.settings)).toEqual([
      { adapterLayers: 1, init: 'zero' },
      { adapterLayers: 1, init: 'random' },
      { adapterLayers: 2, init: 'zero' },
      { adapterLayers: 2, init: 'random' },
    ]);
    // Two adapted layers train twice the prompts and gates of one.
    expect(plan.points[2]!.trainableParameters).toBe(2 * plan.points[0]!.trainableParameters);
    expect(plan.points.every((p) => p.examples === 18 && p.totalSteps === 3)).toBe(true);
    expect(plan.evalExamples).toBe(6);
    expect(plan.name).toBe('adapterLayers × init on colors');

    const data = await app.call('sweeps.plan', { modelId, datasetId, recipe: QUICK, vary: [{ field: 'data.fraction', values: [0.1, 0.5, 1] }] });
    expect(data.points.map((p) => p.examples)).toEqual([2, 9, 18]);
  });

  it('refuses what it cannot vary, naming the field and value', async () => {
    const refused = async (vary: { field: string; values: (string | number)[] }[]) => {
      const err = await app.call('sweeps.plan', { modelId, datasetId, recipe: QUICK, vary }).catch((e) => e);
      expect(err).toBeInstanceOf(ApiError);
      return err as ApiError;
    };
    expect((await refused([{ field: 'adapterDepth', values: [1] }])).message).toMatch(/unknown setting "adapterDepth"/);
    expect((await refused([{ field: 'loraTargets', values: ['q'] }])).message).toMatch(/loraTargets holds a list/);
    expect((await refused([{ field: 'init', values: ['zero', 'gaussian'] }])).message).toMatch(/vary\[0\]\.values\[1\]: init cannot be "gaussian"/);
    expect((await refused([{ field: 'adapterLayers', values: ['two'] }])).message).toMatch(/adapterLayers cannot be "two"/);
    expect((await refused([{ field: 'data.fraction', values: [1.5] }])).message).toMatch(/data\.fraction takes a share/);
    expect((await refused([{ field: 'adapterLayers', values: [1, 1] }])).message).toMatch(/adapterLayers=1 appears twice/);
    // A value the recipe checks against the model: three layers of a two-layer model, named by its point.
    const plan = await app.call('sweeps.plan', { modelId, datasetId, recipe: QUICK, vary: [{ field: 'adapterLayers', values: [1, 3] }] });
    expect(plan.problems.map((p) => p.message).join('\n')).toMatch(/^adapterLayers=3: /);
    await expect(app.call('sweeps.start', { modelId, datasetId, recipe: QUICK, vary: [{ field: 'adapterLayers', values: [1, 3] }] })).rejects.toThrow(/adapterLayers=3/);
    expect(await app.call('sweeps.list', {})).toEqual([]);
  });
});

describe('running a sweep', () => {
  let results: SweepResults;

  it('trains and evaluates every point of adapted layers x init, as ordinary runs', async () => {
    const runsBefore = (await app.call('runs.list', {})).length;
    const sweep = await app.call('sweeps.start', {
      modelId,
      datasetId,
      name: 'ablation',
      recipe: QUICK,
      vary: [{ field: 'adapterLayers', values: [1, 2] }, { field: 'init', values: ['zero', 'random'] }],
      evalLimit: 3,
      maxNewTokens: 2,
    });
    expect(sweep.points).toHaveLength(4);
    expect((await app.call('runs.list', {})).length).toBe(runsBefore + 4);
    await app.waitFor(sweepEnded(sweep.id), { timeoutMs: 400_000 });
    results = await app.call('sweeps.get', { sweepId: sweep.id });
    expect(results.sweep.status).toBe('completed');
    expect(results.rows.map((r) => r.state)).toEqual(['done', 'done', 'done', 'done']);
    for (const row of results.rows) {
      expect(row.metrics.exactMatch).not.toBeNull();
      expect(row.metrics.tokenF1).not.toBeNull();
      expect(row.metrics.perplexity).toBeGreaterThan(0);
      expect(row.metrics.examples).toBe(18);
      expect(row.metrics.finalLoss).toBeGreaterThan(0);
      expect(row.metrics.scienceqaAccuracy).toBeNull(); // not ScienceQA questions
    }
    expect(results.rows[2]!.metrics.trainableParameters).toBe(2 * results.rows[0]!.metrics.trainableParameters!);
    // Each point is an ordinary run recording its settings, and an ordinary evaluation of 3 answers.
    for (const p of results.sweep.points) {
      const run = await app.call('runs.get', { runId: p.runId! });
      expect(run.recipe).toMatchObject({ adapterLayers: p.settings.adapterLayers, init: p.settings.init, maxSteps: 3 });
      expect(run.name).toBe(`ablation · adapterLayers=${p.settings.adapterLayers}, init=${p.settings.init}`);
      const suite = await app.call('evals.get', { suiteId: p.suiteId! });
      expect(suite.columns[0]!.done).toBe(3);
      expect(suite.columns[0]!.runId).toBe(p.runId);
    }
    // Random init starts from another function than the base model: its first loss differs from zero-init's.
    const firstLoss = (position: number) => results.curves.find((c) => c.position === position)!.points[0]!.loss;
    expect(firstLoss(1)).not.toBeCloseTo(firstLoss(0), 4);
    expect(results.curves.every((c) => c.points.length === 3)).toBe(true);
  }, 420_000);

  it('exports the table as CSV and Markdown and the plots as SVG', () => {
    const csv = sweepCsv(results).trim().split('\r\n');
    expect(csv[0]).toMatch(/^adapterLayers,init,state,train_examples,exact_match,rouge_l,token_f1/);
    expect(csv).toHaveLength(5);
    expect(csv[2]).toMatch(/^1,random,done,18,/);
    const md = sweepMarkdown(results);
    expect(md.split('\n')[0]).toContain('| adapterLayers | init | State | Train examples | Exact match |');
    const plots = sweepPlots(results);
    expect(plots.map((p) => p.name)).toEqual(['exact_match', 'rouge_l', 'token_f1', 'ref_perplexity', 'loss_curves']);
    // One line per init value, and its legend.
    const em = plots[0]!.svg;
    expect(em.match(/<polyline/g)).toHaveLength(2);
    expect(em).toContain('init=zero');
    expect(em).toContain('init=random');
    expect(plots.at(-1)!.svg.match(/<polyline/g)).toHaveLength(4);
  });

  it('cancels the queued rest, keeping what finished, and forgets the sweep without its runs', async () => {
    // 720 steps a run (120 epochs of 6): the first is still training when the cancel arrives, however loaded the machine.
    const sweep = await app.call('sweeps.start', { modelId, datasetId, recipe: { ...QUICK, maxSteps: null }, vary: [{ field: 'adapterLen', values: [2, 4, 6] }], evalLimit: 1 });
    await app.waitFor((e) => e.type === 'run.metric' && e.runId === sweep.points[0]!.runId);
    const cancelled = await app.call('sweeps.cancel', { sweepId: sweep.id });
    expect(cancelled.status).toBe('cancelled');
    await app.waitFor((e) => e.type === 'run.updated' && e.run.id === sweep.points[0]!.runId && e.run.status === 'cancelled');
    for (const p of sweep.points) expect((await app.call('runs.get', { runId: p.runId! })).status).toBe('cancelled');
    await expect(app.call('sweeps.cancel', { sweepId: sweep.id })).rejects.toThrow(/already cancelled/);
    await app.call('sweeps.remove', { sweepId: sweep.id });
    expect((await app.call('sweeps.list', {})).map((s) => s.id)).not.toContain(sweep.id);
    expect((await app.call('runs.get', { runId: sweep.points[2]!.runId! })).status).toBe('cancelled');
  }, 120_000);
});
