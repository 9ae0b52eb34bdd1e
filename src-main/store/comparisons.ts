// Side-by-side comparisons: the same prompts answered by two setups (say, LLaMA-Adapter and the full
// fine-tune), each pair rated by the user.

import { NotFoundError, StoreError } from './errors.js';
import { newId, type ComparisonId, type ComparisonItemId, type ModelId, type RunId } from './ids.js';
import { readJson, writeJson } from './json-column.js';
import type { Db } from './workspace.js';

export type Rating = 'left' | 'right' | 'tie' | 'both_bad';
const RATINGS: readonly Rating[] = ['left', 'right', 'tie', 'both_bad'];

/** One side of a comparison: what produced its answers. */
export interface ComparisonSide {
  label: string;
  modelId?: ModelId | null;
  runId?: RunId | null;
  adapterPath?: string | null;
  /** Generation settings (temperature, max tokens, ...). */
  settings?: Record<string, unknown>;
}

export interface Comparison {
  id: ComparisonId;
  name: string;
  left: ComparisonSide;
  right: ComparisonSide;
  createdAt: number;
  /** How the rated items came out, and how many are still unrated. */
  tally: Record<Rating | 'unrated', number>;
}

export interface ComparisonItem {
  id: ComparisonItemId;
  comparisonId: ComparisonId;
  prompt: string;
  leftOutput: string;
  rightOutput: string;
  /** sha256 of the picture (in the image store) the prompt was answered with, or null. */
  image: string | null;
  rating: Rating | null;
  note: string;
  ratedAt: number | null;
  createdAt: number;
}

interface ComparisonRow {
  id: string;
  name: string;
  left_side: string;
  right_side: string;
  created_at: number;
}

interface ItemRow {
  id: number;
  comparison_id: string;
  prompt: string;
  left_output: string;
  right_output: string;
  image: string | null;
  rating: Rating | null;
  note: string;
  rated_at: number | null;
  created_at: number;
}

function toItem(r: ItemRow): ComparisonItem {
  return {
    id: r.id as ComparisonItemId,
    comparisonId: r.comparison_id as ComparisonId,
    prompt: r.prompt,
    leftOutput: r.left_output,
    rightOutput: r.right_output,
    image: r.image,
    rating: r.rating,
    note: r.note,
    ratedAt: r.rated_at,
    createdAt: r.created_at,
  };
}

export class ComparisonStore {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      insert: db.prepare('INSERT INTO comparisons (id, name, left_side, right_side, created_at) VALUES (?, ?, ?, ?, ?)'),
      get: db.prepare<[string], ComparisonRow>('SELECT * FROM comparisons WHERE id = ?'),
      list: db.prepare<[], ComparisonRow>('SELECT * FROM comparisons ORDER BY created_at DESC, id'),
      tally: db.prepare<[string], { rating: Rating | null; n: number }>(
        'SELECT rating, count(*) AS n FROM comparison_items WHERE comparison_id = ? GROUP BY rating',
      ),
      delete: db.prepare('DELETE FROM comparisons WHERE id = ?'),
      insertItem: db.prepare(
        'INSERT INTO comparison_items (comparison_id, prompt, left_output, right_output, image, created_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      item: db.prepare<[number], ItemRow>('SELECT * FROM comparison_items WHERE id = ?'),
      items: db.prepare<[string], ItemRow>('SELECT * FROM comparison_items WHERE comparison_id = ? ORDER BY id'),
      rate: db.prepare('UPDATE comparison_items SET rating = ?, note = ?, rated_at = ? WHERE id = ?'),
    };
  }

  create(name: string, left: ComparisonSide, right: ComparisonSide): Comparison {
    if (!name.trim()) throw new StoreError('a comparison needs a name');
    if (!left.label || !right.label) throw new StoreError(`comparison ${name}: each side needs a label`);
    const id = newId<ComparisonId>('cmp');
    this.s.insert.run(id, name.trim(), writeJson(left, 'left side'), writeJson(right, 'right side'), Date.now());
    return this.get(id);
  }

  get(id: ComparisonId): Comparison {
    const row = this.s.get.get(id);
    if (!row) throw new NotFoundError('comparison', id);
    return this.toComparison(row);
  }

  list(): Comparison[] {
    return this.s.list.all().map((r) => this.toComparison(r));
  }

  delete(id: ComparisonId): void {
    this.get(id);
    this.s.delete.run(id);
  }

  addItem(id: ComparisonId, item: { prompt: string; leftOutput: string; rightOutput: string; image?: string | null }): ComparisonItem {
    this.get(id);
    const { lastInsertRowid } = this.s.insertItem.run(id, item.prompt, item.leftOutput, item.rightOutput, item.image ?? null, Date.now());
    return this.item(Number(lastInsertRowid) as ComparisonItemId);
  }

  item(itemId: ComparisonItemId): ComparisonItem {
    const row = this.s.item.get(itemId);
    if (!row) throw new NotFoundError('comparison item', itemId);
    return toItem(row);
  }

  items(id: ComparisonId): ComparisonItem[] {
    return this.s.items.all(id).map(toItem);
  }

  /** Sets (or with null, clears) the rating of one item. */
  rate(itemId: ComparisonItemId, rating: Rating | null, note?: string): ComparisonItem {
    const current = this.item(itemId);
    if (rating !== null && !RATINGS.includes(rating)) throw new StoreError(`rating must be one of ${RATINGS.join(', ')}, got ${JSON.stringify(rating)}`);
    this.s.rate.run(rating, note ?? current.note, rating === null ? null : Date.now(), itemId);
    return this.item(itemId);
  }

  private toComparison(r: ComparisonRow): Comparison {
    const tally: Comparison['tally'] = { left: 0, right: 0, tie: 0, both_bad: 0, unrated: 0 };
    for (const t of this.s.tally.all(r.id)) tally[t.rating ?? 'unrated'] = t.n;
    return {
      id: r.id as ComparisonId,
      name: r.name,
      left: readJson(r.left_side, `comparisons.left_side of ${r.id}`),
      right: readJson(r.right_side, `comparisons.right_side of ${r.id}`),
      createdAt: r.created_at,
      tally,
    };
  }
}
