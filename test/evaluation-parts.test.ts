// The pure parts of evaluation: token F1, the judge's reply parser, reference-file parsing, and the method
// table's CSV/Markdown.

import { describe, expect, it } from 'vitest';
import { tokenF1 } from '../src-main/engine/eval.js';
import { judgePrompt, leftShownFirst, parseJudgeReply } from '../src-main/evaluation/judge.js';
import { parseReferences, promptKey, ReferencesError } from '../src-main/evaluation/references.js';
import type { MethodRow } from '../src-shared/api.js';
import { methodTableCsv, methodTableMarkdown } from '../src-shared/method-table.js';

describe('token F1', () => {
  it('is the multiset overlap F-measure of the normalised tokens', () => {
    expect(tokenF1('the cat sat', 'the cat sat')).toBe(1);
    expect(tokenF1('Blue!', 'blue')).toBe(1);
    expect(tokenF1('red', 'blue')).toBe(0);
    // prediction "a a b" vs reference "a b c": overlap 2 (one "a", one "b"); P = 2/3, R = 2/3.
    expect(tokenF1('a a b', 'a b c')).toBeCloseTo(2 / 3, 12);
    // P = 1/1, R = 1/4 -> F = 0.4
    expect(tokenF1('blue', 'it is light blue')).toBeCloseTo(0.4, 12);
    expect(tokenF1('', '')).toBe(1);
    expect(tokenF1('', 'x')).toBe(0);
  });
});

describe('LLM judge', () => {
  it('puts the question and both answers in the review prompt', () => {
    const p = judgePrompt('Why?', 'Because A.', 'Because B.');
    expect(p).toContain("[The Start of Assistant 1's Answer]\nBecause A.\n[The End of Assistant 1's Answer]");
    expect(p).toContain("[The Start of Assistant 2's Answer]\nBecause B.");
    expect(p.indexOf('Why?')).toBeLessThan(p.indexOf('Because A.'));
  });

  it('reads the two scores from the first line that has them, and nothing else', () => {
    expect(parseJudgeReply('8 6\nAssistant 1 is more precise.')).toEqual({ scores: [8, 6], winner: 'first' });
    expect(parseJudgeReply('**Scores:** 7.5 9\n...')).toEqual({ scores: [7.5, 9], winner: 'second' });
    expect(parseJudgeReply('Here is my review.\n5 5\nBoth fine.')).toEqual({ scores: [5, 5], winner: 'tie' });
    expect(parseJudgeReply('Assistant 1 is better.')).toBeNull();
    expect(parseJudgeReply('12 40')).toBeNull();
  });

  it('alternates which column is shown first', () => {
    expect([0, 1, 2, 3].map(leftShownFirst)).toEqual([true, false, true, false]);
  });
});

describe('reference files', () => {
  it('reads the three accepted shapes', () => {
    const alpaca = parseReferences('a.json', JSON.stringify([{ instruction: ' Add ', input: '1 2', output: '3 ' }, { instruction: 'Hi', output: 'Hello' }]));
    expect(alpaca.get(promptKey('Add', '1 2'))).toBe('3');
    expect(alpaca.get(promptKey('Hi'))).toBe('Hello');
    expect(parseReferences('b.json', JSON.stringify([{ prompt: 'Q', response: 'A' }])).get(promptKey('Q'))).toBe('A');
    expect(parseReferences('c.json', JSON.stringify({ Q: 'A' })).get(promptKey('Q'))).toBe('A');
  });

  it('names the file, the entry and the field of bad input', () => {
    const bad = (content: string) => {
      try {
        parseReferences('refs.json', content);
      } catch (e) {
        expect(e).toBeInstanceOf(ReferencesError);
        return (e as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad('[{"instruction": "x", "output": 1}]')).toBe('refs.json: entry 0: field "output" must be a string, got number');
    expect(bad('[{"prompt": "x", "response": "y"}, {"prompt": "x", "response": "z"}]')).toBe('refs.json: entry 1: the same prompt appears twice');
    expect(bad('[1, 2')).toMatch(/^refs\.json: not valid JSON/);
    expect(bad('"text"')).toMatch(/^refs\.json: expected a list/);
    expect(bad('[]')).toBe('refs.json: holds no references');
  });
});

describe('method table', () => {
  const row = (label: string, over: Partial<MethodRow> = {}): MethodRow => ({
    label,
    kind: 'adapter',
    trainableParameters: 1_228_800,
    storageBytes: 4_915_200,
    trainingSeconds: 3600,
    peakMemoryBytes: 2 ** 34,
    tokensPerSec: 250.4,
    metrics: { count: 100, exactMatch: 0.25, rougeL: 0.5, tokenF1: 0.6, perplexity: 3.21 },
    judgeWinRate: null,
    seenItems: 0,
    ...over,
  });

  it('writes CSV with raw numbers, empty cells for n/a, and quoted labels', () => {
    const csv = methodTableCsv([row('LLaMA, adapter'), row('refs "alpaca"', { kind: 'references', trainableParameters: null, seenItems: null, metrics: { count: 100, exactMatch: 1, rougeL: 1, tokenF1: 1, perplexity: null } })]);
    const lines = csv.split('\r\n');
    expect(lines[0]).toBe('column,method,trainable_params,storage_bytes,train_seconds,peak_memory_bytes,train_tokens_per_sec,examples,exact_match,rouge_l,token_f1,ref_perplexity,judge_win_rate,trained_on_items');
    expect(lines[1]).toBe('"LLaMA, adapter",adapter,1228800,4915200,3600,17179869184,250.4,100,0.25,0.5,0.6,3.21,,0');
    expect(lines[2]).toBe('"refs ""alpaca""",references,,4915200,3600,17179869184,250.4,100,1,1,1,,,');
  });

  it('writes Markdown with readable units', () => {
    const md = methodTableMarkdown([row('adapter | K=10')]);
    expect(md).toContain('| adapter \\| K=10 | adapter | 1.23M | 4.7 MiB | 3600.0 | 16.0 GiB | 250 | 100 | 25.0% | 50.0% | 60.0% | 3.21 | — | 0 |');
    expect(methodTableMarkdown([row('all data', { seenItems: 12 })])).toContain('| 12 of 100 (seen in training) |');
  });
});
