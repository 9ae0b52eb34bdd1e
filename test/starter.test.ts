// The committed starter workspace (assets/starter/): the model loads through the ordinary loader,
// its tokenizer gives the Python library's ids, its loss on the committed held-out text is the
// number the model card states, and the demo data is well formed with test words unseen in training.

import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import { parameterCount } from '../src-main/engine/config.js';
import { readInstructionFile } from '../src-main/engine/data.js';
import { type LoadedModel, loadModel } from '../src-main/engine/load.js';
import { disposeModel } from '../src-main/engine/model.js';
import { heldOutLoss, STARTER, starterPath } from '../src-main/engine/starter.js';
import { loadTokenizer, type TextTokenizer } from '../src-main/engine/tokenizer.js';

/** The card rounds to 4 decimals; backends differ in the last float32 bits. */
const LOSS_TOLERANCE = 2e-3;

let model: LoadedModel;
let tok: TextTokenizer;

beforeAll(async () => {
  // The build measured with the native backend; wasm (no BLAS addon) computes the same loss, slower.
  await initBackend('native').catch(() => initBackend('wasm'));
  model = loadModel(starterPath(STARTER.modelDir));
  tok = await loadTokenizer(starterPath(STARTER.modelDir), { bosId: model.config.bosId, eosIds: model.config.eosIds });
});

afterAll(() => {
  disposeModel(model);
});

function cardValue(row: RegExp): number {
  const card = fs.readFileSync(starterPath(STARTER.modelCard), 'utf8');
  const m = row.exec(card);
  if (!m) throw new Error(`${STARTER.modelCard}: no row matching ${row}`);
  return Number(m[1]);
}

describe('starter model', () => {
  it('is a LLaMA folder the ordinary loader reads, with the size the card states', () => {
    expect(model.config.vocabSize).toBe(tok.vocabSize);
    expect(model.config.bosId).toBe(tok.tokenToId('<s>'));
    expect(model.config.eosIds).toEqual([tok.tokenToId('</s>')]);
    const card = fs.readFileSync(starterPath(STARTER.modelCard), 'utf8');
    expect(card).toContain(`| parameters | ${parameterCount(model.config).toLocaleString('en')} |`);
    const bytes = fs.statSync(starterPath(`${STARTER.modelDir}/model.safetensors`)).size;
    expect(bytes).toBeLessThan(30e6);
  });

  it('tokenises exactly as the Python tokenizers library did at build time', () => {
    const check = JSON.parse(fs.readFileSync(starterPath(STARTER.tokenizerCheck), 'utf8')) as { texts: string[]; ids: number[][] };
    expect(check.texts.length).toBeGreaterThan(50);
    check.texts.forEach((text, i) => {
      expect(tok.encode(text, { bos: false }), `text ${i}`).toEqual(check.ids[i]);
      expect(tok.decode(check.ids[i])).toBe(text);
    });
  });

  it('has the held-out loss the model card states', async () => {
    const stated = cardValue(/\| Held-out loss \(heldout\.txt, nats\/token\) \| ([\d.]+) \|/);
    const before = tf.memory().numTensors;
    const { loss, tokens } = await heldOutLoss(model, tok, fs.readFileSync(starterPath(STARTER.heldOut), 'utf8'));
    expect(tf.memory().numTensors).toBe(before);
    expect(tokens).toBeGreaterThan(5000);
    expect(Math.abs(loss - stated)).toBeLessThan(LOSS_TOLERANCE);
    // Far below a uniform guess over the vocabulary: the model did learn English from WordNet.
    expect(loss).toBeLessThan(Math.log(model.config.vocabSize) / 2);
  });
});

describe('starter demo data', () => {
  it('is Alpaca data with answers, and asks the test questions about words no training example uses', () => {
    const train = readInstructionFile(starterPath(STARTER.demoTrain));
    const test = readInstructionFile(starterPath(STARTER.demoTest));
    expect(train.length).toBeGreaterThanOrEqual(2000);
    expect(test.length).toBeGreaterThanOrEqual(100);
    // The word a question is about: its input, else the quoted word (or the last words) of the instruction.
    const subject = (e: { instruction: string; input: string }) =>
      e.input || /"([^"]+)"/.exec(e.instruction)?.[1] || /(?:an?|the) ([a-z -]+)\?$/.exec(e.instruction)?.[1] || e.instruction;
    const trainWords = new Set(train.map(subject));
    for (const e of test) expect(trainWords.has(subject(e)), `test word "${subject(e)}"`).toBe(false);
  });
});
