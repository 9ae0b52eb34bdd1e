// The training queue: any number of runs wait, one trains at a time (one device), each in an engine
// process of its own. Status lives in the workspace database, so a reloaded or reopened window finds every
// run where it is; the live part (progress, the process handle) lives here.
//
// Pause asks the engine to write a checkpoint and stop; resume puts the run back in line and it continues
// from that checkpoint. If the engine process dies mid-run the run becomes `interrupted` (resumable from its
// last checkpoint) or `failed` (nothing to resume from), and the next run starts.
//
// Only the workspace's owner (store/owner-lock.ts) trains. Other processes (a CLI beside the app, a second
// serve) queue runs in the database; the owner looks for them every QUEUE_POLL_MS. A process that trains but
// is not the owner claims the workspace when its owner is gone. Nothing that goes wrong while recording a
// run (a locked database, a run changed by another process) is allowed to throw out of the queue: it is
// logged and kept as the run's reason, and the process carries on.

import type { RunProgress } from '../../src-shared/api.js';
import type { Instruction } from '../engine/data.js';
import type { Recipe } from '../engine/recipe.js';
import type { StepRecord, TrainEvent } from '../engine/train.js';
import { describeOwner, OwnedElsewhereError, type Run, type RunId, type Workspace } from '../store/index.js';
import { EngineJobError, type EngineProcess } from './engine-process.js';
import type { Engines } from './engines.js';
import type { VisionInput } from './protocol.js';

/** What the queue needs to train a run, read from the store when the run starts. */
export interface TrainingJob {
  modelDir: string;
  data: Instruction[];
  /** A multi-modal run (recipe.vision): each example's image file, aligned with data, and the tower. */
  images?: (string | null)[];
  vision?: VisionInput;
  recipe: Recipe;
  outDir: string;
}

/** How often the owner looks for runs queued by other processes (and a non-owner for a vacant workspace). */
export const QUEUE_POLL_MS = 1_500;

export interface RunQueueOptions {
  /**
   * This process trains runs: it becomes the workspace's owner whenever no live process is. False: a reader
   * that never trains (a CLI command that only evaluates).
   */
  trains: boolean;
  pollMs?: number;
}

export interface RunQueueHooks {
  /** Everything changed about a run (status, queue position, progress): the UI refreshes it. */
  runChanged(runId: RunId): void;
  /** One optimizer step happened. */
  metric(runId: RunId, progress: RunProgress, point: { step: number; loss: number; lr: number; tokensPerSec: number; memoryBytes: number; elapsedMs: number }): void;
  log(runId: RunId, level: 'info' | 'warn' | 'error', message: string): void;
  /** A problem of the queue itself, not of one run (the workspace could not be claimed, say). */
  notice(message: string): void;
  /** This process took over a workspace whose owner had gone: it trains the runs from now on. */
  becameOwner(): void;
}

interface ActiveRun {
  runId: RunId;
  engine: EngineProcess | null;
  job: string | null;
  stopping: 'pause' | 'cancel' | null;
  progress: RunProgress | null;
  /** Training time recorded before this session (a resumed run continues its clock). */
  elapsedBeforeMs: number;
  sessionStartedAt: number;
  trainableParameters: number | null;
  examples: number | null;
}

/** Facts learned from the engine's start event, kept for the run page while the process lives. */
export interface RunLiveFacts {
  trainableParameters: number | null;
  examples: number | null;
}

export class RunQueue {
  /** Runs waiting to resume (paused or interrupted in the store), in the order resume was asked. */
  private readonly resumeLine: RunId[] = [];
  private active: ActiveRun | null = null;
  private pumping = false;
  private closed = false;
  /** Why a run stopped when the store has no place for it (an interrupted run keeps no error). */
  private readonly lastReasons = new Map<RunId, string>();
  private readonly facts = new Map<RunId, RunLiveFacts>();
  private idleWaiters: (() => void)[] = [];
  private readonly poll: NodeJS.Timeout | null = null;

  constructor(
    private readonly ws: () => Workspace,
    private readonly engines: Engines,
    private readonly prepare: (runId: RunId) => TrainingJob,
    private readonly hooks: RunQueueHooks,
    private readonly options: RunQueueOptions = { trains: true },
  ) {
    if (options.trains) {
      this.poll = setInterval(() => this.tick(), options.pollMs ?? QUEUE_POLL_MS);
      this.poll.unref();
    }
  }

  /** Whether this process trains the workspace's runs now. */
  get isOwner(): boolean {
    return this.ws().isOwner;
  }

  /** Runs queued by other processes start here; a vacant workspace (its owner exited) is taken over. */
  private tick(): void {
    if (this.closed) return;
    try {
      if (!this.claim()) return;
    } catch (e) {
      this.hooks.notice(`could not take over the workspace: ${(e as Error).message}`);
      return;
    }
    void this.pump();
  }

  /** Becomes the owner if no live process is; announces the runs that the dead owner left interrupted. */
  private claim(): boolean {
    const ws = this.ws();
    if (ws.isOwner) return true;
    if (!this.options.trains || !ws.claimOwnership()) return false;
    this.hooks.becameOwner();
    for (const { runId } of ws.recovery.interruptedRuns) this.hooks.runChanged(runId);
    return true;
  }

  /**
   * Refuses to change `run` from a process that does not own the workspace while a live one does (claiming it
   * first if its owner is gone): the run may be training there.
   */
  private requireOwnership(run: Run, action: 'pause' | 'resume' | 'cancel'): void {
    if (this.claim()) return;
    const owner = this.ws().owner();
    if (!owner) {
      throw new OwnedElsewhereError(`cannot ${action} run "${run.name}" here: this process does not train runs; open the workspace in the app or with "adapter-studio serve"`);
    }
    const where = run.status === 'running' ? `it is training in ${describeOwner(owner)}` : `the runs of this workspace train in ${describeOwner(owner)}`;
    throw new OwnedElsewhereError(`cannot ${action} run "${run.name}" from this process: ${where}, which owns the workspace; ${action} it there`);
  }

  /** The run training now, if any. */
  get activeRunId(): RunId | null {
    return this.active?.runId ?? null;
  }

  progressOf(runId: RunId): RunProgress | null {
    return this.active?.runId === runId ? this.active.progress : null;
  }

  factsOf(runId: RunId): RunLiveFacts | null {
    return this.facts.get(runId) ?? null;
  }

  reasonOf(runId: RunId): string | null {
    return this.lastReasons.get(runId) ?? null;
  }

  /** 1-based place in line, or null when the run is not waiting. */
  positionOf(runId: RunId): number | null {
    const line = this.line();
    const i = line.indexOf(runId);
    return i < 0 ? null : i + 1;
  }

  /** Waiting runs in start order: fresh runs by creation time, resumed runs in the order resume was asked. */
  private line(): RunId[] {
    const ws = this.ws();
    // Oldest first; runs queued together (a sweep's) in the order they were queued.
    const queued = ws.runs
      .list('queued')
      .reverse()
      .map((r) => r.id);
    // Another process may have cancelled or deleted a run waiting to resume.
    const resuming = this.resumeLine.filter((id) => ['paused', 'interrupted'].includes(this.statusOf(id) ?? 'deleted'));
    return [...resuming, ...queued].filter((id) => id !== this.active?.runId);
  }

  /** The run's status in the store now; null when it is gone (another process may delete runs). */
  private statusOf(runId: RunId): Run['status'] | null {
    try {
      return this.ws().runs.get(runId).status;
    } catch {
      return null;
    }
  }

  /** A new run was queued in the store, or a paused one should continue: start it when its turn comes. */
  wake(): void {
    void this.pump();
  }

  resume(runId: RunId): void {
    const run = this.ws().runs.get(runId);
    this.requireOwnership(run, 'resume');
    if (run.status !== 'paused' && run.status !== 'interrupted') throw new EngineJobError(`run "${run.name}" is ${run.status}; only paused or interrupted runs can be resumed`, true);
    if (!this.resumeLine.includes(runId)) this.resumeLine.push(runId);
    this.lastReasons.delete(runId);
    this.hooks.runChanged(runId);
    void this.pump();
  }

  pause(runId: RunId): void {
    this.requireOwnership(this.ws().runs.get(runId), 'pause');
    const run = this.ws().runs.get(runId); // again: taking over a vacant workspace may have interrupted it
    const inLine = this.resumeLine.indexOf(runId);
    if (inLine >= 0) {
      // Asked to resume, not started yet: it simply stays paused.
      this.resumeLine.splice(inLine, 1);
      this.hooks.runChanged(runId);
      this.notifyLineChanged();
      return;
    }
    if (this.active?.runId !== runId) {
      const hint = run.status === 'queued' ? ' (it has not started; cancel it to take it out of the queue)' : '';
      throw new EngineJobError(`run "${run.name}" is ${run.status}, not training; only a training run can be paused${hint}`, true);
    }
    this.stop('pause');
  }

  cancel(runId: RunId): void {
    const ws = this.ws();
    // A waiting run can be cancelled from any process (the owner skips it); a training one only by its owner.
    if (this.statusOf(runId) === 'running') this.requireOwnership(ws.runs.get(runId), 'cancel');
    const run = ws.runs.get(runId); // again: taking over a vacant workspace may have interrupted it
    if (this.active?.runId === runId) {
      this.stop('cancel');
      return;
    }
    const inLine = this.resumeLine.indexOf(runId);
    if (inLine >= 0) this.resumeLine.splice(inLine, 1);
    if (run.status === 'completed' || run.status === 'failed' || run.status === 'cancelled') {
      throw new EngineJobError(`run "${run.name}" is already ${run.status}`, true);
    }
    ws.runs.setStatus(runId, 'cancelled');
    this.hooks.runChanged(runId);
    this.notifyLineChanged();
  }

  private stop(mode: 'pause' | 'cancel'): void {
    const active = this.active!;
    // Cancel overrides an earlier pause request; a pause never downgrades a cancel.
    if (active.stopping === 'cancel') return;
    active.stopping = mode;
    if (active.engine && active.job) active.engine.abort(active.job, mode);
    this.hooks.log(active.runId, 'info', mode === 'pause' ? 'pausing: writing a checkpoint after the current step' : 'cancelling after the current step');
    this.hooks.runChanged(active.runId);
    if (mode === 'cancel') {
      // A step of a big model can take minutes: a cancel that is not answered soon ends the process.
      setTimeout(() => {
        if (this.active === active) active.engine?.kill();
      }, 10_000).unref?.();
    }
  }

  private notifyLineChanged(): void {
    for (const id of this.line()) this.hooks.runChanged(id);
  }

  /** Starts the next run while none is training, if this process owns the workspace. */
  private async pump(): Promise<void> {
    if (this.pumping || this.active || this.closed) return;
    this.pumping = true;
    // A run whose start could not even be recorded stays first in line: it is tried again at the next poll,
    // not in a loop here (which would never yield to the event loop).
    const tried = new Set<RunId>();
    try {
      while (!this.active && !this.closed && this.ws().isOwner) {
        const next = this.line()[0];
        if (!next || tried.has(next)) break;
        tried.add(next);
        const inLine = this.resumeLine.indexOf(next);
        if (inLine >= 0) this.resumeLine.splice(inLine, 1);
        await this.runOne(next);
      }
    } catch (e) {
      // runOne records its own failures; this is the last guard (the next poll tries again).
      this.active = null;
      this.hooks.notice(`the run queue stopped on an unexpected error: ${(e as Error).stack ?? String(e)}`);
    } finally {
      this.pumping = false;
      if (!this.active) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async runOne(runId: RunId): Promise<void> {
    const ws = this.ws();
    let resuming = false;
    const active: ActiveRun = {
      runId,
      engine: null,
      job: null,
      stopping: null,
      progress: null,
      elapsedBeforeMs: 0,
      sessionStartedAt: Date.now(),
      trainableParameters: null,
      examples: null,
    };
    this.active = active;
    let job: TrainingJob;
    try {
      const stored = ws.runs.get(runId);
      resuming = stored.status === 'paused' || stored.status === 'interrupted';
      job = this.prepare(runId);
      if (resuming) {
        const { checkpoint } = ws.runs.resume(runId);
        const before = ws.runs.metrics(runId).filter((m) => m.step <= (checkpoint?.step ?? 0));
        active.elapsedBeforeMs = before.at(-1)?.elapsedMs ?? 0;
      } else {
        ws.runs.start(runId);
      }
    } catch (e) {
      this.active = null;
      this.failToStart(runId, e as Error);
      return;
    }
    this.notifyLineChanged();
    this.hooks.runChanged(runId);
    this.hooks.log(runId, 'info', resuming ? 'resuming from the last checkpoint' : 'starting the engine');

    let outcome: { status: 'completed' | 'paused' | 'cancelled' } | { error: string; crashed: boolean };
    try {
      const engine = await this.engines.startTrainingHost();
      active.engine = engine;
      engine.onLog((level, message) => this.hooks.log(runId, level, message));
      const request = engine.request(
        'train',
        { modelDir: job.modelDir, data: job.data, images: job.images, vision: job.vision, recipe: job.recipe, outDir: job.outDir, resume: resuming },
        { onTrain: (event) => this.recording(active.runId, `recording the ${event.type} event`, () => this.onTrainEvent(active, event)) },
      );
      active.job = request.job;
      // A stop asked for while the engine was starting is passed on now.
      if (active.stopping) engine.abort(request.job, active.stopping);
      try {
        const result = await request.result;
        outcome = { status: result.status };
      } finally {
        void engine.shutdown();
      }
    } catch (e) {
      const err = e as Error;
      outcome = { error: err.message, crashed: !(err instanceof EngineJobError) };
    }
    this.recording(runId, 'recording how the run ended', () => this.finish(active, outcome));
    this.active = null;
  }

  /**
   * Runs `record` (a write to the store about a run); a failure is logged and kept as the run's reason, never
   * thrown: the engine's message handler and the queue's loop must survive a locked database or a run that
   * another process changed.
   */
  private recording(runId: RunId, what: string, record: () => void): void {
    try {
      record();
    } catch (e) {
      const message = `${what} failed: ${(e as Error).message}`;
      this.lastReasons.set(runId, message);
      this.hooks.log(runId, 'error', message);
      this.hooks.runChanged(runId);
    }
  }

  /** A run that could not start fails, unless another process took it out of line (cancelled or deleted it). */
  private failToStart(runId: RunId, error: Error): void {
    const status = this.statusOf(runId);
    if (status === null || !['queued', 'paused', 'interrupted', 'running'].includes(status)) {
      this.hooks.notice(`run ${runId} was ${status ?? 'deleted'} by another process before it could start; skipped`);
      if (status) this.hooks.runChanged(runId);
      return;
    }
    this.recording(runId, 'recording that the run could not start', () => this.fail(runId, error.message));
  }

  private onTrainEvent(active: ActiveRun, event: TrainEvent): void {
    const ws = this.ws();
    switch (event.type) {
      case 'start':
        active.trainableParameters = event.trainableParams;
        active.examples = event.examples;
        this.facts.set(active.runId, { trainableParameters: event.trainableParams, examples: event.examples });
        active.progress = { step: event.resumedFrom ?? 0, totalSteps: event.totalSteps, epoch: 0, loss: null, lr: event.lr, tokensPerSec: null, etaSec: null };
        this.hooks.log(active.runId, 'info', `training ${event.trainableParams.toLocaleString('en')} parameters on ${event.examples} examples, ${event.totalSteps} steps`);
        for (const note of event.notes ?? []) this.hooks.log(active.runId, 'warn', note);
        if (event.resumedFrom !== null && event.resumedFromPath) this.reconcileResume(active, event.resumedFrom, event.resumedFromPath, event.history);
        this.hooks.runChanged(active.runId);
        return;
      case 'step': {
        const elapsedMs = active.elapsedBeforeMs + (Date.now() - active.sessionStartedAt);
        const point = { step: event.step, loss: event.loss, lr: event.lr, tokensPerSec: event.tokensPerSec, memoryBytes: event.rssBytes, elapsedMs };
        ws.runs.appendMetrics(active.runId, [point]);
        active.progress = { step: event.step, totalSteps: event.totalSteps, epoch: event.epoch, loss: event.loss, lr: event.lr, tokensPerSec: event.tokensPerSec, etaSec: event.etaSec };
        this.hooks.metric(active.runId, active.progress, point);
        return;
      }
      case 'checkpoint':
        ws.runs.addCheckpoint(active.runId, { step: event.step, path: event.path });
        this.hooks.log(active.runId, 'info', `checkpoint at step ${event.step}`);
        return;
      case 'eval':
        this.hooks.log(active.runId, 'info', `step ${event.step}: validation loss ${event.valLoss.toFixed(4)}${event.best ? ' (best so far: these weights are kept)' : ''}`);
        return;
      case 'done':
        return;
    }
  }

  /** The history recorded up to the checkpoint training resumed from, whatever this process heard before. */
  private reconcileResume(active: ActiveRun, step: number, path: string, history: StepRecord[]): void {
    const ws = this.ws();
    const points = history.map((r) => ({ step: r.step, loss: r.loss, lr: r.lr, tokensPerSec: r.tokensPerSec, memoryBytes: r.rssBytes, elapsedMs: r.elapsedMs }));
    const { filled, dropped } = ws.runs.reconcileResume(active.runId, { step, path, history: points });
    if (filled > 0) this.hooks.log(active.runId, 'info', `filled in ${filled} step(s) up to step ${step} from the checkpoint's history (recorded there, not here, before the last stop)`);
    if (dropped > 0) this.hooks.log(active.runId, 'info', `dropped ${dropped} recorded step(s) after step ${step}; they are trained again`);
    active.elapsedBeforeMs = ws.runs.metrics(active.runId).filter((m) => m.step <= step && m.elapsedMs !== null).at(-1)?.elapsedMs ?? active.elapsedBeforeMs;
  }

  private finish(active: ActiveRun, outcome: { status: 'completed' | 'paused' | 'cancelled' } | { error: string; crashed: boolean }): void {
    const ws = this.ws();
    const { runId } = active;
    if ('status' in outcome) {
      ws.runs.setStatus(runId, outcome.status);
      this.hooks.log(runId, 'info', `run ${outcome.status}`);
    } else if (active.stopping === 'cancel') {
      // Killed because it did not stop in time: that is still the cancel the user asked for.
      ws.runs.setStatus(runId, 'cancelled');
    } else if (this.closed && outcome.crashed) {
      // The app is quitting and the step did not finish in time: resumable, from a checkpoint or from the start.
      ws.runs.setStatus(runId, 'interrupted');
    } else if (outcome.crashed && ws.runs.checkpoints(runId).length > 0) {
      ws.runs.setStatus(runId, 'interrupted');
      this.lastReasons.set(runId, `${outcome.error}; resume to continue from the last checkpoint`);
      this.hooks.log(runId, 'error', `${outcome.error}; the run can resume from its last checkpoint`);
    } else {
      this.fail(runId, outcome.error);
    }
    this.hooks.runChanged(runId);
  }

  private fail(runId: RunId, error: string): void {
    const ws = this.ws();
    ws.runs.setStatus(runId, 'failed', { error });
    this.hooks.log(runId, 'error', error);
    this.hooks.runChanged(runId);
  }

  /** Resolves when no run trains (used at shutdown and by tests). */
  whenIdle(): Promise<void> {
    if (!this.active && !this.pumping) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops taking new runs; a training run is paused (checkpointed) if it stops within `graceMs`, otherwise
   * its process is killed and the run is marked interrupted.
   */
  async close(graceMs = 15_000): Promise<void> {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    const active = this.active;
    if (!active) return;
    this.stop('pause');
    const timer = setTimeout(() => active.engine?.kill(), graceMs);
    await this.whenIdle();
    clearTimeout(timer);
  }
}
