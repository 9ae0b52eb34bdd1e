// RMSNorm, on the fused kernel when the backend registered one; the per-head form Qwen3 applies to queries and
// keys (q_norm / k_norm), which is the same norm over each head's hd values; and GPT-2's LayerNorm (composite ops).

import * as tf from '@tensorflow/tfjs-core';
import { fusedKernels } from './kernels.js';

/** x [..., n] normalised by its root mean square over the last axis, times weight [n]. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor1D, eps: number): tf.Tensor {
  const fused = fusedKernels();
  if (fused) return fused.rmsNorm(x, weight, eps);
  const variance = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight);
}

/** x [..., n] minus its mean, over the root of its (biased) variance plus eps, times weight [n], plus bias [n]: GPT-2's
 * LayerNorm as torch computes it. Composite ops on every backend (they differentiate everywhere). */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor1D, bias: tf.Tensor1D, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const centred = tf.sub(x, tf.mean(x, -1, true));
    const variance = tf.mean(tf.square(centred), -1, true);
    return tf.add(tf.mul(tf.mul(centred, tf.rsqrt(tf.add(variance, eps))), weight), bias);
  });
}

/**
 * x [..., heads * hd] with each head's hd values RMS-normed by weight [hd] (Qwen3's q_norm / k_norm, before RoPE);
 * x itself when the family has no such norm (weight undefined).
 */
export function headNorm(x: tf.Tensor, weight: tf.Tensor1D | undefined, eps: number): tf.Tensor {
  if (!weight) return x;
  const shape = x.shape;
  const hd = weight.shape[0];
  const perHead = tf.reshape(x, [...shape.slice(0, -1), shape[shape.length - 1]! / hd, hd]); // [..., heads, hd]
  const normed = rmsNorm(perHead, weight, eps);
  const out = tf.reshape(normed, shape);
  tf.dispose([perHead, normed]);
  return out;
}
