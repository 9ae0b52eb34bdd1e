// Datasets in the store: versions, undo, snapshots of old versions, search and filters, tags.

import { describe, expect, it } from 'vitest';
import { contentHash, type Example, type ExampleId, type Workspace } from '../src-main/store/index.js';
import { checkSearchIndex, tempWorkspace } from './helpers/store-fixtures.js';

function texts(examples: Example[]) {
  return examples.map((e) => `${e.instruction}|${e.input}|${e.output}|${e.tags.join(',')}|${e.split ?? '-'}`);
}

function seeded(ws: Workspace) {
  const ds = ws.datasets.create('colors', 'test data');
  ws.datasets.addExamples(ds.id, [
    { instruction: 'What colour is the sky?', input: '', output: 'Blue', tags: ['nature'] },
    { instruction: 'What colour is grass?', input: '', output: 'Green' },
    { instruction: 'Translate to French', input: 'red', output: 'rouge', split: 'train' },
    { instruction: 'Translate to German', input: 'blue', output: 'blau', split: 'test' },
  ]);
  return { ds, ids: ws.datasets.exampleIds(ds.id) };
}

describe('dataset versions and undo', () => {
  it('records each change as a version and undoes them in reverse order', () => {
    const { ws } = tempWorkspace('undo');
    const { ds, ids } = seeded(ws);
    const v2 = texts(ws.datasets.examplesAt(ds.id, 2));

    ws.datasets.edit(ids[0]!, { output: 'Light blue', split: 'val' }); // v3
    ws.datasets.deleteExamples(ds.id, [ids[1]!, ids[3]!]); // v4
    ws.datasets.addTags(ds.id, [ids[0]!, ids[2]!], ['checked']); // v5
    const v5 = texts(ws.datasets.examplesAt(ds.id, 5));
    expect(ws.datasets.get(ds.id).version).toBe(5);
    expect(v5).toEqual(['What colour is the sky?||Light blue|nature,checked|val', 'Translate to French|red|rouge|checked|train']);

    const u1 = ws.datasets.undo(ds.id); // undoes v5
    expect(u1).toMatchObject({ kind: 'undo', reverts: 5, version: 6 });
    expect(texts(ws.datasets.examplesAt(ds.id, 6))).toEqual(texts(ws.datasets.examplesAt(ds.id, 4)));
    ws.datasets.undo(ds.id); // undoes v4: the deleted examples come back with their old ids
    ws.datasets.undo(ds.id); // undoes v3
    const current = [...ws.datasets.iterate(ds.id)];
    expect(current.map((e) => e.id)).toEqual(ids);
    expect(texts(current)).toEqual(v2);
    // Content hashes are recomputed on restore.
    expect(current[0]!.contentHash).toBe(contentHash('What colour is the sky?', '', 'Blue'));
    // Search sees the restored rows again.
    expect(ws.datasets.query(ds.id, { search: 'grass' }).total).toBe(1);
    expect(ws.datasets.query(ds.id, { search: 'light' }).total).toBe(0);
    checkSearchIndex(ws);

    // Undo walks back through the remaining real changes: v2 (the adds); the creation cannot be undone.
    ws.datasets.undo(ds.id);
    expect(ws.datasets.count(ds.id)).toBe(0);
    expect(() => ws.datasets.undo(ds.id)).toThrow(/nothing to undo/);

    // History is kept: each version is still readable exactly as it was.
    expect(texts(ws.datasets.examplesAt(ds.id, 5))).toEqual(v5);
    expect(texts(ws.datasets.examplesAt(ds.id, 2))).toEqual(v2);
    const versions = ws.datasets.versions(ds.id);
    expect(versions.map((v) => [v.version, v.kind, v.revertedBy])).toEqual([
      [1, 'create', null],
      [2, 'edit', 9],
      [3, 'edit', 8],
      [4, 'delete', 7],
      [5, 'tag', 6],
      [6, 'undo', null],
      [7, 'undo', null],
      [8, 'undo', null],
      [9, 'undo', null],
    ]);
    ws.close();
  });

  it('a new edit after an undo is undone first', () => {
    const { ws } = tempWorkspace('undo2');
    const { ds, ids } = seeded(ws);
    ws.datasets.edit(ids[0]!, { output: 'A' }); // v3
    ws.datasets.undo(ds.id); // v4 reverts v3
    ws.datasets.edit(ids[1]!, { output: 'B' }); // v5
    expect(ws.datasets.undoTarget(ds.id)?.version).toBe(5);
    ws.datasets.undo(ds.id);
    expect(ws.datasets.undoTarget(ds.id)?.version).toBe(2);
    expect(ws.datasets.example(ids[1]!).output).toBe('Green');
    ws.close();
  });

  it('an edit that changes nothing records no version, and a bad edit changes nothing', () => {
    const { ws } = tempWorkspace('noop');
    const { ds, ids } = seeded(ws);
    expect(ws.datasets.edit(ids[0]!, { output: 'Blue' })).toBeNull();
    expect(ws.datasets.get(ds.id).version).toBe(2);
    // The second id does not exist: the whole change set rolls back, including the first delete.
    expect(() => ws.datasets.deleteExamples(ds.id, [ids[0]!, 999_999 as ExampleId])).toThrow(/not found/);
    expect(ws.datasets.count(ds.id)).toBe(4);
    expect(() => ws.datasets.edit(ids[0]!, { output: '   ' })).toThrow(/output must not be empty/);
    expect(() => ws.datasets.edit(ids[0]!, { split: 'holdout' as never })).toThrow(/split must be one of/);
    expect(ws.datasets.versions(ds.id)).toHaveLength(2);
    ws.close();
  });

  it('keeps names unique and refuses versions that do not exist', () => {
    const { ws } = tempWorkspace('names');
    const { ds } = seeded(ws);
    expect(() => ws.datasets.create('colors')).toThrow(/already exists/);
    expect(ws.datasets.find('colors').id).toBe(ds.id);
    expect(ws.datasets.find(ds.id).name).toBe('colors');
    expect(() => ws.datasets.examplesAt(ds.id, 3)).toThrow(/versions 1 to 2, not 3/);
    ws.datasets.rename(ds.id, 'colours');
    expect(ws.datasets.find('colours').id).toBe(ds.id);
    ws.datasets.delete(ds.id);
    expect(ws.datasets.list()).toEqual([]);
    expect(ws.db.prepare('SELECT count(*) AS n FROM dataset_changes').get()).toEqual({ n: 0 });
    ws.close();
  });
});

describe('searching and filtering', () => {
  it("numbers each example within its dataset, whatever the search, and a second dataset's from 1", () => {
    const { ws } = tempWorkspace('positions');
    const { ds } = seeded(ws);
    const other = ws.datasets.create('more', '');
    ws.datasets.addExamples(other.id, [{ instruction: 'a', input: '', output: 'b' }, { instruction: 'c', input: '', output: 'd' }]);
    expect(ws.datasets.query(other.id, {}).items.map((e) => e.position)).toEqual([1, 2]);
    expect(ws.datasets.query(other.id, {}).items[0]!.id).toBeGreaterThan(4); // ids are the workspace's
    expect(ws.datasets.query(ds.id, { split: 'test' }).items.map((e) => [e.output, e.position])).toEqual([['blau', 4]]);
    expect(ws.datasets.query(ds.id, { offset: 2, limit: 1 }).items.map((e) => e.position)).toEqual([3]);
  });

  it('combines full-text search with split, tag, length and input filters', () => {
    const { ws } = tempWorkspace('query');
    const { ds } = seeded(ws);
    const q = (query: Parameters<typeof ws.datasets.query>[1]) => ws.datasets.query(ds.id, query).items.map((e) => e.output);
    // Search results come best match first (bm25); compare them as sets.
    expect(q({ search: 'colour' }).sort()).toEqual(['Blue', 'Green']);
    expect(q({ search: 'transl' }).sort()).toEqual(['blau', 'rouge']); // prefix match
    expect(q({ search: 'translate french' })).toEqual(['rouge']); // every word must match
    expect(q({ search: 'ROUGE' })).toEqual(['rouge']); // output is searched too, case-insensitively
    expect(q({ search: '"unbalanced (quote* AND' })).toEqual([]); // FTS syntax in user text is harmless
    expect(q({ search: '!!!' })).toHaveLength(4); // no words: no search filter
    expect(q({ split: 'test' })).toEqual(['blau']);
    expect(q({ split: 'none' })).toEqual(['Blue', 'Green']);
    expect(q({ tags: ['nature'] })).toEqual(['Blue']);
    expect(q({ hasInput: true })).toEqual(['rouge', 'blau']);
    expect(q({ hasInput: false, maxChars: 26 })).toEqual(['Green']);
    expect(q({ minChars: 27 })).toEqual(['Blue', 'rouge', 'blau']);
    const page = ws.datasets.query(ds.id, { limit: 2, offset: 1 });
    expect(page.total).toBe(4);
    expect(page.items.map((e) => e.output)).toEqual(['Green', 'rouge']);
    expect(ws.datasets.tagCounts(ds.id)).toEqual([{ tag: 'nature', count: 1 }]);
    ws.close();
  });

  it('finds exact duplicates by normalised text', () => {
    const { ws } = tempWorkspace('hash');
    const ds = ws.datasets.create('dupes');
    ws.datasets.addExamples(ds.id, [
      { instruction: 'Say hi', input: '', output: 'Hi!' },
      { instruction: '  SAY   hi ', input: '', output: 'hi!' },
      { instruction: 'Ｓａｙ hi', input: '', output: 'Hi!' }, // full-width letters: NFKC makes them ASCII
      { instruction: 'Say hi', input: 'politely', output: 'Hi!' },
      { instruction: 'Say hi', input: '', output: 'Hello' },
    ]);
    const ids = ws.datasets.exampleIds(ds.id);
    expect(ws.datasets.exactDuplicateGroups(ds.id).map((g) => g.ids)).toEqual([[ids[0], ids[1], ids[2]]]);
    ws.close();
  });
});
