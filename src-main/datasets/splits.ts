// Seeded train/validation/test splits. The same ids, fractions and seed always give the same assignment.
//
// Examples are taken in id order, shuffled with the seed, and cut into test | val | train, with
// round(n * fraction) examples in test and val and the rest in train.

import { SPLITS, type DatasetVersion, type Split } from '../store/datasets.js';
import { StoreError } from '../store/errors.js';
import type { DatasetId, ExampleId } from '../store/ids.js';
import type { Workspace } from '../store/workspace.js';
import { seededRandom, shuffle } from './rng.js';

export interface SplitOptions {
  train?: number;
  val?: number;
  test?: number;
  seed?: number | string;
}

export interface SplitResult {
  /** null when every example already had the split it would get. */
  version: DatasetVersion | null;
  counts: Record<Split, number>;
}

export function planSplits(ids: readonly ExampleId[], options: SplitOptions = {}): Map<ExampleId, Split> {
  const val = options.val ?? 0.05;
  const test = options.test ?? 0.05;
  const train = options.train ?? 1 - val - test;
  for (const [name, f] of Object.entries({ train, val, test })) {
    if (!(f >= 0 && f <= 1)) throw new StoreError(`split fraction ${name} must be between 0 and 1, got ${f}`);
  }
  if (Math.abs(train + val + test - 1) > 1e-6) throw new StoreError(`split fractions must add up to 1, got ${train} + ${val} + ${test} = ${train + val + test}`);

  const order = shuffle([...ids].sort((a, b) => a - b), seededRandom(options.seed ?? 0));
  const nTest = Math.round(order.length * test);
  const nVal = Math.min(Math.round(order.length * val), order.length - nTest);
  const plan = new Map<ExampleId, Split>();
  order.forEach((id, k) => plan.set(id, k < nTest ? 'test' : k < nTest + nVal ? 'val' : 'train'));
  return plan;
}

/** Assigns every example of the dataset a split, as one version. */
export function assignSplits(ws: Workspace, datasetId: DatasetId, options: SplitOptions = {}): SplitResult {
  const plan = planSplits(ws.datasets.exampleIds(datasetId), options);
  const current = new Map<ExampleId, Split | null>();
  for (const ex of ws.datasets.iterate(datasetId)) current.set(ex.id, ex.split);
  const updates = [...plan].filter(([id, split]) => current.get(id) !== split).map(([id, split]) => ({ id, patch: { split } }));
  const counts = Object.fromEntries(SPLITS.map((s) => [s, 0])) as Record<Split, number>;
  for (const split of plan.values()) counts[split]++;
  const version = ws.datasets.applyChange(datasetId, {
    kind: 'split',
    summary: `split ${plan.size} examples: ${counts.train} train, ${counts.val} val, ${counts.test} test (seed ${options.seed ?? 0})`,
    provenance: { train: options.train ?? null, val: options.val ?? 0.05, test: options.test ?? 0.05, seed: options.seed ?? 0 },
    updates,
  });
  return { version, counts };
}
