// A small seeded random number generator whose whole state is four 32-bit words, so a
// training run can save it in a checkpoint and resume with exactly the same stream.
//
// Generator: sfc32 ("Small Fast Chaotic", Chris Doty-Humphrey, PractRand), seeded the way
// PractRand seeds it: a = 0, b = low 32 bits of the seed, c = high bits, counter = 1, then 12
// outputs discarded. It passes PractRand to terabytes, far beyond what shuffling and weight init need.

import { EngineError } from './errors.js';

const TWO_POW_32 = 4294967296;

export class Rng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0; // counter: guarantees a period of at least 2^32 from any state

  /** `seed`: a non-negative safe integer (up to 2^53 - 1). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new EngineError(`random seed must be a non-negative integer, got ${seed}`);
    }
    this.b = seed >>> 0;
    this.c = Math.floor(seed / TWO_POW_32) >>> 0;
    this.d = 1;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** The next raw output: an integer in [0, 2^32). */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) + t;
    this.c |= 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n). Bias is at most n / 2^32, negligible for dataset sizes. */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new EngineError(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /**
   * Standard normal N(0, 1) by Box-Muller. Uses two uniforms per call and keeps no spare
   * value, so the state stays four words and `state()` restores the stream exactly.
   */
  normal(): number {
    const u1 = 1 - this.next(); // (0, 1]: log stays finite
    const u2 = this.next();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** The full state as four unsigned 32-bit integers (JSON-safe). */
  state(): number[] {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  static fromState(state: unknown): Rng {
    const ok =
      Array.isArray(state) &&
      state.length === 4 &&
      state.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32);
    if (!ok) {
      throw new EngineError(`random generator state must be 4 unsigned 32-bit integers, got ${JSON.stringify(state)}`);
    }
    const rng = new Rng(0);
    [rng.a, rng.b, rng.c, rng.d] = (state as number[]).map((w) => w | 0);
    return rng;
  }
}
