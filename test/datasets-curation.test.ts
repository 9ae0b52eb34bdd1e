// Curation: duplicate groups, seeded splits, token-length statistics, export, and ROUGE-L.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  alpacaTrainingText,
  assignSplits,
  datasetTokenStats,
  exportDataset,
  findExactDuplicates,
  findNearDuplicateGroups,
  findNearDuplicates,
  importDataset,
  planSplits,
  readDatasetFile,
  removeDuplicates,
  rougeL,
  tokenLengthStats,
} from '../src-main/datasets/index.js';
import { comparableText, exampleSimilarity, jaccard, lshBands, type NearDuplicateItem, shingles } from '../src-main/datasets/near-duplicates.js';
import type { ExampleId } from '../src-main/store/index.js';
import { alpacaRecords, tempWorkspace, writeJsonFile } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

const dir = makeTempDir('datasets-curation');

describe('duplicates', () => {
  const records = [
    { instruction: 'Give three tips for staying healthy.', input: '', output: 'Eat well, sleep, move.' }, // 0
    { instruction: 'Give three tips for staying healthy!', input: '', output: 'Drink water.' }, // 1: the question of 0, another answer
    { instruction: 'give three tips for staying   healthy.', input: '', output: 'Eat well, sleep, move.' }, // 2: exact 0
    { instruction: 'Translate the sentence into Spanish.', input: 'I like green apples.', output: 'Me gustan las manzanas verdes.' }, // 3
    { instruction: 'Translate the sentence into Spanish.', input: 'I like green apples!', output: 'Me gustan las manzanas verdes!' }, // 4: near 3
    { instruction: 'Translate the sentence into Spanish.', input: 'The weather is cold today.', output: 'Hoy hace frío.' }, // 5: same instruction, other input
    { instruction: 'Write a limerick about a cat.', input: '', output: 'There once was a cat...' }, // 6
  ];

  it('finds exact and near duplicate groups and removes them as one undoable version', async () => {
    const { ws } = tempWorkspace('dupes');
    const { dataset } = await importDataset(ws, writeJsonFile(dir, 'dupes.json', records));
    const ids = ws.datasets.exampleIds(dataset.id);

    const exact = findExactDuplicates(ws, dataset.id);
    expect(exact).toEqual([{ kind: 'exact', keep: ids[0], ids: [ids[0], ids[2]], similarity: [1, 1] }]);

    const near = findNearDuplicates(ws, dataset.id, { threshold: 0.8 });
    // Another answer to the same question (1) and the same instruction with another input (5) are examples of
    // their own: only examples alike in every field are near duplicates.
    expect(near.map((g) => g.ids)).toEqual([
      [ids[0], ids[2]],
      [ids[3], ids[4]],
    ]);
    for (const g of near) expect(Math.min(...g.similarity)).toBeGreaterThanOrEqual(0.8);
    expect(findNearDuplicates(ws, dataset.id, { threshold: 0.4 }).flatMap((g) => g.ids)).not.toContain(ids[5]);

    const version = removeDuplicates(ws, dataset.id, near)!;
    expect(version).toMatchObject({ kind: 'dedupe', changes: 2 });
    expect(ws.datasets.exampleIds(dataset.id)).toEqual([ids[0], ids[1], ids[3], ids[5], ids[6]]);
    expect(removeDuplicates(ws, dataset.id, [{ ids: [ids[0]!], keep: ids[0]! }])).toBeNull();
    expect(() => removeDuplicates(ws, dataset.id, [{ ids: [ids[0]!], keep: ids[3]! }])).toThrow(/is not in it/);
    ws.datasets.undo(dataset.id);
    expect(ws.datasets.exampleIds(dataset.id)).toEqual(ids);
    ws.close();
  });

  it('MinHash + LSH groups as an exhaustive comparison against each kept example does', () => {
    // 300 examples in families of near-variants, plus unrelated ones.
    const words = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon'.split(' ');
    const items: NearDuplicateItem<number>[] = [];
    for (let f = 0; f < 60; f++) {
      const base = Array.from({ length: 12 }, (_, k) => words[(f * 7 + k * 3) % words.length]).join(' ') + ` family ${f}`;
      for (let v = 0; v < 5; v++) items.push({ id: items.length, fields: [v === 0 ? base : `${base} variant${v}`, '', `answer ${f}`] });
    }
    const threshold = 0.7;
    // The reference: each example, in order, joins the most similar earlier kept example at >= threshold.
    const sets = items.map((it) => it.fields.map((t) => (comparableText(t) === '' ? new Uint32Array(0) : shingles(comparableText(t)))));
    const keeps: number[] = [];
    const expectedKeep = new Map<number, number>();
    for (let i = 0; i < items.length; i++) {
      let best = -1;
      let bestSim = 0;
      for (const k of keeps) {
        const sim = exampleSimilarity(sets[i]!, sets[k]!);
        if (sim >= threshold && sim > bestSim) [best, bestSim] = [k, sim];
      }
      if (best < 0) keeps.push(i);
      expectedKeep.set(i, best < 0 ? i : best);
    }
    const joined = [...expectedKeep].filter(([i, k]) => i !== k).length;
    expect(joined).toBeGreaterThan(100);

    const groups = findNearDuplicateGroups(items, { threshold });
    const keepOf = new Map<number, number>();
    for (const g of groups) for (const [m, id] of g.ids.entries()) {
      keepOf.set(id, g.keep);
      expect(g.similarity[m]).toBeGreaterThanOrEqual(m === 0 ? 1 : threshold); // every member against the kept one
    }
    const found = [...expectedKeep].filter(([i, k]) => i !== k && keepOf.get(i) === k).length;
    expect(found / joined).toBeGreaterThanOrEqual(0.98);
    // The banding is chosen below the threshold, favouring recall.
    const { bands, rows } = lshBands(128, threshold);
    expect(bands * rows).toBe(128);
    expect(Math.pow(1 / bands, 1 / rows)).toBeLessThan(threshold);
  });

  it('on the bundled demo data, fewer than 1% of the examples are flagged (its template questions are distinct)', () => {
    const demo = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'assets', 'starter', 'demo-train.json'), 'utf8')) as { instruction: string; input: string; output: string }[];
    const groups = findNearDuplicateGroups(demo.map((r, id) => ({ id, fields: [r.instruction, r.input, r.output] })), { threshold: 0.8 });
    const flagged = groups.reduce((n, g) => n + g.ids.length - 1, 0);
    expect(flagged).toBeGreaterThanOrEqual(3); // its 3 exact duplicates
    expect(flagged / demo.length).toBeLessThan(0.01);
  });

  it('near duplicates need every field near and the same image; similarity does not chain', () => {
    const long = 'Write a short paragraph that explains why the sky looks blue during the day and red at sunset, for a child.';
    const answer = 'Sunlight is made of many colours. Air scatters blue light the most, so the sky looks blue; at sunset light travels further and the blue is scattered away.';
    const items: NearDuplicateItem<number>[] = [
      { id: 0, fields: [long, '', answer] },
      { id: 1, fields: [`  ${long.toUpperCase()}  `, '', answer.replace(/\./g, '')] }, // case, whitespace, punctuation
      { id: 2, fields: [long.replace('child', 'kid'), '', answer] }, // a word changed in a long text
      { id: 3, fields: ['Give a synonym for this verb.', 'run', 'sprint'] },
      { id: 4, fields: ['Give a synonym for this verb.', 'eat', 'devour'] }, // the template with another input
      { id: 5, fields: ['Give a synonym for this verb.', 'run', 'jog'] }, // the same input, another answer
      { id: 6, fields: [long, '', answer], image: 'aaa' }, // the same text about a picture
      { id: 7, fields: [long, '', answer], image: 'bbb' }, // ... and about another picture
      { id: 8, fields: [long, '', answer], image: 'aaa' },
    ];
    const groups = findNearDuplicateGroups(items, { threshold: 0.8 });
    expect(groups.map((g) => g.ids)).toEqual([[0, 1, 2], [6, 8]]);
    // A chain: each step replaces two more words of the text; neighbours are near (Jaccard ~0.85), the ends far.
    const words = Array.from({ length: 40 }, (_, i) => `word${i}`);
    const chain = Array.from({ length: 6 }, (_, step) => words.map((w, i) => (i < step * 2 ? `other${i}q` : w)).join(' '));
    const chained = findNearDuplicateGroups(chain.map((t, id) => ({ id, fields: [t, '', 'same answer'] })), { threshold: 0.8 });
    const sets = chain.map((t) => shingles(comparableText(t)));
    for (const g of chained) for (const id of g.ids) expect(jaccard(sets[g.keep]!, sets[id]!)).toBeGreaterThanOrEqual(0.8);
    // Transitively all six would be one group; measured against the kept one they are [0, 1, 2] and [3, 4, 5].
    expect(chained.map((g) => g.ids)).toEqual([[0, 1, 2], [3, 4, 5]]);
  });
});

describe('splits', () => {
  it('assigns seeded splits with exact counts, repeatably', async () => {
    const { ws } = tempWorkspace('splits');
    const { dataset } = await importDataset(ws, writeJsonFile(dir, 'split.json', alpacaRecords(200)));
    const result = assignSplits(ws, dataset.id, { train: 0.8, val: 0.1, test: 0.1, seed: 42 });
    expect(result.counts).toEqual({ train: 160, val: 20, test: 20 });
    expect(ws.datasets.list()[0]!.splits).toEqual({ train: 160, val: 20, test: 20, unassigned: 0 });
    const first = [...ws.datasets.iterate(dataset.id)].map((e) => e.split);
    // Same seed: nothing changes, so no new version.
    expect(assignSplits(ws, dataset.id, { train: 0.8, val: 0.1, test: 0.1, seed: 42 }).version).toBeNull();
    // Another seed: a different assignment with the same counts.
    const other = assignSplits(ws, dataset.id, { train: 0.8, val: 0.1, test: 0.1, seed: 7 });
    expect(other.counts).toEqual(result.counts);
    expect([...ws.datasets.iterate(dataset.id)].map((e) => e.split)).not.toEqual(first);
    ws.datasets.undo(dataset.id);
    expect([...ws.datasets.iterate(dataset.id)].map((e) => e.split)).toEqual(first);
    expect(() => assignSplits(ws, dataset.id, { train: 0.8, val: 0.3, test: 0.1 })).toThrow(/must add up to 1/);
    ws.close();
  });

  it('the plan depends only on ids and seed', () => {
    const ids = Array.from({ length: 50 }, (_, i) => (i * 3 + 1) as ExampleId);
    const a = planSplits(ids, { seed: 'abc', val: 0.2, test: 0 });
    const b = planSplits([...ids].reverse(), { seed: 'abc', val: 0.2, test: 0 });
    expect([...a.entries()].sort()).toEqual([...b.entries()].sort());
    expect([...a.values()].filter((s) => s === 'val')).toHaveLength(10);
  });
});

describe('token-length statistics', () => {
  const countWords = (text: string) => text.split(/\s+/).filter(Boolean).length;

  it('counts the formatted training text and the examples max_seq_len would cut', () => {
    const examples = [
      { instruction: 'a b', input: '', output: 'c' },
      { instruction: 'a', input: 'b c d', output: 'e f' },
      { instruction: 'long '.repeat(100), input: '', output: 'x' },
    ];
    const lengths = examples.map((e) => countWords(alpacaTrainingText(e)));
    const stats = tokenLengthStats(examples, { countTokens: countWords, maxSeqLen: 60, bins: 10 });
    expect(stats).toMatchObject({ count: 3, min: Math.min(...lengths), max: Math.max(...lengths), overMaxSeqLen: 1, maxSeqLen: 60 });
    expect(stats.histogram.reduce((n, b) => n + b.count, 0)).toBe(3);
    expect(stats.histogram[0]!.start).toBe(0);
    // Bins are contiguous, of a round width, and cover the longest example.
    const width = stats.histogram[0]!.end;
    expect([1, 2, 5, 10, 20, 50].includes(width)).toBe(true);
    stats.histogram.forEach((b, k) => expect([b.start, b.end]).toEqual([k * width, (k + 1) * width]));
    expect(stats.histogram.at(-1)!.end).toBeGreaterThan(stats.max);
    // A custom template changes what is counted.
    expect(tokenLengthStats(examples, { countTokens: countWords, maxSeqLen: 60, formatExample: (e) => e.output }).max).toBe(2);
  });

  it('measures a dataset split', async () => {
    const { ws } = tempWorkspace('stats');
    const { dataset } = await importDataset(ws, writeJsonFile(dir, 'stats.json', alpacaRecords(40)));
    assignSplits(ws, dataset.id, { train: 0.5, val: 0.5, test: 0, seed: 1 });
    const stats = datasetTokenStats(ws, dataset.id, { countTokens: (t) => t.length, maxSeqLen: 200, split: 'val' });
    expect(stats.count).toBe(20);
    expect(stats.overMaxSeqLen).toBe(20); // the Alpaca preamble alone is longer than 200 characters
    ws.close();
  });
});

describe('export', () => {
  it('round-trips Alpaca JSON and JSONL, by split and by version', async () => {
    const { ws } = tempWorkspace('export');
    const records = alpacaRecords(30);
    const { dataset } = await importDataset(ws, writeJsonFile(dir, 'export-src.json', records));
    assignSplits(ws, dataset.id, { train: 0.8, val: 0.2, test: 0, seed: 3 });
    ws.datasets.deleteExamples(dataset.id, ws.datasets.exampleIds(dataset.id).slice(0, 5));

    const json = exportDataset(ws, dataset.id, join(dir, 'out.json'));
    expect(json).toMatchObject({ format: 'json', count: 25, version: 3 });
    const parsed = JSON.parse(readFileSync(json.file, 'utf8'));
    expect(parsed).toEqual(records.slice(5));

    const old = exportDataset(ws, dataset.id, join(dir, 'v1.jsonl'), { version: 1 });
    expect(old).toMatchObject({ format: 'jsonl', count: 30 });
    expect((await readDatasetFile(old.file)).examples.map(({ instruction, input, output }) => ({ instruction, input, output }))).toEqual(records);

    const val = exportDataset(ws, dataset.id, join(dir, 'val.jsonl'), { split: 'val', includeMeta: true });
    const reread = await readDatasetFile(val.file);
    expect(reread.examples.every((e) => e.split === 'val')).toBe(true);
    expect(reread.examples).toHaveLength(val.count);
    // Before the deletions (version 2), val had 6 examples.
    expect(exportDataset(ws, dataset.id, join(dir, 'val-v2.json'), { split: 'val', version: 2 }).count).toBe(6);
    ws.close();
  });
});

describe('ROUGE-L', () => {
  it('matches hand-computed values', () => {
    // LCS("the cat sat on the mat", "the cat lay on the mat") = 5 of 6 words each: F1 = 5/6.
    expect(rougeL('The cat sat on the mat.', 'the cat lay on the mat')).toBeCloseTo(5 / 6, 10);
    // LCS = "a c" (2); P = 2/3, R = 2/4; F1 = 2PR/(P+R) = 4/7.
    expect(rougeL('a b c', 'a c d e')).toBeCloseTo(4 / 7, 10);
    expect(rougeL('identical words here', 'Identical, words; here!')).toBe(1);
    expect(rougeL('', 'anything')).toBe(0);
    expect(rougeL('完全 一致', '完全 一致')).toBe(1);
  });
});
