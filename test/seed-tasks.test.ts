// Stanford Alpaca's own seed_tasks.jsonl (instruction + instances [{input, output}] + is_classification, id,
// name): one example per instance, the task's fields kept; usable as the self-instruct seed pool. The first
// lines of the real file, verbatim, plus a two-instance classification task in its format.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readDatasetFile } from '../src-main/datasets/index.js';
import { loadSeedTasks } from '../src-main/datasets/self-instruct.js';

const FILE = join(import.meta.dirname, 'fixtures', 'stanford', 'seed_tasks.jsonl');

describe("Stanford Alpaca's seed_tasks.jsonl", () => {
  it('imports one example per instance with id, name and classification kept', async () => {
    const { report, examples } = await readDatasetFile(FILE);
    expect(report.fatal).toBeNull();
    expect(report.issues).toEqual([]);
    expect(examples).toHaveLength(4);
    expect(examples[1]).toMatchObject({ instruction: 'What is the relation between the given pairs?', input: 'Night : Day :: Right : Left', meta: { id: 'seed_task_1', name: 'antonym_relation', is_classification: false } });
    expect(examples.slice(2).map((e) => [e.input, e.output, e.tags])).toEqual([
      ['I enjoy the flavor of the restaurant but their service is too slow.', 'mixed', ['classification']],
      ['I had a great day today.', 'positive', ['classification']],
    ]);
  });

  it('is accepted as the seed pool for self-instruct', async () => {
    const seeds = await loadSeedTasks(FILE);
    expect(seeds.map((s) => s.output)).toEqual(['Yes, you can have 1 oatmeal banana protein shake and 4 strips of bacon.', 'The relation between the given pairs is that they are opposites.', 'mixed', 'positive']);
  });

  it('a task without instances is an error naming the field and the line', async () => {
    const { writeFileSync } = await import('node:fs');
    const { makeTempDir } = await import('./helpers/tmp.js');
    const bad = join(makeTempDir('seed-bad'), 'seeds.jsonl');
    writeFileSync(bad, '{"id": "t", "name": "n", "instruction": "Do it.", "instances": [], "is_classification": false}\n');
    const { report, examples } = await readDatasetFile(bad);
    expect(examples).toEqual([]);
    expect(report.issues[0]).toMatchObject({ line: 1, field: 'instances' });
  });
});
