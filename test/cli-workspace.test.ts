// `adapter-studio train --workspace`, `eval` and `compare`: the issue-7 flow from the command line, through
// the app's own service (real workspace, real engine processes from the bundle, the tiny model).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src-main/cli/main.js';
import { buildAppParts, writeColorDataset, writeTinyModel } from './helpers/app-fixture.js';
import { COLOR_DATA } from './helpers/color-task.js';
import { type JudgeServer, startJudgeServer } from './helpers/judge-server.js';
import { makeTempDir } from './helpers/tmp.js';

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

let dir: string;
let ws: string;
let judge: JudgeServer;
const FAST = ['--epochs', '120', '--warmup-epochs', '1', '--batch-size', '3', '--accum-steps', '2', '--max-seq-len', '256'];

beforeAll(async () => {
  buildAppParts('host');
  dir = makeTempDir('cli-workspace');
  ws = join(dir, 'workspace');
  judge = await startJudgeServer('none');
});
afterAll(() => judge?.close());

describe('adapter-studio train --workspace / eval / compare', () => {
  it('trains an adapter and a LoRA as queued runs of a workspace', async () => {
    expect((await cli(['dataset', 'import', writeColorDataset(dir), '--name', 'colors', '--workspace', ws])).code).toBe(0);
    const model = writeTinyModel(dir);
    const adapter = await cli(['train', '--workspace', ws, '--model', model, '--dataset', 'colors', '--name', 'adapter', '--adapter-len', '10', '--adapter-layers', '2', '--lr', '0.3', ...FAST, '--json']);
    expect(adapter.stderr).toContain('queued run "adapter"');
    expect(adapter.code).toBe(0);
    const steps = adapter.stdout.trim().split('\n').slice(0, -1).map((l) => JSON.parse(l));
    expect(steps).toHaveLength(120);
    expect(JSON.parse(adapter.stdout.trim().split('\n').at(-1)!)).toMatchObject({ name: 'adapter', method: 'adapter', status: 'completed' });
    // The model is now in the workspace: it can be named.
    const lora = await cli(['train', '--workspace', ws, '--model', 'tiny-model', '--dataset', 'colors', '--name', 'lora', '--method', 'lora', '--lr', '0.05', ...FAST.map((v) => (v === '120' ? '40' : v))]);
    expect(lora.stdout).toMatch(/run "lora" completed after/);
    expect(lora.code).toBe(0);
  });

  it('refuses a bad recipe flag before queueing anything', async () => {
    const bad = await cli(['train', '--workspace', ws, '--model', 'tiny-model', '--dataset', 'colors', '--warmup-epochs', '500', '--epochs', '2']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--warmup-epochs: .*at most epochs/);
  });

  it('evaluates the base model and every completed run by default, and prints the method table', async () => {
    const r = await cli(['eval', '--workspace', ws, '--dataset', 'colors', '--split', 'all', '--name', 'cli eval', '--max-new-tokens', '4', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.columns.map((c: { kind: string }) => c.kind)).toEqual(['base', 'adapter', 'lora']);
    expect(out.columns[1].metrics.count).toBe(6);
    expect(out.columns[1].metrics.exactMatch).toBeGreaterThan(out.columns[0].metrics.exactMatch);
    expect(out.methodTable[1].trainableParameters).toBe(2 * (10 * 32 + 4));
  });

  it('evaluates chosen columns with imported references, and names a missing reference file', async () => {
    const refs = join(dir, 'alpaca-outputs.json');
    writeFileSync(refs, JSON.stringify(COLOR_DATA));
    const missing = await cli(['eval', '--workspace', ws, '--dataset', 'colors', '--split', 'all', '--column', `refs:${join(dir, 'nope.json')}`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('nope.json');
    const r = await cli(['eval', '--workspace', ws, '--dataset', 'colors', '--split', 'all', '--name', 'with refs', '--column', 'base', '--column', 'adapter', '--column', `refs:${refs}=Alpaca`, '--max-new-tokens', '4']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\| Alpaca \| references \| — \|/);
    expect(r.stdout).toMatch(/\| tiny-model \+ adapter \| adapter \| 648 \|/);
  });

  it('compares: the table as CSV to a file, outputs side by side, and an LLM judge with an interval', async () => {
    const csv = join(dir, 'table.csv');
    const r = await cli(['compare', '--workspace', ws, '--eval', 'with refs', '--format', 'csv', '--out', csv, '--examples', '2', '--judge', '0,2', '--judge-url', judge.url, '--judge-model', 'test-judge']);
    expect(r.code).toBe(0);
    const lines = readFileSync(csv, 'utf8').trim().split('\r\n');
    expect(lines[0].split(',').slice(0, 3)).toEqual(['column', 'method', 'trainable_params']);
    expect(lines).toHaveLength(4);
    expect(r.stdout).toContain('### 1. What color is sky?');
    expect(r.stdout).toContain('    Alpaca: blue');
    expect(judge.prompts).toHaveLength(6);
    expect(r.stdout).toMatch(/LLM-as-judge \(test-judge; an opinion, not a measurement\): tiny-model vs Alpaca/);
    expect(r.stdout).toMatch(/95% interval \d+\.\d-\d+\.\d%/);
    // The judged win rate lands in the method table.
    const again = await cli(['compare', '--workspace', ws, '--eval', 'with refs', '--json']);
    const table = JSON.parse(again.stdout).methodTable;
    expect(table[2].judgeWinRate).toBeGreaterThan(0);
  });
});
