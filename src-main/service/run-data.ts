// Which examples a run trains on. A plain run: every example of its split. A sweep's point may narrow that
// down: to examples with (or, written "!tag", without) a tag or source, and to a seeded subset of a given size.
// Subsets of one seed are nested: each is a prefix of the same permutation, so the 10% set is inside the 30%
// one. The chosen examples keep the dataset's order, so a subset of everything trains exactly as the plain run.

import { seededRandom, shuffle } from '../datasets/rng.js';
import type { Split } from '../store/index.js';

export type SplitChoice = Split | 'all';

export interface DataSelection {
  /** Only examples carrying this tag; "!tag": only those without it. */
  tag?: string;
  /** Only examples whose source is this ("self-instruct" for generated ones); "!source": all others. */
  source?: string;
  /** The first `count` of a permutation seeded by `seed` (after the filters). */
  count?: number;
  seed?: number;
}

interface Selectable {
  id: number;
  split: Split | null;
  tags: string[];
  source: string;
}

function matches(wanted: string | undefined, has: (v: string) => boolean): boolean {
  if (wanted === undefined) return true;
  return wanted.startsWith('!') ? !has(wanted.slice(1)) : has(wanted);
}

export function selectExamples<E extends Selectable>(examples: readonly E[], split: SplitChoice, data?: DataSelection): E[] {
  const inSplit = examples.filter((e) => split === 'all' || e.split === split);
  if (!data) return inSplit;
  const filtered = inSplit.filter((e) => matches(data.tag, (t) => e.tags.includes(t)) && matches(data.source, (s) => e.source === s));
  if (data.count === undefined || data.count >= filtered.length) return filtered;
  const byId = [...filtered].sort((a, b) => a.id - b.id);
  const chosen = new Set(shuffle(byId, seededRandom(data.seed ?? 0)).slice(0, data.count));
  return filtered.filter((e) => chosen.has(e));
}
