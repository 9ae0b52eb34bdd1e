// Nothing of a sweep is lost when the process running it is killed (issue 18): `adapter-studio sweep` (a child
// process, bundled from the sources) is SIGKILLed after its first point has trained and been evaluated, while
// the next one trains; `sweep --resume` then finishes it. The finished point is not trained or evaluated
// again, the interrupted run continues from its checkpoint with every step once, and no run or evaluation is
// doubled. Read straight from the SQLite file.

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src-main/cli/main.js';
import { DATABASE_FILE } from '../src-main/store/index.js';
import { buildAppParts, writeTinyModel } from './helpers/app-fixture.js';
import { bundleChild } from './helpers/bundle-child.js';
import { startChild } from './helpers/child-lines.js';
import { COLORS } from './helpers/color-task.js';
import { makeTempDir } from './helpers/tmp.js';

let cliFile = '';
let root = '';
let ws = '';
let model = '';

const STEPS = 40;
const SWEEP = ['--vary', 'adapterLayers=1,2', '--vary', 'init=zero,random', '--epochs', String(STEPS), '--warmup-epochs', '1', '--lr', '0.3', '--batch-size', '3', '--accum-steps', '6', '--max-seq-len', '256', '--checkpoint-every', '4', '--eval-limit', '3', '--max-new-tokens', '2', '--json'];

async function cli(args: string[]): Promise<number> {
  return main(args, { stdout: () => undefined, stderr: () => undefined });
}

beforeAll(async () => {
  buildAppParts('host');
  cliFile = await bundleChild(join(import.meta.dirname, '..', 'src-main', 'cli', 'bin.ts'), 'sweep-kill-cli');
  root = makeTempDir('sweep-kill');
  ws = join(root, 'workspace');
  model = writeTinyModel(root);
  const records = Object.entries(COLORS).flatMap(([thing, color]) => [0, 1, 2, 3].map((i) => ({ instruction: `What color is ${thing}? (${i})`, input: '', output: color })));
  writeFileSync(join(root, 'train.json'), JSON.stringify(records.slice(0, 18)));
  writeFileSync(join(root, 'test.json'), JSON.stringify(records.slice(18)));
  expect(await cli(['dataset', 'import', join(root, 'train.json'), '--name', 'colors', '--split', 'train', '--workspace', ws])).toBe(0);
  expect(await cli(['dataset', 'import', join(root, 'test.json'), '--into', 'colors', '--split', 'test', '--workspace', ws])).toBe(0);
}, 120_000);

afterAll(() => rmSync(cliFile, { force: true }));

interface Snapshot {
  runs: { id: string; status: string; started_at: number | null; finished_at: number | null }[];
  steps: Map<string, number[]>;
  evaluations: { run_id: string; outputs: number }[];
  points: { position: number; run_id: string; eval_suite: string | null }[];
  sweep: { status: string };
}

function snapshot(sweepId: string): Snapshot {
  const db = new Database(join(ws, DATABASE_FILE), { readonly: true });
  try {
    const runs = db.prepare('SELECT id, status, started_at, finished_at FROM runs ORDER BY rowid').all() as Snapshot['runs'];
    const steps = new Map(runs.map((r) => [r.id, (db.prepare('SELECT step FROM run_metrics WHERE run_id = ? ORDER BY step').all(r.id) as { step: number }[]).map((m) => m.step)]));
    const evaluations = db.prepare('SELECT e.run_id, (SELECT count(*) FROM evaluation_outputs o WHERE o.evaluation_id = e.id) AS outputs FROM evaluations e ORDER BY e.rowid').all() as Snapshot['evaluations'];
    const points = db.prepare('SELECT position, run_id, eval_suite FROM sweep_points WHERE sweep_id = ? ORDER BY position').all(sweepId) as Snapshot['points'];
    const sweep = db.prepare('SELECT status FROM sweeps WHERE id = ?').get(sweepId) as Snapshot['sweep'];
    return { runs, steps, evaluations, points, sweep };
  } finally {
    db.close();
  }
}

describe('a sweep killed mid-way', () => {
  it('resumes where it was: nothing finished is redone, nothing is lost or doubled', async () => {
    const child = startChild(cliFile, ['sweep', '--workspace', ws, '--model', model, '--dataset', 'colors', ...SWEEP], { OPENBLAS_NUM_THREADS: '1' });
    const sweepId = JSON.parse(await child.waitFor(/"type":"sweep"/)).sweepId as string;
    await child.waitFor(/"position":0,"state":"done"/);
    await child.waitFor(/"position":1,"state":"training"/);
    // Killed once the second run has written a checkpoint (every 4 steps) and trains on.
    for (;;) {
      const now = snapshot(sweepId);
      if ((now.steps.get(now.points[1]!.run_id)?.length ?? 0) >= 5) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.proc.kill('SIGKILL');
    expect((await child.exited).signal).toBe('SIGKILL');

    const before = snapshot(sweepId);
    expect(before.sweep.status).toBe('running');
    expect(before.runs).toHaveLength(4);
    const first = before.runs.find((r) => r.id === before.points[0]!.run_id)!;
    expect(first.status).toBe('completed');
    expect(before.points[0]!.eval_suite).not.toBeNull();
    expect(before.evaluations.filter((e) => e.run_id === first.id)).toEqual([{ run_id: first.id, outputs: 3 }]);
    const second = before.runs.find((r) => r.id === before.points[1]!.run_id)!;
    expect(second.status).toBe('running');
    expect(before.steps.get(second.id)!.length).toBeLessThan(STEPS);

    const again = startChild(cliFile, ['sweep', '--workspace', ws, '--resume', sweepId, '--json'], { OPENBLAS_NUM_THREADS: '1' });
    const end = await again.exited;
    expect(end.code, end.stderr).toBe(0);
    const last = JSON.parse(end.stdout.trim().split('\n').at(-1)!);
    expect(last.status).toBe('completed');
    expect(last.rows.map((r: { state: string }) => r.state)).toEqual(['done', 'done', 'done', 'done']);
    expect(last.rows.map((r: { settings: object }) => r.settings)).toEqual([
      { adapterLayers: 1, init: 'zero' },
      { adapterLayers: 1, init: 'random' },
      { adapterLayers: 2, init: 'zero' },
      { adapterLayers: 2, init: 'random' },
    ]);

    const after = snapshot(sweepId);
    expect(after.sweep.status).toBe('completed');
    expect(after.runs.map((r) => r.id)).toEqual(before.runs.map((r) => r.id)); // no run added
    // The finished point: the same run, untouched, and still its one evaluation.
    expect(after.runs.find((r) => r.id === first.id)).toEqual(first);
    expect(after.points[0]!.eval_suite).toBe(before.points[0]!.eval_suite);
    // Every run trained every step exactly once; every point has one evaluation of 3 answers.
    for (const r of after.runs) {
      expect(r.status).toBe('completed');
      expect(after.steps.get(r.id)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    }
    expect(after.evaluations.map((e) => e.outputs)).toEqual([3, 3, 3, 3]);
    expect(new Set(after.evaluations.map((e) => e.run_id)).size).toBe(4);
  }, 300_000);
});
