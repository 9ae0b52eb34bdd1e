// Base models the workspace knows: where the files are, a fingerprint that changes when they do, and a
// small config summary for lists (layers, width, vocabulary, parameter count).

import { NotFoundError, StoreError } from './errors.js';
import { newId, type ModelId } from './ids.js';
import { readJson, writeJson } from './json-column.js';
import type { Db, Workspace } from './workspace.js';

export interface Model {
  id: ModelId;
  name: string;
  /** Absolute path of the model folder or file (stored relative to the workspace when inside it). */
  path: string;
  /** Decided by the engine (a hash of config and weight index); a run records it to detect a changed model. */
  fingerprint: string;
  config: Record<string, unknown>;
  addedAt: number;
}

interface ModelRow {
  id: string;
  name: string;
  path: string;
  fingerprint: string;
  config: string;
  added_at: number;
}

export class ModelStore {
  private readonly s;

  constructor(
    db: Db,
    private readonly ws: Workspace,
  ) {
    this.s = {
      byId: db.prepare<[string], ModelRow>('SELECT * FROM models WHERE id = ?'),
      byPath: db.prepare<[string], ModelRow>('SELECT * FROM models WHERE path = ?'),
      list: db.prepare<[], ModelRow>('SELECT * FROM models ORDER BY added_at, name'),
      insert: db.prepare('INSERT INTO models (id, name, path, fingerprint, config, added_at) VALUES (?, ?, ?, ?, ?, ?)'),
      update: db.prepare('UPDATE models SET name = ?, fingerprint = ?, config = ? WHERE id = ?'),
      delete: db.prepare('DELETE FROM models WHERE id = ?'),
      usedBy: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM runs WHERE model_id = ?'),
    };
  }

  /** Adds a model, or refreshes the name, fingerprint and config of the one already at `path` (same id). */
  register(model: { name: string; path: string; fingerprint: string; config?: Record<string, unknown> }): Model {
    if (!model.name.trim()) throw new StoreError('a model needs a name');
    if (!model.fingerprint) throw new StoreError(`model ${model.name}: missing fingerprint`);
    const stored = this.ws.toStoredPath(model.path);
    const config = writeJson(model.config ?? {}, 'model config');
    const existing = this.s.byPath.get(stored);
    if (existing) {
      this.s.update.run(model.name.trim(), model.fingerprint, config, existing.id);
      return this.get(existing.id as ModelId);
    }
    const id = newId<ModelId>('model');
    this.s.insert.run(id, model.name.trim(), stored, model.fingerprint, config, Date.now());
    return this.get(id);
  }

  get(id: ModelId): Model {
    const row = this.s.byId.get(id);
    if (!row) throw new NotFoundError('model', id);
    return this.toModel(row);
  }

  list(): Model[] {
    return this.s.list.all().map((r) => this.toModel(r));
  }

  /** Forgets a model (its files stay). Refused while runs point at it. */
  remove(id: ModelId): void {
    this.get(id);
    const { n } = this.s.usedBy.get(id)!;
    if (n > 0) throw new StoreError(`model ${id} is used by ${n} run(s); delete those runs first`);
    this.s.delete.run(id);
  }

  private toModel(r: ModelRow): Model {
    return {
      id: r.id as ModelId,
      name: r.name,
      path: this.ws.fromStoredPath(r.path),
      fingerprint: r.fingerprint,
      config: readJson(r.config, `models.config of ${r.id}`),
      addedAt: r.added_at,
    };
  }
}
