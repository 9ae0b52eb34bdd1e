// The CLIP vision transformer (Radford et al. 2021), frozen, as transformers' CLIPVisionModel computes it:
//
//   patches  = conv(pixels, patch_embedding, stride P)           [B, N, D]   N = (S / P)^2, no bias
//   x        = [class_embedding; patches] + position_embedding   [B, N + 1, D]
//   x        = pre_layrnorm(x)
//   per layer: x = x + out_proj(attention(layer_norm1(x)))        unmasked, softmax(q k^T / sqrt(hd))
//              x = x + fc2(act(fc1(layer_norm2(x))))              act: quick_gelu x * sigmoid(1.702 x) or gelu
//   pooled   = post_layernorm(x[:, 0])                            [B, D]
//   image_embeds = pooled @ visual_projection^T                   [B, proj], no bias
//
// The tower never trains: no variables, nothing kept for gradients. Linear weights are stored [in, out].

import { createHash } from 'node:crypto';
import { basename, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { EngineError } from '../errors.js';
import { gelu, type ImageFeatureChoice, type VisionTowerRecord } from '../image-prompt.js';
import { CheckpointReader } from '../safetensors.js';
import { type ClipPreprocess, type ClipVisionConfig, readClipPreprocess, readClipVisionConfig } from './clip-config.js';

interface LinearWeights {
  w: tf.Tensor2D; // [in, out]
  b: tf.Tensor1D; // [out]
}

interface NormWeights {
  weight: tf.Tensor1D;
  bias: tf.Tensor1D;
}

interface VisionLayer {
  norm1: NormWeights;
  q: LinearWeights;
  k: LinearWeights;
  v: LinearWeights;
  out: LinearWeights;
  norm2: NormWeights;
  fc1: LinearWeights;
  fc2: LinearWeights;
}

export interface ClipVisionTower {
  dir: string;
  config: ClipVisionConfig;
  preprocess: ClipPreprocess;
  record: VisionTowerRecord;
  patchEmbedding: tf.Tensor2D; // [3 * P * P, D], rows in (channel, y, x) order as the conv kernel
  classEmbedding: tf.Tensor1D; // [D]
  positionEmbedding: tf.Tensor2D; // [N + 1, D]
  preNorm: NormWeights;
  layers: VisionLayer[];
  postNorm: NormWeights;
  projection: tf.Tensor2D | null; // [D, proj]
}

/** Tensors of a CLIP checkpoint that the vision tower does not read (the text tower, CLIP's training scalars). */
function isTextSide(name: string): boolean {
  return name.startsWith('text_model.') || name === 'text_projection.weight' || name === 'logit_scale' || name.endsWith('.position_ids');
}

const FINGERPRINT_SAMPLES = 256;

/** Loads a Hugging Face CLIP folder's vision tower (CLIPModel, CLIPVisionModel or ...WithProjection). */
export function loadClipVisionTower(dirIn: string): ClipVisionTower {
  const dir = resolve(dirIn);
  const config = readClipVisionConfig(dir);
  const preprocess = readClipPreprocess(dir, config);
  const reader = CheckpointReader.open(dir);
  const hash = createHash('sha256');
  hash.update(JSON.stringify(config));
  const { hiddenSize: D, intermediateSize: I, patchSize: P, imageSize: S } = config;
  const tokens = (S / P) ** 2 + 1;
  const expected = new Map<string, number[]>();
  // CLIPModel and transformers 4's CLIPVisionModel keep the tower under "vision_model."; transformers 5's
  // CLIPVisionModel saves it at the top level.
  const prefix = reader.has('embeddings.patch_embedding.weight') && !reader.has('vision_model.embeddings.patch_embedding.weight') ? '' : 'vision_model.';
  expected.set(`${prefix}embeddings.patch_embedding.weight`, [D, 3, P, P]);
  expected.set(`${prefix}embeddings.class_embedding`, [D]);
  expected.set(`${prefix}embeddings.position_embedding.weight`, [tokens, D]);
  for (const n of ['pre_layrnorm', 'post_layernorm']) {
    expected.set(`${prefix}${n}.weight`, [D]);
    expected.set(`${prefix}${n}.bias`, [D]);
  }
  for (let i = 0; i < config.numLayers; i++) {
    const p = `${prefix}encoder.layers.${i}`;
    for (const n of ['layer_norm1', 'layer_norm2']) {
      expected.set(`${p}.${n}.weight`, [D]);
      expected.set(`${p}.${n}.bias`, [D]);
    }
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      expected.set(`${p}.self_attn.${n}.weight`, [D, D]);
      expected.set(`${p}.self_attn.${n}.bias`, [D]);
    }
    expected.set(`${p}.mlp.fc1.weight`, [I, D]);
    expected.set(`${p}.mlp.fc1.bias`, [I]);
    expected.set(`${p}.mlp.fc2.weight`, [D, I]);
    expected.set(`${p}.mlp.fc2.bias`, [D]);
  }
  const hasProjection = reader.has('visual_projection.weight');
  if (hasProjection) expected.set('visual_projection.weight', [config.projectionDim!, D]);
  try {
    const files = reader.paths().join(', ');
    for (const [name, shape] of expected) {
      if (!reader.has(name)) {
        throw new EngineError(`${files}: the vision tower's weights are missing tensor "${name}" (expected shape [${shape}])`);
      }
      const actual = reader.shape(name);
      if (actual.join() !== shape.join()) throw new EngineError(`${files}: tensor "${name}" has shape [${actual}], but config.json implies [${shape}]`);
    }
    const unknown = reader.names().filter((n) => !expected.has(n) && !isTextSide(n));
    if (unknown.length > 0) {
      throw new EngineError(`${files}: tensor "${unknown[0]}"${unknown.length > 1 ? ` (and ${unknown.length - 1} more)` : ''} is not part of a CLIP vision tower the engine implements`);
    }
    const values = (name: string): Float32Array => {
      const data = reader.readF32(name);
      hash.update(`${name}:${expected.get(name)}`);
      const step = Math.max(1, Math.floor(data.length / FINGERPRINT_SAMPLES));
      const sample = new Float32Array(Math.ceil(data.length / step));
      for (let i = 0; i < sample.length; i++) sample[i] = data[i * step];
      hash.update(new Uint8Array(sample.buffer));
      return data;
    };
    const vector = (name: string) => tf.tensor1d(values(name));
    // [out, in] on disk -> [in, out]
    const transposed = (name: string): tf.Tensor2D => {
      const [rows, cols] = expected.get(name)!;
      const data = values(name);
      const out = new Float32Array(data.length);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
      return tf.tensor2d(out, [cols, rows]);
    };
    const linear = (p: string): LinearWeights => ({ w: transposed(`${p}.weight`), b: vector(`${p}.bias`) });
    const norm = (p: string): NormWeights => ({ weight: vector(`${p}.weight`), bias: vector(`${p}.bias`) });
    const layers: VisionLayer[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      const p = `${prefix}encoder.layers.${i}`;
      layers.push({
        norm1: norm(`${p}.layer_norm1`),
        q: linear(`${p}.self_attn.q_proj`),
        k: linear(`${p}.self_attn.k_proj`),
        v: linear(`${p}.self_attn.v_proj`),
        out: linear(`${p}.self_attn.out_proj`),
        norm2: norm(`${p}.layer_norm2`),
        fc1: linear(`${p}.mlp.fc1`),
        fc2: linear(`${p}.mlp.fc2`),
      });
    }
    // The conv kernel [D, 3, P, P] as a matrix [3 * P * P, D] over flattened patches.
    const conv = values(`${prefix}embeddings.patch_embedding.weight`);
    const K = 3 * P * P;
    const patchMatrix = new Float32Array(K * D);
    for (let d = 0; d < D; d++) for (let k = 0; k < K; k++) patchMatrix[k * D + d] = conv[d * K + k];
    const finalConfig = { ...config, projectionDim: hasProjection ? config.projectionDim : null };
    const tower: ClipVisionTower = {
      dir,
      config: finalConfig,
      preprocess,
      record: {
        name: basename(dir),
        fingerprint: '',
        modelType: config.modelType,
        imageSize: S,
        patchSize: P,
        hiddenSize: D,
        layers: config.numLayers,
        projectionDim: finalConfig.projectionDim,
      },
      patchEmbedding: tf.tensor2d(patchMatrix, [K, D]),
      classEmbedding: vector(`${prefix}embeddings.class_embedding`),
      positionEmbedding: tf.tensor2d(values(`${prefix}embeddings.position_embedding.weight`), [tokens, D]),
      preNorm: norm(`${prefix}pre_layrnorm`),
      layers,
      postNorm: norm(`${prefix}post_layernorm`),
      projection: hasProjection ? transposed('visual_projection.weight') : null,
    };
    tower.record.fingerprint = hash.digest('hex').slice(0, 32);
    return tower;
  } finally {
    reader.close();
  }
}

export function disposeClipVisionTower(t: ClipVisionTower): void {
  const all: tf.Tensor[] = [t.patchEmbedding, t.classEmbedding, t.positionEmbedding, t.preNorm.weight, t.preNorm.bias, t.postNorm.weight, t.postNorm.bias];
  if (t.projection) all.push(t.projection);
  for (const l of t.layers) {
    all.push(l.norm1.weight, l.norm1.bias, l.norm2.weight, l.norm2.bias);
    for (const lin of [l.q, l.k, l.v, l.out, l.fc1, l.fc2]) all.push(lin.w, lin.b);
  }
  tf.dispose(all);
}

/** The length of one image's feature for `choice`. */
export function clipFeatureDim(t: ClipVisionTower, choice: ImageFeatureChoice): number {
  if (choice.kind === 'projected') {
    if (t.config.projectionDim === null) {
      throw new EngineError(`${t.dir}: this tower has no visual_projection (a CLIPVisionModel); use the "class-tokens:N" feature instead of "projected"`);
    }
    return t.config.projectionDim;
  }
  for (const l of choice.layers) {
    if (!Number.isInteger(l) || l < 1 || l > t.config.numLayers) throw new EngineError(`image feature "class-tokens": layer ${l} is not one of the tower's layers 1..${t.config.numLayers}`);
  }
  return t.config.hiddenSize * choice.layers.length;
}

function layerNorm(x: tf.Tensor, n: NormWeights, eps: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), n.weight), n.bias);
}

function linear(x: tf.Tensor3D, l: LinearWeights): tf.Tensor3D {
  const [B, T, inDim] = x.shape;
  const y = tf.add(tf.matMul(tf.reshape(x, [B * T, inDim]) as tf.Tensor2D, l.w), l.b);
  return tf.reshape(y, [B, T, l.w.shape[1]]);
}

function activation(x: tf.Tensor, kind: ClipVisionConfig['activation']): tf.Tensor {
  return kind === 'quick_gelu' ? tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))) : gelu(x);
}

/** Flattened patches of channels-first pixels [B][3, S, S]: [B * N, 3 * P * P], in the conv kernel's order. */
function patchify(pixels: Float32Array[], S: number, P: number): Float32Array {
  const g = S / P;
  const K = 3 * P * P;
  const out = new Float32Array(pixels.length * g * g * K);
  let o = 0;
  for (const px of pixels) {
    for (let gy = 0; gy < g; gy++) {
      for (let gx = 0; gx < g; gx++) {
        for (let c = 0; c < 3; c++) {
          for (let y = 0; y < P; y++) {
            const row = (c * S + gy * P + y) * S + gx * P;
            for (let x = 0; x < P; x++) out[o++] = px[row + x];
          }
        }
      }
    }
  }
  return out;
}

/**
 * Features of preprocessed images (each [3, S, S] from clipPixels), one row per image: `image_embeds` for
 * "projected", else the class token of each listed layer's output (transformers' hidden_states[l][:, 0]),
 * concatenated.
 */
export async function clipImageFeatures(t: ClipVisionTower, pixels: Float32Array[], choice: ImageFeatureChoice): Promise<Float32Array[]> {
  const dim = clipFeatureDim(t, choice);
  const { hiddenSize: D, numHeads: H, headDim: hd, imageSize: S, patchSize: P, layerNormEps: eps } = t.config;
  const B = pixels.length;
  if (B === 0) return [];
  for (const px of pixels) if (px.length !== 3 * S * S) throw new EngineError(`pixel tensor has ${px.length} values; the tower takes 3x${S}x${S}`);
  const N = (S / P) ** 2;
  const T = N + 1;
  const wanted = choice.kind === 'class-tokens' ? choice.layers : [];
  const result = tf.tidy(() => {
    const patches = tf.matMul(tf.tensor2d(patchify(pixels, S, P), [B * N, 3 * P * P]), t.patchEmbedding); // [B*N, D]
    const cls = tf.broadcastTo(tf.reshape(t.classEmbedding, [1, 1, D]), [B, 1, D]);
    let x = tf.concat([cls, tf.reshape(patches, [B, N, D])], 1) as tf.Tensor3D; // [B, T, D]
    x = tf.add(x, t.positionEmbedding) as tf.Tensor3D;
    x = layerNorm(x, t.preNorm, eps) as tf.Tensor3D;
    const classTokens: tf.Tensor[] = [];
    const heads = (y: tf.Tensor3D) => tf.transpose(tf.reshape(y, [B, T, H, hd]), [0, 2, 1, 3]); // [B, H, T, hd]
    t.layers.forEach((layer, i) => {
      const h = layerNorm(x, layer.norm1, eps) as tf.Tensor3D;
      const q = heads(tf.mul(linear(h, layer.q), 1 / Math.sqrt(hd)) as tf.Tensor3D);
      const k = heads(linear(h, layer.k));
      const v = heads(linear(h, layer.v));
      const probs = tf.softmax(tf.matMul(q, k, false, true), -1); // [B, H, T, T]
      const attended = tf.reshape(tf.transpose(tf.matMul(probs, v), [0, 2, 1, 3]), [B, T, D]) as tf.Tensor3D;
      x = tf.add(x, linear(attended, layer.out)) as tf.Tensor3D;
      const m = activation(linear(layerNorm(x, layer.norm2, eps) as tf.Tensor3D, layer.fc1), t.config.activation) as tf.Tensor3D;
      x = tf.add(x, linear(m, layer.fc2)) as tf.Tensor3D;
      if (wanted.includes(i + 1)) classTokens[wanted.indexOf(i + 1)] = tf.reshape(tf.slice(x, [0, 0, 0], [B, 1, D]), [B, D]);
    });
    if (choice.kind === 'class-tokens') return tf.concat(classTokens, 1); // [B, D * layers]
    const pooled = layerNorm(tf.reshape(tf.slice(x, [0, 0, 0], [B, 1, D]), [B, D]), t.postNorm, eps) as tf.Tensor2D;
    return tf.matMul(pooled, t.projection!); // [B, proj]
  });
  // data(), not dataSync(): the webgpu backend reads back asynchronously only.
  const flat = (await result.data()) as Float32Array;
  result.dispose();
  return Array.from({ length: B }, (_, b) => flat.slice(b * dim, (b + 1) * dim));
}

/** Parameters of the tower as loaded (the text tower of a CLIPModel not counted). */
export function clipVisionParameters(c: ClipVisionConfig): number {
  const D = c.hiddenSize;
  const tokens = (c.imageSize / c.patchSize) ** 2 + 1;
  const perLayer = 4 * (D * D + D) + 2 * D * c.intermediateSize + c.intermediateSize + D + 4 * D;
  return 3 * c.patchSize ** 2 * D + D + tokens * D + 4 * D + c.numLayers * perLayer + (c.projectionDim ?? 0) * D;
}

/** What the Models page shows for a tower: config, preprocessing, size, and memory for one image's forward pass. */
export function visionTowerFacts(t: ClipVisionTower): {
  fingerprint: string;
  config: Record<string, unknown>;
  preprocess: Record<string, unknown>;
  parameters: number;
  memory: { weightsBytes: number; activationBytes: number };
} {
  const c = t.config;
  const parameters = clipVisionParameters(c);
  const tokens = (c.imageSize / c.patchSize) ** 2 + 1;
  // One image: the residual stream, the MLP's hidden activations and one layer's attention probabilities.
  const activationBytes = 4 * (tokens * (4 * c.hiddenSize + c.intermediateSize) + c.numHeads * tokens * tokens);
  return { fingerprint: t.record.fingerprint, config: { ...c }, preprocess: { ...t.preprocess }, parameters, memory: { weightsBytes: parameters * 4, activationBytes } };
}
