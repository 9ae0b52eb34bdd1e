// Answer scoring (eval.ts): exact match and ROUGE-L on hand-computed cases, and the greedy
// evaluation loop on a tiny model (its answers must be exactly what generate() produces).

import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import { formatAlpacaPrompt } from '../src-main/engine/data.js';
import { evaluateAnswers, exactMatch, lcsLength, normalizeAnswer, rougeL, rougeTokens, summarize } from '../src-main/engine/eval.js';
import { loadModel } from '../src-main/engine/load.js';
import { disposeModel } from '../src-main/engine/model.js';
import { Rng } from '../src-main/engine/rng.js';
import { DEFAULT_SAMPLING, generate } from '../src-main/engine/sample.js';
import { loadTokenizer } from '../src-main/engine/tokenizer.js';
import { writeTinyLlama } from './helpers/tiny-model.js';
import { makeTempDir } from './helpers/tmp.js';

describe('exact match', () => {
  it('ignores case, spacing, surrounding quotes and final punctuation', () => {
    expect(normalizeAnswer('  "Canine."  ')).toBe('canine');
    expect(exactMatch('The  Dog barked!', 'the dog barked')).toBe(true);
    expect(exactMatch('maintenance man', 'maintenance  man.')).toBe(true);
  });

  it('still tells different answers apart', () => {
    expect(exactMatch('canines', 'canine')).toBe(false);
    expect(exactMatch('a canine', 'canine')).toBe(false);
    expect(exactMatch('', 'canine')).toBe(false);
  });
});

describe('ROUGE-L', () => {
  it('tokenises like rouge-score: lowercase alphanumeric runs', () => {
    expect(rougeTokens("The dog's bark, loud!")).toEqual(['the', 'dog', 's', 'bark', 'loud']);
    expect(rougeTokens(' ... ')).toEqual([]);
  });

  it('computes the longest common subsequence', () => {
    expect(lcsLength(['a', 'b', 'c', 'd'], ['a', 'c', 'd', 'b'])).toBe(3);
    expect(lcsLength([], ['a'])).toBe(0);
  });

  it('is the LCS F-measure', () => {
    expect(rougeL('the cat sat on the mat', 'the cat sat on the mat')).toBe(1);
    // LCS("the cat on the mat", "the cat sat on the mat") = 5: P = 5/5, R = 5/6, F = 10/11.
    expect(rougeL('the cat on the mat', 'the cat sat on the mat')).toBeCloseTo(10 / 11, 12);
    // LCS = 1 ("dog"): P = 1/3, R = 1/2, F = 0.4.
    expect(rougeL('a big dog', 'dog barks')).toBeCloseTo(0.4, 12);
    expect(rougeL('nothing shared', 'completely different')).toBe(0);
    expect(rougeL('', 'anything')).toBe(0);
  });

  it('averages into a summary', () => {
    const base = { index: 0, task: null, instruction: '', input: '', reference: '', prediction: '', finishReason: 'eos' as const };
    expect(summarize([{ ...base, exactMatch: true, rougeL: 1 }, { ...base, exactMatch: false, rougeL: 0.5 }])).toEqual({ count: 2, exactMatch: 0.5, rougeL: 0.75 });
    expect(summarize([])).toEqual({ count: 0, exactMatch: 0, rougeL: 0 });
  });
});

describe('evaluateAnswers', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('answers each Alpaca prompt greedily and scores the answer it generated', async () => {
    const dir = makeTempDir('eval-model');
    writeTinyLlama(dir, { seed: 4 });
    const model = loadModel(dir);
    const tok = await loadTokenizer(dir, { bosId: model.config.bosId, eosIds: model.config.eosIds });
    const examples = [
      { instruction: 'Say hi.', input: '', output: 'hi', task: 'greet' },
      { instruction: 'Repeat this.', input: 'cat', output: 'cat', task: 'copy' },
    ];
    const seen: number[] = [];
    const report = await evaluateAnswers({ model, tokenizer: tok, examples, maxNewTokens: 6, onAnswer: (a) => seen.push(a.index) });
    expect(seen).toEqual([0, 1]);
    expect(Object.keys(report.byTask).sort()).toEqual(['copy', 'greet']);
    for (const [i, ex] of examples.entries()) {
      const direct = await generate({
        model,
        promptIds: tok.encode(formatAlpacaPrompt(ex.instruction, ex.input), { bos: true }),
        sampling: { ...DEFAULT_SAMPLING, maxNewTokens: 6 },
        rng: new Rng(0),
        eosIds: tok.eosIds,
        tokenizer: tok,
      });
      const a = report.answers[i];
      expect(a.prediction).toBe(direct.text.trim());
      expect(a.exactMatch).toBe(exactMatch(a.prediction, ex.output));
      expect(a.rougeL).toBe(rougeL(a.prediction, ex.output));
    }
    expect(report.rougeL).toBeCloseTo((report.answers[0].rougeL + report.answers[1].rougeL) / 2, 12);
    disposeModel(model);
  });

  it('refuses an empty evaluation set', async () => {
    const dir = makeTempDir('eval-model');
    writeTinyLlama(dir);
    const model = loadModel(dir);
    const tok = await loadTokenizer(dir);
    await expect(evaluateAnswers({ model, tokenizer: tok, examples: [] })).rejects.toThrow(/no examples/);
    disposeModel(model);
  });
});
