// Two processes on one workspace (issue 20), with real processes and real SQLite files: only the owner
// (owner.lock) trains and recovers runs; a second process reads, queues runs for the owner and refuses to
// touch a run that trains in the owner, naming it; a stale lock is taken over; concurrent writers wait for
// each other; a failed write about a run is recorded on it and never crashes the process.

import { existsSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Child, startChild as startChildProcess } from './helpers/child-lines.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ApiEventOf, RunSummary } from '../src-shared/api.js';
import { ApiError } from '../src-shared/api.js';
import { forkSpawner } from '../src-main/host/engine-process.js';
import { QUEUE_POLL_MS } from '../src-main/host/run-queue.js';
import { createAppService } from '../src-main/service/index.js';
import { DATABASE_FILE, openWorkspace, type RunId } from '../src-main/store/index.js';
import { type AppFixture, buildAppParts, FAST_RECIPE, HOST_ENTRY, startApp, writeColorDataset, writeTinyModel } from './helpers/app-fixture.js';
import { bundleChild } from './helpers/bundle-child.js';
import { makeTempDir } from './helpers/tmp.js';

/** The owner lock in the workspace folder (src-main/store/owner-lock.ts). */
const OWNER_LOCK_FILE = 'owner.lock';
let childFile = '';

beforeAll(async () => {
  buildAppParts('host');
  childFile = await bundleChild(join(import.meta.dirname, 'helpers', 'workspace-owner-child.ts'), 'workspace-owner-child');
});

afterAll(() => rmSync(childFile, { force: true }));

function startChild(args: string[]): Child {
  return startChildProcess(childFile, args, { OPENBLAS_NUM_THREADS: '1' });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | null | undefined | false | Promise<T | null | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function readLock(dir: string): { pid: number; hostname: string; token: string; heartbeatAt: number } {
  return JSON.parse(readFileSync(join(dir, OWNER_LOCK_FILE), 'utf8'));
}

/** A service on `dir` as serve mode makes one (engine processes from the bundle). */
function service(dir: string) {
  const logged: string[] = [];
  const events: ApiEvent[] = [];
  const s = createAppService({ workspaceDir: dir, spawnHost: forkSpawner(HOST_ENTRY), transport: 'http', version: 'test', log: (m) => logged.push(m) });
  s.events.subscribe((e) => events.push(e));
  const call = async <T,>(method: string, input: unknown): Promise<T> => {
    const answer = await s.call(method, input);
    if (!answer.ok) throw new ApiError(answer.error);
    return answer.value as T;
  };
  return { s, call, logged, events };
}

/** A run's summary as runs.list gives it (runs.get would parse the recipe, which these test runs lack). */
async function summaryOf(call: ReturnType<typeof service>['call'], runId: string): Promise<RunSummary> {
  return (await call<RunSummary[]>('runs.list', {})).find((r) => r.id === runId)!;
}

const refusal = (p: Promise<unknown>) => p.then(() => null, (e: ApiError) => e);

describe('a second process on a workspace that another process owns', () => {
  it('does not interrupt, start, pause, cancel or delete the runs of the owner; it names the owner and takes over when it exits', async () => {
    const dir = makeTempDir('owner-live');
    const owner = startChild(['own', dir]);
    expect(await owner.waitFor(/^owner /)).toBe('owner true');
    const live = (await owner.waitFor(/^run /)).slice(4);
    const waiting = (await owner.waitFor(/^queued /)).slice(7);

    const second = service(dir);
    try {
      const info = await second.call<{ owner: { self: boolean; pid: number; hostname: string; description: string }; recovered: { interruptedRuns: string[] }; engine: { training: string | null } }>('system.info', {});
      expect(info.owner).toMatchObject({ self: false, pid: owner.pid, hostname: hostname() });
      expect(info.owner.description).toContain(`process ${owner.pid} on ${hostname()}`);
      // The live run is not taken for one that lost its process.
      expect(info.recovered.interruptedRuns).toEqual([]);
      expect((await summaryOf(second.call, live)).status).toBe('running');

      const removal = await refusal(second.call('runs.remove', { runId: live }));
      expect(removal?.code).toBe('conflict');
      expect(removal?.message).toMatch(new RegExp(`run "live" is training in process ${owner.pid} on ${hostname()}.*cancel it there`));
      expect(existsSync(join(dir, 'runs', live, 'adapter_config.json'))).toBe(true);
      for (const method of ['runs.pause', 'runs.cancel']) {
        const refused = await refusal(second.call(method, { runId: live }));
        expect(refused?.code, method).toBe('conflict');
        expect(refused?.message, method).toContain(`training in process ${owner.pid} on ${hostname()}`);
      }

      // No second queue: the queued run waits for the owner (which, here, never starts it).
      await sleep(2 * QUEUE_POLL_MS + 500);
      expect((await summaryOf(second.call, waiting)).status).toBe('queued');
      expect((await second.call<typeof info>('system.info', {})).engine.training).toBeNull();
      // The owner's steps reach this process's events, read off the database.
      expect(second.events.some((e) => e.type === 'run.metric' && e.runId === live)).toBe(true);
      expect((await summaryOf(second.call, live)).status).toBe('running');

      owner.proc.kill('SIGTERM');
      const ended = await owner.exited;
      // Every metric write of the owner went through while this process read and polled.
      expect(ended.stdout).toContain('closed errors=0');
      expect(existsSync(join(dir, OWNER_LOCK_FILE))).toBe(false);

      // The owner is gone: this process takes over, recovers the run it left running and starts the queued one.
      await until('the takeover', async () => (await second.call<typeof info>('system.info', {})).owner?.self);
      expect(readLock(dir).pid).toBe(process.pid);
      expect((await summaryOf(second.call, live)).status).toBe('interrupted');
      const started = await until('the queued run to start', async () => {
        const run = await summaryOf(second.call, waiting);
        return run.status !== 'queued' && run;
      });
      expect(started).toMatchObject({ status: 'failed', error: expect.stringMatching(/has no model or dataset/) });
    } finally {
      owner.proc.kill('SIGKILL');
      await second.s.close();
    }
    expect(existsSync(join(dir, OWNER_LOCK_FILE))).toBe(false);
  });

  it('queues a run that the owner picks up and trains: adapter-studio train --workspace beside the app', async () => {
    const dir = makeTempDir('owner-cli');
    const wsDir = join(dir, 'workspace');
    const app = startApp(wsDir);
    try {
      await app.call('models.add', { path: writeTinyModel(dir), name: 'tiny' });
      await app.call('datasets.import', { source: { kind: 'path', path: writeColorDataset(dir) }, name: 'colors' });
      const cli = startChild(['cli', 'train', '--workspace', wsDir, '--model', 'tiny', '--dataset', 'colors', '--name', 'from the cli', '--adapter-len', '10', '--adapter-layers', '2', '--lr', '0.3', '--epochs', '12', '--warmup-epochs', '1', '--batch-size', '3', '--accum-steps', '2', '--max-seq-len', '256', '--json']);
      const ended = await cli.exited;
      expect(ended.stderr).toContain('queued run "from the cli"');
      expect(ended.stderr).toMatch(new RegExp(`it trains in process ${process.pid} on ${hostname()} \\(since .*\\), which owns this workspace`));
      expect(ended.code, ended.stderr).toBe(0);
      const out = ended.stdout.trim().split('\n');
      const result = JSON.parse(out.at(-1)!);
      expect(result).toMatchObject({ name: 'from the cli', status: 'completed' });
      // The CLI followed every step, read off the database.
      expect(out.slice(0, -1).map((l) => JSON.parse(l).step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      // ... and the app trained it: its own queue, its own engine process.
      const steps = app.events.filter((e): e is ApiEventOf<'run.metric'> => e.type === 'run.metric' && e.runId === result.runId);
      expect(steps.map((e) => e.point.step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(existsSync(join(wsDir, 'runs', result.runId, 'adapter_model.safetensors'))).toBe(true);
    } finally {
      await app.close();
    }
  });
});

describe('the owner lock', () => {
  it('is taken over from a process that died, whose running runs become interrupted', async () => {
    const dir = makeTempDir('owner-stale');
    const crashed = startChild(['crash', dir]);
    const runId = (await crashed.waitFor(/^run /)).slice(4) as RunId;
    expect(readLock(dir)).toMatchObject({ pid: crashed.pid, hostname: hostname() });
    crashed.proc.kill('SIGKILL');
    await crashed.exited;
    expect(readLock(dir).pid).toBe(crashed.pid); // a killed process leaves its lock behind

    const ws = openWorkspace(dir);
    try {
      expect(ws.isOwner).toBe(true);
      expect(readLock(dir)).toMatchObject({ pid: process.pid, hostname: hostname() });
      const checkpoint = ws.runs.checkpoints(runId).at(-1)!;
      expect(ws.recovery.interruptedRuns).toEqual([{ runId, checkpointId: checkpoint.id }]);
      expect(ws.runs.get(runId)).toMatchObject({ status: 'interrupted', resumeCheckpointId: checkpoint.id });
      // No takeover marker or private file is left beside it.
      expect(readdirSync(dir).filter((f) => f.startsWith(OWNER_LOCK_FILE))).toEqual([OWNER_LOCK_FILE]);
    } finally {
      ws.close();
    }
    expect(existsSync(join(dir, OWNER_LOCK_FILE))).toBe(false);
  });

  /** A workspace with a run left `running` and `lock` written as its owner.lock. */
  function workspaceLockedBy(lock: string | object): { dir: string; runId: RunId } {
    const dir = makeTempDir('owner-lockfile');
    const ws = openWorkspace(dir);
    const run = ws.runs.create({ method: 'adapter', recipe: {}, backend: 'cpu' });
    ws.runs.start(run.id);
    ws.close();
    writeFileSync(join(dir, OWNER_LOCK_FILE), typeof lock === 'string' ? lock : JSON.stringify(lock));
    // Written a while ago (an unreadable lock that is seconds old may be one that is still being written).
    utimesSync(join(dir, OWNER_LOCK_FILE), new Date(now - 10_000), new Date(now - 10_000));
    return { dir, runId: run.id };
  }
  const now = Date.now();

  it('held by another host with a fresh heartbeat: the workspace opens as a reader and the run stays running', () => {
    const { dir, runId } = workspaceLockedBy({ pid: 4242, hostname: 'elsewhere.example', startedAt: now - 60_000, heartbeatAt: now - 2_000, token: 'a' });
    const ws = openWorkspace(dir);
    try {
      expect(ws.isOwner).toBe(false);
      expect(ws.owner()).toMatchObject({ pid: 4242, hostname: 'elsewhere.example' });
      expect(ws.recovery.interruptedRuns).toEqual([]);
      expect(ws.runs.get(runId).status).toBe('running');
    } finally {
      ws.close();
    }
    // A reader leaves the owner's lock alone.
    expect(readLock(dir)).toMatchObject({ pid: 4242, hostname: 'elsewhere.example' });
  });

  for (const [what, lock] of [
    ['another host whose heartbeat stopped a minute ago', { pid: 4242, hostname: 'elsewhere.example', startedAt: now - 120_000, heartbeatAt: now - 60_000, token: 'b' }],
    ['this host and pid but a token this process never held (a restarted container)', { pid: process.pid, hostname: hostname(), startedAt: now - 1_000, heartbeatAt: now - 1_000, token: 'c' }],
    ['this host, a process that started before the machine booted', { pid: 1, hostname: hostname(), startedAt: 1_000, heartbeatAt: 1_000, token: 'd' }],
    ['a file that is not a lock we wrote', 'not json'],
  ] as const) {
    it(`is stale when held by ${what}: taken over, the run interrupted`, () => {
      const { dir, runId } = workspaceLockedBy(lock);
      const ws = openWorkspace(dir);
      try {
        expect(ws.isOwner).toBe(true);
        expect(readLock(dir)).toMatchObject({ pid: process.pid, hostname: hostname() });
        expect(ws.recovery.interruptedRuns.map((r) => r.runId)).toEqual([runId]);
        expect(ws.runs.get(runId).status).toBe('interrupted');
      } finally {
        ws.close();
      }
    });
  }

  it('is taken over by exactly one of several processes that find it stale at once', async () => {
    const { dir } = workspaceLockedBy({ pid: 4242, hostname: 'elsewhere.example', startedAt: 0, heartbeatAt: 0, token: 'gone' });
    const contenders = Array.from({ length: 4 }, () => startChild(['claim', dir]));
    const owners = await Promise.all(contenders.map((c) => c.waitFor(/^owner /)));
    for (const c of contenders) c.proc.kill('SIGTERM');
    await Promise.all(contenders.map((c) => c.exited));
    expect(owners.filter((l) => l === 'owner true')).toHaveLength(1);
    expect(existsSync(join(dir, OWNER_LOCK_FILE))).toBe(false);
  });
});

describe('concurrent writers', () => {
  it('wait for each other instead of failing with "database is locked"', async () => {
    const dir = makeTempDir('owner-writers');
    const ws = openWorkspace(dir);
    const run = ws.runs.create({ method: 'adapter', recipe: {}, backend: 'cpu' });
    ws.close();
    const writers = [startChild(['hammer', dir, run.id, '400']), startChild(['hammer', dir, run.id, '400'])];
    const results = await Promise.all(writers.map((w) => w.exited));
    for (const r of results) expect(r.stdout.trim(), r.stderr).toBe('errors=0');
    const check = openWorkspace(dir, { claimOwnership: false });
    expect(check.runs.metrics(run.id)).toHaveLength(800);
    check.close();
  });
});

describe('a write about a training run that fails', () => {
  let app: AppFixture;
  let dir: string;
  let wsDir: string;
  let modelId: string;
  let datasetId: string;
  beforeAll(async () => {
    dir = makeTempDir('owner-recording');
    wsDir = join(dir, 'workspace');
    app = startApp(wsDir);
    modelId = (await app.call('models.add', { path: writeTinyModel(dir), name: 'tiny' })).id;
    datasetId = (await app.call('datasets.import', { source: { kind: 'path', path: writeColorDataset(dir) }, name: 'colors' })).dataset.id;
  });
  afterAll(async () => {
    await app?.close();
  });

  const runIs = (runId: string, status: RunSummary['status']) => (e: ApiEvent): e is ApiEventOf<'run.updated'> => e.type === 'run.updated' && e.run.id === runId && e.run.status === status;

  it('(the database locked longer than busy_timeout) is logged on the run; training goes on', async () => {
    const run = await app.call('runs.start', { modelId, datasetId, name: 'locked out', recipe: { ...FAST_RECIPE, epochs: 100_000, lr: 0.01 } });
    await app.waitFor((e) => e.type === 'run.metric' && e.runId === run.id && e.point.step >= 2);
    const holder = startChild(['hold-write-lock', wsDir, '6500']);
    await holder.waitFor(/^locked$/);
    const logged = await app.waitFor((e): e is ApiEventOf<'run.log'> => e.type === 'run.log' && e.runId === run.id && e.level === 'error', { timeoutMs: 30_000 });
    expect(logged.message).toMatch(/recording the step event failed: database is locked/);
    await holder.waitFor(/^released$/);
    // Steps are recorded again once the lock is gone.
    const since = app.events.length;
    await app.waitFor((e) => e.type === 'run.metric' && e.runId === run.id, { since });
    const before = (await app.call('runs.metrics', { runId: run.id })).length;
    await until('more metrics', async () => (await app.call('runs.metrics', { runId: run.id })).length > before);
    expect((await app.call('runs.get', { runId: run.id })).error).toMatch(/database is locked/);
    await app.call('runs.cancel', { runId: run.id });
    await app.waitFor(runIs(run.id, 'cancelled'));
  });

  it('(the run changed under it, as a second process used to) is logged on the run; the app keeps working', async () => {
    const run = await app.call('runs.start', { modelId, datasetId, name: 'changed under it', recipe: { ...FAST_RECIPE, epochs: 100_000, lr: 0.01 } });
    await app.waitFor((e) => e.type === 'run.metric' && e.runId === run.id && e.point.step >= 2);
    // What the second process did before the owner lock: mark the live run interrupted behind the owner's back.
    const other = new Database(join(wsDir, DATABASE_FILE));
    other.pragma('busy_timeout = 5000');
    other.prepare(`UPDATE runs SET status = 'interrupted' WHERE id = ?`).run(run.id);
    other.close();
    await app.call('runs.pause', { runId: run.id });
    const logged = await app.waitFor((e): e is ApiEventOf<'run.log'> => e.type === 'run.log' && e.runId === run.id && /how the run ended/.test(e.message), { timeoutMs: 30_000 });
    expect(logged.message).toMatch(/recording how the run ended failed: run \S+ is interrupted; it cannot become paused/);
    expect((await app.call('runs.get', { runId: run.id })).error).toMatch(/cannot become paused/);
    // The queue goes on: the next run trains.
    const next = await app.call('runs.start', { modelId, datasetId, name: 'after', recipe: { ...FAST_RECIPE, epochs: 3 } });
    await app.waitFor(runIs(next.id, 'completed'));
  });
});
