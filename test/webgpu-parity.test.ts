// The parity checks of parity.test.ts (transformers + PEFT fixtures, tolerance 1e-4) on the webgpu backend.
// On CI the GPU is Mesa's lavapipe, a Vulkan implementation on the CPU (tools/setup-lavapipe.sh installs it);
// on a machine with a GPU, Dawn picks that GPU. The test fails if no WebGPU adapter at all can be opened.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import { describeWebgpuDevice, shutdownWebgpu } from '../src-main/engine/backends/webgpu.js';
import { formatCheck, parityCases, runParityCase } from '../bench/gpu-check/parity.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'parity');

beforeAll(async () => {
  const report = await initBackend('webgpu'); // throws, naming the reason, when no adapter can be opened
  expect(report.name).toBe('webgpu');
  expect(describeWebgpuDevice()).not.toBeNull();
});

afterAll(() => shutdownWebgpu());

describe.each(parityCases(FIXTURES))('webgpu parity: %s', (name) => {
  it('logits, loss, zero-gate identity and gradients match transformers + PEFT', async () => {
    const checks = await runParityCase(FIXTURES, name);
    expect(checks.length).toBeGreaterThan(10);
    const failed = checks.filter((c) => !c.pass).map(formatCheck);
    expect(failed).toEqual([]);
  });
});
