// Shared by chat, compare and generate: which files a ModelRef means, and one streamed generation.

import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerationResult, ModelRef, Sampling } from '../../src-shared/api.js';
import type { PromptSpec, VisionInput } from '../host/protocol.js';
import { modelKind } from './model-kinds.js';
import type { ModelId, RunId } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { userError } from './errors.js';
import type { StreamHandle } from './streams.js';

export interface ResolvedModel {
  modelDir: string;
  adapterDir: string | null;
  /** A multi-modal adapter's vision tower (the one its run trained with), else null. */
  vision: VisionInput | null;
  /** "tiny-llama" or "tiny-llama + my run": a column heading. */
  label: string;
}

export function resolveModel(ctx: ServiceContext, ref: ModelRef): ResolvedModel {
  const ws = ctx.ws();
  const model = ws.models.get(ref.modelId as ModelId);
  if (modelKind(model) !== 'llama') throw userError(`"${model.name}" is a vision tower, not a language model: it reads pictures for a multi-modal adapter and answers nothing itself`);
  if (!ref.adapterRunId) return { modelDir: model.path, adapterDir: null, vision: null, label: model.name };
  const run = ws.runs.get(ref.adapterRunId as RunId);
  const dir = ws.runDir(run.id);
  if (run.modelId !== model.id) throw userError(`run "${run.name}" was trained on a different base model`);
  // A full fine-tune's output is a whole model folder; an adapter or LoRA attaches to the base model.
  const full = run.method === 'full';
  if (run.status !== 'completed' || !existsSync(join(dir, full ? 'config.json' : 'adapter_config.json'))) {
    throw userError(`run "${run.name}" has no trained ${full ? 'model' : 'adapter'} yet (it is ${run.status})`);
  }
  if (full) return { modelDir: dir, adapterDir: null, vision: null, label: run.name };
  const towerId = (run.recipe as { visionModelId?: string }).visionModelId;
  let vision: VisionInput | null = null;
  if (towerId) {
    const tower = ws.models.list().find((m) => m.id === towerId);
    if (!tower) throw userError(`run "${run.name}" reads pictures with a vision tower that was removed from this workspace; add it again on the Models page`);
    vision = { towerDir: tower.path, cacheDir: join(ws.dir, 'image-features') };
  }
  return { modelDir: model.path, adapterDir: dir, vision, label: `${model.name} + ${run.name}` };
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
  /** sha256 of a picture in the workspace's image store, for a multi-modal adapter. */
  image: string | null = null,
): Promise<{ result: GenerationResult } | { error: string }> {
  if (stream.cancelled) {
    stream.error(key, 'cancelled');
    return { error: 'cancelled' };
  }
  try {
    const { sampling: engine, seed } = engineSampling(sampling);
    let picture: { file: string; vision: VisionInput } | null = null;
    if (image) {
      if (!model.vision) throw userError(`${model.label} takes no pictures: attach one to a multi-modal adapter (trained with a vision tower)`);
      const ws = ctx.ws();
      const stored = ws.images.find(image);
      if (!stored) throw userError(`the picture ${image.slice(0, 12)}… is no longer in this workspace; attach it again`);
      picture = { file: ws.images.filePath(stored), vision: model.vision };
    }
    const { result, cancel } = await ctx.engines.generate(
      { modelDir: model.modelDir, adapterDir: model.adapterDir, prompt, sampling: engine, seed, image: picture },
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
