// The baselines train as their references do (issue: faithful to the references): Alpaca-LoRA on HF Trainer
// (100 warm-up steps, linear decay, max_grad_norm 1.0, train_on_inputs=True), Stanford Alpaca on HF Trainer
// (clipping at 1.0), the official adapter (no clipping, DataLoader drop_last=True). Formulas checked against the
// references' own definitions.

import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src-main/engine/backend.js';
import type { LlamaConfig } from '../src-main/engine/config.js';
import { formatAlpacaPrompt, tokenizeExample } from '../src-main/engine/data.js';
import { renderPrompt } from '../src-main/host/prompt.js';
import { clipGradNorm, learningRate } from '../src-main/engine/optimizer.js';
import { alpacaFullRecipe, alpacaLoraRecipe, epochShape, paperRecipe, validateRecipe, withRecipeDefaults } from '../src-main/engine/recipe.js';

const config = { nLayers: 4, maxPositions: 512 } as LlamaConfig;

beforeAll(() => initBackend('cpu'));

describe('presets', () => {
  it('Alpaca-LoRA: 100 warm-up steps, linear decay, clipping at 1.0, loss on the inputs, no batch dropped', () => {
    expect(alpacaLoraRecipe(config)).toMatchObject({ schedule: 'linear', warmupSteps: 100, maxGradNorm: 1, trainOnInputs: true, dropLast: false });
  });
  it('Stanford Alpaca: cosine, clipping at 1.0', () => {
    expect(alpacaFullRecipe(config)).toMatchObject({ schedule: 'cosine', maxGradNorm: 1, trainOnInputs: false, dropLast: false });
  });
  it('the official adapter: no clipping, the last partial batch dropped', () => {
    expect(paperRecipe(config)).toMatchObject({ schedule: 'cosine', maxGradNorm: null, trainOnInputs: false, dropLast: true });
  });
  it('a recipe stored before these fields trains as it did, and bad values are refused by name', () => {
    const { schedule: _s, warmupSteps: _w, maxGradNorm: _m, trainOnInputs: _t, dropLast: _d, ...old } = paperRecipe(config);
    expect(withRecipeDefaults(old as never)).toMatchObject({ schedule: 'cosine', warmupSteps: null, maxGradNorm: null, trainOnInputs: false, dropLast: false });
    expect(() => validateRecipe({ ...paperRecipe(config), schedule: 'step' as never }, config)).toThrow(/recipe field "schedule"/);
    expect(() => validateRecipe({ ...paperRecipe(config), maxGradNorm: 0 }, config)).toThrow(/recipe field "maxGradNorm"/);
    expect(() => validateRecipe({ ...paperRecipe(config), promptTemplate: 'vicuna' as never }, config)).toThrow(/recipe field "promptTemplate"/);
  });
});

describe('prompt templates', () => {
  // tloen/alpaca-lora templates/alpaca.json, verbatim.
  const ALPACA_LORA = {
    prompt_input:
      'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n',
    prompt_no_input: 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n',
  };

  it("Alpaca-LoRA trains with its own template file: Stanford's text and a newline after the response cue", () => {
    expect(alpacaLoraRecipe(config).promptTemplate).toBe('alpaca-lora');
    expect(paperRecipe(config).promptTemplate).toBe('alpaca');
    expect(alpacaFullRecipe(config).promptTemplate).toBe('alpaca');
    expect(formatAlpacaPrompt('Name a color.', 'sky', 'alpaca-lora')).toBe(ALPACA_LORA.prompt_input.replace('{instruction}', 'Name a color.').replace('{input}', 'sky'));
    expect(formatAlpacaPrompt('Name a color.', '', 'alpaca-lora')).toBe(ALPACA_LORA.prompt_no_input.replace('{instruction}', 'Name a color.'));
    expect(formatAlpacaPrompt('Name a color.', '', 'alpaca')).toBe(ALPACA_LORA.prompt_no_input.replace('{instruction}', 'Name a color.').slice(0, -1));
  });

  it('what prompts an adapter uses the template it trained with, chat turns too', () => {
    const chat = { template: 'chat' as const, system: '', turns: [{ role: 'user' as const, content: 'hi' }] };
    expect(renderPrompt(chat, 'alpaca-lora').endsWith('### Response:\n')).toBe(true);
    expect(renderPrompt(chat).endsWith('### Response:')).toBe(true);
    expect(renderPrompt({ template: 'alpaca', instruction: 'x', input: '' }, 'alpaca-lora')).toBe(formatAlpacaPrompt('x', '', 'alpaca-lora'));
  });
});

describe('schedule', () => {
  it("linear is HF's get_linear_schedule_with_warmup", () => {
    // HF: step < W: lr * step / W; else lr * max(0, (T - step) / (T - W)). Here in epochs: W = 1, T = 5.
    const s = { lr: 3e-4, minLr: 0, warmupEpochs: 1, epochs: 5, schedule: 'linear' as const };
    for (const e of [0, 0.5, 1, 2, 3.5, 5]) {
      const hf = e < 1 ? (3e-4 * e) / 1 : 3e-4 * Math.max(0, (5 - e) / (5 - 1));
      expect(learningRate(e, s)).toBeCloseTo(hf, 12);
    }
  });
  it('cosine stays the official half-cycle', () => {
    const s = { lr: 1, minLr: 0, warmupEpochs: 0, epochs: 2 };
    expect(learningRate(1, s)).toBeCloseTo(0.5, 12);
    expect(learningRate(2, s)).toBeCloseTo(0, 12);
  });
});

describe('gradient clipping', () => {
  it('is torch.nn.utils.clip_grad_norm_ over all gradients together', () => {
    const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor2d([[0, 4]]) }; // global norm 5
    const { grads: clipped, norm } = clipGradNorm(grads, 1);
    expect(norm).toBeCloseTo(5, 6);
    const coef = 1 / (5 + 1e-6);
    expect([...clipped.a.dataSync()].map((v) => v / coef)).toEqual([expect.closeTo(3, 5), expect.closeTo(0, 5)]);
    expect(clipped.b.dataSync()[1] / coef).toBeCloseTo(4, 5);
    // Under the limit: untouched (the same tensors).
    const small = { a: tf.tensor1d([0.1]) };
    expect(clipGradNorm(small, 1).grads.a).toBe(small.a);
  });
});

describe('data', () => {
  const tok = { encode: (text: string, o: { bos?: boolean; eos?: boolean } = {}) => [...(o.bos ? [1] : []), ...Array.from(text, (ch) => ch.charCodeAt(0)), ...(o.eos ? [2] : [])] };
  it('train on inputs: every token is a target; otherwise the response only', () => {
    const ex = { instruction: 'Say hi.', input: '', output: 'hi' };
    expect(tokenizeExample(tok, ex, 512, { trainOnInputs: true }).promptLength).toBe(0);
    expect(tokenizeExample(tok, ex, 512).promptLength).toBeGreaterThan(10);
  });
  it('drop last: a partial micro-batch is dropped (the official DataLoader), or kept', () => {
    expect(epochShape(10, { batchSize: 4, accumSteps: 1, dropLast: true })).toEqual({ microPerEpoch: 2, stepsPerEpoch: 2 });
    expect(epochShape(10, { batchSize: 4, accumSteps: 1, dropLast: false })).toEqual({ microPerEpoch: 3, stepsPerEpoch: 3 });
  });
});
