// LoRA (Hu et al. 2021, arXiv:2106.09685), the Alpaca-LoRA baseline: a frozen linear layer W gets
// a trainable low-rank update, y = x W + (alpha / r) * dropout(x) A B, with A [in, r] random and
// B [r, out] zero, so training starts from the base model exactly (as the adapter's zero gates do).
// Init as PEFT: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.

import * as tf from '@tensorflow/tfjs-core';
import type { LlamaConfig } from './config.js';
import { EngineError } from './errors.js';
import type { LayerWeights } from './model.js';
import type { Rng } from './rng.js';

/** Projections LoRA can target, named as HF's modules without the `_proj` suffix. */
export const LORA_TARGETS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

const WEIGHT_OF = { q: 'wq', k: 'wk', v: 'wv', o: 'wo', gate: 'wGate', up: 'wUp', down: 'wDown' } as const satisfies Record<LoraTarget, keyof LayerWeights>;
export const HF_MODULE_OF: Record<LoraTarget, string> = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
};

export interface LoraSpec {
  rank: number;
  alpha: number;
  dropout: number; // on the LoRA branch's input, training only
  targets: LoraTarget[];
}

export interface LoraPair {
  a: tf.Variable; // [in, rank]
  b: tf.Variable; // [rank, out]
}

export interface Lora {
  spec: LoraSpec;
  scale: number; // alpha / rank
  layers: Map<LoraTarget, LoraPair>[]; // one map per model layer
  /** Set by the trainer for each micro-step: a seed makes dropout reproducible (and so resume exact). */
  dropoutSeed: number | null;
}

let loraInstances = 0;

export function validateLoraSpec(s: LoraSpec): void {
  if (!Number.isInteger(s.rank) || s.rank < 1) throw new EngineError(`recipe field "loraRank" must be a positive integer, got ${s.rank}`);
  if (!(s.alpha > 0)) throw new EngineError(`recipe field "loraAlpha" must be positive, got ${s.alpha}`);
  if (!(s.dropout >= 0 && s.dropout < 1)) throw new EngineError(`recipe field "loraDropout" must be in [0, 1), got ${s.dropout}`);
  if (!Array.isArray(s.targets) || s.targets.length === 0 || s.targets.some((t) => !LORA_TARGETS.includes(t))) {
    throw new EngineError(`recipe field "loraTargets" must list some of ${LORA_TARGETS.join(', ')}, got ${JSON.stringify(s.targets)}`);
  }
}

function shapeOf(w: LayerWeights, target: LoraTarget): [number, number] {
  const weight = w[WEIGHT_OF[target]] as tf.Tensor2D | undefined;
  if (!weight) throw new EngineError(`LoRA target "${target}": this model has no such projection`);
  return weight.shape;
}

/** Build from values per (layer, target); `values` returns null to use the fresh PEFT init. */
export function makeLora(
  c: LlamaConfig,
  layerWeights: LayerWeights[],
  spec: LoraSpec,
  values: (layer: number, target: LoraTarget, inDim: number, outDim: number) => { a: tf.Tensor2D; b: tf.Tensor2D },
): Lora {
  validateLoraSpec(spec);
  const id = loraInstances++;
  const layers = layerWeights.map((w, layer) => {
    const pairs = new Map<LoraTarget, LoraPair>();
    for (const target of spec.targets) {
      const [inDim, outDim] = shapeOf(w, target);
      const v = values(layer, target, inDim, outDim);
      pairs.set(target, {
        a: tf.variable(v.a, true, `lora${id}.layers.${layer}.${target}.a`),
        b: tf.variable(v.b, true, `lora${id}.layers.${layer}.${target}.b`),
      });
      tf.dispose([v.a, v.b]);
    }
    return pairs;
  });
  if (layers.length !== c.nLayers) throw new EngineError('LoRA: layer count does not match the model');
  return { spec, scale: spec.alpha / spec.rank, layers, dropoutSeed: null };
}

export function initLora(c: LlamaConfig, layerWeights: LayerWeights[], spec: LoraSpec, rng: Rng): Lora {
  return makeLora(c, layerWeights, spec, (_layer, _target, inDim, outDim) => {
    const bound = 1 / Math.sqrt(inDim);
    const a = new Float32Array(inDim * spec.rank);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
    return { a: tf.tensor2d(a, [inDim, spec.rank]), b: tf.zeros([spec.rank, outDim]) };
  });
}

/** Stable keys for files and optimizer state: `layers.{i}.{target}.a` / `.b`. */
export function namedLoraVariables(lora: Lora): [string, tf.Variable][] {
  return lora.layers.flatMap((pairs, layer) =>
    [...pairs].flatMap(([target, p]): [string, tf.Variable][] => [
      [`layers.${layer}.${target}.a`, p.a],
      [`layers.${layer}.${target}.b`, p.b],
    ]),
  );
}

export function disposeLora(lora: Lora): void {
  for (const [, v] of namedLoraVariables(lora)) v.dispose();
}

/**
 * The low-rank update for x [N, in] through layer `layer`'s `target` projection, or null when
 * that projection is not adapted. `salt` keeps dropout masks of different projections apart.
 */
export function loraDelta(lora: Lora | null | undefined, layer: number, target: LoraTarget, x: tf.Tensor2D): tf.Tensor2D | null {
  const pair = lora?.layers[layer]?.get(target);
  if (!lora || !pair) return null;
  let input = x;
  if (lora.dropoutSeed !== null && lora.spec.dropout > 0) {
    const salt = layer * LORA_TARGETS.length + LORA_TARGETS.indexOf(target);
    input = tf.dropout(x, lora.spec.dropout, undefined, lora.dropoutSeed * 1009 + salt) as tf.Tensor2D;
  }
  return tf.mul(tf.matMul(tf.matMul(input, pair.a), pair.b), lora.scale) as tf.Tensor2D; // [N, out]
}

/** W + scale * A B for every adapted projection: the merged weights for export (new tensors). */
export function mergedLayerWeights(lora: Lora, layerWeights: LayerWeights[]): LayerWeights[] {
  return layerWeights.map((w, layer) => {
    const merged: LayerWeights = { ...w };
    for (const [target, p] of lora.layers[layer]) {
      const key = WEIGHT_OF[target];
      const base = w[key];
      if (!base) throw new EngineError(`LoRA target ${target}: this model has no such projection`);
      (merged as unknown as Record<string, tf.Tensor>)[key] = tf.tidy(() => tf.add(base, tf.mul(tf.matMul(p.a, p.b), lora.scale)));
    }
    return merged;
  });
}
