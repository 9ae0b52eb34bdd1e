// Self-instruct with a model on this machine: the engine's generate() behind the TextGenerator
// interface, so the same pipeline runs against a local model (base, + adapter or + LoRA) or a server.

import type { FineTune } from '../engine/adapter-io.js';
import type { LoadedModel } from '../engine/load.js';
import { Rng } from '../engine/rng.js';
import { DEFAULT_SAMPLING, generate } from '../engine/sample.js';
import type { TextTokenizer } from '../engine/tokenizer.js';
import type { CompletionOptions, TextGenerator } from './generator.js';

export class LocalEngineGenerator implements TextGenerator {
  constructor(
    private readonly model: LoadedModel,
    private readonly tokenizer: TextTokenizer,
    private readonly fineTune: FineTune | null = null,
  ) {}

  describe(): Record<string, unknown> {
    return { kind: 'local-engine', model: this.model.dir, fingerprint: this.model.fingerprint, fineTune: this.fineTune?.kind ?? null };
  }

  async complete(prompt: string, o: CompletionOptions = {}): Promise<string> {
    const result = await generate({
      model: this.model,
      adapter: this.fineTune?.kind === 'adapter' ? this.fineTune.adapter : null,
      lora: this.fineTune?.kind === 'lora' ? this.fineTune.lora : null,
      promptIds: this.tokenizer.encode(prompt, { bos: true }),
      sampling: {
        ...DEFAULT_SAMPLING,
        temperature: o.temperature ?? 0.7,
        topP: o.topP ?? 0.95,
        maxNewTokens: o.maxTokens ?? 512,
        stop: o.stop ?? [],
      },
      rng: new Rng(o.seed ?? 0),
      eosIds: this.model.config.eosIds,
      tokenizer: this.tokenizer,
      signal: o.signal,
    });
    return result.text;
  }
}
