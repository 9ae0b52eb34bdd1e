// The workspace store on real SQLite files: opening, migrations, runs and their recovery, and the smaller
// stores (models, evaluations, comparisons, chats, settings).

import Database from 'better-sqlite3';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DATABASE_FILE,
  MIGRATIONS,
  migrate,
  openWorkspace,
  SCHEMA_VERSION,
  StoreError,
  type DatasetId,
  type RunId,
} from '../src-main/store/index.js';
import { configureConnection } from '../src-main/store/workspace.js';
import { tempWorkspace } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

describe('opening a workspace', () => {
  it('creates the database with WAL, foreign keys and the latest schema', () => {
    const { ws, dir } = tempWorkspace('open');
    expect(existsSync(join(dir, DATABASE_FILE))).toBe(true);
    expect(ws.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(ws.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(ws.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(ws.recovery.migrated).toEqual(MIGRATIONS.map((m) => m.version));
    ws.close();
    const again = openWorkspace(dir);
    expect(again.recovery.migrated).toEqual([]);
    again.close();
  });

  it('migrates a database written by schema version 1, keeping its data and indexing it for search', () => {
    const dir = makeTempDir('store-migrate');
    // Build a v1 database the way an older build would have: only the first migration, then data.
    const old = new Database(join(dir, DATABASE_FILE));
    configureConnection(old);
    expect(migrate(old, 'old', 1)).toEqual([1]);
    expect(old.pragma('user_version', { simple: true })).toBe(1);
    old.prepare(`INSERT INTO datasets (id, name, version, created_at, updated_at) VALUES ('ds_old', 'legacy', 1, 0, 0)`).run();
    old.prepare(`INSERT INTO dataset_versions (dataset_id, version, kind, summary, created_at) VALUES ('ds_old', 1, 'import', 'old import', 0)`).run();
    const insert = old.prepare(
      `INSERT INTO examples (dataset_id, instruction, input, output, content_hash, created_version, updated_version) VALUES ('ds_old', ?, '', ?, 'x', 1, 1)`,
    );
    insert.run('Name a colour of the sky', 'Blue');
    insert.run('Name a fruit', 'Apple');
    old.prepare(`INSERT INTO runs (id, name, method, recipe, backend, status, created_at, updated_at) VALUES ('run_old', 'r', 'adapter', '{}', 'cpu', 'running', 0, 0)`).run();
    // Tables from later migrations do not exist yet.
    expect(() => old.prepare('SELECT * FROM chats').all()).toThrow(/no such table/);
    old.close();

    const ws = openWorkspace(dir);
    expect(ws.recovery.migrated).toEqual([2, 3, 4, 5, 6, 7]);
    expect(ws.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    const page = ws.datasets.query('ds_old' as DatasetId, { search: 'sky' });
    expect(page.items.map((e) => e.output)).toEqual(['Blue']);
    expect(ws.chats.list()).toEqual([]);
    // The old database's crashed run is recovered like any other.
    expect(ws.runs.get('run_old' as RunId).status).toBe('interrupted');
    expect(ws.db.pragma('integrity_check', { simple: true })).toBe('ok');
    ws.close();
  });

  it('refuses a workspace from a newer schema version, and files that are not workspaces', () => {
    const dir = makeTempDir('store-newer');
    const db = new Database(join(dir, DATABASE_FILE));
    configureConnection(db);
    migrate(db);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openWorkspace(dir)).toThrow(new RegExp(`schema version ${SCHEMA_VERSION + 1} is newer than this build`));

    const other = makeTempDir('store-foreign');
    const foreign = new Database(join(other, DATABASE_FILE));
    foreign.exec('CREATE TABLE notes (body TEXT)');
    foreign.close();
    expect(() => openWorkspace(other)).toThrow(/not an Adapter Studio workspace/);

    const text = makeTempDir('store-text');
    writeFileSync(join(text, DATABASE_FILE), 'hello, I am a text file');
    expect(() => openWorkspace(text)).toThrow(/not a SQLite database/);
  });

  it('a failing migration leaves the previous version intact', () => {
    const dir = makeTempDir('store-badmig');
    const db = new Database(join(dir, DATABASE_FILE));
    configureConnection(db);
    migrate(db, 'db', 1);
    const broken = [...MIGRATIONS.slice(0, 1), { version: 2, description: 'broken', sql: 'CREATE TABLE ok_so_far (x); SELECT nonsense FROM nowhere;' }];
    expect(() => migrate(db, 'db', 2, broken)).toThrow(/no such table/);
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    expect(db.prepare(`SELECT count(*) AS n FROM sqlite_schema WHERE name = 'ok_so_far'`).get()).toEqual({ n: 0 });
    db.close();
  });
});

describe('runs', () => {
  function setup() {
    const { ws, dir } = tempWorkspace('runs');
    const ds = ws.datasets.create('d');
    const model = ws.models.register({ name: 'tiny', path: join(dir, 'models', 'tiny'), fingerprint: 'abc', config: { layers: 2 } });
    const run = ws.runs.create({ method: 'adapter', recipe: { lr: 0.009, epochs: 5 }, datasetId: ds.id, datasetVersion: 1, modelId: model.id, backend: 'cpu' });
    return { ws, dir, ds, model, run };
  }

  it('moves through the allowed statuses only, with timings and errors', () => {
    const { ws, run } = setup();
    expect(run.status).toBe('queued');
    expect(run.recipe).toEqual({ lr: 0.009, epochs: 5 });
    expect(() => ws.runs.setStatus(run.id, 'completed')).toThrow(/queued; it cannot become completed/);
    const started = ws.runs.start(run.id);
    expect(started.startedAt).not.toBeNull();
    ws.runs.setStatus(run.id, 'paused');
    ws.runs.resume(run.id);
    const failed = ws.runs.setStatus(run.id, 'failed', { error: 'loss became NaN at step 12' });
    expect(failed).toMatchObject({ status: 'failed', error: 'loss became NaN at step 12' });
    expect(failed.finishedAt).not.toBeNull();
    expect(() => ws.runs.start(run.id)).toThrow(StoreError);
    ws.close();
  });

  it('records metrics per step and checkpoints, and refuses non-finite values', () => {
    const { ws, dir, run } = setup();
    ws.runs.start(run.id);
    ws.runs.appendMetrics(run.id, [
      { step: 1, loss: 2.5, lr: 1e-3, tokensPerSec: 120, memoryBytes: 1 << 20 },
      { step: 2, loss: 2.25, lr: 1e-3, tokensPerSec: 125 },
    ]);
    expect(() => ws.runs.appendMetrics(run.id, [{ step: 3, loss: NaN }])).toThrow(/loss at step 3 must be a finite number/);
    expect(ws.runs.metrics(run.id).map((m) => [m.step, m.loss])).toEqual([
      [1, 2.5],
      [2, 2.25],
    ]);
    expect(ws.runs.metrics(run.id, 1).map((m) => m.step)).toEqual([2]);
    const ckpt = ws.runs.addCheckpoint(run.id, { step: 2, path: join(ws.runDir(run.id), 'step-2') });
    expect(ckpt.path).toBe(join(dir, 'runs', run.id, 'step-2'));
    // Stored relative to the workspace, so the folder can move.
    expect(ws.db.prepare('SELECT path FROM checkpoints').get()).toEqual({ path: `runs/${run.id}/step-2` });
    expect(() => ws.runs.addCheckpoint(run.id, { step: 2, path: 'x' })).toThrow(/already has a checkpoint at step 2/);
    ws.close();
  });

  it('marks runs left running as interrupted at the next open, ready to resume from the last checkpoint', () => {
    const { ws, dir, run } = setup();
    const other = ws.runs.create({ method: 'full', recipe: {}, backend: 'cpu' });
    ws.runs.start(run.id);
    ws.runs.appendMetrics(run.id, [1, 2, 3, 4, 5].map((step) => ({ step, loss: 3 - step / 10 })));
    ws.runs.addCheckpoint(run.id, { step: 2, path: 'runs/a/2' });
    const last = ws.runs.addCheckpoint(run.id, { step: 4, path: 'runs/a/4' });
    ws.close(); // the process "dies" with the run still running

    const reopened = openWorkspace(dir);
    expect(reopened.recovery.interruptedRuns).toEqual([{ runId: run.id, checkpointId: last.id }]);
    const recovered = reopened.runs.get(run.id);
    expect(recovered).toMatchObject({ status: 'interrupted', resumeCheckpointId: last.id });
    expect(reopened.runs.get(other.id).status).toBe('queued');

    const { run: resumed, checkpoint } = reopened.runs.resume(run.id);
    expect(resumed.status).toBe('running');
    expect(checkpoint?.step).toBe(4);
    // Step 5 will be trained again from the step-4 checkpoint.
    expect(reopened.runs.metrics(run.id).map((m) => m.step)).toEqual([1, 2, 3, 4]);
    reopened.close();
  });

  it('keeps datasets and models that runs use', () => {
    const { ws, ds, model } = setup();
    expect(() => ws.datasets.delete(ds.id)).toThrow(/used by 1 run/);
    expect(() => ws.models.remove(model.id)).toThrow(/used by 1 run/);
    expect(() => ws.runs.create({ method: 'adapter', recipe: {}, backend: 'cpu', datasetId: 'ds_missing' as DatasetId })).toThrow(/does not exist/);
    expect(() => ws.runs.create({ method: 'adapter', recipe: {}, backend: 'cpu', datasetId: ds.id, datasetVersion: 7 })).toThrow(/version 7 of dataset .* does not exist/);
    ws.close();
  });
});

describe('models, evaluations, comparisons, chats, settings', () => {
  it('registers a model once per path and refreshes it', () => {
    const { ws } = tempWorkspace('models');
    const a = ws.models.register({ name: 'llama', path: '/models/llama', fingerprint: 'f1', config: { dim: 64 } });
    const b = ws.models.register({ name: 'llama-7b', path: '/models/llama', fingerprint: 'f2' });
    expect(b.id).toBe(a.id);
    expect(ws.models.list()).toHaveLength(1);
    expect(ws.models.get(a.id)).toMatchObject({ name: 'llama-7b', fingerprint: 'f2', path: '/models/llama' });
    ws.close();
  });

  it('stores an evaluation with its per-example outputs', () => {
    const { ws } = tempWorkspace('evals');
    const e = ws.evaluations.create({ name: 'val set', split: 'val', config: { temperature: 0 } });
    ws.evaluations.addOutputs(e.id, [
      { exampleId: null, prompt: 'p1', reference: 'r1', output: 'o1', scores: { rougeL: 0.5 } },
      { exampleId: null, prompt: 'p2', reference: null, output: 'o2', scores: {} },
    ]);
    ws.evaluations.addOutputs(e.id, [{ exampleId: null, prompt: 'p3', reference: 'r3', output: 'o3', scores: {} }]);
    const done = ws.evaluations.finish(e.id, { status: 'completed', metrics: { rougeL: 0.42 } });
    expect(done).toMatchObject({ status: 'completed', metrics: { rougeL: 0.42 }, outputs: 3 });
    expect(ws.evaluations.outputs(e.id).map((o) => [o.position, o.prompt])).toEqual([
      [0, 'p1'],
      [1, 'p2'],
      [2, 'p3'],
    ]);
    expect(() => ws.evaluations.addOutputs(e.id, [{ exampleId: null, prompt: 'late', reference: null, output: '', scores: {} }])).toThrow(/finished/);
    ws.close();
  });

  it('keeps comparison ratings and their tally', () => {
    const { ws } = tempWorkspace('cmp');
    const c = ws.comparisons.create('adapter vs full', { label: 'LLaMA-Adapter' }, { label: 'Alpaca full' });
    const items = ['a', 'b', 'c'].map((p) => ws.comparisons.addItem(c.id, { prompt: p, leftOutput: `L${p}`, rightOutput: `R${p}` }));
    ws.comparisons.rate(items[0]!.id, 'left');
    ws.comparisons.rate(items[1]!.id, 'tie', 'both fine');
    expect(() => ws.comparisons.rate(items[2]!.id, 'middle' as never)).toThrow(/rating must be one of/);
    expect(ws.comparisons.get(c.id).tally).toEqual({ left: 1, right: 0, tie: 1, both_bad: 0, unrated: 1 });
    expect(ws.comparisons.item(items[1]!.id)).toMatchObject({ rating: 'tie', note: 'both fine' });
    ws.close();
  });

  it('keeps chats and messages in order, and truncates for regeneration', () => {
    const { ws } = tempWorkspace('chat');
    const chat = ws.chats.create({ title: 'hello', settings: { temperature: 0.7 } });
    const m1 = ws.chats.addMessage(chat.id, { role: 'user', content: 'Hi' });
    const m2 = ws.chats.addMessage(chat.id, { role: 'assistant', content: 'Hello!', meta: { tokensPerSec: 12 } });
    ws.chats.addMessage(chat.id, { role: 'user', content: 'Again' });
    expect(ws.chats.get(chat.id).messages).toBe(3);
    ws.chats.truncateFrom(chat.id, m2.id);
    expect(ws.chats.messages(chat.id).map((m) => m.id)).toEqual([m1.id]);
    expect(() => ws.chats.addMessage(chat.id, { role: 'robot' as never, content: 'x' })).toThrow(/role must be one of/);
    ws.chats.delete(chat.id);
    expect(ws.db.prepare('SELECT count(*) AS n FROM messages').get()).toEqual({ n: 0 });
    ws.close();
  });

  it('stores settings as JSON values', () => {
    const { ws, dir } = tempWorkspace('settings');
    ws.settings.set('generator', { baseUrl: 'http://127.0.0.1:8080', model: 'm' });
    ws.settings.set('maxSeqLen', 512);
    ws.settings.set('empty', null);
    ws.close();
    const again = openWorkspace(dir);
    expect(again.settings.get('generator')).toEqual({ baseUrl: 'http://127.0.0.1:8080', model: 'm' });
    expect(again.settings.get('maxSeqLen')).toBe(512);
    expect(again.settings.get('empty', 'fallback')).toBeNull();
    expect(again.settings.get('missing', 'fallback')).toBe('fallback');
    again.close();
  });
});
