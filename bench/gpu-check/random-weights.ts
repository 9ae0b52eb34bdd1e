// Random LLaMA weights made on the GPU: a 7B model's 27 GB of float32 would take minutes to generate in
// JavaScript and upload, and nothing is shipped. A hash of (seed, index) gives each value; uniform values
// scaled to the wanted standard deviation are as good as Gaussian ones for timing and memory.

import * as tf from '@tensorflow/tfjs-core';
import { webgpu_util, type WebGPUBackend, type WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import type { LlamaConfig } from '../../src-main/engine/config.js';
import type { LayerWeights, LlamaModel } from '../../src-main/engine/model.js';

/** Fills a tensor of any shape (flat indexing): uniform in [-std * sqrt(3), std * sqrt(3)), i.e. mean 0 and standard deviation std. */
class RandomFillProgram implements WebGPUProgram {
  variableNames: string[] = [];
  outputShape: number[];
  shaderKey = 'adapterStudioRandomFill';
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  uniforms = 'seed : u32, halfWidth : f32, offset : f32,';
  size = true;

  constructor(shape: number[]) {
    this.outputShape = shape;
    this.dispatchLayout = webgpu_util.flatDispatchLayout(this.outputShape);
    this.dispatch = webgpu_util.computeDispatch(this.dispatchLayout, this.outputShape, this.workgroupSize);
  }

  getUserCode(): string {
    return `
      // PCG hash (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020).
      fn pcgHash(v : u32) -> u32 {
        let state = v * 747796405u + 2891336453u;
        let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
        return (word >> 22u) ^ word;
      }
      fn main(index : i32) {
        if (index < uniforms.size) {
          let bits = pcgHash(u32(index) ^ pcgHash(uniforms.seed));
          let unit = f32(bits >> 8u) / 16777216.0; // [0, 1), 24 bits
          setOutputAtIndex(index, uniforms.offset + uniforms.halfWidth * (2.0 * unit - 1.0));
        }
      }
    `;
  }
}

/** A float32 tensor of `shape` with values offset + U(-std * sqrt(3), std * sqrt(3)), made on the GPU. */
export function randomOnGpu(shape: number[], std: number, seed: number, offset = 0): tf.Tensor {
  const backend = tf.backend() as WebGPUBackend;
  const program = new RandomFillProgram(shape);
  const info = backend.runWebGPUProgram(program, [], 'float32', [
    { type: 'uint32', data: [seed >>> 0] },
    { type: 'float32', data: [std * Math.sqrt(3)] },
    { type: 'float32', data: [offset] },
  ]);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/**
 * A LLaMA model of config `c` with random weights on the webgpu backend, in the engine's layout (linear
 * weights [in, out]). Scales keep activations near unit size: linear std 1/sqrt(fan_in), norms ~1.
 */
export function randomLlama(c: LlamaConfig, seed = 1): LlamaModel {
  let next = seed;
  const linear = (fanIn: number, fanOut: number) => randomOnGpu([fanIn, fanOut], 1 / Math.sqrt(fanIn), next++) as tf.Tensor2D;
  const norm = () => randomOnGpu([c.dim], 0.05, next++, 1) as tf.Tensor1D;
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.nLayers; i++) {
    layers.push({
      attnNorm: norm(),
      wq: linear(c.dim, qDim),
      wk: linear(c.dim, kvDim),
      wv: linear(c.dim, kvDim),
      wo: linear(qDim, c.dim),
      mlpNorm: norm(),
      wGate: linear(c.dim, c.ffnDim),
      wUp: linear(c.dim, c.ffnDim),
      wDown: linear(c.ffnDim, c.dim),
    });
  }
  return {
    config: c,
    weights: {
      embed: randomOnGpu([c.vocabSize, c.dim], 1, next++) as tf.Tensor2D,
      layers,
      norm: norm(),
      lmHead: c.tieEmbeddings ? null : linear(c.dim, c.vocabSize),
    },
  };
}
