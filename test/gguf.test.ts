// GGUF export (src-main/engine/gguf.ts) checked by the program the format is for: llama.cpp, through
// node-llama-cpp's CPU build, loads the exported file and its next-token probabilities must equal our engine's
// on the same HF folder. Grouped-query heads exercise the q/k row permutation; both tokenizer layouts are covered.

import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { type ControlledEvaluateInputItem, getLlama, type Llama, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGgufCommand } from '../src-main/cli/gguf-command.js';
import { initBackend } from '../src-main/engine/backend.js';
import { exportGguf, permuteForGguf } from '../src-main/engine/gguf.js';
import { disposeModel, forward } from '../src-main/engine/model.js';
import { loadModel } from '../src-main/engine/load.js';
import { dequantize, quantize, type QuantFormat } from '../src-main/engine/quant.js';
import { CheckpointReader, writeSafetensors } from '../src-main/engine/safetensors.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

let llama: Llama;
let dir: string;

beforeAll(async () => {
  await initBackend('cpu');
  llama = await getLlama({ gpu: false, build: 'never' });
  dir = makeTempDir('gguf-test');
});

afterAll(async () => {
  await llama?.dispose();
});

/** softmax(logits) of our engine for `ids`, [T][vocab]. */
function ourProbabilities(modelDir: string, ids: number[]): number[][] {
  const model = loadModel(modelDir);
  try {
    return tf.tidy(() => (tf.softmax(forward(model, tf.tensor2d([ids], [1, ids.length], 'int32'))).arraySync() as number[][][])[0]);
  } finally {
    disposeModel(model);
  }
}

/**
 * llama.cpp's next-token probabilities after each of `ids`: plain softmax (no sampling filters), F32 KV cache and
 * no flash attention (its CPU kernel rounds queries to half precision), so nothing differs but summation order.
 */
async function llamaProbabilities(file: string, ids: number[]): Promise<Map<number, number>[]> {
  const model = await llama.loadModel({ modelPath: file });
  try {
    const context = await model.createContext({ contextSize: 64, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false });
    try {
      const input = ids.map((id) => [id as Token, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }] as const);
      const out = await context.getSequence().controlledEvaluate(input as unknown as ControlledEvaluateInputItem[]);
      return out.map((item, i) => {
        const probabilities = item?.next?.probabilities;
        if (!probabilities) throw new Error(`llama.cpp gave no probabilities after token ${i}`);
        return probabilities;
      });
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** The largest difference between llama.cpp's probabilities and ours, position by position (every token given). */
function worstDifference(theirs: Map<number, number>[], ours: number[][], vocabSize: number): number {
  let worst = 0;
  theirs.forEach((probabilities, t) => {
    expect(probabilities.size).toBe(vocabSize);
    for (const [token, p] of probabilities) worst = Math.max(worst, Math.abs(p - ours[t]![token]!));
  });
  return worst;
}

/** `from` with every matrix whose rows are whole 32-value blocks replaced by dequantize(quantize(.)) in `type`. */
function writeDequantizedCopy(from: string, to: string, type: QuantFormat): void {
  fs.mkdirSync(to, { recursive: true });
  for (const f of fs.readdirSync(from)) if (!f.endsWith('.safetensors') && !f.endsWith('.gguf')) fs.copyFileSync(path.join(from, f), path.join(to, f));
  const reader = CheckpointReader.open(from);
  try {
    const tensors = reader.names().map((name) => {
      const shape = reader.shape(name);
      const values = reader.readF32(name);
      const blocks = shape.length === 2 && shape[1]! % 32 === 0;
      return { name, shape, data: blocks ? dequantize(quantize(values, type), type) : values, dtype: 'F32' as const };
    });
    writeSafetensors(path.join(to, 'model.safetensors'), tensors, { format: 'pt' });
  } finally {
    reader.close();
  }
}

describe('GGUF export', () => {
  it.each(['byte-level', 'sentencepiece'] as const)('llama.cpp runs the exported model (%s tokenizer) with our probabilities', async (style) => {
    const modelDir = path.join(dir, style);
    const config = writeTinyLlama(modelDir, { seed: 5, tokenizer: style, config: { dim: 64, nHeads: 4, nKvHeads: 2, headDim: 16, vocabSize: 400 }, finalNormScale: 3 });
    const file = path.join(modelDir, 'model.gguf');
    const result = exportGguf(modelDir, file);
    expect(result).toMatchObject({ tensors: 1 + 2 * 9 + 2, tokenizer: style === 'byte-level' ? 'gpt2' : 'llama', vocabSize: 400 });
    expect(fs.statSync(file).size).toBe(result.bytes);

    const ids = [1, 40, 50, 60, 70, 80, 90, 100, 7, 300];
    const ours = ourProbabilities(modelDir, ids);
    const theirs = await llamaProbabilities(file, ids);
    const worst = worstDifference(theirs, ours, config.vocabSize);
    expect(worst).toBeLessThan(1e-4);
    // The model is confident enough that a wrong permutation or tensor could not pass the check above.
    expect(Math.max(...ours.map((row) => Math.max(...row)))).toBeGreaterThan(0.3);
  });

  it.each([['q8_0', 0.35, 0.05], ['q4_0', 0.2, 0.05]] as const)('llama.cpp runs a %s export: matrices in its blocks, probabilities near float32', async (type, maxRatio, tolerance) => {
    const modelDir = path.join(dir, `quant-${type}`);
    const config = writeTinyLlama(modelDir, { seed: 5, config: { dim: 64, nHeads: 4, nKvHeads: 2, headDim: 16, vocabSize: 400 }, finalNormScale: 3 });
    const f32 = exportGguf(modelDir, path.join(modelDir, 'f32.gguf'));
    const file = path.join(modelDir, `${type}.gguf`);
    const result = exportGguf(modelDir, file, { type });
    // Every matrix (embedding, 7 per layer, head) in blocks; the 2 norms per layer and the final one stay f32.
    expect(result).toMatchObject({ type, tensors: f32.tensors, quantizedTensors: 1 + 2 * 7 + 1 });
    expect(result.bytes / f32.bytes).toBeLessThan(maxRatio);
    const ids = [1, 40, 50, 60, 70, 80, 90, 100, 7, 300];
    const ours = ourProbabilities(modelDir, ids);
    const theirs = await llamaProbabilities(file, ids);
    const worst = worstDifference(theirs, ours, config.vocabSize);
    // Against the same model with each matrix replaced by its dequantised blocks, llama.cpp differs only by its own
    // arithmetic (it also rounds activations to 8 bits): the blocks it reads are the ones we wrote.
    const dq = path.join(dir, `dequantized-${type}`);
    writeDequantizedCopy(modelDir, dq, type);
    const ref = ourProbabilities(dq, ids);
    const worstDq = worstDifference(theirs, ref, config.vocabSize);
    // e.g. q4_0: 0.16 of the bytes; 0.52 from float32 on this sharp tiny model, 0.010 from its dequantised weights.
    expect(worstDq).toBeLessThan(tolerance);
    expect(worst).toBeGreaterThan(worstDq); // quantised: not the float32 file under another name
  });

  it('permutes q/k rows per head from rotate-half to interleaved pairs', () => {
    // One head of dim 4, one column: HF rows [a0, a1, b0, b1] (halves) -> GGUF [a0, b0, a1, b1].
    expect(Array.from(permuteForGguf(Float32Array.from([10, 11, 20, 21]), 4, 1, 1))).toEqual([10, 20, 11, 21]);
    // Two heads, two columns each row.
    const twoHeads = Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]);
    expect(Array.from(permuteForGguf(twoHeads, 8, 2, 2))).toEqual([0, 0, 2, 2, 1, 1, 3, 3, 4, 4, 6, 6, 5, 5, 7, 7]);
  });

  it('refuses a folder without a tokenizer and writes nothing', () => {
    const modelDir = path.join(dir, 'no-tokenizer');
    writeTinyLlama(modelDir, { seed: 1 });
    fs.rmSync(path.join(modelDir, 'tokenizer.json'));
    const file = path.join(modelDir, 'out.gguf');
    expect(() => exportGguf(modelDir, file)).toThrow(/no tokenizer\.json/);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('refuses a tokenizer that is not BPE, naming the field', () => {
    const modelDir = path.join(dir, 'unigram');
    writeTinyLlama(modelDir, { seed: 1 });
    const tokenizerFile = path.join(modelDir, 'tokenizer.json');
    const json = JSON.parse(fs.readFileSync(tokenizerFile, 'utf8'));
    json.model.type = 'Unigram';
    fs.writeFileSync(tokenizerFile, JSON.stringify(json));
    expect(() => exportGguf(modelDir, path.join(modelDir, 'out.gguf'))).toThrow(/tokenizer\.json: field "model\.type" is "Unigram"/);
  });

  it('the export-gguf command writes the file and reports it', async () => {
    const modelDir = path.join(dir, 'byte-level');
    const out: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => out.push(s) };
    const file = path.join(dir, 'cli.gguf');
    expect(await exportGgufCommand(['--model', modelDir, '--out', file, '--json'], io)).toBe(0);
    expect(JSON.parse(out.join(''))).toMatchObject({ path: file, tokenizer: 'gpt2' });
    expect(fs.readFileSync(file).subarray(0, 4).toString('latin1')).toBe('GGUF');
    await expect(exportGgufCommand(['--model', modelDir, '--out', path.join(dir, 'x.bin')], io)).rejects.toThrow(/\.gguf/);
  });
});
