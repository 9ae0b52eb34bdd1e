// The API implementation both transports share: Electron IPC (src-main/electron/main.ts) and HTTP
// (src-main/server/). A transport hands `call` a method name and the raw request; `call` validates it against
// the contract, runs the handler and answers with the contract's envelope, never a raw exception.

import { join, resolve } from 'node:path';
import {
  API_METHODS,
  type ApiHandlers,
  type ApiMethod,
  type ApiResponse,
  checkResponse,
  isApiMethod,
  parseRequest,
  Settings,
  SettingsPatch,
  type SystemInfo,
  type UploadResult,
} from '../../src-shared/api.js';
import { Engines } from '../host/engines.js';
import type { HostSpawner } from '../host/engine-process.js';
import { QUEUE_POLL_MS, RunQueue } from '../host/run-queue.js';
import { GENERATOR_ENDPOINT_SETTING } from '../datasets/index.js';
import { describeOwner, openWorkspace, type Workspace } from '../store/index.js';
import { chatHandlers } from './chats.js';
import { imageHandlers } from './images.js';
import { compareHandlers } from './compare.js';
import { type CompletionService, completionService } from './completions.js';
import { evalSuites } from './evals.js';
import { sweeps as sweepService } from './sweeps.js';
import { runningTaskCount } from './tasks.js';
import { jobImportHandlers } from './job-import.js';
import type { ServiceContext } from './context.js';
import { datasetHandlers } from './datasets.js';
import { DEFAULT_MAX_UPLOAD_BYTES, receiveUpload, sweepUploads, UploadTooLargeError } from './uploads.js';
import { anyPath, type PathPolicy, requestPaths } from './path-policy.js';
import { toErrorBody, userError } from './errors.js';
import { EventHub } from './events.js';
import { modelHandlers } from './models.js';
import { OtherProcessRuns } from './run-watch.js';
import { RunViews, runHandlers, trainingJobFor } from './runs.js';
import { Streams } from './streams.js';
import { STARTER, starterPath } from '../engine/starter.js';
import { importDataset } from '../datasets/index.js';

export interface AppServiceOptions {
  workspaceDir: string;
  /** How engine processes start: forkSpawner(entry) in serve mode, a utilityProcess spawner in Electron. */
  spawnHost: HostSpawner;
  transport: 'ipc' | 'http' | 'cli';
  version: string;
  /** Remember a workspace the user switched to (Electron keeps it in its user-data folder). */
  rememberWorkspace?: (dir: string) => void;
  log?: (message: string) => void;
  /** Put the bundled starter model and demo dataset into a workspace that has neither (first start). */
  seedStarter?: boolean;
  /**
   * Train runs (default true): own the workspace when no other live process does, start the runs left queued
   * by an earlier session and those queued by other processes. False (a CLI command that only evaluates): a
   * reader that never owns the workspace, so it never keeps the app from training.
   */
  startQueue?: boolean;
  /** Largest file `upload` takes (default DEFAULT_MAX_UPLOAD_BYTES). */
  maxUploadBytes?: number;
  /** Which paths requests may name (default: any; `serve --allow-remote` and Electron restrict them). */
  pathPolicy?: PathPolicy;
}

const SETTINGS_KEY = 'app.settings';
const DEFAULT_SETTINGS = { backend: 'auto', threads: 0, theme: 'system', openai: { url: '', model: '', apiKey: '' } } as const;

export interface AppService {
  readonly events: EventHub;
  /** Validates, runs and answers one request. Never throws. */
  call(method: string, input: unknown): Promise<ApiResponse<unknown>>;
  readonly handlers: ApiHandlers;
  /** Generation for serve mode's OpenAI-compatible API (src-main/server/openai-routes.ts). */
  readonly completions: CompletionService;
  /**
   * Receives a file the UI sends (an HTTP PUT body, bytes over IPC), streamed into the workspace's uploads/;
   * API calls then name it by the id answered. Never throws; over `maxUploadBytes` answers `too_large`.
   */
  upload(fileName: string, body: AsyncIterable<Uint8Array> | NodeJS.ReadableStream): Promise<ApiResponse<UploadResult>>;
  readonly maxUploadBytes: number;
  /** Which paths requests may name; Electron allows each path the user picks in a dialog. */
  readonly paths: PathPolicy;
  /** Stops the queue (checkpointing a training run), the engine processes, and closes the workspace. */
  close(): Promise<void>;
}

export function createAppService(opts: AppServiceOptions): AppService {
  const log = opts.log ?? ((m: string) => console.error(m));
  const trains = opts.startQueue !== false;
  const maxUploadBytes = opts.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  const paths = opts.pathPolicy ?? anyPath();
  let ws: Workspace = openWorkspace(opts.workspaceDir, { claimOwnership: trains });
  const events = new EventHub();
  const streams = new Streams(events);

  // The generator endpoint lives under the key the self-instruct pipeline reads (src-main/datasets).
  const readSettings = (): Settings => {
    const endpoint = ws.settings.get<{ baseUrl?: string; model?: string; apiKey?: string }>(GENERATOR_ENDPOINT_SETTING) ?? {};
    return Settings.parse({
      ...DEFAULT_SETTINGS,
      ...(ws.settings.get<Record<string, unknown>>(SETTINGS_KEY) ?? {}),
      openai: { url: endpoint.baseUrl ?? '', model: endpoint.model ?? '', apiKey: endpoint.apiKey ?? '' },
      workspace: ws.dir,
    });
  };

  const engines = new Engines(opts.spawnHost, { backend: readSettings().backend, threads: readSettings().threads });

  // Filled in below; the queue and views need each other only through these late-bound hooks.
  let views!: RunViews;
  const queue = new RunQueue(
    () => ws,
    engines,
    (runId) => trainingJobFor(ws, runId),
    {
      runChanged: (runId) => {
        try {
          events.emit({ type: 'run.updated', run: views.summary(ws.runs.get(runId)) });
        } catch (e) {
          log(`cannot report run ${runId}: ${(e as Error).message}`);
        }
      },
      metric: (runId, progress, point) => events.emit({ type: 'run.metric', runId, progress, point }),
      log: (runId, level, message) => events.emit({ type: 'run.log', runId, level, message }),
      notice: log,
      becameOwner: () => {
        log(`this process now owns the workspace ${ws.dir} and trains its runs`);
        emitEngineStatus();
      },
    },
    { trains },
  );

  const ctx: ServiceContext = {
    ws: () => ws,
    settings: readSettings,
    engines,
    queue,
    events,
    streams,
    transport: opts.transport,
    version: opts.version,
    uploadsDir: () => join(ws.dir, 'uploads'),
  };
  views = new RunViews(ctx);
  const swept = sweepUploads(ctx.uploadsDir());
  if (swept > 0) log(`removed ${swept} upload(s) left by imports that did not finish`);

  // Runs that train in another process reach this one's events through the database.
  const otherProcessRuns = new OtherProcessRuns(ctx, views);
  const lookAtOtherProcesses = () => {
    if (queue.isOwner) return otherProcessRuns.reset();
    try {
      otherProcessRuns.look();
    } catch (e) {
      log(`could not read runs of the owning process: ${(e as Error).message}`);
    }
  };
  lookAtOtherProcesses(); // the baseline: from here on, every change is news
  const watchOtherProcesses = setInterval(lookAtOtherProcesses, QUEUE_POLL_MS);
  watchOtherProcesses.unref();

  function emitEngineStatus(): void {
    events.emit({ type: 'engine.status', backend: engines.backendInfo(), inference: engines.inferenceState(), training: queue.activeRunId });
  }
  engines.onStateChange(emitEngineStatus);

  const evals = evalSuites(ctx);
  const sweeps = sweepService(ctx, views, evals, log);
  const handlers: ApiHandlers = {
    'system.info': async () => ({
      version: opts.version,
      transport: opts.transport,
      workspace: ws.dir,
      backend: engines.backendInfo(),
      engine: { training: queue.activeRunId, inference: engines.inferenceState() },
      recovered: { interruptedRuns: ws.recovery.interruptedRuns.map((r) => r.runId) },
      owner: ownerInfo(ws),
    }),
    'settings.get': async () => readSettings(),
    'settings.update': async (patch) => {
      const current = readSettings();
      const { workspace: _w, openai, ...rest } = { ...current, ...SettingsPatch.parse(patch) };
      ws.transaction(() => {
        ws.settings.set(SETTINGS_KEY, rest);
        ws.settings.set(GENERATOR_ENDPOINT_SETTING, { baseUrl: openai.url, model: openai.model, apiKey: openai.apiKey });
      });
      const next = readSettings();
      if (next.backend !== current.backend || next.threads !== current.threads) engines.configure({ backend: next.backend, threads: next.threads });
      return next;
    },
    'settings.switchWorkspace': async ({ path }) => {
      const dir = resolve(path);
      if (dir === ws.dir) return readSettings();
      if (queue.activeRunId) throw userError('a run is training; pause or cancel it before switching workspaces');
      if (streams.active > 0) throw userError('a generation is running; stop it before switching workspaces');
      if (runningTaskCount() > 0) throw userError('an import, generation or evaluation task is running; wait for it or cancel it before switching workspaces');
      const next = openWorkspace(dir, { claimOwnership: trains }); // throws (and keeps the current one) if the folder cannot be a workspace
      ws.close();
      ws = next;
      otherProcessRuns.reset();
      lookAtOtherProcesses();
      opts.rememberWorkspace?.(dir);
      events.emit({ type: 'models.changed' });
      events.emit({ type: 'datasets.changed', datasetId: null });
      queue.wake();
      return readSettings();
    },
    ...modelHandlers(ctx),
    ...datasetHandlers(ctx),
    ...runHandlers(ctx, views),
    ...jobImportHandlers(ctx, views),
    ...chatHandlers(ctx),
    ...imageHandlers(ctx),
    ...compareHandlers(ctx),
    ...evals.handlers,
    ...sweeps.handlers,
  };

  // Every contract method has a handler (the type says so; this guards against a stray cast).
  for (const m of API_METHODS) if (typeof handlers[m] !== 'function') throw new Error(`no handler for API method ${m}`);

  // Runs queued before the last shutdown start again.
  if (opts.startQueue !== false) queue.wake();

  if (opts.seedStarter) {
    seedStarterWorkspace(ws, handlers).catch((e) => log(`could not add the starter model and demo data: ${(e as Error).message}`));
  }

  return {
    events,
    handlers,
    completions: completionService(ctx),
    async call(method, input) {
      if (!isApiMethod(method)) return { ok: false, error: { code: 'not_found', message: `unknown API method "${method}"` } };
      try {
        const parsed = parseRequest(method, input);
        for (const { path, what } of requestPaths(method, parsed)) paths.check(path, what);
        const value = await (handlers[method] as (i: unknown) => Promise<unknown>)(parsed);
        return { ok: true, value: checkResponse(method as ApiMethod, value) };
      } catch (e) {
        return { ok: false, error: toErrorBody(e, method, log) };
      }
    },
    maxUploadBytes,
    paths,
    async upload(fileName, body) {
      try {
        sweepUploads(ctx.uploadsDir()); // what validations left an hour ago and more
        return { ok: true, value: await receiveUpload(ctx.uploadsDir(), fileName, body, maxUploadBytes) };
      } catch (e) {
        if (e instanceof UploadTooLargeError) return { ok: false, error: { code: 'too_large', message: e.message } };
        return { ok: false, error: toErrorBody(e, 'upload', log) };
      }
    },
    async close() {
      clearInterval(watchOtherProcesses);
      sweeps.close();
      streams.cancelAll();
      await queue.close();
      await engines.close();
      ws.close();
    },
  };
}

/** Who trains this workspace's runs, for system.info: this process, another one (named), or nobody. */
function ownerInfo(ws: Workspace): SystemInfo['owner'] {
  const owner = ws.owner();
  if (!owner) return null;
  return { self: ws.isOwner, pid: owner.pid, hostname: owner.hostname, startedAt: owner.startedAt, description: describeOwner(owner) };
}

const STARTER_SEEDED = 'starter.seeded';

/**
 * A new user's first start: the workspace gets the starter model (assets/starter, built by the
 * project) and its demo instruction set, and the multi-modal starter (the starter CLIP tower and the
 * ScienceQA-layout demo with its pictures), once, so both halves of the paper work before any download.
 */
async function seedStarterWorkspace(ws: Workspace, handlers: ApiHandlers): Promise<void> {
  if (ws.settings.get(STARTER_SEEDED) || ws.models.list().length > 0 || ws.datasets.list().length > 0) return;
  ws.settings.set(STARTER_SEEDED, true);
  await handlers['models.add']({ path: starterPath(STARTER.modelDir), name: 'starter (WordNet, 4M)' });
  // The held-out questions come along as the test split, ready for the Evaluate page.
  const { dataset } = await importDataset(ws, starterPath(STARTER.demoTrain), { name: 'demo: WordNet instructions', onInvalid: 'reject', split: 'train' });
  await importDataset(ws, starterPath(STARTER.demoTest), { into: dataset.id, onInvalid: 'reject', split: 'test' });
  await handlers['models.add']({ path: starterPath(STARTER.visionDir), name: 'starter vision (CLIP, synthetic pictures)' });
  await importDataset(ws, starterPath(STARTER.scienceQaDemo), { name: 'demo: ScienceQA-style pictures', onInvalid: 'reject', format: 'scienceqa' });
}
