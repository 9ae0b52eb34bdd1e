// The `adapter-studio` CLI: `forward` against the transformers + PEFT fixtures (in-process), and
// the bundled command as a real process: info, train (JSON progress), generate, and errors.

import { execFile } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { samplingFromFlags } from '../src-main/cli/engine-commands.js';
import { main } from '../src-main/cli/main.js';
import { COLOR_DATA } from './helpers/color-task.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'parity');

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

const maxAbsDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
const flat = (x: unknown) => (x as number[]).flat(Infinity as 1) as number[];

describe('adapter-studio forward (in process, cpu backend)', () => {
  it.each(['mha', 'gqa'])('%s: logits, loss and gradients of a PEFT adapter match transformers + PEFT within 1e-4', async (name) => {
    const f = JSON.parse(readFileSync(join(FIXTURES, name, 'fixture.json'), 'utf8'));
    const rows = (m: number[][]) => m.map((r) => r.join(',')).join(';');
    const { code, stdout, stderr } = await cli([
      'forward', '--backend', 'cpu', '--json',
      '--model', join(FIXTURES, name, 'model'), '--adapter', join(FIXTURES, name, 'peft_adapter'),
      `--input-ids=${rows(f.input_ids)}`, `--labels=${rows(f.labels)}`, // '=' because label rows start with -100
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(maxAbsDiff(flat(out.logits), flat(f.peft.logits))).toBeLessThan(1e-4);
    expect(Math.abs(out.loss - f.peft.loss)).toBeLessThan(1e-4);
    for (const layer of f.adapter_layers) {
      expect(maxAbsDiff(flat(out.grads[`layers.${layer}.prompt`]), flat(f.peft.grads.prompts[layer]))).toBeLessThan(1e-4);
      expect(Math.abs(flat(out.grads[`layers.${layer}.gate`])[0] - f.peft.grads.gates[layer])).toBeLessThan(1e-4);
    }
  });

  it.each(['qwen2', 'qwen2_window', 'qwen3', 'gemma', 'gemma2', 'gemma3', 'phi3', 'gpt2', 'llamabias'])('%s: base logits and loss match transformers within 1e-4', async (name) => {
    const f = JSON.parse(readFileSync(join(FIXTURES, name, 'fixture.json'), 'utf8'));
    const rows = (m: number[][]) => m.map((r) => r.join(',')).join(';');
    const { code, stdout } = await cli(['forward', '--backend', 'cpu', '--json', '--model', join(FIXTURES, name, 'model'), `--input-ids=${rows(f.input_ids)}`, `--labels=${rows(f.labels)}`]);
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(maxAbsDiff(flat(out.logits), flat(f.base.logits))).toBeLessThan(1e-4);
    expect(Math.abs(out.loss - f.base.loss)).toBeLessThan(1e-4);
  });

  it("refuses PEFT's adaption prompt on a family it does not support, saying why", async () => {
    const r = await cli(['forward', '--backend', 'cpu', '--model', join(FIXTURES, 'qwen2', 'model'), '--adapter', join(FIXTURES, 'gqa', 'peft_adapter'), '--input-ids', '1,2,3', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PEFT's adaption prompt is for LLaMA \(or Mistral\) without biases; this model is qwen2/);
  });

  it('rejects malformed ids with the flag named', async () => {
    const r = await cli(['forward', '--backend', 'cpu', '--model', join(FIXTURES, 'mha', 'model'), '--input-ids', '1,x,3', '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--input-ids: row 1, item 2 \("x"\) is not an integer/);
  });
});

describe('the bundled command, as a real process', () => {
  let dir: string;
  const bin = join(ROOT, 'bin', 'adapter-studio.mjs');
  beforeAll(async () => {
    await run(process.execPath, [join(ROOT, 'tools', 'build.mjs')], { cwd: ROOT });
    dir = makeTempDir('cli');
    writeTinyLlama(join(dir, 'model'), { seed: 3, finalNormScale: 3 });
    writeFileSync(join(dir, 'colors.json'), JSON.stringify(COLOR_DATA));
  });

  it('info --json reports the config and the backend in use', async () => {
    const { stdout } = await run(process.execPath, [bin, 'info', '--model', join(dir, 'model'), '--json']);
    const info = JSON.parse(stdout);
    expect(info.config).toMatchObject({ dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2 });
    expect(info.backend).toBe('native');
    expect(info.compositeSteps).toEqual([]); // a plain LLaMA runs wholly on fused kernels
  });

  it("info says which of a family's steps run as composite ops on a fused backend (Gemma)", async () => {
    const { stdout } = await run(process.execPath, [bin, 'info', '--model', join(FIXTURES, 'gemma', 'model')]);
    expect(stdout).toMatch(/family: gemma; on native these run as composite ops, not fused kernels: the MLP's tanh GELU \(GeGLU\), norm weights as 1 \+ w/);
  });

  it('info checks config.json against the weight files before reporting sizes from it', async () => {
    const liar = join(dir, 'liar');
    cpSync(join(dir, 'model'), liar, { recursive: true });
    const config = JSON.parse(readFileSync(join(liar, 'config.json'), 'utf8'));
    writeFileSync(join(liar, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: 1000 }));
    const err = await run(process.execPath, [bin, 'info', '--model', liar]).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(/weights are missing tensor "model\.layers\.2\.input_layernorm\.weight"/);
    expect(err.stdout).not.toMatch(/parameters/);
  });

  it('train --json streams progress events, then generate uses the adapter', async () => {
    const out = join(dir, 'adapter');
    const { stdout } = await run(process.execPath, [
      bin, 'train', '--model', join(dir, 'model'), '--data', join(dir, 'colors.json'), '--out', out,
      '--adapter-len', '10', '--adapter-layers', '2', '--epochs', '4', '--warmup-epochs', '1', '--lr', '0.3',
      '--batch-size', '3', '--accum-steps', '2', '--json',
    ]);
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ type: 'start', totalSteps: 4, examples: 6 });
    expect(events.filter((e) => e.type === 'step').map((e) => e.step)).toEqual([1, 2, 3, 4]);
    expect(events.at(-1)).toMatchObject({ type: 'done', status: 'completed', adapterDir: out });
    const gen = await run(process.execPath, [bin, 'generate', '--model', join(dir, 'model'), '--adapter', out, '--prompt', 'What color is sky?', '--max-new-tokens', '3', '--json']);
    const result = JSON.parse(gen.stdout);
    expect(result.ids.length).toBeGreaterThan(0);
    expect(result.promptTokens).toBeGreaterThan(20); // the Alpaca template was applied
    // Decode speed after the prefill: a number once a second token was decoded.
    expect(result).toHaveProperty('tokens_per_s');
    if (result.ids.length >= 2) expect(result.tokens_per_s).toBeGreaterThan(0);
  });

  it('a missing data file fails with exit code 1 and names the file', async () => {
    const missing = join(dir, 'nope.json');
    const err = await run(process.execPath, [bin, 'train', '--model', join(dir, 'model'), '--data', missing, '--out', join(dir, 'x')]).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(new RegExp(`error: .*nope\\.json.*(not found|no such file)`, 'i'));
  });

  it('a truncated data file is reported as the importer reports it: file, line and field', async () => {
    const bad = join(dir, 'truncated.jsonl');
    writeFileSync(bad, '{"instruction": "a", "output": "b"}\n{"instruction": "c", "outp');
    const err = await run(process.execPath, [bin, 'train', '--model', join(dir, 'model'), '--data', bad, '--out', join(dir, 'y')]).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain('truncated.jsonl:2, record 1: not valid JSON');
    expect(err.stderr).toMatch(/may be truncated/);
  });
});

describe('stderr stays the user\'s', () => {
  // Dawn (the webgpu package) prints driver warnings straight to fd 2 when the automatic backend choice probes for
  // a GPU; they go to a debug log unless the webgpu backend is asked for by name.
  it('info on the auto backend prints one backend line and no driver chatter', async () => {
    const bin = join(ROOT, 'bin', 'adapter-studio.mjs');
    const { stderr } = await run(process.execPath, [bin, 'info', '--model', join(ROOT, 'assets', 'starter', 'model')], { env: { ...process.env, ADAPTER_STUDIO_VERBOSE: '' } });
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^backend: /);
    expect(stderr).not.toMatch(/Warning:|artificially reduced|vkCreateInstance/);
  });
});

describe('demo --multimodal, as a real process', () => {
  // The whole comparison on the bundled starters, cut short (1 epoch, 12 test problems): the command runs end to
  // end and its --json line has ScienceQA's official keys for each model. The full run's numbers are in
  // docs/EVALUATION.md.
  it('prints the accuracy table and a last JSON line with the official keys', async () => {
    const bin = join(ROOT, 'bin', 'adapter-studio.mjs');
    const out = makeTempDir('mm-demo');
    const { stdout } = await run(process.execPath, [bin, 'demo', '--multimodal', '--epochs', '1', '--test-limit', '12', '--out', out, '--json'], { maxBuffer: 16 << 20 });
    expect(stdout).toMatch(/ScienceQA accuracy \(%\) on 12 test problems/);
    const last = JSON.parse(stdout.trim().split('\n').at(-1)!);
    for (const model of ['text_only', 'multimodal']) {
      for (const key of ['acc_average', 'acc_has_image', 'acc_natural', 'acc_no_context', 'acc_grade_1_6']) expect(last[model]).toHaveProperty(key);
      expect(last[model].questions).toBe(12);
    }
    expect(last.trainable_parameters.multimodal).toBeGreaterThan(last.trainable_parameters.text_only);
  }, 600_000);
});

describe('generate --sampling', () => {
  it('takes the app\'s named presets, single flags over them, and refuses an unknown name', () => {
    expect(samplingFromFlags({ sampling: 'paper' })).toMatchObject({ temperature: 0.1, topP: 0.75, topK: 0, repetitionPenalty: 1, maxNewTokens: 128 });
    expect(samplingFromFlags({ sampling: 'greedy', 'max-new-tokens': '7' })).toMatchObject({ temperature: 0, topK: 0, topP: 1, maxNewTokens: 7 });
    expect(samplingFromFlags({ sampling: 'paper', temperature: '0.3' })).toMatchObject({ temperature: 0.3, topP: 0.75 });
    expect(samplingFromFlags({})).toMatchObject({ temperature: 0.7, topK: 40, topP: 0.95 });
    expect(() => samplingFromFlags({ sampling: 'creative' })).toThrow('--sampling must be one of default, greedy, paper, got "creative"');
  });
});
