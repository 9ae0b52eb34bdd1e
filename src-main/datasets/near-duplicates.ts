// Near-duplicate detection: MinHash signatures with LSH banding, then exact Jaccard on the candidates.
//
// Broder, "On the resemblance and containment of documents" (1997) for MinHash; the banding scheme is from
// Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3.
//
// Text -> normalised (case, Unicode, whitespace; see content-hash.ts) -> shingles (character n-grams by
// default: robust for short instructions, where one changed word would remove most word n-grams) -> the set
// of their 32-bit hashes. Two texts' similarity is the Jaccard index of those sets.

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

/** Groups texts whose shingle sets have Jaccard >= threshold (connected components of the similar pairs). */
export function findNearDuplicateGroups<Id>(items: { id: Id; text: string }[], options: NearDuplicateOptions = {}): NearDuplicateGroup<Id>[] {
  const threshold = options.threshold ?? 0.8;
  if (!(threshold > 0 && threshold <= 1)) throw new RangeError(`near-duplicate threshold must be in (0, 1], got ${threshold}`);
  const numPerm = options.numPerm ?? 128;
  const unit = options.shingle ?? 'char';
  const size = options.shingleSize ?? (unit === 'char' ? 5 : 3);
  if (!Number.isInteger(numPerm) || numPerm < 1) throw new RangeError(`numPerm must be a positive whole number, got ${numPerm}`);
  const salts = minhashSalts(numPerm, options.seed ?? 1);
  const { bands, rows } = lshBands(numPerm, threshold);

  const sets = items.map((it) => shingles(it.text, unit, size));
  const parent = Int32Array.from(items, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb); // the root is the earliest item
  };

  const signatures = sets.map((s) => minhash(s, salts));
  for (let band = 0; band < bands; band++) {
    // A band's rows hashed to one number. Two different bands colliding only adds a candidate pair, which
    // the exact Jaccard check below then drops.
    const buckets = new Map<number, number[]>();
    for (let i = 0; i < items.length; i++) {
      const sig = signatures[i]!;
      let key = 0x811c9dc5;
      for (let r = band * rows; r < (band + 1) * rows; r++) key = fmix32(Math.imul(key ^ sig[r]!, 0x01000193));
      const bucket = buckets.get(key);
      if (bucket) bucket.push(i);
      else buckets.set(key, [i]);
    }
    for (const bucket of buckets.values()) {
      if (bucket.length < 2) continue;
      // Compare each member with one representative per group already found in this bucket, not with every
      // member: a bucket of 1000 copies of one text costs 1000 comparisons, not half a million.
      const representatives: number[] = [];
      for (const i of bucket) {
        let joined = false;
        for (const r of representatives) {
          if (find(i) === find(r) || jaccard(sets[i]!, sets[r]!) >= threshold) {
            union(i, r);
            joined = true;
            break;
          }
        }
        if (!joined) representatives.push(i);
      }
    }
  }

  const groups = new Map<number, number[]>();
  for (let i = 0; i < items.length; i++) {
    const root = find(i);
    const g = groups.get(root);
    if (g) g.push(i);
    else groups.set(root, [i]);
  }
  const out: NearDuplicateGroup<Id>[] = [];
  for (const [root, members] of groups) {
    if (members.length < 2) continue;
    out.push({
      keep: items[root]!.id,
      ids: members.map((m) => items[m]!.id),
      similarity: members.map((m) => (m === root ? 1 : jaccard(sets[root]!, sets[m]!))),
    });
  }
  return out.sort((a, b) => b.ids.length - a.ids.length);
}
