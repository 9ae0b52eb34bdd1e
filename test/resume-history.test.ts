// After a crash, the run's recorded history matches what training did (issue 20). The app process (a child
// here, with its own engine process) is SIGKILLed while a run trains; the test then opens the workspace as the
// next app start would, resumes the run and compares its stored curve with an uninterrupted run's: every step
// once, no gaps, the same losses. One case also drops the newest checkpoint's row and the steps after the one
// before it, which is what the database holds when the app dies after the engine wrote a checkpoint but before
// the app heard of it: the checkpoint's own history fills the gap.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ApiEventOf, MetricPoint, RunSummary } from '../src-shared/api.js';
import { DATABASE_FILE } from '../src-main/store/index.js';
import { type AppFixture, buildAppParts, FAST_RECIPE, HOST_ENTRY, startApp, writeColorDataset, writeTinyModel } from './helpers/app-fixture.js';
import { bundleChild } from './helpers/bundle-child.js';
import { startChild } from './helpers/child-lines.js';
import { makeTempDir } from './helpers/tmp.js';

// 40 steps (6 examples, batch 3 x 2 accumulated: one step per epoch), a checkpoint every 4.
const RECIPE = { ...FAST_RECIPE, epochs: 40, checkpointEvery: 4 };
const STEPS = 40;

let childFile = '';
let root = '';
let model = '';
let data = '';
let reference: MetricPoint[] = [];

const completed = (runId: string) => (e: ApiEvent): e is ApiEventOf<'run.updated'> => e.type === 'run.updated' && e.run.id === runId && e.run.status === ('completed' satisfies RunSummary['status']);

beforeAll(async () => {
  buildAppParts('host');
  childFile = await bundleChild(join(import.meta.dirname, 'helpers', 'workspace-owner-child.ts'), 'resume-history-child');
  root = makeTempDir('resume-history');
  model = writeTinyModel(root);
  data = writeColorDataset(root);
  // The uninterrupted run, in this process.
  const app = startApp(join(root, 'reference'));
  try {
    const modelId = (await app.call('models.add', { path: model })).id;
    const datasetId = (await app.call('datasets.import', { source: { kind: 'path', path: data }, options: {}, name: 'colors', onInvalid: 'reject' })).dataset.id;
    const run = await app.call('runs.start', { modelId, datasetId, name: 'reference', recipe: RECIPE });
    await app.waitFor(completed(run.id), { timeoutMs: 120_000 });
    reference = await app.call('runs.metrics', { runId: run.id });
  } finally {
    await app.close();
  }
  expect(reference.map((m) => m.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
}, 180_000);

afterAll(() => rmSync(childFile, { force: true }));

/** Trains in a child app until it has recorded `killAt` steps, SIGKILLs it, and returns the workspace and run. */
async function killMidRun(name: string, killAt: number): Promise<{ dir: string; runId: string }> {
  const dir = join(root, name);
  const child = startChild(childFile, ['train', dir, HOST_ENTRY, model, data, JSON.stringify(RECIPE)], { OPENBLAS_NUM_THREADS: '1' });
  const runId = (await child.waitFor(/^run /)).slice(4);
  await child.waitFor(new RegExp(`^step ${killAt}$`));
  child.proc.kill('SIGKILL');
  expect((await child.exited).signal).toBe('SIGKILL');
  // Its engine process exits when its parent's channel closes; give it the moment it takes.
  await new Promise((r) => setTimeout(r, 500));
  return { dir, runId };
}

/** Opens the workspace as the next app start does, resumes the run, and checks its whole curve. */
async function resumeAndCompare(dir: string, runId: string): Promise<void> {
  const app: AppFixture = startApp(dir);
  try {
    expect((await app.call('runs.get', { runId })).status).toBe('interrupted');
    await app.call('runs.resume', { runId });
    await app.waitFor(completed(runId), { timeoutMs: 120_000 });
    const metrics = await app.call('runs.metrics', { runId });
    expect(metrics.map((m) => m.step)).toEqual(reference.map((m) => m.step));
    metrics.forEach((m, i) => {
      expect(Math.abs(m.loss! - reference[i]!.loss!), `loss at step ${m.step}`).toBeLessThanOrEqual(1e-6);
      expect(m.lr).toBeCloseTo(reference[i]!.lr!, 12);
    });
    // The checkpoints the run lists are the ones on disk it could resume from.
    const detail = await app.call('runs.get', { runId });
    expect(detail.checkpoints.map((c) => c.step).every((s) => s % 4 === 0)).toBe(true);
  } finally {
    await app.close();
  }
}

describe('a run whose app was killed mid-training resumes with its whole history', () => {
  for (const killAt of [3, 9, 14]) {
    it(`killed after step ${killAt}`, async () => {
      const { dir, runId } = await killMidRun(`kill-${killAt}`, killAt);
      await resumeAndCompare(dir, runId);
    }, 180_000);
  }

  it('fills the steps the database missed when the app died before it heard of a checkpoint on disk', async () => {
    const { dir, runId } = await killMidRun('missed-checkpoint', 13);
    const db = new Database(join(dir, DATABASE_FILE));
    try {
      const rows = db.prepare('SELECT id, step FROM checkpoints WHERE run_id = ? ORDER BY step').all(runId) as { id: string; step: number }[];
      expect(rows.length).toBeGreaterThanOrEqual(2);
      const [previous, newest] = rows.slice(-2) as [{ step: number }, { id: string; step: number }];
      db.prepare('DELETE FROM checkpoints WHERE id = ?').run(newest.id);
      db.prepare('DELETE FROM run_metrics WHERE run_id = ? AND step > ?').run(runId, previous.step);
    } finally {
      db.close();
    }
    await resumeAndCompare(dir, runId);
  }, 180_000);
});
