// Importing dataset files: every format, the ShareGPT rule, validation reports, and all-or-nothing writes.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DatasetImportError, formatIssue, importDataset, readDatasetFile } from '../src-main/datasets/index.js';
import { alpacaRecords, checkSearchIndex, tempWorkspace, writeFile, writeJsonFile, writeJsonlFile } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

const dir = makeTempDir('datasets-import');

describe('Alpaca JSON and JSONL', () => {
  it('puts records that name no split into the split asked for (a held-out file as test)', async () => {
    const { ws } = tempWorkspace('split-option');
    const train = await importDataset(ws, writeJsonFile(dir, 'train.json', alpacaRecords(3)), { split: 'train' });
    const own = { ...alpacaRecords(5)[4], split: 'val' };
    await importDataset(ws, writeJsonFile(dir, 'heldout.json', [...alpacaRecords(4).slice(3), own]), { into: train.dataset.id, split: 'test' });
    expect([...ws.datasets.iterate(train.dataset.id)].map((e) => e.split)).toEqual(['train', 'train', 'train', 'test', 'val']);
    ws.close();
  });

  it('imports a JSON list with the line each record starts on', async () => {
    const file = writeJsonFile(dir, 'alpaca.json', alpacaRecords(3));
    const { ws } = tempWorkspace('alpaca');
    const result = await importDataset(ws, file);
    expect(result.dataset.name).toBe('alpaca');
    expect(result.imported).toBe(3);
    const examples = [...ws.datasets.iterate(result.dataset.id)];
    expect(examples.map((e) => [e.instruction, e.input, e.output])).toEqual(alpacaRecords(3).map((r) => [r.instruction, r.input, r.output]));
    // JSON.stringify(_, null, 2): "[", then 5 lines per record.
    expect(examples.map((e) => [e.source, e.sourceLine])).toEqual([
      ['alpaca.json', 2],
      ['alpaca.json', 7],
      ['alpaca.json', 12],
    ]);
    expect(result.report.sha256).toBe(createHash('sha256').update(readFileSync(file)).digest('hex'));
    expect(result.version.provenance).toMatchObject({ file, format: 'json', records: 3, skippedRecords: 0 });
    ws.close();
  });

  it('reads the same records whatever the chunk size, across multi-byte characters and escapes', async () => {
    const records = [
      { instruction: 'Café — naïve “quotes” and 😀 emoji', input: 'tab\there, quote " and backslash \\', output: 'ok ]}, {[ "tricky" ' },
      { instruction: '中文指令', input: '', output: '回答 ✓' },
      ...alpacaRecords(5),
    ];
    const file = writeFile(dir, 'tricky.json', `\uFEFF${JSON.stringify(records, null, 1)}`);
    const whole = await readDatasetFile(file);
    expect(whole.report.issues).toEqual([]);
    expect(whole.examples.map((e) => e.instruction)).toEqual(records.map((r) => r.instruction));
    expect(whole.examples[0]!.input).toBe(records[0]!.input);
    for (const chunkBytes of [1, 2, 3, 7, 64]) {
      const chunked = await readDatasetFile(file, { chunkBytes });
      expect(chunked.examples).toEqual(whole.examples);
    }
  });

  it('imports JSONL with blank lines and CRLF endings', async () => {
    const lines = alpacaRecords(3).map((r) => JSON.stringify(r));
    const file = writeFile(dir, 'data.jsonl', `${lines[0]}\r\n\r\n${lines[1]}\r\n${lines[2]}`);
    const { report, examples } = await readDatasetFile(file);
    expect(report).toMatchObject({ format: 'jsonl', records: 3, invalidRecords: 0, fatal: null });
    expect(examples.map((e) => e.sourceLine)).toEqual([1, 3, 4]);
  });

  it('maps other field names (Dolly style) and reads tags and splits', async () => {
    const file = writeJsonlFile(dir, 'dolly.jsonl', [
      { instruction: 'Q1', context: 'C1', response: 'A1', tags: ['x', 'y'], split: 'validation' },
      { prompt: 'Q2', completion: 'A2', tags: 'a; b', split: 'train' },
      { question: 'Q3', answer: 'A3', split: 'later' },
    ]);
    const { report, examples } = await readDatasetFile(file);
    expect(examples).toMatchObject([
      { instruction: 'Q1', input: 'C1', output: 'A1', tags: ['x', 'y'], split: 'val' },
      { instruction: 'Q2', input: '', output: 'A2', tags: ['a', 'b'], split: 'train' },
    ]);
    expect(report.issues).toEqual([{ file: 'dolly.jsonl', line: 3, index: 2, field: 'split', message: expect.stringMatching(/expected one of train, val, test .* got "later"/) }]);
    const mapped = await readDatasetFile(writeJsonlFile(dir, 'mapped.jsonl', [{ q: 'x', a: 'y', instruction: 'ignored' }]), { fieldMap: { instruction: 'q', output: 'a' } });
    expect(mapped.examples).toMatchObject([{ instruction: 'x', output: 'y' }]);
  });
});

describe('CSV and TSV', () => {
  it('imports CSV with a header mapping and quoted cells spanning lines', async () => {
    const csv = 'Prompt,Context,Response,Notes\n"Write a poem","","Roses are red,\nviolets are blue",n1\nAdd,"2, 3",5,n2\n';
    const file = writeFile(dir, 'data.csv', csv);
    const { report, examples } = await readDatasetFile(file);
    expect(report).toMatchObject({ format: 'csv', records: 2, invalidRecords: 0 });
    expect(examples).toMatchObject([
      { instruction: 'Write a poem', input: '', output: 'Roses are red,\nviolets are blue', sourceLine: 2 },
      { instruction: 'Add', input: '2, 3', output: '5', sourceLine: 4 },
    ]);
    const mapped = await readDatasetFile(file, { fieldMap: { input: 'Notes' } });
    expect(mapped.examples.map((e) => e.input)).toEqual(['n1', 'n2']);
  });

  it('imports TSV and reports rows with the wrong number of columns', async () => {
    const file = writeFile(dir, 'data.tsv', 'instruction\tinput\toutput\nSay hi\t\tHi\nBroken row\tonly two\nAlso fine\tx\ty\n');
    const { report, examples } = await readDatasetFile(file);
    expect(examples.map((e) => e.output)).toEqual(['Hi', 'y']);
    expect(report.issues).toEqual([{ file: 'data.tsv', line: 3, index: 1, field: null, message: 'has 2 columns, the header has 3' }]);
  });

  it('says which columns are missing and how to map them', async () => {
    const file = writeFile(dir, 'nomap.csv', 'question,reply\nq,r\n');
    const { report } = await readDatasetFile(file);
    expect(report.fatal?.message).toMatch(/no column for output \(looked for output, response, answer, completion\); the header has "question", "reply"\. Map one with output=COLUMN/);
    expect((await readDatasetFile(file, { fieldMap: { output: 'reply' } })).examples).toMatchObject([{ instruction: 'q', output: 'r' }]);
  });
});

describe('ShareGPT and messages', () => {
  const chat = {
    system: 'Be brief.',
    conversations: [
      { from: 'human', value: 'Hi' },
      { from: 'gpt', value: 'Hello! How can I help?' },
      { from: 'human', value: 'What is 2+2?' },
      { from: 'human', value: 'Just the number.' },
      { from: 'gpt', value: '4' },
      { from: 'human', value: 'Thanks (never answered)' },
    ],
  };

  it('turns a conversation into its last reply, with the earlier turns as input', async () => {
    const file = writeJsonFile(dir, 'sharegpt.json', [chat]);
    const { examples } = await readDatasetFile(file);
    expect(examples).toEqual([
      {
        instruction: 'What is 2+2?\n\nJust the number.',
        input: 'System: Be brief.\n\nUser: Hi\n\nAssistant: Hello! How can I help?',
        output: '4',
        source: 'sharegpt.json',
        sourceLine: 2,
      },
    ]);
  });

  it('with each-turn, makes one example per reply', async () => {
    const file = writeJsonlFile(dir, 'sharegpt.jsonl', [chat]);
    const { examples } = await readDatasetFile(file, { conversation: 'each-turn' });
    expect(examples.map((e) => [e.instruction, e.input, e.output])).toEqual([
      ['Hi', 'System: Be brief.', 'Hello! How can I help?'],
      ['What is 2+2?\n\nJust the number.', 'System: Be brief.\n\nUser: Hi\n\nAssistant: Hello! How can I help?', '4'],
    ]);
  });

  it('reads OpenAI-style messages with text parts, and rejects what it cannot use', async () => {
    const file = writeJsonlFile(dir, 'messages.jsonl', [
      { messages: [{ role: 'system', content: 'S' }, { role: 'user', content: [{ type: 'text', text: 'Q' }] }, { role: 'assistant', content: 'A' }] },
      { messages: [{ role: 'user', content: 'only a question' }] },
      { messages: [{ role: 'tool', content: 'x' }] },
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'u' }] }, { role: 'assistant', content: 'A' }] },
      { messages: [{ role: 'user', content: 'Q' }, { role: 'assistant', content: '  ' }] },
    ]);
    const { report, examples } = await readDatasetFile(file);
    expect(examples.map((e) => [e.instruction, e.input, e.output])).toEqual([['Q', 'System: S', 'A']]);
    expect(report.issues.map((i) => [i.line, i.field, i.message])).toEqual([
      [2, 'messages', 'no user turn followed by an assistant reply; nothing to learn from'],
      [3, 'messages[0].role', expect.stringMatching(/^unknown role "tool"/)],
      [4, 'messages[0].content', 'only text parts are supported, got "image_url"'],
      [5, 'messages', 'turn 1 (assistant) is empty: the output would be empty'],
    ]);
  });
});

describe('validation', () => {
  const bad = [
    { instruction: 'fine', input: '', output: 'ok' },
    { instruction: 'no output', input: '' },
    { instruction: 'empty output', input: '', output: '   ' },
    { instruction: 42, input: '', output: 'x' },
    { instruction: 'input is a list', input: ['a'], output: 'x' },
    'just a string',
    { instruction: 'huge', input: '', output: 'x'.repeat(2000) },
    { instruction: 'also fine', output: 'ok' },
  ];

  it('reports each bad record with file, line, index, field and what was expected', async () => {
    const file = writeJsonFile(dir, 'bad.json', bad);
    const { report, examples } = await readDatasetFile(file, { maxFieldChars: 1000 });
    expect(examples.map((e) => e.instruction)).toEqual(['fine', 'also fine']);
    expect(report).toMatchObject({ records: 8, examples: 2, invalidRecords: 6, fatal: null });
    expect(report.issues.map(formatIssue)).toEqual([
      expect.stringMatching(/^bad\.json:\d+, record 1, field "output": missing; expected the output text \(looked for output, response, answer, completion\)$/),
      expect.stringMatching(/^bad\.json:\d+, record 2, field "output": is empty; every example needs an output to learn$/),
      expect.stringMatching(/^bad\.json:\d+, record 3, field "instruction": expected text, got number 42$/),
      expect.stringMatching(/^bad\.json:\d+, record 4, field "input": expected text, got a list$/),
      expect.stringMatching(/^bad\.json:\d+, record 5: expected an object with instruction, input and output, got text$/),
      expect.stringMatching(/^bad\.json:\d+, record 6, field "output": is 2000 characters long; the limit is 1000/),
    ]);
    // Lines point at the records: JSON.stringify(_, null, 2) puts record 5 (a string) on its own line.
    const text = readFileSync(file, 'utf8').split('\n');
    expect(text[report.issues[4]!.line! - 1]!.trim()).toBe('"just a string",');
  });

  it('imports nothing when any record is invalid, unless asked to skip them', async () => {
    const file = writeJsonFile(dir, 'mixed.json', bad);
    const { ws } = tempWorkspace('validate');
    const err = await importDataset(ws, file, { maxFieldChars: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetImportError);
    expect((err as DatasetImportError).message).toMatch(/nothing imported .*: 6 of 8 records are invalid\n {2}mixed\.json:\d+, record 1, field "output"/);
    expect((err as DatasetImportError).report.invalidRecords).toBe(6);
    expect(ws.datasets.list()).toEqual([]);

    const result = await importDataset(ws, file, { maxFieldChars: 1000, onInvalid: 'skip', tags: ['batch-1'] });
    expect(result.imported).toBe(2);
    expect(result.version.summary).toBe('imported 2 example(s) from mixed.json, skipped 6 invalid record(s)');
    expect([...ws.datasets.iterate(result.dataset.id)].map((e) => e.tags)).toEqual([['batch-1'], ['batch-1']]);
    ws.close();
  });

  it('stops at bytes that are not UTF-8, naming the line and offset', async () => {
    const latin1 = Buffer.concat([Buffer.from('{"instruction":"a","output":"b"}\n{"instruction":"a","output":"b"}\n{"instruction":"caf'), Buffer.from([0xe9]), Buffer.from('","output":"x"}\n')]);
    const { report } = await readDatasetFile(writeFile(dir, 'latin1.jsonl', latin1));
    expect(report.fatal).toEqual({
      file: 'latin1.jsonl',
      line: 3,
      index: null,
      field: null,
      message: expect.stringMatching(/^byte 0xe9 at byte offset 85 is not valid UTF-8; the file must be UTF-8 text/),
    });
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('[]', 'utf16le')]);
    expect((await readDatasetFile(writeFile(dir, 'utf16.json', utf16))).report.fatal?.message).toMatch(/UTF-16/);
    const cut = Buffer.from('[{"instruction":"é","output":"x"},\n{"instruction":"é').subarray(0, -1);
    expect((await readDatasetFile(writeFile(dir, 'cut.json', cut))).report.fatal?.message).toMatch(/ends in the middle of a UTF-8 character/);
  });

  it('explains truncated and oversized files', async () => {
    const full = JSON.stringify(alpacaRecords(3), null, 2);
    const truncated = await readDatasetFile(writeFile(dir, 'truncated.json', full.slice(0, full.length - 60)));
    expect(truncated.report.fatal).toMatchObject({ line: 12, index: 2, message: expect.stringMatching(/ends inside record 2 \(started on line 12\): truncated/) });
    expect(truncated.examples).toEqual([]);

    const big = await readDatasetFile(writeJsonlFile(dir, 'big.jsonl', [{ instruction: 'x', output: 'y'.repeat(5000) }, { instruction: 'ok', output: 'ok' }]), { maxRecordChars: 1000, chunkBytes: 256 });
    expect(big.report.issues).toEqual([{ file: 'big.jsonl', line: 1, index: 0, field: null, message: expect.stringMatching(/longer than 1000 characters; it was skipped/) }]);
    expect(big.examples.map((e) => e.instruction)).toEqual(['ok']);
  });

  it('adds an import to an existing dataset as a version that undo removes', async () => {
    const { ws } = tempWorkspace('into');
    const first = await importDataset(ws, writeJsonFile(dir, 'first.json', alpacaRecords(2)), { name: 'grow' });
    const second = await importDataset(ws, writeJsonFile(dir, 'second.json', alpacaRecords(3, 100)), { into: first.dataset.id });
    expect(second.version.version).toBe(2);
    expect(ws.datasets.count(first.dataset.id)).toBe(5);
    checkSearchIndex(ws);
    await expect(importDataset(ws, writeJsonFile(dir, 'third.json', alpacaRecords(1)), { name: 'grow' })).rejects.toThrow(/already exists/);
    ws.datasets.undo(first.dataset.id);
    expect(ws.datasets.count(first.dataset.id)).toBe(2);
    ws.close();
  });
});
