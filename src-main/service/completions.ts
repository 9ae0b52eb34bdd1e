// Text generation for clients outside the app: serve mode's OpenAI-compatible API
// (src-main/server/openai-routes.ts). Which of the workspace's models are served under which public id, and
// one generation on the inference engine process, the same process and path chat and compare use. Each
// generation is counted as a live stream, so that switching workspaces waits for it and closing the service
// stops it.
//
// Public model ids:
//   - a base model is its name ("tiny-llama");
//   - a completed fine-tune (adapter, LoRA or full) is "<model name>+<run name>" ("tiny-llama+colors v2");
//   - every model also answers to its store ids, "<model id>" and "<model id>+<run id>"
//     ("model_ab12+run_cd34"), which never change;
//   - when two entries would get the same name, the first (base models before fine-tunes, older before newer)
//     keeps it and the others are listed by their store ids, so a listed id does not change when a
//     same-named model is added later.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelRef } from '../../src-shared/api.js';
import type { SamplingOptions } from '../engine/sample.js';
import type { GenerateResultMessage, VisionInput } from '../host/protocol.js';
import type { Workspace } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { resolveModel } from './generation.js';
import { userError } from './errors.js';
import { storePicture } from './images.js';
import { languageConfig, modelKind } from './model-kinds.js';

export interface ServedModel {
  /** The id clients see in the model list. */
  id: string;
  /** The id made of store ids, accepted as well. */
  storeId: string;
  ref: ModelRef;
  /** Fine-tunes were trained on the Alpaca template and are prompted in it; base models were not. */
  fineTuned: boolean;
  /** Prompt plus completion tokens the model reads at most. */
  contextLength: number;
  /** A multi-modal adapter: it reads a picture (image_url parts). */
  multimodal: boolean;
  /** When the model was added or the run finished (ms). */
  created: number;
}

export interface GenerationRequest {
  /** The whole prompt, template applied. */
  text: string;
  sampling: SamplingOptions;
  seed: number;
  onText: (delta: string) => void;
  /** Aborting stops the generation (the client went away); the result then has finishReason 'cancelled'. */
  signal: AbortSignal;
  /** A picture's bytes for a multi-modal adapter (checked and kept in the workspace's image store). */
  image?: { bytes: Uint8Array; name: string } | null;
}

export interface CompletionService {
  models(): ServedModel[];
  /** By listed id or store id; null when the workspace has no such model. */
  find(id: string): ServedModel | null;
  /** Tokens of `text` as the model's generation reads it (BOS included). */
  countTokens(model: ServedModel, text: string): Promise<number>;
  generate(model: ServedModel, req: GenerationRequest): Promise<GenerateResultMessage>;
}

/** The served models of a workspace, with the public ids of the header comment. */
export function servedModels(ws: Workspace): ServedModel[] {
  const entries: (Omit<ServedModel, 'id'> & { name: string })[] = [];
  // Vision towers answer no prompts: only language models are served.
  const models = ws.models.list().filter((m) => modelKind(m) === 'llama' && existsSync(join(m.path, 'config.json')));
  for (const m of models) {
    entries.push({ name: m.name, storeId: m.id, ref: { modelId: m.id, adapterRunId: null }, fineTuned: false, contextLength: languageConfig(m).maxPositions, multimodal: false, created: m.addedAt });
  }
  const runs = ws.runs.list('completed').sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  for (const r of runs) {
    const m = models.find((x) => x.id === r.modelId);
    // A run whose files are gone cannot answer; resolveModel would refuse it.
    if (!m || !existsSync(join(ws.runDir(r.id), r.method === 'full' ? 'config.json' : 'adapter_config.json'))) continue;
    entries.push({
      name: `${m.name}+${r.name}`,
      storeId: `${m.id}+${r.id}`,
      ref: { modelId: m.id, adapterRunId: r.id },
      fineTuned: true,
      contextLength: languageConfig(m).maxPositions,
      multimodal: typeof (r.recipe as { visionModelId?: unknown }).visionModelId === 'string',
      created: r.finishedAt ?? r.createdAt,
    });
  }
  const taken = new Set(entries.map((e) => e.storeId));
  return entries.map(({ name, ...e }) => {
    const id = taken.has(name) ? e.storeId : name;
    taken.add(id);
    return { id, ...e };
  });
}

export function completionService(ctx: ServiceContext): CompletionService {
  return {
    models: () => servedModels(ctx.ws()),
    find: (id) => servedModels(ctx.ws()).find((m) => m.id === id || m.storeId === id) ?? null,
    countTokens: async (model, text) => ctx.engines.countTokens(resolveModel(ctx, model.ref).modelDir, text),
    async generate(model, req) {
      const resolved = resolveModel(ctx, model.ref);
      let image: { file: string; vision: VisionInput } | null = null;
      if (req.image) {
        if (!resolved.vision) throw userError(`${model.id} takes no pictures: send image_url parts to a multi-modal adapter`);
        const ws = ctx.ws();
        image = { file: ws.images.filePath(await storePicture(ws, req.image.bytes, req.image.name)), vision: resolved.vision };
      }
      const stream = ctx.streams.open({ broadcast: false });
      try {
        const { result, cancel } = await ctx.engines.generate(
          { modelDir: resolved.modelDir, adapterDir: resolved.adapterDir, prompt: { template: 'none', text: req.text }, sampling: req.sampling, seed: req.seed, image },
          req.onText,
        );
        stream.onCancel(cancel);
        req.signal.addEventListener('abort', cancel);
        // Either may have happened while the engine was starting.
        if (stream.cancelled || req.signal.aborted) cancel();
        try {
          return await result;
        } finally {
          req.signal.removeEventListener('abort', cancel);
        }
      } finally {
        stream.close();
      }
    },
  };
}
