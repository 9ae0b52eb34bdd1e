// A real app service on a temporary workspace: real SQLite, real engine processes (the bundled
// dist/engine-host.mjs, built here so the test runs what ships), a tiny model and a tiny dataset on disk.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiEvent, ApiInput, ApiMethod, ApiOutput } from '../../src-shared/api.js';
import { ApiError } from '../../src-shared/api.js';
import { forkSpawner } from '../../src-main/host/engine-process.js';
import { type AppService, createAppService } from '../../src-main/service/index.js';
import { COLOR_DATA } from './color-task.js';
import { writeTinyLlama } from './tiny-model.js';

const ROOT = join(import.meta.dirname, '..', '..');
export const HOST_ENTRY = join(ROOT, 'dist', 'engine-host.mjs');

let built = false;
/** Bundles the engine host (and whatever else is asked) once per test file. */
export function buildAppParts(parts = 'host'): void {
  if (built && parts === 'host') return;
  execFileSync(process.execPath, [join(ROOT, 'tools', 'build-app.mjs'), '--only', parts], { cwd: ROOT, stdio: 'inherit' });
  if (parts === 'host') built = true;
}

/** The tiny model the training tests use (learns the color task in ~100 steps at lr 0.3). */
export function writeTinyModel(dir: string): string {
  const model = join(dir, 'tiny-model');
  writeTinyLlama(model, { seed: 3, finalNormScale: 3 });
  return model;
}

/** The color task as an Alpaca JSON file. */
export function writeColorDataset(dir: string, name = 'colors.json'): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(COLOR_DATA, null, 2));
  return file;
}

/** Recipe overrides that train the tiny model quickly (see test/helpers/color-task.ts). */
export const FAST_RECIPE = { adapterLen: 10, adapterLayers: 2, epochs: 120, warmupEpochs: 1, lr: 0.3, batchSize: 3, accumSteps: 2, maxSeqLen: 256 } as const;

export interface AppFixture {
  service: AppService;
  events: ApiEvent[];
  /** Calls a method through the service's validating entry point; throws ApiError on an error answer. */
  call<M extends ApiMethod>(method: M, input: ApiInput<M>): Promise<ApiOutput<M>>;
  /** Resolves with the first matching event from event number `since` on (default: all, including past ones). */
  waitFor<T extends ApiEvent>(match: (e: ApiEvent) => e is T, opts?: { since?: number; timeoutMs?: number }): Promise<T>;
  waitFor(match: (e: ApiEvent) => boolean, opts?: { since?: number; timeoutMs?: number }): Promise<ApiEvent>;
  close(): Promise<void>;
}

export function startApp(workspaceDir: string, opts: { seedStarter?: boolean } = {}): AppFixture {
  const service = createAppService({ workspaceDir, spawnHost: forkSpawner(HOST_ENTRY), transport: 'http', version: 'test', log: process.env.DEBUG_APP_LOG ? (m) => console.log('LOG', m) : () => undefined, seedStarter: opts.seedStarter });
  const events: ApiEvent[] = [];
  const waiters: { match: (e: ApiEvent) => boolean; resolve: (e: ApiEvent) => void }[] = [];
  service.events.subscribe((e) => {
    events.push(e);
    if (process.env.DEBUG_APP_EVENTS && e.type !== 'stream.delta') console.log(JSON.stringify(e).slice(0, 300));
    for (const w of [...waiters]) {
      if (w.match(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  const call = async <M extends ApiMethod>(method: M, input: ApiInput<M>): Promise<ApiOutput<M>> => {
    const answer = await service.call(method, input);
    if (!answer.ok) throw new ApiError(answer.error);
    return answer.value as ApiOutput<M>;
  };
  const fixture: AppFixture = {
    service,
    events,
    call,
    waitFor: ((match: (e: ApiEvent) => boolean, { since = 0, timeoutMs = 90_000 } = {}) => {
      const seen = events.slice(since).find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise<ApiEvent>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timed out waiting for an event')), timeoutMs);
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    }) as AppFixture['waitFor'],
    close: () => service.close(),
  };
  return fixture;
}
