// Sampling rules on hand-made logits: greedy, temperature, top-k, top-p, repetition penalty.

import { describe, expect, it } from 'vitest';
import { Rng } from '../src-main/engine/rng.js';
import { DEFAULT_SAMPLING, sampleToken, validateSampling } from '../src-main/engine/sample.js';

const logits = Float32Array.from([1, 3, 2, 0.5, 2.9]);
const histogram = (opts: Partial<typeof DEFAULT_SAMPLING>, seen: number[] = [], n = 4000) => {
  const rng = new Rng(1);
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(logits, seen, { ...DEFAULT_SAMPLING, ...opts }, rng)]++;
  return counts.map((c) => c / n);
};

describe('sampleToken', () => {
  it('greedy picks the largest logit', () => {
    expect(sampleToken(logits, [], DEFAULT_SAMPLING, new Rng(0))).toBe(1);
  });
  it('temperature 1 follows the softmax', () => {
    const p = histogram({ temperature: 1 });
    const z = Array.from(logits).map(Math.exp);
    const total = z.reduce((a, b) => a + b);
    z.forEach((v, i) => expect(Math.abs(p[i] - v / total)).toBeLessThan(0.03));
  });
  it('top-k keeps only the k best', () => {
    const p = histogram({ temperature: 1, topK: 2 });
    expect(p[0] + p[2] + p[3]).toBe(0);
    expect(p[1]).toBeGreaterThan(0.4);
    expect(p[4]).toBeGreaterThan(0.4);
  });
  it('top-p keeps the smallest set reaching p', () => {
    // softmax: token 1 ~ 0.41, token 4 ~ 0.37, token 2 ~ 0.15: p = 0.7 keeps tokens 1 and 4.
    const p = histogram({ temperature: 1, topP: 0.7 });
    expect(p[0] + p[2] + p[3]).toBe(0);
  });
  it('repetition penalty divides positive logits of seen tokens (greedy switches to the next best)', () => {
    expect(sampleToken(logits, [1], { ...DEFAULT_SAMPLING, repetitionPenalty: 1.2 }, new Rng(0))).toBe(4);
  });
  it('the same seed gives the same stream', () => {
    const draw = () => Array.from({ length: 20 }, ((rng) => () => sampleToken(logits, [], { ...DEFAULT_SAMPLING, temperature: 0.8 }, rng))(new Rng(9)));
    expect(draw()).toEqual(draw());
  });
  it('invalid settings name the field', () => {
    expect(() => validateSampling({ ...DEFAULT_SAMPLING, topP: 0 })).toThrow(/"topP" must be in \(0, 1\]/);
    expect(() => validateSampling({ ...DEFAULT_SAMPLING, maxNewTokens: 0 })).toThrow(/"maxNewTokens"/);
  });
});
