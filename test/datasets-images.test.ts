// Examples with images and the formats that carry them: ScienceQA's folder and its Hugging Face parquet copy,
// LLaVA-style JSON, Alpaca JSONL with image paths. Images live in the workspace, content-addressed and
// deduplicated; bad images refuse the import naming file, line and field, and nothing is left behind.
// Fixtures: tools/make_scienceqa_fixture.py.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DatasetImportError, exportDataset, formatIssue, importDataset, readDatasetFile } from '../src-main/datasets/index.js';
import type { Workspace } from '../src-main/store/index.js';
import { tempWorkspace } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const SQA = join(FIXTURES, 'scienceqa');
const IMAGES = join(FIXTURES, 'images');
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Every file under the workspace's images/ folder (staging folders included). */
function imageFiles(ws: Workspace): string[] {
  const root = join(ws.dir, 'images');
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('ScienceQA folder', () => {
  it('imports every problem with its split, tags, image and fields as metadata', async () => {
    const { ws } = tempWorkspace('sqa');
    const result = await importDataset(ws, SQA);
    expect(result.report).toMatchObject({ format: 'scienceqa', file: 'scienceqa', records: 12, examples: 12, images: 6, invalidRecords: 0 });
    expect(result.dataset.name).toBe('scienceqa');
    const examples = [...ws.datasets.iterate(result.dataset.id)];
    expect(examples.map((e) => e.meta.pid)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12']);
    expect(examples.map((e) => e.split)).toEqual(['train', 'train', 'train', 'val', ...Array(8).fill('test')]);

    const five = examples[4]!;
    expect(five.instruction).toBe('Question: Which animal has feathers?\nContext: N/A\nOptions: (A) cat (B) sparrow (C) frog');
    expect(five.input).toBe('');
    expect(five.output).toBe('The answer is (B).');
    expect(five.tags).toEqual(['minitest']);
    expect(five.source).toBe('problems.json');
    expect(five.sourceLine).toBe(readFileSync(join(SQA, 'problems.json'), 'utf8').split('\n').indexOf('  "5": {') + 1);
    const problem = JSON.parse(readFileSync(join(SQA, 'problems.json'), 'utf8'))['5'];
    expect(five.meta).toEqual({ pid: '5', ...problem });
    expect(five.image).toBe(sha256(join(SQA, 'images/test/5/image.png')));
    expect(examples[5]!.instruction).toBe('Question: Which is a compound sentence?\nContext: A compound sentence has two clauses.\nOptions: (A) I ran. (B) I ran, and she walked.');

    // pid 11's picture has the same bytes as pid 1's: one file, one row.
    expect(examples[10]!.image).toBe(examples[0]!.image);
    const stored = ws.images.get(five.image!);
    expect(stored).toMatchObject({ format: 'png', width: 6, height: 4, bytes: readFileSync(join(SQA, 'images/test/5/image.png')).length });
    expect(readFileSync(ws.images.filePath(stored))).toEqual(readFileSync(join(SQA, 'images/test/5/image.png')));
    expect(imageFiles(ws)).toHaveLength(5);
    expect(ws.datasets.list()[0]).toMatchObject({ examples: 12, images: 6, splits: { train: 3, val: 1, test: 8, unassigned: 0 } });
    ws.close();
  });

  it('is detected from problems.json too, and a missing image names the problem and the path', async () => {
    const { ws } = tempWorkspace('sqa-file');
    const viaFile = await readDatasetFile(join(SQA, 'problems.json'));
    expect(viaFile.report).toMatchObject({ format: 'scienceqa', examples: 12 });

    const copy = makeTempDir('sqa-copy');
    const { cpSync } = await import('node:fs');
    cpSync(SQA, copy, { recursive: true });
    rmSync(join(copy, 'images/test/8/image.png'));
    const err = await importDataset(ws, copy).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetImportError);
    const issue = (err as DatasetImportError).report.issues[0]!;
    expect(issue).toMatchObject({ file: 'problems.json', index: 7, field: 'image' });
    expect(formatIssue(issue)).toMatch(/^problems\.json:\d+, record 7, field "image": image file images\/test\/8\/image\.png not found/);
    expect(ws.datasets.list()).toEqual([]);
    expect(imageFiles(ws)).toEqual([]);
    ws.close();
  });

  it('refuses a pid_splits.json that names a problem problems.json lacks', async () => {
    const copy = makeTempDir('sqa-bad-splits');
    const { cpSync, writeFileSync } = await import('node:fs');
    cpSync(SQA, copy, { recursive: true });
    const splits = JSON.parse(readFileSync(join(copy, 'pid_splits.json'), 'utf8'));
    splits.test.push('999');
    writeFileSync(join(copy, 'pid_splits.json'), JSON.stringify(splits));
    const { report } = await readDatasetFile(copy);
    expect(report.fatal).toMatchObject({ file: 'pid_splits.json', message: '"test" lists pid "999", which problems.json does not have' });
  });
});

describe('ScienceQA as Hugging Face parquet', () => {
  it('imports the shards with splits from their names and the same image bytes as the folder', async () => {
    const { ws } = tempWorkspace('sqa-parquet');
    const folder = await importDataset(ws, SQA);
    const rowsBefore = imageFiles(ws).length;
    const result = await importDataset(ws, join(FIXTURES, 'scienceqa-parquet'), { name: 'sqa-hf' });
    expect(result.report).toMatchObject({ format: 'parquet', records: 12, examples: 12, images: 6 });
    const hf = [...ws.datasets.iterate(result.dataset.id)];
    const byQuestion = new Map([...ws.datasets.iterate(folder.dataset.id)].map((e) => [e.instruction, e]));
    for (const ex of hf) {
      const twin = byQuestion.get(ex.instruction)!;
      expect(ex.output).toBe(twin.output);
      expect(ex.split).toBe(twin.split);
      expect(ex.image).toBe(twin.image);
      const { pid: _pid, image: _image, split: _split, ...fields } = twin.meta;
      expect(ex.meta).toEqual(fields);
    }
    expect(hf.map((e) => e.source)).toContain('data/validation-00000-of-00001.parquet');
    // Deduplicated across datasets: no new files.
    expect(imageFiles(ws)).toHaveLength(rowsBefore);
    ws.close();
  });
});

describe('text instruction datasets as parquet', () => {
  const expected = Array.from({ length: 8 }, (_, i) => ({ instruction: `Parquet task ${i}: name a colour.`, input: i % 2 ? '' : `context ${i}`, output: `colour ${i}` }));

  for (const codec of ['snappy', 'zstd', 'gzip']) {
    it(`reads a ${codec} file with several row groups`, async () => {
      const { report, examples } = await readDatasetFile(join(FIXTURES, 'parquet', `alpaca-${codec}.parquet`));
      expect(report).toMatchObject({ format: 'parquet', records: 8, invalidRecords: 0, fatal: null });
      expect(report.sha256).toBe(sha256(join(FIXTURES, 'parquet', `alpaca-${codec}.parquet`)));
      expect(examples.map(({ instruction, input, output }) => ({ instruction, input, output }))).toEqual(expected);
    });
  }

  it('imports a folder of shards as one dataset, splits from the shard names', async () => {
    const { ws } = tempWorkspace('shards');
    const result = await importDataset(ws, join(FIXTURES, 'parquet', 'shards'));
    expect(result.dataset.name).toBe('shards');
    const examples = [...ws.datasets.iterate(result.dataset.id)];
    expect(examples.map((e) => [e.source, e.split, e.instruction])).toEqual([
      ['data/test-00000-of-00001.parquet', 'test', 'Held out task 0: name a colour.'],
      ['data/test-00000-of-00001.parquet', 'test', 'Held out task 1: name a colour.'],
      ['data/train-00000-of-00002.parquet', 'train', 'Shard A task 0: name a colour.'],
      ['data/train-00000-of-00002.parquet', 'train', 'Shard A task 1: name a colour.'],
      ['data/train-00000-of-00002.parquet', 'train', 'Shard A task 2: name a colour.'],
      ['data/train-00001-of-00002.parquet', 'train', 'Shard B task 0: name a colour.'],
      ['data/train-00001-of-00002.parquet', 'train', 'Shard B task 1: name a colour.'],
    ]);
    expect(result.version.provenance).toMatchObject({ format: 'parquet', records: 7 });
    ws.close();
  });

  it("maps Dolly's columns and reads chat messages", async () => {
    const dolly = await readDatasetFile(join(FIXTURES, 'parquet', 'dolly.parquet'));
    expect(dolly.examples[0]).toMatchObject({ instruction: 'Dolly question 0?', input: '', output: 'Dolly answer 0.' });
    const chats = await readDatasetFile(join(FIXTURES, 'parquet', 'chats.parquet'));
    expect(chats.examples.map((e) => [e.instruction, e.output])).toEqual([
      ['Hello 0', 'Hi there 0'],
      ['Hello 1', 'Hi there 1'],
      ['Hello 2', 'Hi there 2'],
    ]);
  });

  it('names row group and row of a bad record, and stores nothing', async () => {
    const { ws } = tempWorkspace('bad-parquet');
    const err = await importDataset(ws, join(FIXTURES, 'parquet', 'alpaca-bad.parquet')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetImportError);
    const { report } = err as DatasetImportError;
    expect(report).toMatchObject({ records: 7, invalidRecords: 1 });
    expect(report.issues).toEqual([{ file: 'alpaca-bad.parquet', line: null, index: 4, rowGroup: 1, row: 1, field: 'output', message: expect.stringMatching(/^missing/) }]);
    expect(formatIssue(report.issues[0]!)).toMatch(/^alpaca-bad\.parquet, row group 1, row 1, field "output": missing/);
    expect(ws.datasets.list()).toEqual([]);
    ws.close();
  });

  it('refuses a truncated file as a whole', async () => {
    const { report } = await readDatasetFile(join(FIXTURES, 'parquet', 'truncated.parquet'));
    expect(report.fatal).toMatchObject({ file: 'truncated.parquet', message: expect.stringMatching(/^not a parquet file, or a truncated one/) });
  });

  it('keeps image bytes from an image column, and refuses bytes that are not an image', async () => {
    const { ws } = tempWorkspace('parquet-images');
    const result = await importDataset(ws, join(FIXTURES, 'parquet', 'alpaca-images.parquet'));
    const examples = [...ws.datasets.iterate(result.dataset.id)];
    expect(examples.map((e) => e.image === null)).toEqual([false, true, false]);
    expect(ws.images.get(examples[0]!.image!)).toMatchObject({ format: 'png', width: 3, height: 3 });
    const { report } = await readDatasetFile(join(FIXTURES, 'parquet', 'alpaca-bad-image.parquet'));
    expect(report.issues[0]).toMatchObject({ rowGroup: 0, row: 0, field: 'image', message: expect.stringMatching(/^bytes of x\.png is not an image that can be read/) });
    ws.close();
  });
});

describe('LLaVA-style JSON and Alpaca with image paths', () => {
  it('reads LLaVA conversations, image paths relative to the file, <image> removed', async () => {
    const { ws } = tempWorkspace('llava');
    const result = await importDataset(ws, join(IMAGES, 'llava.json'));
    const examples = [...ws.datasets.iterate(result.dataset.id)];
    expect(examples.map((e) => [e.instruction, e.input, e.output])).toEqual([
      ['What colour is this square?', '', 'It is red.'],
      ['Is it bright?', 'User: Describe the picture.\n\nAssistant: A green rectangle.', 'Yes, very bright.'],
      ['Say hi.', '', 'Hi!'],
    ]);
    expect(examples.map((e) => e.image)).toEqual([sha256(join(IMAGES, 'pics/red.png')), sha256(join(IMAGES, 'pics/green.jpg')), null]);
    expect(ws.images.get(examples[1]!.image!)).toMatchObject({ format: 'jpeg', width: 8, height: 6 });

    const eachTurn = await readDatasetFile(join(IMAGES, 'llava.json'), { conversation: 'each-turn' });
    expect(eachTurn.examples.map((e) => [e.instruction, e.image?.slice(0, 8) ?? null])).toEqual([
      ['What colour is this square?', sha256(join(IMAGES, 'pics/red.png')).slice(0, 8)],
      ['Describe the picture.', sha256(join(IMAGES, 'pics/green.jpg')).slice(0, 8)],
      ['Is it bright?', sha256(join(IMAGES, 'pics/green.jpg')).slice(0, 8)],
      ['Say hi.', null],
    ]);
    ws.close();
  });

  it('reads Alpaca JSONL with an image field; the same bytes under two names are stored once', async () => {
    const { ws } = tempWorkspace('alpaca-images');
    await importDataset(ws, join(IMAGES, 'llava.json'));
    const result = await importDataset(ws, join(IMAGES, 'alpaca-images.jsonl'));
    expect(result.report).toMatchObject({ examples: 3, images: 2 });
    const examples = [...ws.datasets.iterate(result.dataset.id)];
    expect(examples[1]!.image).toBe(sha256(join(IMAGES, 'pics/red.png')));
    expect(ws.images.get(examples[0]!.image!)).toMatchObject({ format: 'png', width: 5, height: 5 });
    expect(imageFiles(ws)).toHaveLength(3); // red, green, gray
    expect(ws.datasets.list().map((d) => d.images)).toEqual([2, 2]);
    ws.close();
  });

  it('resolves paths against --image-root when given', async () => {
    const { report } = await readDatasetFile(join(IMAGES, 'llava.json'), { imageRoot: join(IMAGES, 'bad') });
    expect(report.issues[0]).toMatchObject({ field: 'image', message: expect.stringContaining(`looked at ${join(IMAGES, 'bad', 'pics/red.png')}`) });
  });
});

describe('bad images', () => {
  const cases: [string, RegExp][] = [
    ['truncated', /^image file truncated\.png cannot be decoded: truncated or corrupt/],
    ['text', /^image file text\.png is not an image that can be read/],
    ['bomb', /^image file bomb\.png is 50000 x 50000 = 2500000000 pixels, over the limit of 89478485/],
    ['missing', /^image file missing\.png not found/],
  ];
  for (const [name, message] of cases) {
    it(`refuses ${name} naming file, line and field, and leaves nothing behind`, async () => {
      const { ws } = tempWorkspace(`bad-${name}`);
      const err = await importDataset(ws, join(IMAGES, 'bad', `${name}.jsonl`)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatasetImportError);
      const issue = (err as DatasetImportError).report.issues[0]!;
      expect(issue).toMatchObject({ file: `${name}.jsonl`, line: 2, index: 1, field: 'image', message: expect.stringMatching(message) });
      expect(ws.datasets.list()).toEqual([]);
      expect(imageFiles(ws)).toEqual([]);
      ws.close();
    });
  }

  it('imports only the good record with onInvalid skip, and stores only its image', async () => {
    const { ws } = tempWorkspace('bad-skip');
    const result = await importDataset(ws, join(IMAGES, 'bad', 'truncated.jsonl'), { onInvalid: 'skip' });
    expect(result.imported).toBe(1);
    expect(imageFiles(ws).map((f) => f.split('/').pop())).toEqual([`${sha256(join(IMAGES, 'pics/red.png'))}.png`]);
    ws.close();
  });

  it('takes a lower pixel limit', async () => {
    const { report } = await readDatasetFile(join(IMAGES, 'alpaca-images.jsonl'), { maxImagePixels: 20 });
    expect(report.issues[0]!.message).toMatch(/is 5 x 5 = 25 pixels, over the limit of 20/);
  });
});

describe('images across versions', () => {
  it('keeps an image while any version refers to it; garbage collection takes it once none does', async () => {
    const { ws } = tempWorkspace('gc');
    const result = await importDataset(ws, join(IMAGES, 'alpaca-images.jsonl'));
    const id = result.dataset.id;
    const [gray] = [...ws.datasets.iterate(id)];
    ws.datasets.deleteExamples(id, [gray!.id]);
    expect(ws.images.collectGarbage({ minAgeMs: 0 })).toEqual({ rows: 0, files: 0 });
    expect(existsSync(ws.images.filePath(ws.images.get(gray!.image!)))).toBe(true);
    ws.datasets.undo(id);
    const back = ws.datasets.example(gray!.id);
    expect(back.image).toBe(gray!.image);
    expect(back.contentHash).toBe(gray!.contentHash);
    expect(ws.datasets.examplesAt(id, 2).map((e) => e.image)).toEqual([[...ws.datasets.iterate(id)][1]!.image, null]);

    ws.datasets.delete(id);
    expect(ws.images.collectGarbage({ minAgeMs: 0 })).toEqual({ rows: 2, files: 2 });
    expect(imageFiles(ws)).toEqual([]);
    ws.close();
  });

  it('garbage collection spares young files without a row (an import in flight elsewhere)', async () => {
    const { ws } = tempWorkspace('gc-young');
    const staging = ws.images.stage();
    const bytes = readFileSync(join(IMAGES, 'pics/red.png'));
    staging.add(bytes, { format: 'png', width: 4, height: 4 });
    staging.commit();
    expect(imageFiles(ws)).toHaveLength(1);
    expect(ws.images.collectGarbage()).toEqual({ rows: 0, files: 0 });
    expect(ws.images.collectGarbage({ minAgeMs: 0 })).toEqual({ rows: 0, files: 1 });
    ws.close();
  });

  it('a staging folder left by a killed import goes once it is old', async () => {
    const { ws } = tempWorkspace('gc-staging');
    ws.images.stage().add(readFileSync(join(IMAGES, 'pics/red.png')), { format: 'png', width: 4, height: 4 });
    expect(readdirSync(join(ws.dir, 'images')).filter((n) => n.startsWith('.staging-'))).toHaveLength(1);
    ws.images.collectGarbage();
    expect(readdirSync(join(ws.dir, 'images')).filter((n) => n.startsWith('.staging-'))).toHaveLength(1);
    ws.images.collectGarbage({ minAgeMs: 0 });
    expect(readdirSync(join(ws.dir, 'images'))).toEqual([]);
    ws.close();
  });

  it('a text-identical example about another picture is not an exact duplicate', async () => {
    const { ws } = tempWorkspace('dup');
    const result = await importDataset(ws, join(IMAGES, 'alpaca-images.jsonl'));
    const [a, b] = [...ws.datasets.iterate(result.dataset.id)];
    ws.datasets.edit(b!.id, { instruction: a!.instruction, output: a!.output });
    expect(ws.datasets.exactDuplicateGroups(result.dataset.id)).toEqual([]);
    ws.close();
  });
});

describe('export with images', () => {
  it('writes images/<sha256>.<ext> beside the file, and reads back the same', async () => {
    const { ws } = tempWorkspace('export');
    const result = await importDataset(ws, SQA);
    const out = makeTempDir('export-out');
    const file = join(out, 'sqa.jsonl');
    const exported = exportDataset(ws, result.dataset.id, file, { split: 'test', includeMeta: true });
    expect(exported).toMatchObject({ count: 8, images: 4 });
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ image: `images/${sha256(join(SQA, 'images/test/5/image.png'))}.png`, meta: { pid: '5' }, split: 'test' });
    expect(readFileSync(join(out, lines[0].image))).toEqual(readFileSync(join(SQA, 'images/test/5/image.png')));
    expect(lines[1].image).toBeUndefined();

    const again = await importDataset(ws, file, { name: 'roundtrip' });
    const back = [...ws.datasets.iterate(again.dataset.id)];
    const original = [...ws.datasets.iterate(result.dataset.id, 'test')];
    expect(back.map((e) => [e.instruction, e.output, e.image, e.split])).toEqual(original.map((e) => [e.instruction, e.output, e.image, e.split]));
    ws.close();
  });
});

describe('adapter-studio dataset with images', () => {
  async function cli(args: string[]) {
    const { datasetCommand } = await import('../src-main/cli/dataset-command.js');
    let stdout = '';
    let stderr = '';
    const code = await datasetCommand(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
    return { code, stdout, stderr };
  }

  it('detects a ScienceQA folder and parquet shards, lists image counts, exports the images', async () => {
    const ws = join(makeTempDir('cli-images'), 'ws');
    const sqa = await cli(['import', SQA, '--workspace', ws]);
    expect(sqa).toMatchObject({ code: 0, stderr: '' });
    expect(sqa.stdout).toMatch(/^imported 12 example\(s\) \(6 with an image\) into scienceqa \(ds_[0-9a-f]+\), version 1\n$/);
    expect((await cli(['import', join(FIXTURES, 'parquet', 'shards'), '--name', 'shards', '--workspace', ws])).code).toBe(0);
    const list = JSON.parse((await cli(['list', '--workspace', ws, '--json'])).stdout);
    expect(list.datasets.map((d: { name: string; examples: number; images: number; splits: object }) => [d.name, d.examples, d.images, d.splits])).toEqual([
      ['scienceqa', 12, 6, { train: 3, val: 1, test: 8, unassigned: 0 }],
      ['shards', 7, 0, { train: 5, val: 0, test: 2, unassigned: 0 }],
    ]);
    expect((await cli(['list', '--workspace', ws])).stdout).toMatch(/scienceqa {2}\(ds_[0-9a-f]+\) {2}12 examples \(6 with an image\)/);

    const out = join(makeTempDir('cli-export'), 'train.json');
    const exported = await cli(['export', 'scienceqa', out, '--split', 'train', '--workspace', ws]);
    expect(exported.stdout).toBe(`wrote 3 example(s) of scienceqa v1 to ${out} (json) and 2 image(s) to ${join(out, '..', 'images')}\n`);
  });

  it('takes a multiple-choice template file and refuses a bad one by name', async () => {
    const dir = makeTempDir('cli-template');
    const ws = join(dir, 'ws');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'cqm.json'), JSON.stringify({ prompt: 'Context: {context}\nQuestion: {question}\nOptions: {options}' }));
    expect((await cli(['import', join(FIXTURES, 'scienceqa-parquet'), '--mc-template', join(dir, 'cqm.json'), '--workspace', ws])).code).toBe(0);
    const { openWorkspace } = await import('../src-main/store/index.js');
    const w = openWorkspace(ws);
    const [first] = [...w.datasets.iterate(w.datasets.find('scienceqa-parquet').id)];
    expect(first!.instruction).toMatch(/^Context: N\/A\nQuestion: /);
    w.close();
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ answer: 'always A' }));
    const bad = await cli(['import', SQA, '--mc-template', join(dir, 'bad.json'), '--workspace', ws]);
    expect(bad).toMatchObject({ code: 1, stderr: expect.stringContaining('"answer" must contain {letter}') });
  });
});
