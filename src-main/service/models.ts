// models.*: add a Hugging Face LLaMA folder (checked by reading it the way training will), list, inspect.

import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { AdapterSummary, ApiHandlers, ModelConfigSummary, ModelInfo, ModelSummary, VisionConfigSummary } from '../../src-shared/api.js';
import type { LlamaConfig } from '../engine/config.js';
import { readModelConfig } from '../engine/load.js';
import type { VisionFacts } from '../host/protocol.js';
import { type ClipPreprocess, type ClipVisionConfig, readClipVisionConfig } from '../engine/vision/clip-config.js';
import type { Model, ModelId } from '../store/index.js';
import type { Recipe } from '../engine/recipe.js';
import type { ServiceContext } from './context.js';
import { trainableParameterCount } from './runs.js';
import { languageConfig, modelKind, type StoredModelFacts, storedFacts } from './model-kinds.js';
import { userError } from './errors.js';

function visionSummary(v: NonNullable<StoredModelFacts['vision']>): VisionConfigSummary {
  const c = v.config;
  return {
    modelType: c.modelType, hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, numLayers: c.numLayers, numHeads: c.numHeads,
    imageSize: c.imageSize, patchSize: c.patchSize, activation: c.activation, projectionDim: c.projectionDim,
    shortestEdge: v.preprocess.shortestEdge, crop: [v.preprocess.cropHeight, v.preprocess.cropWidth],
  };
}

/** A folder's config.json model_type, to tell vision towers from language models before reading more. */
function folderModelType(dir: string): unknown {
  try {
    return (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { model_type?: unknown }).model_type;
  } catch {
    return undefined; // readModelConfig reports the problem
  }
}

export function configSummary(c: LlamaConfig): ModelConfigSummary {
  return {
    vocabSize: c.vocabSize,
    dim: c.dim,
    ffnDim: c.ffnDim,
    nLayers: c.nLayers,
    nHeads: c.nHeads,
    nKvHeads: c.nKvHeads,
    headDim: c.headDim,
    maxPositions: c.maxPositions,
    ropeTheta: c.ropeTheta,
    tieEmbeddings: c.tieEmbeddings,
  };
}


function modelProblem(m: Model): string | null {
  if (!existsSync(m.path)) return `the folder ${m.path} no longer exists`;
  if (!existsSync(join(m.path, 'config.json'))) return `${m.path} has no config.json any more`;
  return null;
}

export function toModelSummary(m: Model): ModelSummary {
  const problem = modelProblem(m);
  return {
    id: m.id,
    kind: modelKind(m),
    name: m.name,
    path: m.path,
    fingerprint: m.fingerprint,
    parameters: storedFacts(m).parameters ?? 0,
    addedAt: m.addedAt,
    available: problem === null,
    problem,
  };
}

function adaptersOf(ctx: ServiceContext, modelId: string): AdapterSummary[] {
  const ws = ctx.ws();
  return ws.runs
    .list('completed')
    .filter((r) => r.modelId === modelId)
    .map((r) => {
      let trainable: number | null = null;
      try {
        trainable = trainableParameterCount(languageConfig(ws.models.get(r.modelId as ModelId)), r.recipe as unknown as Recipe);
      } catch {
        // a recipe from another version: the count is only informative
      }
      return { runId: r.id, runName: r.name, path: ws.runDir(r.id), method: r.method, trainableParameters: trainable, finishedAt: r.finishedAt };
    });
}

export function modelInfo(ctx: ServiceContext, m: Model): ModelInfo {
  const facts = storedFacts(m);
  return {
    ...toModelSummary(m),
    config: facts.llama ? configSummary(facts.llama) : null,
    vision: facts.vision ? visionSummary(facts.vision) : null,
    memory: facts.memory,
    backend: ctx.engines.backendInfo(),
    adapters: adaptersOf(ctx, m.id),
  };
}

export function modelHandlers(ctx: ServiceContext): Pick<ApiHandlers, 'models.add' | 'models.list' | 'models.info' | 'models.remove'> {
  return {
    'models.add': async ({ path, name }) => {
      const dir = resolve(path);
      if (!existsSync(dir)) throw userError(`${dir}: no such folder`);
      const modelType = folderModelType(dir);
      if (modelType === 'clip' || modelType === 'clip_vision_model') {
        readClipVisionConfig(dir); // checked at once; the weights are read by the engine process
        const facts: VisionFacts = await ctx.engines.inspectVision(dir);
        const stored: StoredModelFacts = {
          vision: { config: facts.config as unknown as ClipVisionConfig, preprocess: facts.preprocess as unknown as ClipPreprocess },
          parameters: facts.parameters,
          memory: facts.memory,
        };
        const model = ctx.ws().models.register({ name: name?.trim() || defaultModelName(dir), path: dir, fingerprint: facts.fingerprint, config: stored as unknown as Record<string, unknown> });
        ctx.events.emit({ type: 'models.changed' });
        return modelInfo(ctx, model);
      }
      // The config is checked here, at once; weights and tokenizer are read by the engine process.
      readModelConfig(dir);
      if (!existsSync(join(dir, 'tokenizer.json'))) throw userError(`${dir}: no tokenizer.json (a Hugging Face model folder has one beside config.json)`);
      const facts = await ctx.engines.inspect(dir);
      const stored: StoredModelFacts = { llama: facts.config as unknown as LlamaConfig, parameters: facts.parameters, memory: facts.memory };
      const model = ctx.ws().models.register({
        name: name?.trim() || defaultModelName(dir),
        path: dir,
        fingerprint: facts.fingerprint,
        config: stored as unknown as Record<string, unknown>,
      });
      ctx.events.emit({ type: 'models.changed' });
      return modelInfo(ctx, model);
    },
    'models.list': async () => ctx.ws().models.list().map(toModelSummary),
    'models.info': async ({ modelId }) => modelInfo(ctx, ctx.ws().models.get(modelId as ModelId)),
    'models.remove': async ({ modelId }) => {
      ctx.ws().models.remove(modelId as ModelId);
      ctx.events.emit({ type: 'models.changed' });
      return { ok: true as const };
    },
  };
}

/** A folder called just "model" (or "weights", "hf", ...) is named after its parent: assets/starter/model -> starter. */
export function defaultModelName(dir: string): string {
  const own = basename(dir);
  return /^(model|models|weights|hf|checkpoint|final)$/i.test(own) && basename(dirname(dir)) ? basename(dirname(dir)) : own;
}
