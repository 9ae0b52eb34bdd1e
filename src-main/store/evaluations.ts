// Evaluations: a model (optionally with a run's adapter) answering a dataset split, with each answer kept so
// the UI can show them next to the reference.

import { NotFoundError, StoreError } from './errors.js';
import { newId, type DatasetId, type EvaluationId, type ExampleId, type ModelId, type RunId } from './ids.js';
import { readJson, writeJson } from './json-column.js';
import type { Db } from './workspace.js';
import { writeTransaction } from './write-transaction.js';

export type EvaluationStatus = 'running' | 'completed' | 'failed' | 'cancelled';

export interface NewEvaluation {
  name: string;
  runId?: RunId | null;
  modelId?: ModelId | null;
  adapterPath?: string | null;
  datasetId?: DatasetId | null;
  datasetVersion?: number | null;
  split?: string | null;
  /** Generation settings and anything else needed to repeat it. */
  config?: Record<string, unknown>;
}

export interface Evaluation extends Required<Omit<NewEvaluation, 'config'>> {
  id: EvaluationId;
  config: Record<string, unknown>;
  metrics: Record<string, number>;
  status: EvaluationStatus;
  error: string | null;
  createdAt: number;
  finishedAt: number | null;
  outputs: number;
}

export interface EvaluationOutput {
  position: number;
  exampleId: ExampleId | null;
  prompt: string;
  reference: string | null;
  output: string;
  scores: Record<string, number>;
}

interface EvaluationRow {
  id: string;
  name: string;
  run_id: string | null;
  model_id: string | null;
  adapter_path: string | null;
  dataset_id: string | null;
  dataset_version: number | null;
  split: string | null;
  config: string;
  metrics: string;
  status: EvaluationStatus;
  error: string | null;
  created_at: number;
  finished_at: number | null;
  outputs: number;
}

interface OutputRow {
  position: number;
  example_id: number | null;
  prompt: string;
  reference: string | null;
  output: string;
  scores: string;
}

function toEvaluation(r: EvaluationRow): Evaluation {
  return {
    id: r.id as EvaluationId,
    name: r.name,
    runId: r.run_id as RunId | null,
    modelId: r.model_id as ModelId | null,
    adapterPath: r.adapter_path,
    datasetId: r.dataset_id as DatasetId | null,
    datasetVersion: r.dataset_version,
    split: r.split,
    config: readJson(r.config, `evaluations.config of ${r.id}`),
    metrics: readJson(r.metrics, `evaluations.metrics of ${r.id}`),
    status: r.status,
    error: r.error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    outputs: r.outputs,
  };
}

export class EvaluationStore {
  private readonly s;

  constructor(private readonly db: Db) {
    const select = `SELECT v.*, (SELECT count(*) FROM evaluation_outputs o WHERE o.evaluation_id = v.id) AS outputs FROM evaluations v`;
    this.s = {
      insert: db.prepare(`
        INSERT INTO evaluations (id, name, run_id, model_id, adapter_path, dataset_id, dataset_version, split, config, status, created_at)
        VALUES (@id, @name, @run_id, @model_id, @adapter_path, @dataset_id, @dataset_version, @split, @config, 'running', @now)`),
      get: db.prepare<[string], EvaluationRow>(`${select} WHERE v.id = ?`),
      list: db.prepare<[], EvaluationRow>(`${select} ORDER BY v.created_at DESC, v.id`),
      listForRun: db.prepare<[string], EvaluationRow>(`${select} WHERE v.run_id = ? ORDER BY v.created_at DESC, v.id`),
      finish: db.prepare('UPDATE evaluations SET status = ?, metrics = ?, error = ?, finished_at = ? WHERE id = ?'),
      nextPosition: db.prepare<[string], { n: number }>('SELECT coalesce(max(position) + 1, 0) AS n FROM evaluation_outputs WHERE evaluation_id = ?'),
      insertOutput: db.prepare(`
        INSERT INTO evaluation_outputs (evaluation_id, position, example_id, prompt, reference, output, scores)
        VALUES (?, ?, ?, ?, ?, ?, ?)`),
      outputs: db.prepare<[string, number, number], OutputRow>(
        'SELECT * FROM evaluation_outputs WHERE evaluation_id = ? ORDER BY position LIMIT ? OFFSET ?',
      ),
      delete: db.prepare('DELETE FROM evaluations WHERE id = ?'),
      reopen: db.prepare("UPDATE evaluations SET status = 'running', error = NULL, finished_at = NULL WHERE id = ?"),
    };
  }

  create(e: NewEvaluation): Evaluation {
    if (!e.name.trim()) throw new StoreError('an evaluation needs a name');
    const id = newId<EvaluationId>('eval');
    this.s.insert.run({
      id,
      name: e.name.trim(),
      run_id: e.runId ?? null,
      model_id: e.modelId ?? null,
      adapter_path: e.adapterPath ?? null,
      dataset_id: e.datasetId ?? null,
      dataset_version: e.datasetVersion ?? null,
      split: e.split ?? null,
      config: writeJson(e.config ?? {}, 'evaluation config'),
      now: Date.now(),
    });
    return this.get(id);
  }

  get(id: EvaluationId): Evaluation {
    const row = this.s.get.get(id);
    if (!row) throw new NotFoundError('evaluation', id);
    return toEvaluation(row);
  }

  list(runId?: RunId): Evaluation[] {
    return (runId ? this.s.listForRun.all(runId) : this.s.list.all()).map(toEvaluation);
  }

  /** Appends outputs in order (one transaction per batch). */
  addOutputs(id: EvaluationId, outputs: Omit<EvaluationOutput, 'position'>[]): void {
    writeTransaction(this.db, () => {
      if (this.get(id).status !== 'running') throw new StoreError(`evaluation ${id} is finished; it takes no more outputs`);
      let position = this.s.nextPosition.get(id)!.n;
      for (const o of outputs) {
        this.s.insertOutput.run(id, position++, o.exampleId ?? null, o.prompt, o.reference ?? null, o.output, writeJson(o.scores ?? {}, 'scores'));
      }
    });
  }

  finish(id: EvaluationId, result: { status: Exclude<EvaluationStatus, 'running'>; metrics?: Record<string, number>; error?: string }): Evaluation {
    return writeTransaction(this.db, () => {
      const current = this.get(id);
      if (current.status !== 'running') throw new StoreError(`evaluation ${id} is already ${current.status}`);
      this.s.finish.run(result.status, writeJson(result.metrics ?? {}, 'metrics'), result.error ?? null, Date.now(), id);
      return this.get(id);
    });
  }

  /** A cancelled or failed evaluation takes outputs again (it continues after the ones it has). */
  reopen(id: EvaluationId): Evaluation {
    const current = this.get(id);
    if (current.status === 'completed') throw new StoreError(`evaluation ${id} is completed; it cannot be reopened`);
    this.s.reopen.run(id);
    return this.get(id);
  }

  outputs(id: EvaluationId, page: { limit?: number; offset?: number } = {}): EvaluationOutput[] {
    return this.s.outputs.all(id, page.limit ?? 1000, page.offset ?? 0).map((r) => ({
      position: r.position,
      exampleId: r.example_id as ExampleId | null,
      prompt: r.prompt,
      reference: r.reference,
      output: r.output,
      scores: readJson(r.scores, `evaluation_outputs.scores of ${id}#${r.position}`),
    }));
  }

  delete(id: EvaluationId): void {
    this.get(id);
    this.s.delete.run(id);
  }
}
