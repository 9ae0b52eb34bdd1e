// Starting the webgpu backend: a missing driver is a clear error and an automatic choice falls back; a
// software adapter is used only when asked for by name; the device is described; known kernel gaps are
// routed around (cumsum along a negative axis, tfjs's split-K product with transposeB, few-row products).

import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { describeBackend, initBackend } from '../src-main/engine/backend.js';
import { describeWebgpuDevice, formatWebgpuDevice, shutdownWebgpu } from '../src-main/engine/backends/webgpu.js';
import { Rng } from '../src-main/engine/rng.js';

afterAll(() => shutdownWebgpu());

describe('webgpu backend start-up', () => {
  it('without any Vulkan driver: asked for by name it fails naming the cause; auto falls back', async () => {
    const saved = process.env.VK_ICD_FILENAMES;
    process.env.VK_ICD_FILENAMES = '/nonexistent/no_icd.json'; // the Vulkan loader finds no driver
    try {
      await expect(initBackend('webgpu')).rejects.toThrow(/the webgpu backend could not start: webgpu: no WebGPU adapter: no Vulkan, Metal or D3D12 driver/);
      const report = await initBackend('auto');
      expect(report.name).not.toBe('webgpu');
      expect(report.skipped.find((s) => s.name === 'webgpu')?.reason).toMatch(/no WebGPU adapter/);
      expect(describeWebgpuDevice()).toBeNull();
      expect('gpu' in ((globalThis as { navigator?: object }).navigator ?? {})).toBe(false); // no globals left behind
    } finally {
      if (saved === undefined) delete process.env.VK_ICD_FILENAMES;
      else process.env.VK_ICD_FILENAMES = saved;
    }
  });

  it('asked for by name it starts and describes the device', async () => {
    const report = await initBackend('webgpu');
    expect(report.name).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    const info = describeWebgpuDevice()!;
    expect(info.maxBufferBytes).toBeGreaterThanOrEqual(256 * 1024 * 1024);
    expect(info.maxStorageBindingBytes).toBeGreaterThanOrEqual(128 * 1024 * 1024);
    expect(info.vendor.length + info.device.length).toBeGreaterThan(0);
    expect(report.device).toBe(formatWebgpuDevice(info));
    expect(describeBackend(report)).toContain(`backend: webgpu on ${info.device || info.description}`);
  });

  it('a software adapter is not chosen automatically', async () => {
    if (!describeWebgpuDevice()!.software) return; // a real GPU: auto may take it
    const report = await initBackend('auto');
    expect(report.name).not.toBe('webgpu');
    expect(report.skipped.find((s) => s.name === 'webgpu')?.reason).toMatch(/only a software adapter was found/);
    await initBackend('webgpu'); // back for the tests below
  });

  it('cumsum along a negative axis (a tfjs-backend-webgpu gap) gives the CPU result', async () => {
    await initBackend('webgpu');
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const last = tf.cumsum(x, -1);
    const first = tf.cumsum(x, -2, true, true); // exclusive, reversed
    expect(Array.from(await last.data())).toEqual([1, 3, 6, 4, 9, 15]);
    expect(Array.from(await first.data())).toEqual([4, 5, 6, 0, 0, 0]);
    tf.dispose([x, last, first]);
  });

  it('a product with transposeB over a long inner dimension (tfjs split-K bug) gives the CPU result', async () => {
    const rng = new Rng(5);
    const values = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
    const [a, b] = [values(80 * 5000), values(24 * 5000)];
    const product = async (backend: 'cpu' | 'webgpu') => {
      await initBackend(backend);
      const y = tf.matMul(tf.tensor2d(a, [80, 5000]), tf.tensor2d(b, [24, 5000]), false, true); // [80, 24]
      const out = await y.data();
      tf.dispose(y);
      return out;
    };
    const want = await product('cpu');
    const got = await product('webgpu');
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    expect(worst).toBeLessThan(1e-3); // sums of 5000 products of unit normals
  });

  it.each([
    [1, 512, 3000],
    [3, 300, 700],
    [4, 1000, 257],
  ])('a product of %i rows (the few-row kernel) x [%i, %i] gives the CPU result', async (M, K, N) => {
    const rng = new Rng(M * 7 + K);
    const [a, b] = [Float32Array.from({ length: M * K }, () => rng.normal()), Float32Array.from({ length: K * N }, () => rng.normal())];
    const product = async (backend: 'cpu' | 'webgpu') => {
      await initBackend(backend);
      const y = tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N]));
      expect(y.shape).toEqual([M, N]);
      const out = await y.data();
      tf.dispose(y);
      return out;
    };
    const want = await product('cpu');
    const got = await product('webgpu');
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
    expect(worst).toBeLessThan(1e-3);
  });

  it('shutdown releases the device and removes the globals', async () => {
    await initBackend('webgpu');
    shutdownWebgpu();
    expect(describeWebgpuDevice()).toBeNull();
    expect('gpu' in ((globalThis as { navigator?: object }).navigator ?? {})).toBe(false);
    expect(tf.findBackendFactory('webgpu')).toBeFalsy();
    const again = await initBackend('webgpu'); // and it can start again
    expect(again.name).toBe('webgpu');
  });
});
