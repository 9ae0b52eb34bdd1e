// A second process on a workspace, for test/workspace-owner.test.ts (bundled with esbuild, run by plain node).
// It reports on stdout with synchronous writes, one line per fact, so the test knows what had happened when it
// acts (or pulls the trigger).
//
//   own DIR              opens DIR (its owner), a run training in it (metrics every 10 ms, a folder), and a
//                        queued run it never starts; "owner B", "run ID", "queued ID"; at SIGTERM it closes
//                        and says "closed errors=N" (metric writes that failed)
//   crash DIR            opens DIR, a run training with a checkpoint; "run ID", then waits to be SIGKILLed
//   queue DIR            opens DIR, queues a run (no model: it fails once started), "owner B", "queued ID", exits
//   claim DIR            opens DIR, "owner B", and keeps it until SIGTERM
//   hammer DIR RUN N     N read-then-write transactions on RUN (its metrics), 1 ms apart; "errors=N" at the end
//   hold-write-lock DIR MS   holds the write lock for MS milliseconds: "locked", then "released"
//   cli ARGS...          the adapter-studio command line
//   train DIR HOST MODEL DATA RECIPE   the app service on DIR (engine host HOST) trains MODEL on the DATA file
//                        with RECIPE (JSON): "run ID", then "step N" for every step it records, until killed

import { mkdirSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { main, processIO } from '../../src-main/cli/main.js';
import { forkSpawner } from '../../src-main/host/engine-process.js';
import { createAppService } from '../../src-main/service/index.js';
import type { RunId } from '../../src-main/store/index.js';
import { DATABASE_FILE, openWorkspace } from '../../src-main/store/index.js';
import { configureConnection } from '../../src-main/store/workspace.js';

const say = (line: string) => writeSync(1, `${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const [mode, ...args] = process.argv.slice(2);
const [dir, ...rest] = args;

if (mode === 'own') {
  const ws = openWorkspace(dir!);
  say(`owner ${ws.isOwner}`);
  const run = ws.runs.create({ name: 'live', method: 'adapter', recipe: {}, backend: 'cpu' });
  ws.runs.start(run.id);
  mkdirSync(ws.runDir(run.id), { recursive: true });
  writeFileSync(join(ws.runDir(run.id), 'adapter_config.json'), '{}');
  say(`run ${run.id}`);
  const queued = ws.runs.create({ name: 'waiting', method: 'adapter', recipe: {}, backend: 'cpu' });
  say(`queued ${queued.id}`);
  let errors = 0;
  let stopping = false;
  process.on('SIGTERM', () => (stopping = true));
  for (let step = 1; !stopping; step++) {
    try {
      ws.runs.appendMetrics(run.id, [{ step, loss: 1 / step, lr: 1e-3, tokensPerSec: 100, memoryBytes: 1, elapsedMs: step * 10 }]);
    } catch (e) {
      errors++;
      say(`metric error ${(e as Error).message}`);
    }
    await sleep(10);
  }
  ws.close();
  say(`closed errors=${errors}`);
} else if (mode === 'crash') {
  const ws = openWorkspace(dir!);
  const run = ws.runs.create({ name: 'crashing', method: 'adapter', recipe: {}, backend: 'cpu' });
  ws.runs.start(run.id);
  ws.runs.appendMetrics(run.id, [{ step: 1, loss: 1 }, { step: 2, loss: 0.5 }]);
  ws.runs.addCheckpoint(run.id, { step: 2, path: `runs/${run.id}/checkpoints/step-2` });
  say(`run ${run.id}`);
  setInterval(() => undefined, 60_000);
} else if (mode === 'queue') {
  const ws = openWorkspace(dir!);
  say(`owner ${ws.isOwner}`);
  const run = ws.runs.create({ name: 'from another process', method: 'adapter', recipe: {}, backend: 'cpu' });
  say(`queued ${run.id}`);
  ws.close();
} else if (mode === 'claim') {
  const ws = openWorkspace(dir!);
  say(`owner ${ws.isOwner}`);
  setInterval(() => undefined, 60_000);
  process.on('SIGTERM', () => {
    ws.close();
    process.exit(0);
  });
} else if (mode === 'hammer') {
  const [runId, n] = rest;
  const ws = openWorkspace(dir!, { claimOwnership: false });
  let errors = 0;
  let first = '';
  for (let i = 0; i < Number(n); i++) {
    try {
      ws.runs.appendMetrics(runId as RunId, [{ step: process.pid * 10_000 + i, loss: 1 }]);
    } catch (e) {
      errors++;
      first ||= `${(e as Error).message} [${(e as { code?: string }).code} at ${i}]`;
    }
    // A pause between writes, as between training steps (a writer that never pauses starves the other one).
    await sleep(1);
  }
  ws.close();
  say(`errors=${errors}${first ? ` (${first})` : ''}`);
} else if (mode === 'hold-write-lock') {
  const db = new Database(join(dir!, DATABASE_FILE));
  configureConnection(db);
  db.exec('BEGIN IMMEDIATE');
  say('locked');
  await sleep(Number(rest[0]));
  db.exec('COMMIT');
  db.close();
  say('released');
} else if (mode === 'train') {
  const [hostEntry, modelDir, dataFile, recipe] = rest;
  const service = createAppService({ workspaceDir: dir!, spawnHost: forkSpawner(hostEntry!), transport: 'http', version: 'test', log: () => undefined, seedStarter: false });
  const call = async (method: string, input: unknown) => {
    const answer = await service.call(method as never, input as never);
    if (!answer.ok) throw new Error(`${method}: ${answer.error.message}`);
    return answer.value as { id: string; dataset?: { id: string } };
  };
  service.events.subscribe((e) => {
    if (e.type === 'run.metric') say(`step ${e.point.step}`);
  });
  const model = await call('models.add', { path: modelDir });
  const imported = await call('datasets.import', { source: { kind: 'path', path: dataFile }, options: {}, name: 'colors', onInvalid: 'reject' });
  const run = await call('runs.start', { modelId: model.id, datasetId: imported.dataset!.id, name: 'killed', recipe: JSON.parse(recipe!) });
  say(`run ${run.id}`);
  setInterval(() => undefined, 60_000);
} else if (mode === 'cli') {
  process.exitCode = await main(args, processIO);
} else {
  throw new Error(`unknown mode ${mode}`);
}
