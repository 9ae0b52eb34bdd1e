// Sweeps: one base recipe and one or two varied settings, expanded into points. Each point is an ordinary run
// (queued in the same transaction that stores the sweep) and, once the run has trained, an evaluation suite
// scoring it. The store keeps which run and which suite belong to each point; what to do next is the
// service's (src-main/service/sweeps.ts), so a restarted process picks a sweep up where it was.

import { NotFoundError, StoreError } from './errors.js';
import { newId, type DatasetId, type ModelId, type RunId, type SweepId } from './ids.js';
import { readJson, writeJson } from './json-column.js';
import type { Db } from './workspace.js';
import { writeTransaction } from './write-transaction.js';

export type SweepStatus = 'running' | 'completed' | 'cancelled';

/** The value of each varied setting at one point, by field name ("adapterLayers", "data.fraction", ...). */
export type SweepSettings = Record<string, string | number | boolean | null>;

export interface SweepPoint {
  position: number;
  settings: SweepSettings;
  runId: RunId | null;
  evalSuite: string | null;
}

export interface Sweep {
  id: SweepId;
  name: string;
  modelId: ModelId | null;
  datasetId: DatasetId | null;
  datasetVersion: number;
  spec: Record<string, unknown>;
  status: SweepStatus;
  createdAt: number;
  finishedAt: number | null;
  points: SweepPoint[];
}

export interface NewSweep {
  name: string;
  modelId: ModelId;
  datasetId: DatasetId;
  datasetVersion: number;
  spec: Record<string, unknown>;
  /** In order; each point's run, created by `createRun` inside the sweep's transaction. */
  points: { settings: SweepSettings; createRun: () => RunId }[];
}

interface SweepRow {
  id: string;
  name: string;
  model_id: string | null;
  dataset_id: string | null;
  dataset_version: number;
  spec: string;
  status: SweepStatus;
  created_at: number;
  finished_at: number | null;
}

interface PointRow {
  position: number;
  settings: string;
  run_id: string | null;
  eval_suite: string | null;
}

export class SweepStore {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      insert: db.prepare(`
        INSERT INTO sweeps (id, name, model_id, dataset_id, dataset_version, spec, status, created_at)
        VALUES (@id, @name, @model_id, @dataset_id, @dataset_version, @spec, 'running', @now)`),
      insertPoint: db.prepare('INSERT INTO sweep_points (sweep_id, position, settings, run_id) VALUES (?, ?, ?, ?)'),
      get: db.prepare<[string], SweepRow>('SELECT * FROM sweeps WHERE id = ?'),
      list: db.prepare<[], SweepRow>('SELECT * FROM sweeps ORDER BY created_at DESC, id'),
      listByStatus: db.prepare<[string], SweepRow>('SELECT * FROM sweeps WHERE status = ? ORDER BY created_at, id'),
      points: db.prepare<[string], PointRow>('SELECT position, settings, run_id, eval_suite FROM sweep_points WHERE sweep_id = ? ORDER BY position'),
      ofRun: db.prepare<[string], { sweep_id: string }>('SELECT sweep_id FROM sweep_points WHERE run_id = ?'),
      setSuite: db.prepare('UPDATE sweep_points SET eval_suite = ? WHERE sweep_id = ? AND position = ? AND eval_suite IS NULL'),
      finish: db.prepare("UPDATE sweeps SET status = ?, finished_at = ? WHERE id = ? AND status = 'running'"),
      delete: db.prepare('DELETE FROM sweeps WHERE id = ?'),
    };
  }

  /** The sweep, its points and every point's run, in one transaction: a crash leaves all of it or none. */
  create(sweep: NewSweep): Sweep {
    if (!sweep.name.trim()) throw new StoreError('a sweep needs a name');
    if (sweep.points.length === 0) throw new StoreError('a sweep needs at least one point');
    const id = newId<SweepId>('swp');
    writeTransaction(this.db, () => {
      this.s.insert.run({
        id,
        name: sweep.name.trim(),
        model_id: sweep.modelId,
        dataset_id: sweep.datasetId,
        dataset_version: sweep.datasetVersion,
        spec: writeJson(sweep.spec, 'sweep spec'),
        now: Date.now(),
      });
      sweep.points.forEach((p, position) => this.s.insertPoint.run(id, position, writeJson(p.settings, 'sweep point settings'), p.createRun()));
    });
    return this.get(id);
  }

  get(id: SweepId): Sweep {
    const row = this.s.get.get(id);
    if (!row) throw new NotFoundError('sweep', id);
    return this.toSweep(row);
  }

  list(status?: SweepStatus): Sweep[] {
    return (status ? this.s.listByStatus.all(status) : this.s.list.all()).map((r) => this.toSweep(r));
  }

  /** The sweep a run was queued by, or null for a run of its own. */
  sweepOf(runId: RunId): SweepId | null {
    return (this.s.ofRun.get(runId)?.sweep_id as SweepId | undefined) ?? null;
  }

  /**
   * Records the suite scoring a point, inside `createSuite`'s transaction: the suite and the record of it are
   * written together, so a crash cannot leave a suite no point knows (which a restart would evaluate again).
   * Returns false, creating nothing, when the point has a suite already.
   */
  attachSuite(id: SweepId, position: number, createSuite: () => string): boolean {
    return writeTransaction(this.db, () => {
      const point = this.get(id).points.find((p) => p.position === position);
      if (!point) throw new NotFoundError('sweep point', `${id}#${position}`);
      if (point.evalSuite) return false;
      this.s.setSuite.run(createSuite(), id, position);
      return true;
    });
  }

  finish(id: SweepId, status: Exclude<SweepStatus, 'running'>): Sweep {
    this.get(id);
    this.s.finish.run(status, Date.now(), id);
    return this.get(id);
  }

  /** Forgets the sweep; its runs and evaluations stay in the history as ordinary ones. */
  delete(id: SweepId): void {
    this.get(id);
    this.s.delete.run(id);
  }

  private toSweep(r: SweepRow): Sweep {
    return {
      id: r.id as SweepId,
      name: r.name,
      modelId: r.model_id as ModelId | null,
      datasetId: r.dataset_id as DatasetId | null,
      datasetVersion: r.dataset_version,
      spec: readJson(r.spec, `sweeps.spec of ${r.id}`),
      status: r.status,
      createdAt: r.created_at,
      finishedAt: r.finished_at,
      points: this.s.points.all(r.id).map((p) => ({
        position: p.position,
        settings: readJson(p.settings, `sweep_points.settings of ${r.id}#${p.position}`),
        runId: p.run_id as RunId | null,
        evalSuite: p.eval_suite,
      })),
    };
  }
}
