// Crash safety on real SQLite files: a child process is SIGKILLed in the middle of an import and in the
// middle of writing run metrics. Afterwards the workspace opens cleanly, passes PRAGMA integrity_check, and
// holds each transaction whole or not at all.

import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { type Child, startChild as startChildProcess } from './helpers/child-lines.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importDataset } from '../src-main/datasets/import.js';
import { DATABASE_FILE, openWorkspace, type RunId } from '../src-main/store/index.js';
import { alpacaRecords, checkSearchIndex, writeJsonFile } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

// Bundled inside the repository so that node resolves better-sqlite3 from node_modules.
const childFile = join(import.meta.dirname, '..', 'test-output', `store-crash-child-${process.pid}.mjs`);

beforeAll(async () => {
  await build({
    entryPoints: [join(import.meta.dirname, 'helpers', 'store-crash-child.ts')],
    outfile: childFile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'warning',
  });
});

afterAll(() => rmSync(childFile, { force: true }));

function startChild(args: string[]): Child {
  return startChildProcess(childFile, args);
}

async function kill(child: Child) {
  child.proc.kill('SIGKILL');
  const result = await child.exited;
  expect(result.signal).toBe('SIGKILL');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SIGKILL during an import', () => {
  const data = makeTempDir('store-crash-data');
  const file = writeJsonFile(data, 'big.json', alpacaRecords(20_000));

  for (const killAfter of [1_000, 8_000, 17_000]) {
    it(`leaves no trace of an import killed after ${killAfter} inserted rows`, async () => {
      const dir = makeTempDir('store-crash-import');
      const child = startChild(['import', dir, file]);
      await child.waitFor(new RegExp(`^progress ${killAfter}$`));
      await kill(child);
      expect(child.lines).not.toContain('committed');
      // The uncommitted rows had reached the write-ahead log on disk before the kill.
      expect(statSync(join(dir, `${DATABASE_FILE}-wal`)).size).toBeGreaterThan(0);

      const ws = openWorkspace(dir);
      expect(ws.db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(ws.datasets.list()).toEqual([]);
      for (const table of ['examples', 'dataset_versions', 'dataset_changes', 'datasets']) {
        expect(ws.db.prepare(`SELECT count(*) AS n FROM ${table}`).get(), table).toEqual({ n: 0 });
      }
      // The search index was rolled back with the rows, and the bulk-indexing flag is clear.
      expect(() => checkSearchIndex(ws)).not.toThrow();
      expect(ws.db.prepare('SELECT deferred FROM fts_sync').get()).toEqual({ deferred: 0 });
      ws.close();
    });
  }

  it('an import that committed before the kill is there in full', async () => {
    const dir = makeTempDir('store-crash-import-done');
    const child = startChild(['import', dir, file]);
    await child.waitFor(/^committed$/);
    await child.exited; // exits by itself; nothing to kill
    const ws = openWorkspace(dir);
    expect(ws.db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(ws.datasets.list().map((d) => d.examples)).toEqual([20_000]);
    expect(ws.datasets.query(ws.datasets.list()[0]!.id, { search: 'item number 19999' }).total).toBeGreaterThan(0);
    checkSearchIndex(ws); // the bulk path indexed every row
    ws.close();
  });
});

describe('SIGKILL during an import with images', () => {
  const data = makeTempDir('store-crash-images');
  let file: string;
  beforeAll(async () => {
    const sharp = (await import('sharp')).default;
    mkdirSync(join(data, 'pics'));
    for (let i = 0; i < 300; i++) {
      const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: { r: i % 256, g: Math.floor(i / 256), b: 7 } } }).png().toBuffer();
      writeFileSync(join(data, 'pics', `${i}.png`), png);
    }
    // 3000 records over 300 pictures: the transaction is still open well after "progress 1000".
    const records = alpacaRecords(3000).map((r, i) => ({ ...r, image: `pics/${i % 300}.png` }));
    file = join(data, 'pictures.jsonl');
    writeFileSync(file, records.map((r) => JSON.stringify(r)).join('\n'));
  });

  it('leaves image files without rows, which garbage collection removes and a new import reuses', async () => {
    const dir = makeTempDir('store-crash-import-images');
    const child = startChild(['import', dir, file]);
    await child.waitFor(/^progress 1000$/);
    await kill(child);
    expect(child.lines).not.toContain('committed');

    const ws = openWorkspace(dir);
    expect(ws.db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(ws.datasets.list()).toEqual([]);
    expect(ws.db.prepare('SELECT count(*) AS n FROM images').get()).toEqual({ n: 0 });
    const files = () => readdirSync(join(dir, 'images'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
    // Moved into place (and fsynced) before the transaction began, so all of them, whole.
    expect(files()).toBe(300);

    const again = await importDataset(ws, file, { name: 'again' });
    expect(again.report.images).toBe(3000);
    expect(ws.db.prepare('SELECT count(*) AS n FROM images').get()).toEqual({ n: 300 });
    for (const sha of ws.datasets.imagesOf(again.dataset.id)) expect(ws.images.read(sha).bytes.length).toBeGreaterThan(0);
    expect(files()).toBe(300);

    ws.datasets.delete(again.dataset.id);
    expect(ws.images.collectGarbage({ minAgeMs: 0 })).toEqual({ rows: 300, files: 300 });
    expect(files()).toBe(0);
    ws.close();
  });
});

describe('SIGKILL while a run writes metrics', () => {
  for (const [k, delay] of [
    [1, 0],
    [2, 7],
    [3, 23],
  ] as const) {
    it(`keeps whole metric batches and recovers the run (trial ${k})`, async () => {
      const dir = makeTempDir('store-crash-metrics');
      const child = startChild(['metrics', dir]);
      const runLine = await child.waitFor(/^run /);
      const runId = runLine.slice(4) as RunId;
      await child.waitFor(new RegExp(`^batch ${k + 2}$`));
      await sleep(delay);
      await kill(child);
      const reported = Math.max(...child.lines.filter((l) => l.startsWith('batch ')).map((l) => Number(l.slice(6))));
      expect(existsSync(join(dir, DATABASE_FILE))).toBe(true);

      const ws = openWorkspace(dir);
      expect(ws.db.pragma('integrity_check', { simple: true })).toBe('ok');
      const steps = ws.runs.metrics(runId).map((m) => m.step);
      // Whole batches only: steps 1..500*N without gaps, N at least the last batch the child reported.
      expect(steps.length % 500).toBe(0);
      expect(steps.length).toBeGreaterThanOrEqual(reported * 500);
      expect(steps).toEqual(Array.from({ length: steps.length }, (_, i) => i + 1));

      // The run was left running: it is now interrupted, resuming from its newest checkpoint.
      const checkpoints = ws.runs.checkpoints(runId);
      expect(checkpoints.length).toBeGreaterThanOrEqual(Math.floor(reported / 2));
      expect(ws.recovery.interruptedRuns).toEqual([{ runId, checkpointId: checkpoints.at(-1)!.id }]);
      expect(ws.runs.get(runId)).toMatchObject({ status: 'interrupted', resumeCheckpointId: checkpoints.at(-1)!.id });
      const { checkpoint } = ws.runs.resume(runId);
      expect(ws.runs.metrics(runId).at(-1)!.step).toBe(checkpoint!.step);
      ws.close();
    });
  }
});
