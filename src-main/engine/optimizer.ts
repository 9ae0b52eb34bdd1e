// AdamW with decoupled weight decay, step for step as torch.optim.AdamW, and its learning-rate
// schedule: per-iteration linear warmup, then a half-cycle cosine down to min_lr (the official
// LLaMA-Adapter / MAE `adjust_learning_rate`).

import * as tf from '@tensorflow/tfjs-core';

export interface AdamWSettings {
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export interface AdamWState {
  step: number; // optimizer steps taken
  m: Map<string, tf.Tensor>; // first moment per variable name
  v: Map<string, tf.Tensor>; // second moment per variable name
}

export function newAdamWState(vars: tf.Variable[]): AdamWState {
  const state: AdamWState = { step: 0, m: new Map(), v: new Map() };
  for (const p of vars) {
    state.m.set(p.name, tf.zerosLike(p));
    state.v.set(p.name, tf.zerosLike(p));
  }
  return state;
}

export function disposeAdamWState(state: AdamWState): void {
  tf.dispose([...state.m.values(), ...state.v.values()]);
}

/** One AdamW update of `vars` with `grads` (by variable name) at learning rate `lr`. */
export function adamWStep(
  vars: tf.Variable[],
  grads: Record<string, tf.Tensor>,
  state: AdamWState,
  lr: number,
  s: AdamWSettings,
): void {
  state.step += 1;
  const [b1, b2] = s.betas;
  const biasCorrection1 = 1 - Math.pow(b1, state.step);
  const biasCorrection2 = 1 - Math.pow(b2, state.step);
  for (const p of vars) {
    const g = grads[p.name];
    const m0 = state.m.get(p.name)!;
    const v0 = state.v.get(p.name)!;
    const [m, v, next] = tf.tidy(() => {
      const decayed = s.weightDecay > 0 ? tf.mul(p, 1 - lr * s.weightDecay) : p;
      const m = tf.add(tf.mul(m0, b1), tf.mul(g, 1 - b1));
      const v = tf.add(tf.mul(v0, b2), tf.mul(tf.square(g), 1 - b2));
      const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(biasCorrection2)), s.eps);
      const next = tf.sub(decayed, tf.mul(tf.div(m, denom), lr / biasCorrection1));
      return [m, v, next];
    });
    p.assign(next);
    tf.dispose([m0, v0, next]);
    state.m.set(p.name, m);
    state.v.set(p.name, v);
  }
}

export interface ScheduleSettings {
  lr: number; // peak learning rate
  minLr: number;
  warmupEpochs: number;
  epochs: number;
  /** After warm-up: half-cycle cosine (the official adapter, Alpaca) or linear decay (HF's get_linear_schedule_with_warmup). */
  schedule?: 'cosine' | 'linear';
}

/** Learning rate at fractional epoch `epoch` (e.g. 1.25 = a quarter into the second epoch). */
export function learningRate(epoch: number, s: ScheduleSettings): number {
  if (epoch < s.warmupEpochs) return (s.lr * epoch) / s.warmupEpochs;
  const span = Math.max(s.epochs - s.warmupEpochs, 1e-12);
  const progress = Math.min(1, (epoch - s.warmupEpochs) / span);
  if (s.schedule === 'linear') return s.minLr + (s.lr - s.minLr) * (1 - progress);
  return s.minLr + (s.lr - s.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/**
 * torch.nn.utils.clip_grad_norm_: scales every gradient by min(1, maxNorm / (total L2 norm + 1e-6)); returns the
 * new gradients (the old ones are disposed when scaled) and the norm before clipping.
 */
export function clipGradNorm(grads: Record<string, tf.Tensor>, maxNorm: number): { grads: Record<string, tf.Tensor>; norm: number } {
  const norm = Math.sqrt(tf.tidy(() => tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))).dataSync()[0]));
  const coef = maxNorm / (norm + 1e-6);
  if (coef >= 1) return { grads, norm };
  const scaled = tf.tidy(() => Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, coef)])));
  tf.dispose(Object.values(grads));
  return { grads: scaled, norm };
}
