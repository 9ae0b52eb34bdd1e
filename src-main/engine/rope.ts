// Rotary position embeddings, Hugging Face's "rotate half" convention
// (the first half of each head's rotated features pairs with the second half; all of them but in Phi-3's partial rotary).

import * as tf from '@tensorflow/tfjs-core';
import type { LlamaConfig } from './config.js';

/**
 * Inverse frequencies [headDim / 2], computed in float32 as transformers does, with Llama 3's long-context, linear
 * or Phi-3's LongRoPE rescaling when the config asks for it (LongRoPE's long factors once `seqLen`, the positions the
 * forward covers, passes the original context). `local`: Gemma 3's sliding layers, their own base and no scaling.
 */
export function inverseFrequencies(c: LlamaConfig, local = false, seqLen = 0): Float32Array {
  const d = c.rotaryDim ?? c.headDim; // the features that rotate (Phi-3's partial rotary: fewer than the head's)
  const half = d / 2;
  const inv = new Float32Array(half);
  const long = c.ropeScaling?.type === 'longrope' ? c.ropeScaling : null;
  if (long) {
    // 1 / (factor_i * theta^(2i / d)), each step in float32
    const factors = seqLen > long.originalMaxPositions ? long.longFactor : long.shortFactor;
    for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / Math.fround(Math.fround(factors[i]!) * Math.fround(Math.pow(c.ropeTheta, Math.fround((2 * i) / d)))));
    return inv;
  }
  const theta = local && c.localRopeTheta !== undefined ? c.localRopeTheta : c.ropeTheta;
  for (let i = 0; i < half; i++) {
    inv[i] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / d))));
  }
  const s = local && c.localRopeTheta !== undefined ? null : c.ropeScaling;
  if (!s || s.type === 'longrope') return inv;
  if (s.type === 'linear') return inv.map((f) => f / s.factor); // Float32Array.map rounds to float32, as torch does
  // Llama 3: long wavelengths are slowed by `factor`, short ones kept, the band between blended.
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen > lowFreqWavelen) {
      inv[i] = Math.fround(inv[i] / s.factor);
    } else if (wavelen >= highFreqWavelen) {
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = Math.fround((1 - smooth) * (inv[i] / s.factor) + smooth * inv[i]);
    }
  }
  return inv;
}

/** cos and sin tables for positions [start, start + length): each [length, rotary dim] (the head's width unless partial
 * rotary). `local`: as inverseFrequencies. */
export function ropeTables(c: LlamaConfig, start: number, length: number, local = false): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const inv = inverseFrequencies(c, local, start + length);
  const half = inv.length;
  const width = 2 * half;
  // LongRoPE scales the tables themselves (transformers' attention_scaling).
  const scale = c.ropeScaling?.type === 'longrope' && !local ? c.ropeScaling.attentionFactor : 1;
  const cos = new Float32Array(length * width);
  const sin = new Float32Array(length * width);
  for (let t = 0; t < length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround((start + t) * inv[i]);
      const row = t * width;
      cos[row + i] = cos[row + i + half] = scale === 1 ? Math.cos(angle) : Math.fround(Math.cos(angle)) * scale;
      sin[row + i] = sin[row + i + half] = scale === 1 ? Math.sin(angle) : Math.fround(Math.sin(angle)) * scale;
    }
  }
  return { cos: tf.tensor2d(cos, [length, width]), sin: tf.tensor2d(sin, [length, width]) };
}

/** x [B, H, T, headDim] rotated by position: x * cos + rotateHalf(x) * sin; with tables narrower than the head
 * (partial rotary), the first features rotate and the rest pass through. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const width = cos.shape[1];
  if (width < x.shape[3]) {
    const [rot, rest] = tf.split(x, [width, x.shape[3] - width], 3);
    return tf.concat([applyRope(rot as tf.Tensor4D, cos, sin), rest], 3) as tf.Tensor4D;
  }
  const half = x.shape[3] / 2;
  const [x1, x2] = tf.split(x, [half, half], 3); // each [B, H, T, headDim / 2]
  const rotated = tf.concat([tf.neg(x2), x1], 3); // [B, H, T, headDim]
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
}
