// Text generation: a KV-cached decode loop and the sampling rules applied to each step's logits.

import * as tf from '@tensorflow/tfjs-core';
import type { Adapter } from './adapter.js';
import type { Lora } from './lora.js';
import { CancelledError, EngineError } from './errors.js';
import { batchImages, disposeBatchImages } from './image-prompt.js';
import { disposeKVCache, forward, type LlamaModel, newKVCache } from './model.js';
import type { Rng } from './rng.js';

export interface SamplingOptions {
  temperature: number; // 0 = greedy
  topK: number; // 0 = off
  topP: number; // 1 = off
  repetitionPenalty: number; // 1 = off; > 1 discourages tokens already in the sequence (CTRL / HF rule)
  maxNewTokens: number;
  stop: string[]; // generation ends before the first occurrence of any of these
}

export const DEFAULT_SAMPLING: SamplingOptions = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, maxNewTokens: 128, stop: [] };

export function validateSampling(s: SamplingOptions): SamplingOptions {
  const fail = (f: string, want: string, v: unknown) => {
    throw new EngineError(`sampling field "${f}" must be ${want}, got ${JSON.stringify(v)}`);
  };
  if (!(s.temperature >= 0)) fail('temperature', 'a number >= 0', s.temperature);
  if (!(Number.isInteger(s.topK) && s.topK >= 0)) fail('topK', 'an integer >= 0', s.topK);
  if (!(s.topP > 0 && s.topP <= 1)) fail('topP', 'in (0, 1]', s.topP);
  if (!(s.repetitionPenalty > 0)) fail('repetitionPenalty', 'a positive number', s.repetitionPenalty);
  if (!(Number.isInteger(s.maxNewTokens) && s.maxNewTokens >= 1)) fail('maxNewTokens', 'a positive integer', s.maxNewTokens);
  return s;
}

/** Choose the next token from one row of logits [vocab]. Pure: randomness comes from `rng`. */
export function sampleToken(logits: Float32Array, seen: Iterable<number>, s: SamplingOptions, rng: Rng): number {
  const x = Float32Array.from(logits);
  if (s.repetitionPenalty !== 1) {
    for (const id of new Set(seen)) x[id] = x[id] > 0 ? x[id] / s.repetitionPenalty : x[id] * s.repetitionPenalty;
  }
  if (s.temperature === 0) {
    let best = 0;
    for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
    return best;
  }
  // Candidates by descending logit; top-k then top-p (nucleus) cut the tail.
  let order = Array.from(x.keys()).sort((a, b) => x[b] - x[a]);
  if (s.topK > 0) order = order.slice(0, s.topK);
  const max = x[order[0]];
  let probs = order.map((i) => Math.exp((x[i] - max) / s.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (s.topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && cumulative < s.topP * total) cumulative += probs[keep++];
    order = order.slice(0, Math.max(keep, 1));
    probs = probs.slice(0, order.length);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * total;
  for (let i = 0; i < order.length; i++) {
    r -= probs[i];
    if (r <= 0) return order[i];
  }
  return order[order.length - 1];
}

export interface TextCodec {
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
}

export interface GenerateOptions {
  model: LlamaModel;
  adapter?: Adapter | null;
  lora?: Lora | null;
  /** The image feature of the frozen tower for a multi-modal adapter (vision-features.ts); null: text only. */
  image?: Float32Array | null;
  promptIds: number[];
  sampling: SamplingOptions;
  rng: Rng;
  eosIds: number[];
  tokenizer: TextCodec;
  onText?: (delta: string) => void; // streamed text, never cut inside a stop string or a UTF-8 character
  signal?: AbortSignal;
}

export interface GenerateResult {
  text: string;
  ids: number[]; // generated ids, without the prompt
  finishReason: 'eos' | 'stop' | 'length';
  promptTokens: number;
  /** Generated tokens over the whole call, the prompt's prefill included. */
  tokensPerSec: number;
  /** Tokens per second after the first (the KV-cached decode alone, without the prefill); null under two tokens. */
  decodeTokensPerSec: number | null;
}

export async function generate(o: GenerateOptions): Promise<GenerateResult> {
  const s = validateSampling(o.sampling);
  const c = o.model.config;
  if (o.promptIds.length === 0) throw new EngineError('the prompt is empty');
  if (o.promptIds.length + 1 > c.maxPositions) {
    throw new EngineError(`the prompt has ${o.promptIds.length} tokens; this model reads at most ${c.maxPositions}`);
  }
  const maxNew = Math.min(s.maxNewTokens, c.maxPositions - o.promptIds.length);
  const cache = newKVCache(c);
  const images = o.image ? batchImages([o.image], o.image.length) : null;
  const ids: number[] = [];
  let finishReason: GenerateResult['finishReason'] = 'length';
  let text = '';
  let emitted = 0; // characters of `text` already streamed
  const started = performance.now();
  let firstTokenAt = started;
  let decodeSteps = 0; // forward passes after the prefill
  try {
    let input = o.promptIds;
    for (let step = 0; step < maxNew; step++) {
      await new Promise((resolve) => setImmediate(resolve)); // let a cancel request arrive
      if (o.signal?.aborted) throw new CancelledError('generation');
      const inputIds = tf.tensor2d([input], [1, input.length], 'int32');
      const logits = forward(o.model, inputIds, { adapter: o.adapter, lora: o.lora, cache, images });
      const last = tf.tidy(() => tf.reshape(tf.slice(logits, [0, input.length - 1, 0], [1, 1, c.vocabSize]), [c.vocabSize]));
      const row = (await last.data()) as Float32Array;
      tf.dispose([inputIds, logits, last]);
      const next = sampleToken(row, [...o.promptIds, ...ids], s, o.rng);
      if (step === 0) firstTokenAt = performance.now();
      else decodeSteps++;
      if (o.eosIds.includes(next)) {
        finishReason = 'eos';
        break;
      }
      ids.push(next);
      input = [next];
      text = o.tokenizer.decode(ids, { skipSpecial: true });
      const stopAt = firstStop(text, s.stop);
      if (stopAt >= 0) {
        text = text.slice(0, stopAt);
        finishReason = 'stop';
        break;
      }
      // Hold back an unfinished UTF-8 character and any tail that could still become a stop string.
      const safe = Math.max(emitted, safeEnd(text, s.stop));
      if (safe > emitted) {
        o.onText?.(text.slice(emitted, safe));
        emitted = safe;
      }
    }
  } finally {
    disposeKVCache(cache);
    if (images) disposeBatchImages(images);
  }
  if (text.length > emitted) o.onText?.(text.slice(emitted));
  const ended = performance.now();
  const seconds = (ended - started) / 1000;
  const decodeSeconds = (ended - firstTokenAt) / 1000;
  return {
    text,
    ids,
    finishReason,
    promptTokens: o.promptIds.length,
    tokensPerSec: ids.length / Math.max(seconds, 1e-9),
    decodeTokensPerSec: decodeSteps > 0 ? decodeSteps / Math.max(decodeSeconds, 1e-9) : null,
  };
}

function firstStop(text: string, stops: string[]): number {
  let at = -1;
  for (const stop of stops) {
    const i = stop === '' ? -1 : text.indexOf(stop);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

/** Length of the prefix of `text` that can be shown now. */
function safeEnd(text: string, stops: string[]): number {
  let end = text.length;
  if (text.endsWith('\uFFFD')) end -= 1; // a multi-byte character still arriving
  for (const stop of stops) {
    for (let k = Math.min(stop.length - 1, end); k > 0; k--) {
      if (text.slice(0, end).endsWith(stop.slice(0, k))) {
        end -= k;
        break;
      }
    }
  }
  return Math.max(end, 0);
}
