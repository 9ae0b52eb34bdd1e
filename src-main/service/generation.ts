// Shared by chat, compare and generate: which files a ModelRef means, and one streamed generation.

import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerationResult, ModelRef, Sampling } from '../../src-shared/api.js';
import type { PromptSpec } from '../host/protocol.js';
import type { ModelId, RunId } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { userError } from './errors.js';
import type { StreamHandle } from './streams.js';

export interface ResolvedModel {
  modelDir: string;
  adapterDir: string | null;
  /** "tiny-llama" or "tiny-llama + my run": a column heading. */
  label: string;
}

export function resolveModel(ctx: ServiceContext, ref: ModelRef): ResolvedModel {
  const ws = ctx.ws();
  const model = ws.models.get(ref.modelId as ModelId);
  if (!ref.adapterRunId) return { modelDir: model.path, adapterDir: null, label: model.name };
  const run = ws.runs.get(ref.adapterRunId as RunId);
  const dir = ws.runDir(run.id);
  if (run.modelId !== model.id) throw userError(`run "${run.name}" was trained on a different base model`);
  // A full fine-tune's output is a whole model folder; an adapter or LoRA attaches to the base model.
  const full = run.method === 'full';
  if (run.status !== 'completed' || !existsSync(join(dir, full ? 'config.json' : 'adapter_config.json'))) {
    throw userError(`run "${run.name}" has no trained ${full ? 'model' : 'adapter'} yet (it is ${run.status})`);
  }
  return full ? { modelDir: dir, adapterDir: null, label: run.name } : { modelDir: model.path, adapterDir: dir, label: `${model.name} + ${run.name}` };
}

export function engineSampling(s: Sampling) {
  return {
    sampling: { temperature: s.temperature, topK: s.topK, topP: s.topP, repetitionPenalty: s.repetitionPenalty, maxNewTokens: s.maxNewTokens, stop: [] as string[] },
    seed: s.seed ?? randomInt(0, 2 ** 31),
  };
}

/** Runs one generation into `stream` under `key`. Errors are reported on the stream and returned, not thrown. */
export async function streamGeneration(
  ctx: ServiceContext,
  stream: StreamHandle,
  key: string,
  model: ResolvedModel,
  prompt: PromptSpec,
  sampling: Sampling,
  onText: (text: string) => void = () => undefined,
): Promise<{ result: GenerationResult } | { error: string }> {
  if (stream.cancelled) {
    stream.error(key, 'cancelled');
    return { error: 'cancelled' };
  }
  try {
    const { sampling: engine, seed } = engineSampling(sampling);
    const { result, cancel } = await ctx.engines.generate(
      { modelDir: model.modelDir, adapterDir: model.adapterDir, prompt, sampling: engine, seed },
      (text) => {
        onText(text);
        stream.delta(key, text);
      },
    );
    stream.onCancel(cancel);
    if (stream.cancelled) cancel();
    const value = await result;
    stream.end(key, value);
    return { result: value };
  } catch (e) {
    const message = (e as Error).message;
    stream.error(key, message);
    return { error: message };
  }
}
