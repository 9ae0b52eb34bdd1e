import { describe, expect, it } from 'vitest';
import { tally, type Verdict } from '../src-shared/ab-stats.js';

const many = (a: number, t: number, b: number): Verdict[] => [...Array(a).fill('a'), ...Array(t).fill('tie'), ...Array(b).fill('b')];

describe('A/B tally', () => {
  it('counts and scores ties as half', () => {
    expect(tally(many(6, 2, 2))).toMatchObject({ wins: 6, ties: 2, losses: 2, n: 10, score: 0.7 });
  });
  it('without ties equals the Wilson interval', () => {
    // 8 of 10: Wilson 95% is [0.490, 0.943].
    const t = tally(many(8, 0, 2));
    expect(t.low).toBeCloseTo(0.49, 2);
    expect(t.high).toBeCloseTo(0.943, 2);
  });
  it('narrows with more ratings and contains the score', () => {
    const small = tally(many(6, 2, 2));
    const large = tally(many(60, 20, 20));
    expect(large.high - large.low).toBeLessThan(small.high - small.low);
    for (const t of [small, large]) expect(t.low <= t.score && t.score <= t.high).toBe(true);
  });
  it('an empty tally says nothing', () => {
    expect(tally([])).toMatchObject({ n: 0, low: 0, high: 1 });
  });
});
