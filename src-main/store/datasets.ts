// Datasets, their examples, and the version history that makes every edit undoable.
//
// Undo model. The `examples` table holds the current state. Every write is a change set (`applyChange`) that
// becomes a new numbered version and records, per touched example, a before-image in `dataset_changes`:
//   inserted example -> before = NULL
//   edited example   -> before = the old values of the changed fields
//   deleted example  -> before = the whole old row
// Stepping back over a version replays its before-images in reverse, which is how both `undo` and
// `examplesAt(version)` work. Undo does not erase history: it applies the inverse as a new version (kind
// 'undo') and marks the undone version `reverted_by`, so version numbers only grow and the exact data of any
// version a run trained on can still be rebuilt.

import type Database from 'better-sqlite3';
import type { Db } from './workspace.js';
import { contentHash } from './content-hash.js';
import { NotFoundError, StoreError } from './errors.js';
import { newId, type DatasetId, type ExampleId } from './ids.js';
import { readJson, writeJson } from './json-column.js';
import { writeTransaction } from './write-transaction.js';

export type Split = 'train' | 'val' | 'test';
export const SPLITS: readonly Split[] = ['train', 'val', 'test'];

export type VersionKind = 'create' | 'import' | 'edit' | 'delete' | 'tag' | 'split' | 'dedupe' | 'generate' | 'undo';

export interface ExampleText {
  instruction: string;
  input: string;
  output: string;
}

export interface NewExample extends ExampleText {
  tags?: string[];
  split?: Split | null;
  /** Where the example came from: a file name, `generated`, `manual`. */
  source?: string;
  /** 1-based line in `source` where the record starts (null when the source has no lines). */
  sourceLine?: number | null;
  /** The sha256 of an image already recorded in the workspace's image store (ImageStore.record). */
  image?: string | null;
  /** What the source record held beyond the text fields (ScienceQA's question, choices, answer, ...). */
  meta?: Record<string, unknown>;
}

export interface Example extends ExampleText {
  id: ExampleId;
  datasetId: DatasetId;
  tags: string[];
  split: Split | null;
  source: string;
  sourceLine: number | null;
  /** sha256 of the example's image in the workspace's image store, or null. */
  image: string | null;
  meta: Record<string, unknown>;
  contentHash: string;
  createdVersion: number;
  updatedVersion: number;
}

/** The fields an edit may change. */
export interface ExamplePatch {
  instruction?: string;
  input?: string;
  output?: string;
  tags?: string[];
  split?: Split | null;
  /** sha256 of an image already in the workspace's image store, or null to take the picture off. */
  image?: string | null;
}

export interface Dataset {
  id: DatasetId;
  name: string;
  description: string;
  /** The current version: the number of the latest change set. */
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface DatasetSummary extends Dataset {
  examples: number;
  /** Examples that carry an image. */
  images: number;
  splits: Record<Split | 'unassigned', number>;
}

export interface DatasetVersion {
  datasetId: DatasetId;
  version: number;
  kind: VersionKind;
  summary: string;
  provenance: Record<string, unknown>;
  /** For an undo: the version it reverted. */
  reverts: number | null;
  /** Set on a version that a later undo reverted. */
  revertedBy: number | null;
  createdAt: number;
  /** Examples inserted, edited or deleted by this version. */
  changes: number;
}

export interface ChangeSet {
  kind: Exclude<VersionKind, 'undo' | 'create'>;
  summary: string;
  provenance?: Record<string, unknown>;
  inserts?: NewExample[];
  updates?: { id: ExampleId; patch: ExamplePatch }[];
  deletes?: ExampleId[];
}

export interface ChangeOptions {
  /** Called every `progressEvery` inserted rows, inside the transaction (the UI shows import progress). */
  onProgress?: (done: number, total: number) => void;
  progressEvery?: number;
}

export interface ExampleQuery {
  /** Full-text search over instruction, input and output: every word must match (as a prefix). */
  search?: string;
  /** A split, or 'none' for examples not yet assigned one. */
  split?: Split | 'none';
  /** Examples carrying all of these tags. */
  tags?: string[];
  /** Bounds on the characters of instruction + input + output. */
  minChars?: number;
  maxChars?: number;
  hasInput?: boolean;
  /** Examples with (true) or without (false) an image. */
  hasImage?: boolean;
  limit?: number;
  offset?: number;
}

export interface ExamplePage {
  total: number;
  /** `position`: the example's number within its dataset (1 for the oldest), whatever the search or filter. */
  items: (Example & { position: number })[];
}

interface ExampleRow {
  id: number;
  dataset_id: string;
  instruction: string;
  input: string;
  output: string;
  tags: string;
  split: Split | null;
  source: string;
  source_line: number | null;
  image: string | null;
  meta: string;
  content_hash: string;
  created_version: number;
  updated_version: number;
}

interface DatasetRow {
  id: string;
  name: string;
  description: string;
  version: number;
  created_at: number;
  updated_at: number;
}

interface VersionRow {
  dataset_id: string;
  version: number;
  kind: VersionKind;
  summary: string;
  provenance: string;
  reverts: number | null;
  reverted_by: number | null;
  created_at: number;
  changes: number;
}

/** A before-image as stored in dataset_changes.before (column names, tags and meta as JSON values). */
type BeforeImage = Partial<Omit<ExampleRow, 'id' | 'dataset_id' | 'tags' | 'meta' | 'content_hash'>> & { tags?: string[]; meta?: Record<string, unknown> };

/** From this many inserted rows on, search indexing is done in one statement (see applyInTransaction). */
const BULK_INSERT_ROWS = 200;

/** Thrown inside a change transaction to roll it back when the change set turned out to change nothing. */
class NothingChanged extends Error {}

const PATCH_FIELDS = ['instruction', 'input', 'output', 'tags', 'split', 'image'] as const;
const TEXT_FIELDS = ['instruction', 'input', 'output'] as const;

function toExample(r: ExampleRow): Example {
  return {
    id: r.id as ExampleId,
    datasetId: r.dataset_id as DatasetId,
    instruction: r.instruction,
    input: r.input,
    output: r.output,
    tags: readJson<string[]>(r.tags, `examples.tags of example ${r.id}`),
    split: r.split,
    source: r.source,
    sourceLine: r.source_line,
    image: r.image,
    meta: readJson<Record<string, unknown>>(r.meta, `examples.meta of example ${r.id}`),
    contentHash: r.content_hash,
    createdVersion: r.created_version,
    updatedVersion: r.updated_version,
  };
}

function toDataset(r: DatasetRow): Dataset {
  return {
    id: r.id as DatasetId,
    name: r.name,
    description: r.description,
    version: r.version,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toVersion(r: VersionRow): DatasetVersion {
  return {
    datasetId: r.dataset_id as DatasetId,
    version: r.version,
    kind: r.kind,
    summary: r.summary,
    provenance: readJson(r.provenance, `dataset_versions.provenance of ${r.dataset_id} v${r.version}`),
    reverts: r.reverts,
    revertedBy: r.reverted_by,
    createdAt: r.created_at,
    changes: r.changes,
  };
}

/** The whole row as a before-image, for a delete. */
function fullImage(r: ExampleRow): BeforeImage {
  return {
    instruction: r.instruction,
    input: r.input,
    output: r.output,
    tags: readJson<string[]>(r.tags, `examples.tags of example ${r.id}`),
    split: r.split,
    source: r.source,
    source_line: r.source_line,
    image: r.image,
    meta: readJson<Record<string, unknown>>(r.meta, `examples.meta of example ${r.id}`),
    created_version: r.created_version,
    updated_version: r.updated_version,
  };
}

export function checkTags(tags: unknown, where: string): string[] {
  if (!Array.isArray(tags)) throw new StoreError(`${where}: tags must be a list of strings`);
  const out: string[] = [];
  for (const t of tags) {
    if (typeof t !== 'string' || t.trim() === '') throw new StoreError(`${where}: a tag must be non-empty text, got ${JSON.stringify(t)}`);
    const tag = t.trim();
    if (!out.includes(tag)) out.push(tag);
  }
  return out;
}

function checkSplit(split: unknown, where: string): Split | null {
  if (split === null || split === undefined) return null;
  if (!SPLITS.includes(split as Split)) throw new StoreError(`${where}: split must be one of ${SPLITS.join(', ')} or null, got ${JSON.stringify(split)}`);
  return split as Split;
}

function checkText(value: unknown, field: string, where: string, allowEmpty: boolean): string {
  if (typeof value !== 'string') throw new StoreError(`${where}: ${field} must be text`);
  if (!allowEmpty && value.trim() === '') throw new StoreError(`${where}: ${field} must not be empty`);
  return value;
}

/**
 * Turns free text into an FTS5 query: each word becomes a quoted prefix term, all required. Quoting keeps
 * FTS5 syntax characters (`"`, `*`, `-`, `:`, `AND`) in user input from being read as operators.
 */
export function toFtsQuery(text: string): string | null {
  const words = text.match(/[\p{L}\p{N}_]+/gu);
  if (!words || words.length === 0) return null;
  return words.map((w) => `"${w}"*`).join(' ');
}

export class DatasetStore {
  private readonly queryCache = new Map<string, Database.Statement>();
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      datasetById: db.prepare<[string], DatasetRow>('SELECT * FROM datasets WHERE id = ?'),
      datasetByName: db.prepare<[string], DatasetRow>('SELECT * FROM datasets WHERE name = ?'),
      listDatasets: db.prepare<[], DatasetRow & Record<'examples' | 'images' | 'train' | 'val' | 'test' | 'unassigned', number>>(`
        SELECT d.*,
          (SELECT count(*) FROM examples e WHERE e.dataset_id = d.id) AS examples,
          (SELECT count(*) FROM examples e WHERE e.dataset_id = d.id AND e.image IS NOT NULL) AS images,
          (SELECT count(*) FROM examples e WHERE e.dataset_id = d.id AND e.split = 'train') AS train,
          (SELECT count(*) FROM examples e WHERE e.dataset_id = d.id AND e.split = 'val') AS val,
          (SELECT count(*) FROM examples e WHERE e.dataset_id = d.id AND e.split = 'test') AS test,
          (SELECT count(*) FROM examples e WHERE e.dataset_id = d.id AND e.split IS NULL) AS unassigned
        FROM datasets d ORDER BY d.created_at, d.name`),
      insertDataset: db.prepare(
        'INSERT INTO datasets (id, name, description, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      renameDataset: db.prepare('UPDATE datasets SET name = ?, description = ?, updated_at = ? WHERE id = ?'),
      deleteDataset: db.prepare('DELETE FROM datasets WHERE id = ?'),
      runsUsing: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM runs WHERE dataset_id = ?'),
      bumpVersion: db.prepare('UPDATE datasets SET version = ?, updated_at = ? WHERE id = ?'),
      insertVersion: db.prepare(
        `INSERT INTO dataset_versions (dataset_id, version, kind, summary, provenance, reverts, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      markReverted: db.prepare('UPDATE dataset_versions SET reverted_by = ? WHERE dataset_id = ? AND version = ?'),
      versions: db.prepare<[string], VersionRow>(`
        SELECT v.*, (SELECT count(*) FROM dataset_changes c WHERE c.dataset_id = v.dataset_id AND c.version = v.version) AS changes
        FROM dataset_versions v WHERE v.dataset_id = ? ORDER BY v.version`),
      version: db.prepare<[string, number], VersionRow>(`
        SELECT v.*, (SELECT count(*) FROM dataset_changes c WHERE c.dataset_id = v.dataset_id AND c.version = v.version) AS changes
        FROM dataset_versions v WHERE v.dataset_id = ? AND v.version = ?`),
      undoTarget: db.prepare<[string], { version: number }>(`
        SELECT version FROM dataset_versions
        WHERE dataset_id = ? AND kind NOT IN ('undo', 'create') AND reverted_by IS NULL AND version > 1
        ORDER BY version DESC LIMIT 1`),
      insertChange: db.prepare('INSERT INTO dataset_changes (dataset_id, version, example_id, before) VALUES (?, ?, ?, ?)'),
      changesOf: db.prepare<[string, number], { example_id: number; before: string | null }>(
        'SELECT example_id, before FROM dataset_changes WHERE dataset_id = ? AND version = ? ORDER BY id DESC',
      ),
      changesAfter: db.prepare<[string, number], { example_id: number; before: string | null }>(
        'SELECT example_id, before FROM dataset_changes WHERE dataset_id = ? AND version > ? ORDER BY version DESC, id DESC',
      ),
      example: db.prepare<[number], ExampleRow>('SELECT * FROM examples WHERE id = ?'),
      examplesOf: db.prepare<[string], ExampleRow>('SELECT * FROM examples WHERE dataset_id = ? ORDER BY id'),
      examplesOfSplit: db.prepare<[string, string], ExampleRow>('SELECT * FROM examples WHERE dataset_id = ? AND split = ? ORDER BY id'),
      idsOf: db.prepare<[string], { id: number }>('SELECT id FROM examples WHERE dataset_id = ? ORDER BY id'),
      countOf: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM examples WHERE dataset_id = ?'),
      insertExample: db.prepare(`
        INSERT INTO examples (dataset_id, instruction, input, output, tags, split, source, source_line, image, meta, content_hash, created_version, updated_version)
        VALUES (@dataset_id, @instruction, @input, @output, @tags, @split, @source, @source_line, @image, @meta, @content_hash, @created_version, @updated_version)`),
      restoreExample: db.prepare(`
        INSERT INTO examples (id, dataset_id, instruction, input, output, tags, split, source, source_line, image, meta, content_hash, created_version, updated_version)
        VALUES (@id, @dataset_id, @instruction, @input, @output, @tags, @split, @source, @source_line, @image, @meta, @content_hash, @created_version, @updated_version)`),
      updateExample: db.prepare(`
        UPDATE examples SET instruction = @instruction, input = @input, output = @output, tags = @tags, split = @split,
          image = @image, content_hash = @content_hash, updated_version = @updated_version
        WHERE id = @id`),
      // Tags and split only: leaving the text columns out of SET keeps the FTS update trigger from firing,
      // which makes re-splitting 50K examples ~10x faster.
      updateMeta: db.prepare('UPDATE examples SET tags = @tags, split = @split, updated_version = @updated_version WHERE id = @id'),
      updateImage: db.prepare('UPDATE examples SET image = @image, content_hash = @content_hash WHERE id = @id'),
      deleteExample: db.prepare('DELETE FROM examples WHERE id = ?'),
      imageKnown: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM images WHERE sha256 = ?'),
      deferFts: db.prepare('UPDATE fts_sync SET deferred = ?'),
      indexFtsFrom: db.prepare(`
        INSERT INTO examples_fts (rowid, instruction, input, output)
        SELECT id, instruction, input, output FROM examples WHERE dataset_id = ? AND id >= ?`),
      imagesOf: db.prepare<[string], { image: string }>('SELECT DISTINCT image FROM examples WHERE dataset_id = ? AND image IS NOT NULL'),
      imagesOfSplit: db.prepare<[string, string], { image: string }>('SELECT DISTINCT image FROM examples WHERE dataset_id = ? AND split = ? AND image IS NOT NULL'),
      tagCounts: db.prepare<[string], { tag: string; n: number }>(`
        SELECT j.value AS tag, count(*) AS n FROM examples e, json_each(e.tags) j
        WHERE e.dataset_id = ? GROUP BY j.value ORDER BY n DESC, tag`),
      duplicateHashes: db.prepare<[string], { content_hash: string; ids: string }>(`
        SELECT content_hash, group_concat(id) AS ids FROM (SELECT id, content_hash FROM examples WHERE dataset_id = ? ORDER BY id)
        GROUP BY content_hash HAVING count(*) > 1 ORDER BY min(id)`),
    };
  }

  // --- datasets ---------------------------------------------------------------------------------------------

  /** Creates an empty dataset at version 1 (kind 'create'). */
  create(name: string, description = '', provenance: Record<string, unknown> = {}): Dataset {
    const clean = name.trim();
    if (clean === '') throw new StoreError('a dataset needs a name');
    return writeTransaction(this.db, () => {
      if (this.s.datasetByName.get(clean)) throw new StoreError(`a dataset named ${JSON.stringify(clean)} already exists`);
      const id = newId<DatasetId>('ds');
      const now = Date.now();
      this.s.insertDataset.run(id, clean, description, 1, now, now);
      this.s.insertVersion.run(id, 1, 'create', `created ${clean}`, writeJson(provenance, 'provenance'), null, now);
      return this.get(id);
    });
  }

  /**
   * Creates a dataset whose first version is `change` (an import, say), all in one transaction: either the
   * dataset exists with every example or it does not exist at all.
   */
  createWith(name: string, description: string, change: ChangeSet, options: ChangeOptions = {}): { dataset: Dataset; version: DatasetVersion } {
    const clean = name.trim();
    if (clean === '') throw new StoreError('a dataset needs a name');
    return writeTransaction(this.db, () => {
      if (this.s.datasetByName.get(clean)) throw new StoreError(`a dataset named ${JSON.stringify(clean)} already exists`);
      const id = newId<DatasetId>('ds');
      const now = Date.now();
      // Version 0 exists only inside this transaction: applying the change makes it version 1.
      this.s.insertDataset.run(id, clean, description, 0, now, now);
      let version: DatasetVersion;
      try {
        version = this.applyInTransaction(id, change, options);
      } catch (err) {
        if (err instanceof NothingChanged) throw new StoreError(`dataset ${JSON.stringify(clean)}: no examples to create it with`);
        throw err;
      }
      return { dataset: this.get(id), version };
    });
  }

  get(id: DatasetId): Dataset {
    const row = this.s.datasetById.get(id);
    if (!row) throw new NotFoundError('dataset', id);
    return toDataset(row);
  }

  /** A dataset by id or by exact name (what the CLI accepts). */
  find(idOrName: string): Dataset {
    const row = this.s.datasetById.get(idOrName) ?? this.s.datasetByName.get(idOrName);
    if (!row) throw new NotFoundError('dataset', idOrName);
    return toDataset(row);
  }

  list(): DatasetSummary[] {
    return this.s.listDatasets.all().map((r) => ({
      ...toDataset(r),
      examples: r.examples,
      images: r.images,
      splits: { train: r.train, val: r.val, test: r.test, unassigned: r.unassigned },
    }));
  }

  rename(id: DatasetId, name: string, description?: string): Dataset {
    const current = this.get(id);
    const clean = name.trim();
    if (clean === '') throw new StoreError('a dataset needs a name');
    const other = this.s.datasetByName.get(clean);
    if (other && other.id !== id) throw new StoreError(`a dataset named ${JSON.stringify(clean)} already exists`);
    this.s.renameDataset.run(clean, description ?? current.description, Date.now(), id);
    return this.get(id);
  }

  /** Deletes a dataset with its examples and history. Refused while runs point at it. */
  delete(id: DatasetId): void {
    this.get(id);
    const { n } = this.s.runsUsing.get(id)!;
    if (n > 0) throw new StoreError(`dataset ${id} is used by ${n} run(s); delete those runs first`);
    this.s.deleteDataset.run(id);
  }

  // --- examples -----------------------------------------------------------------------------------------------

  example(id: ExampleId): Example {
    const row = this.s.example.get(id);
    if (!row) throw new NotFoundError('example', id);
    return toExample(row);
  }

  count(datasetId: DatasetId): number {
    return this.s.countOf.get(datasetId)!.n;
  }

  exampleIds(datasetId: DatasetId): ExampleId[] {
    return this.s.idsOf.all(datasetId).map((r) => r.id as ExampleId);
  }

  /**
   * Streams the current examples in id order without loading them all. The connection is busy until the
   * iteration ends: do not write to the workspace inside the loop.
   */
  *iterate(datasetId: DatasetId, split?: Split): IterableIterator<Example> {
    const rows = split ? this.s.examplesOfSplit.iterate(datasetId, split) : this.s.examplesOf.iterate(datasetId);
    for (const row of rows) yield toExample(row);
  }

  /** Searches and filters the current examples (one page, plus the total count for paging). */
  query(datasetId: DatasetId, q: ExampleQuery = {}): ExamplePage {
    const where: string[] = ['e.dataset_id = @datasetId'];
    const params: Record<string, unknown> = { datasetId };
    let from = 'examples e';
    let order = 'e.id';
    const fts = q.search ? toFtsQuery(q.search) : null;
    if (fts) {
      from = 'examples_fts f JOIN examples e ON e.id = f.rowid';
      where.push('examples_fts MATCH @fts');
      params.fts = fts;
      order = 'f.rank, e.id';
    }
    if (q.split === 'none') where.push('e.split IS NULL');
    else if (q.split) {
      where.push('e.split = @split');
      params.split = checkSplit(q.split, 'filter');
    }
    (q.tags ?? []).forEach((tag, i) => {
      where.push(`EXISTS (SELECT 1 FROM json_each(e.tags) WHERE value = @tag${i})`);
      params[`tag${i}`] = tag;
    });
    const chars = 'length(e.instruction) + length(e.input) + length(e.output)';
    if (q.minChars !== undefined) {
      where.push(`${chars} >= @minChars`);
      params.minChars = q.minChars;
    }
    if (q.maxChars !== undefined) {
      where.push(`${chars} <= @maxChars`);
      params.maxChars = q.maxChars;
    }
    if (q.hasInput !== undefined) where.push(q.hasInput ? `e.input <> ''` : `e.input = ''`);
    if (q.hasImage !== undefined) where.push(q.hasImage ? 'e.image IS NOT NULL' : 'e.image IS NULL');
    const whereSql = where.join(' AND ');
    const total = (this.cached(`SELECT count(*) AS n FROM ${from} WHERE ${whereSql}`).get(params) as { n: number }).n;
    const rows = this.cached(`SELECT e.* FROM ${from} WHERE ${whereSql} ORDER BY ${order} LIMIT @limit OFFSET @offset`).all({
      ...params,
      limit: q.limit ?? 50,
      offset: q.offset ?? 0,
    }) as ExampleRow[];
    // Counted for the page's rows only (the covering index on (dataset_id, id) makes each a range count).
    const position = this.cached('SELECT count(*) AS n FROM examples WHERE dataset_id = ? AND id <= ?');
    return { total, items: rows.map((r) => ({ ...toExample(r), position: (position.get(datasetId, r.id) as { n: number }).n })) };
  }

  /** The distinct images (sha256) the dataset's current examples use, optionally of one split. */
  imagesOf(datasetId: DatasetId, split?: Split): string[] {
    const rows = split ? this.s.imagesOfSplit.all(datasetId, split) : this.s.imagesOf.all(datasetId);
    return rows.map((r) => r.image);
  }

  /** Each tag used in the dataset with how many examples carry it, most used first. */
  tagCounts(datasetId: DatasetId): { tag: string; count: number }[] {
    return this.s.tagCounts.all(datasetId).map((r) => ({ tag: r.tag, count: r.n }));
  }

  /** Groups of examples with the same normalised content hash (see content-hash.ts), in id order. */
  exactDuplicateGroups(datasetId: DatasetId): { contentHash: string; ids: ExampleId[] }[] {
    return this.s.duplicateHashes.all(datasetId).map((r) => ({
      contentHash: r.content_hash,
      ids: r.ids
        .split(',')
        .map(Number)
        .sort((a, b) => a - b) as ExampleId[],
    }));
  }

  // --- writes: every one is a version ---------------------------------------------------------------------------

  /**
   * Applies inserts, updates and deletes as one new version, in one transaction. Returns the new version, or
   * null when nothing actually changed (no version is recorded then).
   */
  applyChange(datasetId: DatasetId, change: ChangeSet, options: ChangeOptions = {}): DatasetVersion | null {
    try {
      return writeTransaction(this.db, () => this.applyInTransaction(datasetId, change, options));
    } catch (err) {
      if (err instanceof NothingChanged) return null;
      throw err;
    }
  }

  private applyInTransaction(datasetId: DatasetId, change: ChangeSet, options: ChangeOptions): DatasetVersion {
    const dataset = this.get(datasetId);
    const version = dataset.version + 1;
    const now = Date.now();
    this.s.insertVersion.run(datasetId, version, change.kind, change.summary, writeJson(change.provenance ?? {}, 'provenance'), null, now);
    let changed = 0;

    for (const id of change.deletes ?? []) {
      const row = this.rowIn(datasetId, id);
      this.s.insertChange.run(datasetId, version, id, JSON.stringify(fullImage(row)));
      this.s.deleteExample.run(id);
      changed++;
    }

    for (const { id, patch } of change.updates ?? []) {
      const row = this.rowIn(datasetId, id);
      const where = `example ${id}`;
      const next = {
        instruction: patch.instruction !== undefined ? checkText(patch.instruction, 'instruction', where, false) : row.instruction,
        input: patch.input !== undefined ? checkText(patch.input, 'input', where, true) : row.input,
        output: patch.output !== undefined ? checkText(patch.output, 'output', where, false) : row.output,
        tags: patch.tags !== undefined ? JSON.stringify(checkTags(patch.tags, where)) : row.tags,
        split: patch.split !== undefined ? checkSplit(patch.split, where) : row.split,
        image: patch.image !== undefined ? this.checkImage(patch.image, where) : row.image,
      };
      const before: BeforeImage = {};
      for (const f of PATCH_FIELDS) {
        if (next[f] !== row[f]) (before as Record<string, unknown>)[f] = f === 'tags' ? JSON.parse(row.tags) : row[f];
      }
      if (Object.keys(before).length === 0) continue;
      before.updated_version = row.updated_version;
      this.s.insertChange.run(datasetId, version, id, JSON.stringify(before));
      this.writeRow(id, next, version, TEXT_FIELDS.some((f) => f in before), 'image' in before);
      changed++;
    }

    const inserts = change.inserts ?? [];
    const every = options.progressEvery ?? 1000;
    // Many rows: index them for search in one statement at the end instead of one trigger call per row
    // (see fts_sync in schema.ts).
    const bulk = inserts.length >= BULK_INSERT_ROWS;
    if (bulk) this.s.deferFts.run(1);
    let firstInserted: number | bigint | null = null;
    inserts.forEach((ex, i) => {
      const where = `new example ${i + 1}`;
      const instruction = checkText(ex.instruction, 'instruction', where, false);
      const input = checkText(ex.input ?? '', 'input', where, true);
      const output = checkText(ex.output, 'output', where, false);
      const image = this.checkImage(ex.image ?? null, where);
      const { lastInsertRowid } = this.s.insertExample.run({
        dataset_id: datasetId,
        instruction,
        input,
        output,
        tags: JSON.stringify(checkTags(ex.tags ?? [], where)),
        split: checkSplit(ex.split, where),
        source: ex.source ?? '',
        source_line: ex.sourceLine ?? null,
        image,
        meta: writeJson(ex.meta ?? {}, `${where}: meta`),
        content_hash: contentHash(instruction, input, output, image),
        created_version: version,
        updated_version: version,
      });
      firstInserted ??= lastInsertRowid;
      this.s.insertChange.run(datasetId, version, lastInsertRowid, null);
      changed++;
      if (options.onProgress && (i + 1) % every === 0) options.onProgress(i + 1, inserts.length);
    });
    if (bulk) {
      // ids only grow (AUTOINCREMENT) and this transaction is the only writer, so id >= the first new id is
      // exactly the rows inserted above.
      this.s.indexFtsFrom.run(datasetId, firstInserted);
      this.s.deferFts.run(0);
    }

    // "Nothing changed" is a normal answer (re-running a split with the same seed): throwing rolls back the
    // version row, and applyChange turns it into null.
    if (changed === 0) throw new NothingChanged();
    this.s.bumpVersion.run(version, now, datasetId);
    return this.version(datasetId, version);
  }

  version(datasetId: DatasetId, version: number): DatasetVersion {
    const row = this.s.version.get(datasetId, version);
    if (!row) throw new NotFoundError('dataset version', `${datasetId} v${version}`);
    return toVersion(row);
  }

  versions(datasetId: DatasetId): DatasetVersion[] {
    this.get(datasetId);
    return this.s.versions.all(datasetId).map(toVersion);
  }

  /** The version `undo` would revert now, or null when there is nothing left to undo. */
  undoTarget(datasetId: DatasetId): DatasetVersion | null {
    const row = this.s.undoTarget.get(datasetId);
    return row ? this.version(datasetId, row.version) : null;
  }

  /**
   * Reverts the latest change that is not an undo and not already reverted (so repeated undos walk back
   * through history), recorded as a new 'undo' version. The dataset's first version cannot be undone: delete
   * the dataset instead.
   */
  undo(datasetId: DatasetId): DatasetVersion {
    return writeTransaction(this.db, () => {
      const dataset = this.get(datasetId);
      const target = this.undoTarget(datasetId);
      if (!target) throw new StoreError(`dataset ${dataset.name}: nothing to undo`);
      const version = dataset.version + 1;
      const now = Date.now();
      this.s.insertVersion.run(datasetId, version, 'undo', `undo v${target.version}: ${target.summary}`, '{}', target.version, now);
      for (const change of this.s.changesOf.all(datasetId, target.version)) {
        this.stepBack(datasetId, version, change.example_id as ExampleId, change.before);
      }
      this.s.markReverted.run(version, datasetId, target.version);
      this.s.bumpVersion.run(version, now, datasetId);
      return this.version(datasetId, version);
    });
  }

  /**
   * The examples as they were at `version` (in id order): the current rows with the before-images of every
   * later version replayed, newest first.
   */
  examplesAt(datasetId: DatasetId, version: number): Example[] {
    const dataset = this.get(datasetId);
    if (!Number.isInteger(version) || version < 1 || version > dataset.version) {
      throw new StoreError(`dataset ${dataset.name} has versions 1 to ${dataset.version}, not ${version}`);
    }
    const rows = new Map<number, ExampleRow>();
    for (const r of this.s.examplesOf.iterate(datasetId)) rows.set(r.id, r);
    for (const c of this.s.changesAfter.iterate(datasetId, version)) {
      if (c.before === null) {
        rows.delete(c.example_id);
        continue;
      }
      const before = JSON.parse(c.before) as BeforeImage;
      const row = rows.get(c.example_id) ?? ({ id: c.example_id, dataset_id: datasetId, image: null, meta: '{}' } as unknown as ExampleRow);
      Object.assign(row, before, before.tags ? { tags: JSON.stringify(before.tags) } : {}, before.meta ? { meta: JSON.stringify(before.meta) } : {});
      row.content_hash = contentHash(row.instruction, row.input, row.output, row.image);
      rows.set(c.example_id, row);
    }
    return [...rows.values()].sort((a, b) => a.id - b.id).map(toExample);
  }

  // --- convenience edits ------------------------------------------------------------------------------------

  edit(id: ExampleId, patch: ExamplePatch): DatasetVersion | null {
    const ex = this.example(id);
    return this.applyChange(ex.datasetId, { kind: 'edit', summary: `edited example ${id}`, updates: [{ id, patch }] });
  }

  deleteExamples(datasetId: DatasetId, ids: ExampleId[]): DatasetVersion | null {
    return this.applyChange(datasetId, { kind: 'delete', summary: `deleted ${ids.length} example(s)`, deletes: ids });
  }

  addExamples(datasetId: DatasetId, examples: NewExample[], summary = `added ${examples.length} example(s)`): DatasetVersion | null {
    return this.applyChange(datasetId, { kind: 'edit', summary, inserts: examples });
  }

  addTags(datasetId: DatasetId, ids: ExampleId[], tags: string[]): DatasetVersion | null {
    const add = checkTags(tags, 'addTags');
    const updates = ids.map((id) => {
      const ex = toExample(this.rowIn(datasetId, id));
      return { id, patch: { tags: [...ex.tags, ...add.filter((t) => !ex.tags.includes(t))] } };
    });
    return this.applyChange(datasetId, { kind: 'tag', summary: `tagged ${ids.length} example(s) ${add.join(', ')}`, updates });
  }

  removeTags(datasetId: DatasetId, ids: ExampleId[], tags: string[]): DatasetVersion | null {
    const drop = checkTags(tags, 'removeTags');
    const updates = ids.map((id) => {
      const ex = toExample(this.rowIn(datasetId, id));
      return { id, patch: { tags: ex.tags.filter((t) => !drop.includes(t)) } };
    });
    return this.applyChange(datasetId, { kind: 'tag', summary: `untagged ${ids.length} example(s) ${drop.join(', ')}`, updates });
  }

  // --- internals -----------------------------------------------------------------------------------------------

  private rowIn(datasetId: DatasetId, id: ExampleId): ExampleRow {
    const row = this.s.example.get(id);
    if (!row || row.dataset_id !== datasetId) throw new NotFoundError(`example in dataset ${datasetId}:`, id);
    return row;
  }

  /** Undoes one recorded change and records the inverse (with its own before-image) under `version`. */
  private stepBack(datasetId: DatasetId, version: number, id: ExampleId, beforeJson: string | null): void {
    const row = this.s.example.get(id);
    if (beforeJson === null) {
      // The undone version inserted this example: delete it.
      if (!row) return;
      this.s.insertChange.run(datasetId, version, id, JSON.stringify(fullImage(row)));
      this.s.deleteExample.run(id);
      return;
    }
    const before = JSON.parse(beforeJson) as BeforeImage;
    if (!row) {
      // The undone version deleted this example: put it back under its old id.
      // Before-images written before images existed have no image or meta.
      const full = { image: null, ...before, tags: JSON.stringify(before.tags ?? []), meta: JSON.stringify(before.meta ?? {}) } as Omit<ExampleRow, 'id' | 'dataset_id' | 'content_hash'>;
      this.s.restoreExample.run({
        ...full,
        id,
        dataset_id: datasetId,
        content_hash: contentHash(full.instruction, full.input, full.output, full.image),
      });
      this.s.insertChange.run(datasetId, version, id, null);
      return;
    }
    // The undone version edited this example: restore the old field values.
    const current = fullImage(row) as Record<string, unknown>;
    const inverse: Record<string, unknown> = {};
    for (const key of Object.keys(before)) inverse[key] = current[key];
    const next = { ...current, ...before } as BeforeImage & ExampleText;
    this.s.insertChange.run(datasetId, version, id, JSON.stringify(inverse));
    const fields = { instruction: next.instruction, input: next.input, output: next.output, tags: JSON.stringify(next.tags ?? []), split: next.split ?? null, image: next.image ?? null };
    this.writeRow(id, fields, version, TEXT_FIELDS.some((f) => f in before), 'image' in before);
  }

  /** An image reference as stored: null, or the sha256 of a row in the image store. */
  private checkImage(image: unknown, where: string): string | null {
    if (image === null) return null;
    if (typeof image !== 'string' || this.s.imageKnown.get(image)!.n === 0) {
      throw new StoreError(`${where}: image ${String(image)} is not in the workspace's image store (record it first)`);
    }
    return image;
  }

  /**
   * Updates an example's fields; the text columns (and search index) only when `textChanged`. The content
   * hash covers the image too, so a new picture rehashes the row.
   */
  private writeRow(
    id: ExampleId,
    f: { instruction: string; input: string; output: string; tags: string; split: Split | null; image: string | null },
    version: number,
    textChanged: boolean,
    imageChanged: boolean,
  ): void {
    if (textChanged) {
      this.s.updateExample.run({ id, ...f, content_hash: contentHash(f.instruction, f.input, f.output, f.image), updated_version: version });
      return;
    }
    this.s.updateMeta.run({ id, tags: f.tags, split: f.split, updated_version: version });
    if (imageChanged) this.s.updateImage.run({ id, image: f.image, content_hash: contentHash(f.instruction, f.input, f.output, f.image) });
  }

  private cached(sql: string): Database.Statement {
    let stmt = this.queryCache.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.queryCache.set(sql, stmt);
    }
    return stmt;
  }
}
