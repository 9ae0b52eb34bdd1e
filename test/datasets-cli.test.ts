// `adapter-studio dataset ...` through datasetCommand, on a real workspace folder.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { datasetCommand } from '../src-main/cli/dataset-command.js';
import { openWorkspace } from '../src-main/store/index.js';
import { alpacaRecords, writeFile, writeJsonFile } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await datasetCommand(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

describe('dataset CLI', () => {
  const dir = makeTempDir('dataset-cli');
  const ws = join(dir, 'workspace');
  const records = [...alpacaRecords(20), alpacaRecords(1)[0]!, { ...alpacaRecords(2)[1]!, instruction: alpacaRecords(2)[1]!.instruction.toUpperCase() }];

  it('imports, lists, splits, dedupes, undoes and exports', async () => {
    const file = writeJsonFile(dir, 'train.json', records);
    const imported = await cli(['import', file, '--name', 'demo', '--tag', 'v1', '--workspace', ws]);
    expect(imported).toMatchObject({ code: 0, stderr: '' });
    expect(imported.stdout).toMatch(/^imported 22 example\(s\) into demo \(ds_[0-9a-f]+\), version 1\n$/);

    const list = await cli(['list', '--workspace', ws, '--json']);
    expect(JSON.parse(list.stdout).datasets).toMatchObject([{ name: 'demo', examples: 22, version: 1 }]);

    const split = await cli(['split', 'demo', '--train', '0.8', '--val', '0.1', '--test', '0.1', '--seed', '42', '--workspace', ws]);
    expect(split.stdout).toBe('demo: 18 train, 2 val, 2 test; version 2\n');

    const dupes = await cli(['dedupe', 'demo', '--workspace', ws]);
    expect(dupes.stdout).toMatch(/^2 group\(s\) of exact duplicates in demo: 2 example\(s\) beyond the kept one of each\n/);
    expect(dupes.stdout).toMatch(/run again with --apply to delete these 2 example\(s\)/);
    const firstKeep = (JSON.parse((await cli(['dedupe', 'demo', '--workspace', ws, '--json'])).stdout) as { groups: { keep: number }[] }).groups[0]!.keep;
    const skipping = await cli(['dedupe', 'demo', '--skip', String(firstKeep), '--workspace', ws]);
    expect(skipping.stdout).toMatch(/^2 group\(s\) of exact duplicates in demo, 1 skipped: 1 example\(s\) beyond/);
    expect((await cli(['dedupe', 'demo', '--skip', '99999', '--workspace', ws])).stderr).toMatch(/--skip: "99999" is not the kept example of a group/);
    const applied = await cli(['dedupe', 'demo', '--apply', '--workspace', ws, '--json']);
    expect(JSON.parse(applied.stdout)).toMatchObject({ kind: 'exact', removed: 2, version: 3 });

    const near = await cli(['dedupe', 'demo', '--near', '--threshold', '0.95', '--workspace', ws, '--json']);
    expect(JSON.parse(near.stdout).groups).toEqual([]);

    const history = await cli(['list', 'demo', '--workspace', ws]);
    expect(history.stdout).toMatch(/v1 .* import +imported 22 example/);
    expect(history.stdout).toMatch(/v3 .* dedupe +removed 2 duplicate/);

    const undo = await cli(['undo', 'demo', '--workspace', ws]);
    expect(undo.stdout).toMatch(/^demo: undo v3: removed 2 duplicate\(s\) from 2 group\(s\) \(now version 4\)\n$/);

    const out = join(dir, 'train-split.jsonl');
    const exported = await cli(['export', 'demo', out, '--split', 'train', '--meta', '--workspace', ws]);
    expect(exported.stdout).toBe(`wrote 18 example(s) of demo v4 to ${out} (jsonl)\n`);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(18);
    expect(lines.every((l) => l.split === 'train' && l.tags.includes('v1'))).toBe(true);

    const v1 = join(dir, 'v1.json');
    expect((await cli(['export', 'demo', v1, '--version', '1', '--workspace', ws])).code).toBe(0);
    expect(JSON.parse(readFileSync(v1, 'utf8'))).toEqual(records);
  });

  it('refuses an import with invalid records and explains them, or imports the valid ones when asked', async () => {
    const file = writeFile(dir, 'bad.jsonl', `${JSON.stringify(records[0])}\n{"instruction":"x","output":""}\nnot json\n`);
    const refused = await cli(['import', file, '--workspace', ws]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: nothing imported .*: 2 of 3 records are invalid\n {2}bad\.jsonl:2, record 1, field "output": is empty.*\n {2}bad\.jsonl:3, record 2: not valid JSON/s);
    const json = await cli(['import', file, '--workspace', ws, '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, report: { records: 3, invalidRecords: 2 } });

    const partial = await cli(['import', file, '--valid-only', '--name', 'partial', '--workspace', ws]);
    expect(partial.code).toBe(0);
    expect(partial.stdout).toMatch(/imported 1 example\(s\) into partial .*\nskipped 2 invalid record\(s\):\n {2}bad\.jsonl:2/);
  });

  it('maps CSV columns from the command line and adds to an existing dataset', async () => {
    const file = writeFile(dir, 'extra.csv', 'q,ctx,a\nWhat is 1+1?,,2\n');
    const missing = await cli(['import', file, '--into', 'demo', '--workspace', ws]);
    expect(missing.stderr).toMatch(/no column for instruction .* Map one with instruction=COLUMN/);
    const ok = await cli(['import', file, '--into', 'demo', '--map', 'instruction=q', '--map', 'output=a', '--map', 'input=ctx', '--workspace', ws]);
    expect(ok.stdout).toMatch(/^imported 1 example\(s\) into demo .*version 5/);
  });

  it('uses $ADAPTER_STUDIO_WORKSPACE when no --workspace is given', async () => {
    const envDir = join(dir, 'from-env');
    const previous = process.env.ADAPTER_STUDIO_WORKSPACE;
    process.env.ADAPTER_STUDIO_WORKSPACE = envDir;
    try {
      expect((await cli(['list'])).stdout).toMatch(/no datasets yet/);
    } finally {
      if (previous === undefined) delete process.env.ADAPTER_STUDIO_WORKSPACE;
      else process.env.ADAPTER_STUDIO_WORKSPACE = previous;
    }
    const check = openWorkspace(envDir);
    expect(check.datasets.list()).toEqual([]);
    check.close();
  });

  it('answers usage mistakes with exit code 2 and user errors with 1', async () => {
    expect((await cli([])).code).toBe(2);
    expect((await cli(['--help'])).code).toBe(0);
    expect(await cli(['frobnicate'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/unknown dataset command "frobnicate"/) });
    expect(await cli(['export', 'demo', '--workspace', ws])).toMatchObject({ code: 2, stderr: expect.stringMatching(/takes 2 argument\(s\), got 1/) });
    expect(await cli(['list', '--bogus', '--workspace', ws])).toMatchObject({ code: 2, stderr: expect.stringMatching(/Unknown option '--bogus'/) });
    expect(await cli(['split', 'demo', '--val', '1.5', '--workspace', ws])).toMatchObject({ code: 1, stderr: 'error: --val must be a number from 0 to 1, got "1.5"\n' });
    expect(await cli(['undo', 'nope', '--workspace', ws])).toMatchObject({ code: 1, stderr: 'error: dataset "nope" not found\n' });
    expect(await cli(['import', join(dir, 'missing.json'), '--workspace', ws])).toMatchObject({ code: 1, stderr: expect.stringMatching(/missing\.json: no such file/) });
    expect(await cli(['import', join(dir, 'data.xml'), '--workspace', ws])).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot tell the format from the extension ".xml"/) });
  });
});
