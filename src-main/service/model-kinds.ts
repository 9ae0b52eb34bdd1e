// What kind of model a stored model is (a language model or a vision tower) and its facts, read from the models
// table; every handler that needs one kind refuses the other by name here.

import type { LlamaConfig } from '../engine/config.js';
import type { ModelFacts } from '../host/protocol.js';
import type { ClipPreprocess, ClipVisionConfig } from '../engine/vision/clip-config.js';
import type { ModelKind } from '../../src-shared/api.js';
import type { Model } from '../store/index.js';
import { userError } from './errors.js';

/** What the models table's config column holds for us: `llama` for a language model, `vision` for a tower. */
export interface StoredModelFacts {
  llama?: LlamaConfig;
  vision?: { config: ClipVisionConfig; preprocess: ClipPreprocess };
  parameters: number;
  memory: ModelFacts['memory'];
}

export function modelKind(m: Model): ModelKind {
  return storedFacts(m).vision ? 'vision' : 'llama';
}

/** A language model's config; a vision tower given where a language model belongs is refused by name. */
export function languageConfig(m: Model): LlamaConfig {
  const facts = storedFacts(m);
  if (!facts.llama) throw userError(`"${m.name}" is a vision tower, not a language model: pick a LLaMA model here`);
  return facts.llama;
}

/** A vision tower's folder; a language model given where a tower belongs is refused by name. */
export function visionTower(m: Model): Model {
  if (modelKind(m) !== 'vision') throw userError(`"${m.name}" is a language model, not a vision tower: add a CLIP folder on the Models page`);
  return m;
}

export function storedFacts(m: Model): StoredModelFacts {
  return m.config as unknown as StoredModelFacts;
}
