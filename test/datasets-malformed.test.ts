// A generated corpus of malformed dataset files. Each must give a clear error that says where, never crash,
// and never leave a partial dataset behind.

import { describe, expect, it } from 'vitest';
import { DatasetImportError, formatIssue, importDataset, readDatasetFile } from '../src-main/datasets/index.js';
import { seededRandom } from '../src-main/datasets/rng.js';
import { alpacaRecords, tempWorkspace, writeFile } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

interface Case {
  name: string; // file name: its extension picks the reader
  content: string | Buffer;
  /** 'fatal': the file as a whole is refused. 'records': some records are invalid (the rest may be valid). */
  kind: 'fatal' | 'records';
  /** A fragment the error message must contain. */
  says: RegExp;
}

const LIMITS = { maxFieldChars: 5_000, maxRecordChars: 20_000 };

function malformedCorpus(): Case[] {
  const records = alpacaRecords(4);
  const json = JSON.stringify(records, null, 2);
  const jsonl = records.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const line = (r: unknown) => JSON.stringify(r);
  const good = line(records[0]);
  const cases: Case[] = [];
  const fatal = (name: string, content: string | Buffer, says: RegExp) => cases.push({ name, content, kind: 'fatal', says });
  const bad = (name: string, content: string | Buffer, says: RegExp) => cases.push({ name, content, kind: 'records', says });

  // --- JSON list: structure ---
  fatal('empty.json', '', /file is empty/);
  fatal('blank.json', ' \n\t\n', /file is empty/);
  fatal('object.json', line({ data: records }), /expected a JSON list .* got an object/);
  fatal('number.json', '42', /expected a JSON list .* got "4"/);
  fatal('open-bracket.json', '[', /before the list is closed with "\]" \(truncated\?\)/);
  [0.1, 0.3, 0.5, 0.7, 0.9, 0.99].forEach((f) => fatal(`truncated-${f}.json`, json.slice(0, Math.floor(json.length * f)), /truncated/));
  fatal('no-closing-bracket.json', json.slice(0, json.lastIndexOf(']')), /before the list is closed/);
  fatal('missing-comma.json', `[${good}\n${good}]`, /expected "," or "]" after record 0/);
  fatal('trailing-garbage.json', `${json}\nextra`, /after the closing "\]"/);
  fatal('trailing-comma.json', `[${good},]`, /expected a record after ","/);
  fatal('double-comma.json', `[${good},,${good}]`, /expected a record after ","/);
  fatal('unclosed-string.json', `[{"instruction": "never closed, "output": "x"}]`, /ends inside record 0/);
  fatal('unclosed-object.json', `[{"instruction": "a", "output": "b"`, /ends inside record 0/);
  // --- JSON list: records ---
  bad('record-number.json', `[${good}, 7]`, /record 1: expected an object .* got number 7/);
  bad('record-null.json', `[null, ${good}]`, /record 0: expected an object .* got null/);
  bad('record-array.json', `[["a","b","c"]]`, /expected an object .* got a list/);
  bad('record-string.json', `["instruction: a"]`, /got text/);
  bad('missing-output.json', line([{ instruction: 'a', input: '' }]), /field "output": missing/);
  bad('empty-output.json', line([{ instruction: 'a', input: '', output: '' }]), /field "output": is empty/);
  bad('blank-output.json', line([{ instruction: 'a', input: '', output: ' \n\t ' }]), /field "output": is empty/);
  bad('null-instruction.json', line([{ instruction: null, output: 'b' }]), /field "instruction": missing/);
  bad('empty-instruction.json', line([{ instruction: '', output: 'b' }]), /field "instruction": is empty/);
  bad('number-instruction.json', line([{ instruction: 3.5, output: 'b' }]), /field "instruction": expected text, got number 3.5/);
  bad('object-input.json', line([{ instruction: 'a', input: { text: 'x' }, output: 'b' }]), /field "input": expected text, got an object/);
  bad('boolean-output.json', line([{ instruction: 'a', output: true }]), /field "output": expected text, got boolean true/);
  bad('bad-tags.json', line([{ instruction: 'a', output: 'b', tags: [1, 2] }]), /field "tags": expected a list of text tags .* got \[1,2\]/);
  bad('bad-split.json', line([{ instruction: 'a', output: 'b', split: 'holdout' }]), /field "split": expected one of train, val, test/);
  bad('huge-field.json', line([{ instruction: 'a', output: 'z'.repeat(6_000) }]), /field "output": is 6000 characters long; the limit is 5000/);
  bad('huge-record.json', line([{ instruction: 'a', output: 'b', padding: 'p'.repeat(30_000) }, records[1]]), /record 0: the record is longer than 20000 characters/);
  bad('bad-json-inside.json', `[{"instruction": "a", "output": }, ${good}]`, /record 0: not valid JSON/);
  bad('control-char.json', `[{"instruction": "a\u0001b", "output": "raw control character"}]`, /not valid JSON/);
  // --- encodings and non-text ---
  fatal('latin1.json', Buffer.concat([Buffer.from('[{"instruction": "caf'), Buffer.from([0xe9]), Buffer.from('", "output": "b"}]')]), /byte 0xe9 at byte offset 21 is not valid UTF-8/);
  fatal('ff-byte.jsonl', Buffer.concat([Buffer.from(`${good}\n`), Buffer.from([0xff, 0x0a])]), /byte 0xff .* not valid UTF-8/);
  fatal('overlong.jsonl', Buffer.concat([Buffer.from('{"instruction": "'), Buffer.from([0xc0, 0xaf]), Buffer.from('", "output": "b"}\n')]), /byte 0xc0 .* not valid UTF-8/);
  fatal('surrogate.jsonl', Buffer.concat([Buffer.from('{"instruction": "'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('", "output": "b"}\n')]), /byte 0xed .* not valid UTF-8/);
  fatal('cut-multibyte.jsonl', Buffer.from(`${good}\n{"instruction": "€`).subarray(0, -1), /ends in the middle of a UTF-8 character/);
  fatal('utf16le.json', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(json, 'utf16le')]), /UTF-16/);
  fatal('utf16be.jsonl', Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(jsonl, 'utf16le').swap16()]), /UTF-16/);
  fatal('gzip.jsonl', Buffer.from([0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4]), /gzip-compressed/);
  fatal('zip.json', Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0]), /zip archive/);
  const random = seededRandom('garbage');
  for (let k = 0; k < 3; k++) {
    const bytes = Buffer.from(Array.from({ length: 512 }, () => 0x80 + Math.floor(random() * 0x80)));
    fatal(`garbage-${k}.json`, bytes, /not valid UTF-8/);
  }
  // --- JSONL ---
  fatal('empty.jsonl', '', /no records/);
  fatal('blank-lines.jsonl', '\n\n  \n', /no records/);
  bad('bad-line.jsonl', `${good}\n{"instruction": "a", output: "b"}\n${good}\n`, /bad-line\.jsonl:2, record 1: not valid JSON/);
  bad('truncated-last-line.jsonl', jsonl.slice(0, -20), /may be truncated/);
  fatal('list-in-jsonl.jsonl', json, /looks like a JSON list, not JSON Lines/);
  bad('array-line.jsonl', `${good}\n[1, 2]\n`, /expected an object .* got a list/);
  bad('huge-line.jsonl', `${good}\n${line({ instruction: 'a', output: 'x'.repeat(25_000) })}\n`, /longer than 20000 characters/);
  // --- CSV / TSV ---
  fatal('empty.csv', '', /file is empty/);
  fatal('header-only.csv', 'instruction,input,output\n', /header row but no records/);
  fatal('no-output-column.csv', 'instruction,input\na,b\n', /no column for output/);
  fatal('no-instruction-column.tsv', 'text\toutput\na\tb\n', /no column for instruction/);
  fatal('duplicate-header.csv', 'instruction,output,output\na,b,c\n', /names column "output" twice/);
  fatal('empty-header.csv', 'instruction,,output\na,b,c\n', /empty column name/);
  fatal('unclosed-quote.csv', 'instruction,input,output\n"a,b,c\nd,e,f\n', /never closed|longer than/);
  fatal('latin1.csv', Buffer.concat([Buffer.from('instruction,input,output\nna'), Buffer.from([0xef]), Buffer.from('ve,,x\n')]), /line 2|not valid UTF-8/);
  bad('short-row.csv', 'instruction,input,output\na,b\nc,d,e\n', /short-row\.csv:2, record 0: has 2 columns, the header has 3/);
  bad('long-row.csv', 'instruction,input,output\na,b,c,d\n', /has 4 columns, the header has 3/);
  bad('empty-output-cell.csv', 'instruction,input,output\na,b,\n', /field "output": is empty/);
  bad('bad-split.tsv', 'instruction\toutput\tsplit\na\tb\tfinal\n', /field "split"/);
  // --- ShareGPT / messages ---
  bad('conversations-not-list.json', line([{ conversations: { from: 'human' } }]), /field "conversations": expected a list of turns/);
  bad('turn-without-role.jsonl', line({ conversations: [{ value: 'hi' }, { from: 'gpt', value: 'x' }] }) + '\n', /conversations\[0\]\.role": missing/);
  bad('unknown-role.jsonl', line({ conversations: [{ from: 'narrator', value: 'hi' }] }) + '\n', /unknown role "narrator"/);
  bad('no-reply.jsonl', line({ conversations: [{ from: 'human', value: 'hi' }] }) + '\n', /no user turn followed by an assistant reply/);
  bad('reply-first.jsonl', line({ messages: [{ role: 'assistant', content: 'hello' }] }) + '\n', /no user turn followed by an assistant reply/);
  bad('content-number.jsonl', line({ messages: [{ role: 'user', content: 5 }, { role: 'assistant', content: 'x' }] }) + '\n', /messages\[0\]\.content": expected text, got number 5/);
  bad('image-part.jsonl', line({ messages: [{ role: 'user', content: [{ type: 'image_url' }] }, { role: 'assistant', content: 'x' }] }) + '\n', /only text parts/);
  bad('system-only.jsonl', line({ messages: [{ role: 'system', content: 'rules' }] }) + '\n', /no user turn/);
  bad('empty-reply.jsonl', line({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: '' }] }) + '\n', /assistant\) is empty/);
  return cases;
}

describe('a corpus of malformed dataset files', () => {
  const dir = makeTempDir('datasets-malformed');
  const cases = malformedCorpus();

  it('has at least 50 files', () => {
    expect(cases.length).toBeGreaterThanOrEqual(50);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
  });

  it('gives each a clear error that says where, and imports none of them', async () => {
    const { ws } = tempWorkspace('malformed');
    for (const c of cases) {
      const file = writeFile(dir, c.name, c.content);
      const { report, examples } = await readDatasetFile(file, LIMITS);
      const context = `${c.name}: ${JSON.stringify(report.fatal ?? report.issues.slice(0, 2))}`;
      if (c.kind === 'fatal') {
        expect(report.fatal, context).not.toBeNull();
        expect(examples, context).toEqual([]);
        expect(formatIssue(report.fatal!), context).toMatch(c.says);
      } else {
        expect(report.fatal, context).toBeNull();
        expect(report.invalidRecords, context).toBeGreaterThan(0);
        expect(report.issues.map(formatIssue).join('\n'), context).toMatch(c.says);
        // Every record issue says where: the file, and the line or the record index.
        for (const issue of report.issues) {
          expect(issue.file, context).toBe(c.name);
          expect(issue.line !== null || issue.index !== null, context).toBe(true);
          expect(issue.message.length, context).toBeGreaterThan(5);
        }
      }

      // Reject mode (the default): nothing is written, whatever the file.
      const err = await importDataset(ws, file, LIMITS).catch((e: unknown) => e);
      expect(err, context).toBeInstanceOf(DatasetImportError);
      expect(ws.datasets.list(), context).toEqual([]);
      expect(ws.db.prepare('SELECT count(*) AS n FROM examples').get(), context).toEqual({ n: 0 });

      // Valid-only mode: exactly the valid records, or nothing at all.
      const skipped = await importDataset(ws, file, { ...LIMITS, onInvalid: 'skip', name: `skip-${c.name}` }).catch((e: unknown) => e);
      if (skipped instanceof Error) {
        expect(skipped, context).toBeInstanceOf(DatasetImportError);
        expect(c.kind === 'fatal' || examples.length === 0, context).toBe(true);
        expect(ws.datasets.list(), context).toEqual([]);
      } else {
        expect(c.kind, context).toBe('records');
        const { dataset, imported } = skipped as Awaited<ReturnType<typeof importDataset>>;
        expect(imported, context).toBe(examples.length);
        expect(ws.datasets.count(dataset.id), context).toBe(examples.length);
        ws.datasets.delete(dataset.id);
      }
    }
    expect(ws.db.pragma('integrity_check', { simple: true })).toBe('ok');
    ws.close();
  });
});
