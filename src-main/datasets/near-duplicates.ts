// Near-duplicate detection: MinHash signatures with LSH banding, then exact Jaccard on the candidates.
//
// Broder, "On the resemblance and containment of documents" (1997) for MinHash; the banding scheme is from
// Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3.
//
// Each field -> normalised (case, Unicode, whitespace; see content-hash.ts) and stripped of punctuation ->
// shingles (character n-grams by default: robust for short instructions, where one changed word would remove
// most word n-grams) -> the set of their 32-bit hashes. Two examples' similarity is the lowest Jaccard index
// over their fields (exampleSimilarity).

import { normalizeText } from '../store/content-hash.js';
import { fnv1a, seededRandom } from './rng.js';

export interface NearDuplicateOptions {
  /** Jaccard similarity at or above which two texts are near duplicates. Default 0.8. */
  threshold?: number;
  /** MinHash permutations (signature length). More: fewer missed pairs, slower. Default 128. */
  numPerm?: number;
  /** 'char' n-grams (default, n = 5) or 'word' n-grams (n = 3). */
  shingle?: 'char' | 'word';
  shingleSize?: number;
  seed?: number;
}

export interface NearDuplicateGroup<Id> {
  /** The group's first member: the one to keep by default. */
  keep: Id;
  /** Every member, `keep` first, then in input order. */
  ids: Id[];
  /** Jaccard similarity of each member to `keep` (1 for `keep` itself). */
  similarity: number[];
}

export function shingles(text: string, unit: 'char' | 'word' = 'char', size = unit === 'char' ? 5 : 3): Uint32Array {
  const normalized = normalizeText(text);
  let hashes: Uint32Array;
  if (unit === 'char') {
    if (normalized.length <= size) hashes = Uint32Array.of(fnv1a(normalized));
    else {
      // FNV-1a over each window, straight from the string (no substring per shingle).
      hashes = new Uint32Array(normalized.length - size + 1);
      for (let i = 0; i < hashes.length; i++) {
        let h = 0x811c9dc5;
        for (let k = i; k < i + size; k++) h = Math.imul(h ^ normalized.charCodeAt(k), 0x01000193);
        hashes[i] = h;
      }
    }
  } else {
    const words = normalized.match(/[\p{L}\p{N}]+/gu) ?? [];
    if (words.length <= size) hashes = Uint32Array.of(fnv1a(words.join(' ')));
    else hashes = Uint32Array.from({ length: words.length - size + 1 }, (_, i) => fnv1a(words.slice(i, i + size).join(' ')));
  }
  // Sorted and without repeats: a set, as jaccard() expects.
  hashes.sort();
  let n = 0;
  for (let i = 0; i < hashes.length; i++) if (i === 0 || hashes[i] !== hashes[i - 1]) hashes[n++] = hashes[i]!;
  return hashes.slice(0, n);
}

/** Exact Jaccard index of two sorted hash sets. */
export function jaccard(a: Uint32Array, b: Uint32Array): number {
  let i = 0;
  let j = 0;
  let common = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      common++;
      i++;
      j++;
    } else if (a[i]! < b[j]!) i++;
    else j++;
  }
  const union = a.length + b.length - common;
  return union === 0 ? 1 : common / union;
}

/** murmur3's 32-bit finaliser: a bijection on 32-bit integers that mixes every input bit into every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The MinHash signature. Each shingle hash is mixed once (fmix32), then hash function k is the cheap
 * h_k(x) = a_k * x + b_k (mod 2^32) with a_k odd: a permutation of the 32-bit values. Mixing first makes the
 * multiply-add family behave well enough, at two operations per function instead of a full mix each.
 */
export function minhash(set: Uint32Array, salts: { a: Uint32Array; b: Uint32Array }): Uint32Array {
  const { a, b } = salts;
  const n = a.length;
  const sig = new Uint32Array(n).fill(0xffffffff);
  for (let i = 0; i < set.length; i++) {
    const x = fmix32(set[i]!);
    for (let k = 0; k < n; k++) {
      const h = (Math.imul(a[k]!, x) + b[k]!) >>> 0;
      if (h < sig[k]!) sig[k] = h;
    }
  }
  return sig;
}

export function minhashSalts(numPerm: number, seed: number): { a: Uint32Array; b: Uint32Array } {
  const random = seededRandom(seed);
  const word = () => Math.floor(random() * 0x100000000) >>> 0;
  return { a: Uint32Array.from({ length: numPerm }, () => (word() | 1) >>> 0), b: Uint32Array.from({ length: numPerm }, word) };
}

/**
 * Bands x rows = numPerm. Two texts with similarity s share at least one band with probability
 * 1 - (1 - s^rows)^bands, an S-curve whose midpoint is about (1/bands)^(1/rows). We pick the split whose
 * midpoint is the highest one still below the threshold: candidates are checked exactly afterwards, so false
 * positives cost only time, while a pair LSH misses is lost.
 */
export function lshBands(numPerm: number, threshold: number): { bands: number; rows: number } {
  let best = { bands: numPerm, rows: 1 };
  let bestMid = -1;
  for (let rows = 1; rows <= numPerm; rows++) {
    if (numPerm % rows !== 0) continue;
    const bands = numPerm / rows;
    const mid = Math.pow(1 / bands, 1 / rows);
    if (mid <= threshold - 0.05 && mid > bestMid) {
      best = { bands, rows };
      bestMid = mid;
    }
  }
  return best;
}

/** One example as near-duplicate detection sees it: its text fields, and the image it shows (if any). */
export interface NearDuplicateItem<Id> {
  id: Id;
  /** The fields that make an example what it is (instruction, input, output), compared one by one. */
  fields: string[];
  /** A content hash of the example's image; examples showing different images are never duplicates. */
  image?: string | null;
}

/** Text as the near comparison sees it: normalised (case, Unicode, whitespace) and without punctuation. */
export function comparableText(text: string): string {
  return normalizeText(text).replace(/[^\p{L}\p{N}\s]+/gu, '').replace(/\s+/g, ' ').trim();
}

/**
 * Similarity of two examples: the lowest Jaccard index over their fields (two empty fields count as equal), 0
 * when they show different images. An example is a near duplicate only if every field is near its counterpart:
 * one template question ("Give a synonym for this verb.") with different inputs or answers is many examples,
 * not one. Fields are shingled separately, so a long field cannot hide a difference in a short one.
 */
export function exampleSimilarity(a: Uint32Array[], b: Uint32Array[]): number {
  let min = 1;
  for (let f = 0; f < a.length; f++) {
    const x = a[f]!;
    const y = b[f]!;
    const j = x.length === 0 && y.length === 0 ? 1 : x.length === 0 || y.length === 0 ? 0 : jaccard(x, y);
    if (j < min) min = j;
    if (min === 0) break;
  }
  return min;
}

/**
 * Groups near-duplicate examples. Every member of a group is at or above `threshold` against the group's kept
 * member (the earliest), never merely against another member: similarity does not chain, so A~B and B~C do not
 * put A and C together unless C is near A too. Each example joins the group whose kept member it is most similar
 * to, or keeps a group of its own.
 *
 * Candidates come from LSH over each example's fields together (shingles tagged by field): when every field has
 * Jaccard >= t, so does the union (the mediant of the per-field ratios), so the banding tuned to t finds them.
 */
export function findNearDuplicateGroups<Id>(items: NearDuplicateItem<Id>[], options: NearDuplicateOptions = {}): NearDuplicateGroup<Id>[] {
  const threshold = options.threshold ?? 0.8;
  if (!(threshold > 0 && threshold <= 1)) throw new RangeError(`near-duplicate threshold must be in (0, 1], got ${threshold}`);
  const numPerm = options.numPerm ?? 128;
  const unit = options.shingle ?? 'char';
  const size = options.shingleSize ?? (unit === 'char' ? 5 : 3);
  if (!Number.isInteger(numPerm) || numPerm < 1) throw new RangeError(`numPerm must be a positive whole number, got ${numPerm}`);
  const salts = minhashSalts(numPerm, options.seed ?? 1);
  const { bands, rows } = lshBands(numPerm, threshold);

  const fieldSets = items.map((it) => it.fields.map((f) => { const t = comparableText(f); return t === '' ? new Uint32Array(0) : shingles(t, unit, size); }));
  // The union of the fields' shingles, each tagged with its field so that equal text in two fields stays apart.
  const signatures = fieldSets.map((sets) => {
    const tagged = sets.flatMap((set, f) => Array.from(set, (h) => fmix32(h ^ Math.imul(f + 1, 0x9e3779b1))));
    return minhash(Uint32Array.from(tagged), salts);
  });
  const bandKey = (sig: Uint32Array, band: number) => {
    let key = 0x811c9dc5;
    for (let r = band * rows; r < (band + 1) * rows; r++) key = fmix32(Math.imul(key ^ sig[r]!, 0x01000193));
    return key;
  };

  // Kept members seen so far, per band bucket; items are taken in input order, so a group's kept member is its
  // earliest and every later example is measured against it.
  const keptIn: Map<number, number[]>[] = Array.from({ length: bands }, () => new Map());
  const groupOf = new Int32Array(items.length).fill(-1);
  const groups: { keep: number; members: number[]; similarity: number[] }[] = [];
  for (let i = 0; i < items.length; i++) {
    const keys = Array.from({ length: bands }, (_, band) => bandKey(signatures[i]!, band));
    let best = -1;
    let bestSim = 0;
    const seen = new Set<number>();
    for (let band = 0; band < bands; band++) {
      for (const k of keptIn[band]!.get(keys[band]!) ?? []) {
        if (seen.has(k)) continue;
        seen.add(k);
        if ((items[k]!.image ?? null) !== (items[i]!.image ?? null)) continue;
        const sim = exampleSimilarity(fieldSets[i]!, fieldSets[k]!);
        if (sim >= threshold && sim > bestSim) {
          best = k;
          bestSim = sim;
        }
      }
    }
    if (best >= 0) {
      const g = groups[groupOf[best]!]!;
      g.members.push(i);
      g.similarity.push(bestSim);
      groupOf[i] = groupOf[best]!;
      continue;
    }
    groupOf[i] = groups.length;
    groups.push({ keep: i, members: [i], similarity: [1] });
    for (let band = 0; band < bands; band++) {
      const bucket = keptIn[band]!.get(keys[band]!);
      if (bucket) bucket.push(i);
      else keptIn[band]!.set(keys[band]!, [i]);
    }
  }
  return groups
    .filter((g) => g.members.length > 1)
    .map((g) => ({ keep: items[g.keep]!.id, ids: g.members.map((m) => items[m]!.id), similarity: g.similarity }))
    .sort((a, b) => b.ids.length - a.ids.length);
}
