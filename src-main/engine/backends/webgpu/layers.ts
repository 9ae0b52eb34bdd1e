// RMSNorm, SwiGLU and RoPE as WGSL, forward and backward: the math of native/src/norm.c, swiglu.c and rope.c,
// on the webgpu backend. Each replaces a chain of 3-6 tfjs kernels (and their intermediate tensors) by one or
// two dispatches.

import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { runElementwise, runRows } from './program.js';

const size = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/**
 * RMSNorm over the last axis of x [rows, cols]:
 *   rstd[r] = 1 / sqrt(mean_c(x[r, c]^2) + eps),   y[r, c] = x[r, c] * rstd[r] * w[c]
 * Returns [y, rstd]; rstd [...x.shape without the last axis] is kept for the backward pass.
 */
export function rmsNorm(backend: WebGPUBackend, x: TensorInfo, weight: TensorInfo, eps: number): [TensorInfo, TensorInfo] {
  const cols = x.shape[x.shape.length - 1];
  const rows = size(x.shape) / cols;
  const rstd = runRows(backend, {
    key: 'rmsNormRstd',
    inputs: ['x'],
    outputShape: x.shape.slice(0, -1),
    rows,
    uniforms: [{ name: 'cols', type: 'i32', value: cols }, { name: 'eps', type: 'f32', value: eps }],
    body: `
      let base = row * uniforms.cols;
      var squares = 0.0;
      for (var c = lane; c < uniforms.cols; c = c + ROW_THREADS) {
        let v = x[base + c];
        squares = squares + v * v;
      }
      let total = workgroupSum(squares);
      if (lane == 0) { result[row] = inverseSqrt(total / f32(uniforms.cols) + uniforms.eps); }`,
  }, [x]);
  const y = runElementwise(backend, {
    key: 'rmsNormApply',
    inputs: ['x', 'weight', 'rstd'],
    outputShape: x.shape,
    uniforms: [{ name: 'cols', type: 'i32', value: cols }],
    body: `result[index] = x[index] * rstd[index / uniforms.cols] * weight[index % uniforms.cols];`,
  }, [x, weight, rstd]);
  return [y, rstd];
}

/** dx[r, c] = rstd[r] * (g[r, c] - xhat[r, c] * mean_c(g * xhat)), with xhat = x * rstd and g = dy * w. */
export function rmsNormGrad(backend: WebGPUBackend, dy: TensorInfo, x: TensorInfo, weight: TensorInfo, rstd: TensorInfo): TensorInfo {
  const cols = x.shape[x.shape.length - 1];
  return runRows(backend, {
    key: 'rmsNormGrad',
    inputs: ['dy', 'x', 'weight', 'rstd'],
    outputShape: x.shape,
    rows: size(x.shape) / cols,
    uniforms: [{ name: 'cols', type: 'i32', value: cols }],
    body: `
      let base = row * uniforms.cols;
      let s = rstd[row];
      var dot = 0.0;
      for (var c = lane; c < uniforms.cols; c = c + ROW_THREADS) {
        dot = dot + dy[base + c] * weight[c] * x[base + c] * s;
      }
      let mean = workgroupSum(dot) / f32(uniforms.cols);
      for (var c = lane; c < uniforms.cols; c = c + ROW_THREADS) {
        result[base + c] = s * (dy[base + c] * weight[c] - x[base + c] * s * mean);
      }`,
  }, [dy, x, weight, rstd]);
}

/** dw[c] = sum_r dy[r, c] * x[r, c] * rstd[r]: one invocation per column, reading rows in order. */
export function rmsNormWeightGrad(backend: WebGPUBackend, dy: TensorInfo, x: TensorInfo, rstd: TensorInfo): TensorInfo {
  const cols = x.shape[x.shape.length - 1];
  return runElementwise(backend, {
    key: 'rmsNormWeightGrad',
    inputs: ['dy', 'x', 'rstd'],
    outputShape: [cols],
    uniforms: [{ name: 'cols', type: 'i32', value: cols }, { name: 'rowCount', type: 'i32', value: size(x.shape) / cols }],
    body: `
      var sum = 0.0;
      for (var r = 0; r < uniforms.rowCount; r = r + 1) {
        let i = r * uniforms.cols + index;
        sum = sum + dy[i] * x[i] * rstd[r];
      }
      result[index] = sum;`,
  }, [dy, x, rstd]);
}

/** SwiGLU's elementwise part: silu(gate) * up, silu(g) = g * sigmoid(g). */
export function swiglu(backend: WebGPUBackend, gate: TensorInfo, up: TensorInfo): TensorInfo {
  return runElementwise(backend, {
    key: 'swiglu',
    inputs: ['gate', 'up'],
    outputShape: gate.shape,
    uniforms: [],
    body: `
      let g = gate[index];
      result[index] = g / (1.0 + exp(-g)) * up[index];`,
  }, [gate, up]);
}

/** With s = sigmoid(g): dgate = dy * up * s * (1 + g * (1 - s)),  dup = dy * g * s. */
export function swigluGrad(backend: WebGPUBackend, dy: TensorInfo, gate: TensorInfo, up: TensorInfo, which: 'gate' | 'up'): TensorInfo {
  return runElementwise(backend, {
    key: `swigluGrad_${which}`,
    inputs: ['dy', 'gate', 'up'],
    outputShape: gate.shape,
    uniforms: [],
    body: `
      let g = gate[index];
      let s = 1.0 / (1.0 + exp(-g));
      ${which === 'gate' ? 'result[index] = dy[index] * up[index] * s * (1.0 + g * (1.0 - s));' : 'result[index] = dy[index] * g * s;'}`,
  }, [dy, gate, up]);
}

/**
 * Rotate-half RoPE on x viewed as [outer, T, inner, headDim] (position on axis 1): [B, T, heads * hd] is
 * (B, T, heads), [B, H, T, hd] is (B * H, T, 1). With h = headDim / 2 and tables [T, headDim]:
 *   forward:  y[i] = x[i] cos[i] - x[i+h] sin[i],      y[i+h] = x[i+h] cos[i+h] + x[i] sin[i+h]
 *   backward: dx[i] = dy[i] cos[i] + dy[i+h] sin[i+h],  dx[i+h] = dy[i+h] cos[i+h] - dy[i] sin[i]
 */
export function rope(backend: WebGPUBackend, x: TensorInfo, cos: TensorInfo, sin: TensorInfo, T: number, inner: number, headDim: number, backward: boolean): TensorInfo {
  return runElementwise(backend, {
    key: `rope_${backward ? 'backward' : 'forward'}`,
    inputs: ['x', 'cosTable', 'sinTable'],
    outputShape: x.shape,
    uniforms: [
      { name: 'T', type: 'i32', value: T },
      { name: 'inner', type: 'i32', value: inner },
      { name: 'headDim', type: 'i32', value: headDim },
    ],
    body: `
      let hd = uniforms.headDim;
      let h = hd / 2;
      let d = index % hd;
      let t = (index / (hd * uniforms.inner)) % uniforms.T;
      let table = t * hd;
      let first = d < h;
      let partner = select(index - h, index + h, first); // the other half of this head vector
      let dp = select(d - h, d + h, first);
      ${
        backward
          ? `result[index] = x[index] * cosTable[table + d] + select(-1.0, 1.0, first) * x[partner] * sinTable[table + dp];`
          : `result[index] = x[index] * cosTable[table + d] + select(1.0, -1.0, first) * x[partner] * sinTable[table + d];`
      }`,
  }, [x, cos, sin]);
}
