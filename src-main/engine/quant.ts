// Block quantisation in llama.cpp's formats (ggml-quants.c), bit for bit: the storage a frozen base can take in fewer
// bytes than float32. Each block covers 32 consecutive values of a row:
//   Q8_0: a float16 scale d = max|x| / 127 and 32 int8 q = round(x / d)            (34 bytes: 8.5 bits a value)
//   Q4_0: a float16 scale d = x_m / -8 (x_m the value of largest magnitude) and 32 4-bit q = clamp(trunc(x / d + 8.5),
//         0, 15), value i in the low nibble of byte i and value 16 + i in the high one   (18 bytes: 4.5 bits a value)
// Every step rounds to float32 as the C reference does (checked against gguf-py's quants on edge cases).

import { EngineError } from './errors.js';
import { f16ToF32, f32ToF16 } from './half.js';

export const QUANT_BLOCK = 32;
export type QuantFormat = 'q8_0' | 'q4_0';
export const BLOCK_BYTES: Record<QuantFormat, number> = { q8_0: 2 + QUANT_BLOCK, q4_0: 2 + QUANT_BLOCK / 2 };

const f = Math.fround;

/** C's roundf: halves away from zero. */
function roundAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

function blocksOf(n: number, what: string): number {
  if (n % QUANT_BLOCK !== 0) throw new EngineError(`${what}: ${n} values are not whole blocks of ${QUANT_BLOCK}`);
  return n / QUANT_BLOCK;
}

/** values [n] (n a multiple of 32) -> n / 32 blocks of `format`. */
export function quantize(values: Float32Array, format: QuantFormat): Uint8Array {
  const blocks = blocksOf(values.length, `quantising to ${format}`);
  const size = BLOCK_BYTES[format];
  const out = new Uint8Array(blocks * size);
  const view = new DataView(out.buffer);
  const scale = new Float32Array(1);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * QUANT_BLOCK, (b + 1) * QUANT_BLOCK);
    const at = b * size;
    let d: number;
    if (format === 'q8_0') {
      let amax = 0;
      for (const v of x) amax = Math.max(amax, Math.abs(v));
      d = f(amax / 127);
      const id = d === 0 ? 0 : f(1 / d);
      for (let i = 0; i < QUANT_BLOCK; i++) view.setInt8(at + 2 + i, roundAway(f(x[i]! * id)));
    } else {
      let max = 0;
      for (const v of x) if (Math.abs(v) > Math.abs(max)) max = v; // the first of equal magnitudes, as argmax
      d = f(max / -8);
      const id = d === 0 ? 0 : f(1 / d);
      const q = (v: number) => Math.min(15, Math.trunc(f(f(v * id) + 8.5)));
      for (let i = 0; i < QUANT_BLOCK / 2; i++) out[at + 2 + i] = q(x[i]!) | (q(x[i + QUANT_BLOCK / 2]!) << 4);
    }
    scale[0] = d;
    view.setUint16(at, f32ToF16(scale)[0]!, true);
  }
  return out;
}

/** n / 32 blocks of `format` -> values [n] (into `out` if given). */
export function dequantize(bytes: Uint8Array, format: QuantFormat, out?: Float32Array): Float32Array {
  const size = BLOCK_BYTES[format];
  if (bytes.length % size !== 0) throw new EngineError(`${format}: ${bytes.length} bytes are not whole blocks of ${size}`);
  const blocks = bytes.length / size;
  const values = out ?? new Float32Array(blocks * QUANT_BLOCK);
  if (values.length !== blocks * QUANT_BLOCK) throw new EngineError(`${format}: ${blocks} blocks need room for ${blocks * QUANT_BLOCK} values, got ${values.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const half = new Uint16Array(1);
  for (let b = 0; b < blocks; b++) {
    const at = b * size;
    half[0] = view.getUint16(at, true);
    const d = f16ToF32(half)[0]!;
    const row = b * QUANT_BLOCK;
    if (format === 'q8_0') {
      for (let i = 0; i < QUANT_BLOCK; i++) values[row + i] = view.getInt8(at + 2 + i) * d;
    } else {
      for (let i = 0; i < QUANT_BLOCK / 2; i++) {
        const byte = bytes[at + 2 + i]!;
        values[row + i] = ((byte & 0x0f) - 8) * d;
        values[row + i + QUANT_BLOCK / 2] = ((byte >> 4) - 8) * d;
      }
    }
  }
  return values;
}
