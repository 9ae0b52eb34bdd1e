// Training runs: what was trained (method, recipe, dataset version, model, backend), where it stands
// (status), what it measured per step, and the checkpoints it can resume from.
//
// Status moves only along RUN_TRANSITIONS. A run that was `running` when its process died is found when the
// next process becomes the workspace's owner (owner-lock.ts) and becomes `interrupted`, pointing at its last
// checkpoint; `resume` picks it up from there.

import { NotFoundError, StoreError } from './errors.js';
import { newId, type CheckpointId, type DatasetId, type ModelId, type RunId } from './ids.js';
import { readJson, writeJson } from './json-column.js';
import type { Db, Workspace } from './workspace.js';
import { writeTransaction } from './write-transaction.js';

export type RunStatus = 'queued' | 'running' | 'paused' | 'completed' | 'failed' | 'interrupted' | 'cancelled';

/** 'adapter' is LLaMA-Adapter; 'full' is the Alpaca-style full fine-tune it is compared with. */
export type RunMethod = 'adapter' | 'full' | (string & {});

export const RUN_TRANSITIONS: Readonly<Record<RunStatus, readonly RunStatus[]>> = {
  // failed: it could not start (its model or dataset is gone).
  queued: ['running', 'cancelled', 'failed'],
  running: ['paused', 'completed', 'failed', 'interrupted', 'cancelled'],
  paused: ['running', 'cancelled', 'failed'],
  interrupted: ['running', 'cancelled', 'failed'],
  completed: [],
  failed: [],
  cancelled: [],
};

const FINISHED: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];

export interface NewRun {
  name?: string;
  method: RunMethod;
  /** Everything needed to repeat the run (hyper-parameters, seed, template): stored as JSON. */
  recipe: Record<string, unknown>;
  datasetId?: DatasetId | null;
  datasetVersion?: number | null;
  modelId?: ModelId | null;
  backend: string;
}

export interface Run {
  id: RunId;
  name: string;
  method: RunMethod;
  recipe: Record<string, unknown>;
  datasetId: DatasetId | null;
  datasetVersion: number | null;
  modelId: ModelId | null;
  backend: string;
  status: RunStatus;
  error: string | null;
  /** For a paused or interrupted run: the checkpoint to resume from (null: start over). */
  resumeCheckpointId: CheckpointId | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
}

export interface MetricPoint {
  step: number;
  loss?: number | null;
  valLoss?: number | null;
  lr?: number | null;
  tokensPerSec?: number | null;
  memoryBytes?: number | null;
  /** Milliseconds since the run started. */
  elapsedMs?: number | null;
}

export interface StoredMetricPoint extends Required<MetricPoint> {
  recordedAt: number;
}

export interface Checkpoint {
  id: CheckpointId;
  runId: RunId;
  step: number;
  /** Absolute path (stored relative to the workspace when inside it). */
  path: string;
  meta: Record<string, unknown>;
  createdAt: number;
}

interface RunRow {
  id: string;
  name: string;
  method: string;
  recipe: string;
  dataset_id: string | null;
  dataset_version: number | null;
  model_id: string | null;
  backend: string;
  status: RunStatus;
  error: string | null;
  resume_checkpoint_id: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
}

interface MetricRow {
  step: number;
  loss: number | null;
  val_loss: number | null;
  lr: number | null;
  tokens_per_sec: number | null;
  memory_bytes: number | null;
  elapsed_ms: number | null;
  recorded_at: number;
}

interface CheckpointRow {
  id: string;
  run_id: string;
  step: number;
  path: string;
  meta: string;
  created_at: number;
}

function toRun(r: RunRow): Run {
  return {
    id: r.id as RunId,
    name: r.name,
    method: r.method,
    recipe: readJson(r.recipe, `runs.recipe of ${r.id}`),
    datasetId: r.dataset_id as DatasetId | null,
    datasetVersion: r.dataset_version,
    modelId: r.model_id as ModelId | null,
    backend: r.backend,
    status: r.status,
    error: r.error,
    resumeCheckpointId: r.resume_checkpoint_id as CheckpointId | null,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    updatedAt: r.updated_at,
  };
}

function toMetric(r: MetricRow): StoredMetricPoint {
  return {
    step: r.step,
    loss: r.loss,
    valLoss: r.val_loss,
    lr: r.lr,
    tokensPerSec: r.tokens_per_sec,
    memoryBytes: r.memory_bytes,
    elapsedMs: r.elapsed_ms,
    recordedAt: r.recorded_at,
  };
}

function finiteOrNull(value: number | null | undefined, field: string, step: number): number | null {
  if (value === undefined || value === null) return null;
  // NaN/Infinity loss is real information (divergence) but SQLite stores NaN as NULL; keep it visible as an error.
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new StoreError(`metric ${field} at step ${step} must be a finite number, got ${value}`);
  return value;
}

export class RunStore {
  private readonly s;

  constructor(
    private readonly db: Db,
    private readonly ws: Workspace,
  ) {
    this.s = {
      insert: db.prepare(`
        INSERT INTO runs (id, name, method, recipe, dataset_id, dataset_version, model_id, backend, status, created_at, updated_at)
        VALUES (@id, @name, @method, @recipe, @dataset_id, @dataset_version, @model_id, @backend, 'queued', @now, @now)`),
      get: db.prepare<[string], RunRow>('SELECT * FROM runs WHERE id = ?'),
      versionExists: db.prepare<[string, number], { one: number }>('SELECT 1 AS one FROM dataset_versions WHERE dataset_id = ? AND version = ?'),
      list: db.prepare<[], RunRow>('SELECT * FROM runs ORDER BY created_at DESC, rowid DESC'),
      listByStatus: db.prepare<[string], RunRow>('SELECT * FROM runs WHERE status = ? ORDER BY created_at DESC, rowid DESC'),
      setStatus: db.prepare(`
        UPDATE runs SET status = @status, error = @error, updated_at = @now,
          started_at = coalesce(started_at, CASE WHEN @status = 'running' THEN @now END),
          finished_at = CASE WHEN @finished THEN @now ELSE finished_at END,
          resume_checkpoint_id = @resume
        WHERE id = @id`),
      delete: db.prepare('DELETE FROM runs WHERE id = ?'),
      rename: db.prepare('UPDATE runs SET name = ?, updated_at = ? WHERE id = ?'),
      // A run found `running` at open lost its process: it resumes from its newest checkpoint.
      recover: db.prepare<[number], { id: string; resume_checkpoint_id: string | null }>(`
        UPDATE runs SET status = 'interrupted', updated_at = ?,
          resume_checkpoint_id = (SELECT c.id FROM checkpoints c WHERE c.run_id = runs.id ORDER BY c.step DESC LIMIT 1)
        WHERE status = 'running'
        RETURNING id, resume_checkpoint_id`),
      putMetric: db.prepare(`
        INSERT OR REPLACE INTO run_metrics (run_id, step, loss, val_loss, lr, tokens_per_sec, memory_bytes, elapsed_ms, recorded_at)
        VALUES (@run_id, @step, @loss, @val_loss, @lr, @tokens_per_sec, @memory_bytes, @elapsed_ms, @recorded_at)`),
      metrics: db.prepare<[string, number], MetricRow>('SELECT * FROM run_metrics WHERE run_id = ? AND step > ? ORDER BY step'),
      dropMetricsAfter: db.prepare('DELETE FROM run_metrics WHERE run_id = ? AND step > ?'),
      // A run's resume point is one of its checkpoints: it is cleared before the rows it may point at go.
      clearResumeAfter: db.prepare<[string, string, number]>(
        'UPDATE runs SET resume_checkpoint_id = NULL WHERE id = ? AND resume_checkpoint_id IN (SELECT id FROM checkpoints WHERE run_id = ? AND step > ?)',
      ),
      dropCheckpointsAfter: db.prepare<[string, number]>('DELETE FROM checkpoints WHERE run_id = ? AND step > ?'),
      checkpointAt: db.prepare<[string, number], CheckpointRow>('SELECT * FROM checkpoints WHERE run_id = ? AND step = ?'),
      moveCheckpoint: db.prepare('UPDATE checkpoints SET path = ? WHERE id = ?'),
      insertCheckpoint: db.prepare(
        'INSERT INTO checkpoints (id, run_id, step, path, meta, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      checkpoint: db.prepare<[string], CheckpointRow>('SELECT * FROM checkpoints WHERE id = ?'),
      checkpoints: db.prepare<[string], CheckpointRow>('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step'),
      latestCheckpoint: db.prepare<[string], CheckpointRow>('SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1'),
    };
  }

  create(run: NewRun): Run {
    if (!run.method) throw new StoreError('a run needs a method');
    if (!run.backend) throw new StoreError('a run needs a backend');
    if (run.datasetId && run.datasetVersion != null && !this.s.versionExists.get(run.datasetId, run.datasetVersion)) {
      throw new StoreError(`run refers to version ${run.datasetVersion} of dataset ${run.datasetId}, which does not exist`);
    }
    const id = newId<RunId>('run');
    try {
      this.s.insert.run({
        id,
        name: run.name?.trim() || `${run.method} ${new Date().toISOString().slice(0, 16).replace('T', ' ')}`,
        method: run.method,
        recipe: writeJson(run.recipe, 'recipe'),
        dataset_id: run.datasetId ?? null,
        dataset_version: run.datasetVersion ?? null,
        model_id: run.modelId ?? null,
        backend: run.backend,
        now: Date.now(),
      });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') {
        throw new StoreError(`run refers to a dataset or model that does not exist (dataset ${run.datasetId}, model ${run.modelId})`);
      }
      throw err;
    }
    return this.get(id);
  }

  get(id: RunId): Run {
    const row = this.s.get.get(id);
    if (!row) throw new NotFoundError('run', id);
    return toRun(row);
  }

  list(status?: RunStatus): Run[] {
    return (status ? this.s.listByStatus.all(status) : this.s.list.all()).map(toRun);
  }

  /**
   * Moves a run to `status`, checking the transition. Pausing or interrupting records the newest
   * checkpoint as the resume point; `error` is kept for failed runs.
   */
  setStatus(id: RunId, status: RunStatus, opts: { error?: string } = {}): Run {
    return writeTransaction(this.db, () => {
      const run = this.get(id);
      if (!RUN_TRANSITIONS[run.status].includes(status)) {
        throw new StoreError(`run ${id} is ${run.status}; it cannot become ${status}`);
      }
      const keepsResumePoint = status === 'paused' || status === 'interrupted';
      this.s.setStatus.run({
        id,
        status,
        error: status === 'failed' ? (opts.error ?? 'failed without a message') : null,
        now: Date.now(),
        finished: FINISHED.includes(status) ? 1 : 0,
        resume: keepsResumePoint ? (this.s.latestCheckpoint.get(id)?.id ?? null) : null,
      });
      return this.get(id);
    });
  }

  start(id: RunId): Run {
    return this.setStatus(id, 'running');
  }

  /**
   * Resumes a paused or interrupted run: it becomes `running`, and metrics recorded after its resume
   * checkpoint are dropped because training will produce those steps again. Returns the checkpoint to load
   * (null: start from step 0).
   */
  resume(id: RunId): { run: Run; checkpoint: Checkpoint | null } {
    return writeTransaction(this.db, () => {
      const run = this.get(id);
      if (run.status !== 'paused' && run.status !== 'interrupted') throw new StoreError(`run ${id} is ${run.status}; only paused or interrupted runs resume`);
      const checkpoint = run.resumeCheckpointId ? this.checkpoint(run.resumeCheckpointId) : null;
      this.s.dropMetricsAfter.run(id, checkpoint?.step ?? 0);
      return { run: this.setStatus(id, 'running'), checkpoint };
    });
  }

  /**
   * Makes the recorded history agree with the checkpoint training actually resumed from, which is the newest
   * one on disk that reads whole: it can be ahead of the database (the recording process died after the engine
   * wrote it, before it heard of it) or behind (the newest was damaged). In one transaction: metrics after
   * `step` go (they will be trained again), steps up to `step` the database lacks are filled from the
   * checkpoint's own history, checkpoint rows after `step` go, and the checkpoint itself is recorded.
   * Returns how many steps were filled in.
   */
  reconcileResume(id: RunId, resumed: { step: number; path: string; history: MetricPoint[] }): { filled: number; dropped: number } {
    return writeTransaction(this.db, () => {
      this.get(id);
      const dropped = this.s.dropMetricsAfter.run(id, resumed.step).changes;
      const known = new Set(this.metrics(id).map((m) => m.step));
      const missing = resumed.history.filter((p) => p.step <= resumed.step && !known.has(p.step));
      this.appendMetrics(id, missing);
      this.s.clearResumeAfter.run(id, id, resumed.step);
      this.s.dropCheckpointsAfter.run(id, resumed.step);
      const stored = this.ws.toStoredPath(resumed.path);
      const row = this.s.checkpointAt.get(id, resumed.step);
      if (!row) this.addCheckpoint(id, { step: resumed.step, path: resumed.path });
      else if (row.path !== stored) this.s.moveCheckpoint.run(stored, row.id);
      return { filled: missing.length, dropped };
    });
  }

  delete(id: RunId): void {
    this.get(id);
    this.s.delete.run(id);
  }

  rename(id: RunId, name: string): Run {
    this.get(id);
    const clean = name.trim();
    if (clean === '') throw new StoreError('a run needs a name');
    this.s.rename.run(clean, Date.now(), id);
    return this.get(id);
  }

  /**
   * Called when this process becomes the owner: runs left `running` become `interrupted` (see the header
   * comment). Never from a process that is not the owner: the running run may be training in the owner.
   */
  recoverInterrupted(): { runId: RunId; checkpointId: CheckpointId | null }[] {
    return this.s.recover.all(Date.now()).map((r) => ({ runId: r.id as RunId, checkpointId: r.resume_checkpoint_id as CheckpointId | null }));
  }

  // --- metrics ------------------------------------------------------------------------------------------------

  /** Records metric points (one transaction for the batch). A step recorded twice keeps the newer values. */
  appendMetrics(id: RunId, points: MetricPoint[]): void {
    writeTransaction(this.db, () => {
      this.get(id);
      const now = Date.now();
      for (const p of points) {
        if (!Number.isInteger(p.step) || p.step < 0) throw new StoreError(`run ${id}: metric step must be a whole number >= 0, got ${p.step}`);
        this.s.putMetric.run({
          run_id: id,
          step: p.step,
          loss: finiteOrNull(p.loss, 'loss', p.step),
          val_loss: finiteOrNull(p.valLoss, 'valLoss', p.step),
          lr: finiteOrNull(p.lr, 'lr', p.step),
          tokens_per_sec: finiteOrNull(p.tokensPerSec, 'tokensPerSec', p.step),
          memory_bytes: finiteOrNull(p.memoryBytes, 'memoryBytes', p.step),
          elapsed_ms: finiteOrNull(p.elapsedMs, 'elapsedMs', p.step),
          recorded_at: now,
        });
      }
    });
  }

  /** Metric points after `afterStep` (all by default), in step order: poll with the last step seen. */
  metrics(id: RunId, afterStep = -1): StoredMetricPoint[] {
    return this.s.metrics.all(id, afterStep).map(toMetric);
  }

  // --- checkpoints --------------------------------------------------------------------------------------------

  addCheckpoint(id: RunId, checkpoint: { step: number; path: string; meta?: Record<string, unknown> }): Checkpoint {
    this.get(id);
    const cid = newId<CheckpointId>('ckpt');
    try {
      this.s.insertCheckpoint.run(cid, id, checkpoint.step, this.ws.toStoredPath(checkpoint.path), writeJson(checkpoint.meta ?? {}, 'meta'), Date.now());
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new StoreError(`run ${id} already has a checkpoint at step ${checkpoint.step}`);
      throw err;
    }
    return this.checkpoint(cid);
  }

  checkpoint(id: CheckpointId): Checkpoint {
    const row = this.s.checkpoint.get(id);
    if (!row) throw new NotFoundError('checkpoint', id);
    return this.toCheckpoint(row);
  }

  checkpoints(id: RunId): Checkpoint[] {
    return this.s.checkpoints.all(id).map((r) => this.toCheckpoint(r));
  }

  private toCheckpoint(r: CheckpointRow): Checkpoint {
    return {
      id: r.id as CheckpointId,
      runId: r.run_id as RunId,
      step: r.step,
      path: this.ws.fromStoredPath(r.path),
      meta: readJson(r.meta, `checkpoints.meta of ${r.id}`),
      createdAt: r.created_at,
    };
  }
}
