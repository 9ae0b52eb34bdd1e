// The main process's handle on one engine host process: start it, send requests, route its answers to the
// waiting caller, and turn an unexpected exit into errors for every job still open.
//
// How the process is started is injected (`HostSpawner`): child_process.fork in serve mode (forkSpawner
// below), Electron's utilityProcess in the desktop app (src-main/electron/utility-host.ts).

import { fork } from 'node:child_process';
import type { BackendChoice } from '../../src-shared/api.js';
import type { FromHost, JobId, ResultOf, ToHost } from './protocol.js';

/** A started process, whatever started it. */
export interface HostProcess {
  readonly pid: number | undefined;
  send(msg: ToHost): void;
  onMessage(cb: (msg: FromHost) => void): void;
  /** Called once when the process is gone; `detail` holds the tail of its stderr (an out-of-memory report). */
  onExit(cb: (exit: { code: number | null; signal: string | null; detail: string }) => void): void;
  kill(): void;
}

/** `datasets`: one dataset job (import, validation, duplicates) without tensors (dataset-host.ts). */
export type HostRole = 'train' | 'inference' | 'datasets';

export type HostSpawner = (role: HostRole, env: Record<string, string>) => HostProcess;

/** Serve mode: `node <entry>` with an IPC channel; stderr is passed through and its tail kept for crash reports. */
export function forkSpawner(entry: string): HostSpawner {
  return (role, env) => {
    const child = fork(entry, [`--role=${role}`], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    let tail = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-4000);
    });
    return {
      pid: child.pid,
      send: (msg) => {
        if (child.connected) child.send(msg);
      },
      onMessage: (cb) => child.on('message', (m) => cb(m as FromHost)),
      onExit: (cb) => child.once('exit', (code, signal) => cb({ code, signal, detail: tail })),
      kill: () => {
        child.kill('SIGKILL');
      },
    };
  };
}

/** Why a host process stopped, in words for the run's error field. */
export function describeExit(exit: { code: number | null; signal: string | null; detail: string }): string {
  const oom = /heap out of memory|Cannot allocate memory|std::bad_alloc|RangeError: Array buffer allocation failed|Out of memory/i.test(exit.detail);
  if (oom) return 'the engine process ran out of memory';
  if (exit.signal) return `the engine process was stopped by signal ${exit.signal}`;
  const lastLine = exit.detail.trim().split('\n').filter(Boolean).at(-1);
  return `the engine process exited with code ${exit.code}${lastLine ? ` (${lastLine.slice(0, 300)})` : ''}`;
}

export class EngineExitedError extends Error {
  override name = 'EngineExitedError';
}

/** An error the host reported for one job: `user` errors are the input's fault and shown as they are. */
export class EngineJobError extends Error {
  override name = 'EngineJobError';
  constructor(
    message: string,
    readonly user: boolean,
  ) {
    super(message);
  }
}

interface OpenJob {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onTrain?: (e: Extract<FromHost, { kind: 'train' }>['event']) => void;
  onDelta?: (text: string) => void;
  onProgress?: (done: number, total: number) => void;
}

export type HostState = 'starting' | 'ready' | 'exited';

let jobCounter = 0;

export class EngineProcess {
  private readonly proc: HostProcess;
  private readonly jobs = new Map<JobId, OpenJob>();
  private readyPromise: Promise<{ name: string; skipped: { name: string; reason: string }[] }>;
  state: HostState = 'starting';
  exitReason: string | null = null;
  private exitListeners: ((reason: string, clean: boolean) => void)[] = [];
  private logListener: (level: 'info' | 'warn' | 'error', message: string) => void = () => undefined;
  private shuttingDown = false;

  constructor(spawn: HostSpawner, role: HostRole, settings: { backend: BackendChoice; threads: number }) {
    const env: Record<string, string> = {};
    if (settings.threads > 0) env.OPENBLAS_NUM_THREADS = String(settings.threads);
    this.proc = spawn(role, env);
    let markReady!: (b: { name: string; skipped: { name: string; reason: string }[] }) => void;
    let failReady!: (e: Error) => void;
    this.readyPromise = new Promise((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    this.readyPromise.catch(() => undefined);
    this.proc.onMessage((msg) => {
      switch (msg.kind) {
        case 'ready':
          this.state = 'ready';
          markReady(msg.backend);
          return;
        case 'initFailed':
          failReady(new EngineJobError(msg.message, true));
          return;
        case 'log':
          this.logListener(msg.level, msg.message);
          return;
        case 'train':
          this.jobs.get(msg.job)?.onTrain?.(msg.event);
          return;
        case 'delta':
          this.jobs.get(msg.job)?.onDelta?.(msg.text);
          return;
        case 'progress':
          this.jobs.get(msg.job)?.onProgress?.(msg.done, msg.total);
          return;
        case 'result': {
          const job = this.jobs.get(msg.job);
          this.jobs.delete(msg.job);
          job?.resolve(msg.value);
          return;
        }
        case 'error': {
          const job = this.jobs.get(msg.job);
          this.jobs.delete(msg.job);
          job?.reject(new EngineJobError(msg.message, msg.user));
          return;
        }
      }
    });
    this.proc.onExit((exit) => {
      this.state = 'exited';
      const clean = this.shuttingDown && (exit.code === 0 || exit.signal === 'SIGKILL');
      this.exitReason = describeExit(exit);
      const error = new EngineExitedError(this.exitReason);
      failReady(error);
      for (const job of this.jobs.values()) job.reject(error);
      this.jobs.clear();
      for (const cb of this.exitListeners) cb(this.exitReason, clean);
    });
    // A dataset process computes no tensors: it starts no backend and is ready at once.
    if (role === 'datasets') {
      this.state = 'ready';
      markReady({ name: 'none', skipped: [] });
    } else this.proc.send({ kind: 'init', backend: settings.backend, threads: settings.threads });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Resolves with the backend the host started once it is ready; rejects if it cannot start. */
  ready() {
    return this.readyPromise;
  }

  onExit(cb: (reason: string, clean: boolean) => void): void {
    this.exitListeners.push(cb);
  }

  onLog(cb: (level: 'info' | 'warn' | 'error', message: string) => void): void {
    this.logListener = cb;
  }

  get busy(): boolean {
    return this.jobs.size > 0;
  }

  request<K extends keyof ResultOf>(
    kind: K,
    body: Omit<Extract<ToHost, { kind: K }>, 'job' | 'kind'>,
    handlers: Pick<OpenJob, 'onTrain' | 'onDelta' | 'onProgress'> = {},
  ): { job: JobId; result: Promise<ResultOf[K]> } {
    const job = `job${++jobCounter}`;
    if (this.state === 'exited') return { job, result: Promise.reject(new EngineExitedError(this.exitReason ?? 'the engine process has stopped')) };
    const result = new Promise<ResultOf[K]>((resolve, reject) => {
      this.jobs.set(job, { resolve: resolve as (v: unknown) => void, reject, ...handlers });
    });
    this.proc.send({ ...body, kind, job } as unknown as ToHost);
    return { job, result };
  }

  abort(job: JobId, mode: 'pause' | 'cancel'): void {
    if (this.state !== 'exited') this.proc.send({ kind: 'abort', job, mode });
  }

  /** Asks the host to exit; kills it if it has not gone after `graceMs`. */
  shutdown(graceMs = 2000): Promise<void> {
    this.shuttingDown = true;
    if (this.state === 'exited') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.proc.kill(), graceMs);
      this.onExit(() => {
        clearTimeout(timer);
        resolve();
      });
      this.proc.send({ kind: 'shutdown' });
    });
  }

  kill(): void {
    this.shuttingDown = true;
    this.proc.kill();
  }
}
