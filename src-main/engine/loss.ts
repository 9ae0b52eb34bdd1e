// Next-token cross-entropy, averaged over the positions that carry a label.

import * as tf from '@tensorflow/tfjs-core';
import { fusedKernels } from './kernels.js';
import { type ForwardOptions, forward, forwardHidden, type LlamaModel } from './model.js';

/** Label value for positions that do not count in the loss (prompt tokens, padding), as PyTorch's ignore_index. */
export const IGNORE = -100;

export interface LossTargets {
  labels: tf.Tensor1D; // [N] int32 target ids; IGNORE positions may hold any valid id (they are masked)
  mask: tf.Tensor1D; // [N] float32, 1 where the label counts
  count: number; // sum of mask
}

/**
 * Build targets from next-token labels [B, T]: position t predicts labels[t + 1] (the shift is done
 * here, as transformers and the official LLaMA-Adapter code do). Built outside any differentiated
 * function, since comparisons have no gradient in tfjs.
 */
export function shiftedTargets(labels: Int32Array, B: number, T: number): LossTargets {
  const n = B * (T - 1);
  const ids = new Int32Array(n);
  const mask = new Float32Array(n);
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T - 1; t++) {
      const label = labels[b * T + t + 1];
      if (label !== IGNORE) {
        ids[b * (T - 1) + t] = label;
        mask[b * (T - 1) + t] = 1;
        count++;
      }
    }
  }
  return { labels: tf.tensor1d(ids, 'int32'), mask: tf.tensor1d(mask), count };
}

/**
 * Per-position -log p(label) for logits [N, V], with a hand-written gradient (softmax - onehot)
 * so that no gather backward is needed (it is missing on the wasm backend).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const negLogLikelihood = tf.customGrad(((logits: tf.Tensor, labels: tf.Tensor, save: tf.GradSaveFunc) => {
  const logProbs = tf.logSoftmax(logits as tf.Tensor2D); // [N, V]
  const oneHot = tf.oneHot(labels as tf.Tensor1D, logits.shape[1]!); // [N, V]
  const nll = tf.neg(tf.sum(tf.mul(logProbs, oneHot), 1)); // [N]
  save([logProbs, oneHot]);
  return {
    value: nll,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [lp, oh] = saved;
      // d nll / d logits = softmax - onehot, scaled by the upstream gradient per row.
      return [tf.mul(tf.sub(tf.exp(lp), oh), tf.expandDims(dy, 1)), tf.zerosLike(labels)];
    },
  };
}) as any); // tfjs types the variadic (...inputs, save) signature loosely

/** Mean cross-entropy over the masked positions. logits [B, T, V] -> scalar. */
export function crossEntropy(logits: tf.Tensor3D, targets: LossTargets): tf.Scalar {
  const [B, T, V] = logits.shape;
  const fused = fusedKernels();
  if (fused) {
    // Reads target row b * (T - 1) + t from logits row b * T + t: the last position is skipped, not sliced off.
    const nll = fused.crossEntropy(logits, targets.labels, targets.mask, { rowsPerSeq: Math.max(T - 1, 1), seqStride: T });
    return tf.div(tf.sum(nll), Math.max(targets.count, 1)) as tf.Scalar;
  }
  const predicting = tf.reshape(tf.slice(logits, [0, 0, 0], [B, T - 1, V]), [B * (T - 1), V]); // drop the last position
  const nll = negLogLikelihood(predicting, targets.labels) as tf.Tensor1D; // [B * (T - 1)]
  return tf.div(tf.sum(tf.mul(nll, targets.mask)), Math.max(targets.count, 1)) as tf.Scalar;
}

/**
 * The training loss for token ids [B, T]: crossEntropy(forward(model, ids, opts), targets). On the native
 * backend the vocabulary projection and the softmax run as one kernel that never holds the batch's logits
 * ([B, T, vocab] floats, the largest tensor of a step) and skips positions that carry no label. A trainable
 * head weight (full fine-tuning) needs the logits path, which gives it a gradient.
 */
export function nextTokenLoss(model: LlamaModel, ids: tf.Tensor2D, targets: LossTargets, opts: ForwardOptions = {}): tf.Scalar {
  const fused = fusedKernels();
  const head = model.weights.lmHead ?? model.weights.embed;
  // The fused head + loss knows no final soft cap (Gemma 2): then the logits are made, capped, and scored.
  if (!fused || (head instanceof tf.Variable && head.trainable) || model.config.finalSoftcap !== undefined) return crossEntropy(forward(model, ids, opts), targets);
  return tf.tidy(() => {
    const T = ids.shape[1];
    const hidden = forwardHidden(model, ids, opts); // [B, T, dim]
    const layout = { rowsPerSeq: Math.max(T - 1, 1), seqStride: T };
    const nll = fused.lmHeadCrossEntropy(hidden, head, model.weights.lmHead === null, targets.labels, targets.mask, layout);
    return tf.div(tf.sum(nll), Math.max(targets.count, 1)) as tf.Scalar;
  });
}
