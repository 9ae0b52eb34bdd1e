// Duplicate review for a dataset: exact duplicates (same normalised text and image) and near duplicates (every
// field similar, same image), listed in groups; removing them is one undoable version.

import type { DatasetVersion } from '../store/datasets.js';
import { StoreError } from '../store/errors.js';
import type { DatasetId, ExampleId } from '../store/ids.js';
import type { Workspace } from '../store/workspace.js';
import { findNearDuplicateGroups, type NearDuplicateItem, type NearDuplicateOptions } from './near-duplicates.js';

export interface DuplicateGroup {
  kind: 'exact' | 'near';
  /** The member kept by `removeDuplicates` (the earliest). */
  keep: ExampleId;
  /** All members, `keep` first. */
  ids: ExampleId[];
  /** Similarity of each member to `keep` (Jaccard over shingles; 1 for exact duplicates). */
  similarity: number[];
}

/** Examples whose instruction, input and output are equal after normalisation (case, Unicode, whitespace). */
export function findExactDuplicates(ws: Workspace, datasetId: DatasetId): DuplicateGroup[] {
  ws.datasets.get(datasetId);
  return ws.datasets
    .exactDuplicateGroups(datasetId)
    .map((g) => ({ kind: 'exact' as const, keep: g.ids[0]!, ids: g.ids, similarity: g.ids.map(() => 1) }))
    .sort((a, b) => b.ids.length - a.ids.length);
}

/**
 * Examples that are near duplicates of an earlier one in instruction, input and output alike, showing the same
 * image (MinHash + LSH, then every member checked against the kept one: see near-duplicates.ts). Whitespace,
 * case, punctuation or a word changed in a long text still match; a template question with another input or
 * answer does not.
 */
export function findNearDuplicates(ws: Workspace, datasetId: DatasetId, options: NearDuplicateOptions = {}): DuplicateGroup[] {
  ws.datasets.get(datasetId);
  const items: NearDuplicateItem<ExampleId>[] = [];
  for (const ex of ws.datasets.iterate(datasetId)) items.push({ id: ex.id, fields: [ex.instruction, ex.input, ex.output], image: ex.image });
  return findNearDuplicateGroups(items, options).map((g) => ({ kind: 'near' as const, ...g }));
}

/**
 * Deletes every member of each group except the one to keep (by default the group's `keep`), as one
 * version. Returns null when there was nothing to delete.
 */
export function removeDuplicates(
  ws: Workspace,
  datasetId: DatasetId,
  groups: { ids: ExampleId[]; keep: ExampleId }[],
): DatasetVersion | null {
  const drop = new Set<ExampleId>();
  const kept = new Set<ExampleId>();
  for (const g of groups) {
    if (!g.ids.includes(g.keep)) throw new StoreError(`duplicate group ${g.ids.join(', ')}: the example to keep (${g.keep}) is not in it`);
    kept.add(g.keep);
    for (const id of g.ids) if (id !== g.keep) drop.add(id);
  }
  // Groups can overlap (an example near two others); never delete one that some group keeps.
  for (const id of kept) drop.delete(id);
  if (drop.size === 0) return null;
  return ws.datasets.applyChange(datasetId, {
    kind: 'dedupe',
    summary: `removed ${drop.size} duplicate(s) from ${groups.length} group(s)`,
    provenance: { groups: groups.length },
    deletes: [...drop].sort((a, b) => a - b),
  });
}
