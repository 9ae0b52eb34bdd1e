// llama.cpp's Q8_0 and Q4_0 blocks (src-main/engine/quant.ts) against gguf-py's reference quants, bit for bit:
// the bytes of every block, edge cases included (tools/make_quant_fixture.py), and what they dequantise to.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../src-main/engine/errors.js';
import { BLOCK_BYTES, dequantize, quantize, type QuantFormat } from '../src-main/engine/quant.js';

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'quant', 'blocks.json'), 'utf8')) as {
  values: number[];
} & Record<QuantFormat, { bytes: string; dequantized: number[] }>;
const values = new Float32Array(fixture.values);

describe.each(['q8_0', 'q4_0'] as const)('%s', (format) => {
  const expected = new Uint8Array(Buffer.from(fixture[format].bytes, 'base64'));

  it('quantises to the reference bytes, block by block', () => {
    const bytes = quantize(values, format);
    expect(bytes.length).toBe((values.length / 32) * BLOCK_BYTES[format]);
    for (let b = 0; b < values.length / 32; b++) {
      const at = b * BLOCK_BYTES[format];
      expect([...bytes.subarray(at, at + BLOCK_BYTES[format])], `block ${b}`).toEqual([...expected.subarray(at, at + BLOCK_BYTES[format])]);
    }
  });

  it('dequantises to the reference values, within the format\'s error of the originals', () => {
    const back = dequantize(expected, format);
    expect([...back]).toEqual(fixture[format].dequantized.map(Math.fround));
    // Each value within half a step of where it started (Q4_0's clamped top value within a step), plus what storing
    // the scale as float16 costs: up to 2^-11 of it, times the largest quantised magnitude.
    const [half, qmax] = format === 'q8_0' ? [0.5, 127] : [1, 8];
    for (let b = 0; b < values.length / 32; b++) {
      const block = values.subarray(b * 32, b * 32 + 32);
      const amax = Math.max(...block.map(Math.abs));
      const step = amax / qmax;
      for (let i = 0; i < 32; i++) expect(Math.abs(back[b * 32 + i]! - block[i]!)).toBeLessThanOrEqual(step * (half + qmax * 2 ** -11) + 1e-7);
    }
  });

  it('refuses what is not whole blocks', () => {
    expect(() => quantize(values.subarray(0, 40), format)).toThrow(EngineError);
    expect(() => dequantize(expected.subarray(0, BLOCK_BYTES[format] + 1), format)).toThrow(/not whole blocks/);
  });
});
