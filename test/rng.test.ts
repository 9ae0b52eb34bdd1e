import { describe, expect, it } from 'vitest';
import { EngineError } from '../src-main/engine/errors.js';
import { Rng } from '../src-main/engine/rng.js';

describe('Rng (sfc32)', () => {
  it('matches an independent sfc32 implementation', () => {
    // Reference values from a separate Python implementation of PractRand's sfc32 with its
    // seeding (a=0, b=seed low bits, c=seed high bits, counter=1, 12 discarded outputs).
    const a = new Rng(42);
    expect([a.nextUint32(), a.nextUint32(), a.nextUint32()]).toEqual([1264412219, 1947509147, 3919439299]);
    const b = new Rng(2 ** 40 + 5); // exercises the high 32 bits of the seed
    expect([b.nextUint32(), b.nextUint32()]).toEqual([1829320450, 171792437]);
  });

  it('restores its exact stream from a saved state', () => {
    const rng = new Rng(7);
    for (let i = 0; i < 1000; i++) rng.normal();
    const saved = JSON.parse(JSON.stringify(rng.state()));
    const expected = [rng.next(), rng.normal(), rng.int(10), rng.nextUint32()];
    const restored = Rng.fromState(saved);
    expect([restored.next(), restored.normal(), restored.int(10), restored.nextUint32()]).toEqual(expected);
    expect(restored.state()).toEqual(rng.state());
  });

  it('gives different streams for different seeds', () => {
    expect(new Rng(1).next()).not.toBe(new Rng(2).next());
  });

  it('draws uniforms in [0, 1) and normals with mean 0 and std 1', () => {
    const rng = new Rng(123);
    const n = 200_000;
    let sum = 0;
    let sumSq = 0;
    let minU = 1;
    let maxU = 0;
    for (let i = 0; i < n; i++) {
      const u = rng.next();
      minU = Math.min(minU, u);
      maxU = Math.max(maxU, u);
      const z = rng.normal();
      sum += z;
      sumSq += z * z;
    }
    expect(minU).toBeGreaterThanOrEqual(0);
    expect(maxU).toBeLessThan(1);
    const mean = sum / n;
    const std = Math.sqrt(sumSq / n - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.01); // standard error 0.0022
    expect(Math.abs(std - 1)).toBeLessThan(0.01);
  });

  it('shuffles into a permutation, reproducibly', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const once = new Rng(5).shuffle([...items]);
    expect(new Rng(5).shuffle([...items])).toEqual(once);
    expect([...once].sort((x, y) => x - y)).toEqual(items);
    expect(once).not.toEqual(items);
  });

  it('refuses bad seeds and states', () => {
    expect(() => new Rng(-1)).toThrow(EngineError);
    expect(() => new Rng(1.5)).toThrow(EngineError);
    expect(() => Rng.fromState([1, 2, 3])).toThrow(/4 unsigned 32-bit integers/);
    expect(() => Rng.fromState([1, 2, 3, 2 ** 32])).toThrow(EngineError);
    expect(() => new Rng(0).int(0)).toThrow(EngineError);
  });
});
