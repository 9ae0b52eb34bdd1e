// Text generators for self-instruct. Anything with `complete(prompt)` works; this file provides the
// OpenAI-compatible HTTP one (any server speaking POST /v1/chat/completions: llama.cpp's server, vLLM,
// Ollama, OpenAI itself, or Adapter Studio's own serve mode).

export interface CompletionOptions {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stop?: string[];
  seed?: number;
  signal?: AbortSignal;
}

export interface TextGenerator {
  complete(prompt: string, options?: CompletionOptions): Promise<string>;
  /** What to record as provenance (never secrets). */
  describe?(): Record<string, unknown>;
}

export class GeneratorError extends Error {
  override name = 'GeneratorError';
}

export interface OpenAICompatibleConfig {
  /** Server root such as http://127.0.0.1:8080 (a trailing /v1 is accepted too). */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Per-request limit. Default 120 s: a local CPU model can be slow. */
  timeoutMs?: number;
}

export class OpenAICompatibleGenerator implements TextGenerator {
  readonly url: string;

  constructor(private readonly config: OpenAICompatibleConfig) {
    if (!/^https?:\/\//.test(config.baseUrl)) throw new GeneratorError(`generator URL must start with http:// or https://, got ${JSON.stringify(config.baseUrl)}`);
    if (!config.model) throw new GeneratorError('generator needs a model name');
    const root = config.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
    this.url = `${root}/v1/chat/completions`;
  }

  describe(): Record<string, unknown> {
    return { kind: 'openai-compatible', url: this.url, model: this.config.model };
  }

  async complete(prompt: string, options: CompletionOptions = {}): Promise<string> {
    const body = {
      model: this.config.model,
      messages: [{ role: 'user', content: prompt }],
      max_tokens: options.maxTokens,
      temperature: options.temperature,
      top_p: options.topP,
      stop: options.stop,
      seed: options.seed,
    };
    const timeout = AbortSignal.timeout(this.config.timeoutMs ?? 120_000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.config.apiKey ? { authorization: `Bearer ${this.config.apiKey}` } : {}),
        },
        body: JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = timeout.aborted ? `no answer within ${(this.config.timeoutMs ?? 120_000) / 1000} s` : (cause?.code ?? cause?.message ?? (err as Error).message);
      throw new GeneratorError(`cannot reach ${this.url}: ${why}`);
    }
    const text = await response.text();
    if (!response.ok) throw new GeneratorError(`${this.url} answered ${response.status} ${response.statusText}: ${text.slice(0, 300)}`);
    let json: { choices?: { message?: { content?: unknown } }[] };
    try {
      json = JSON.parse(text);
    } catch {
      throw new GeneratorError(`${this.url} did not answer with JSON: ${text.slice(0, 200)}`);
    }
    const content = json.choices?.[0]?.message?.content;
    if (typeof content !== 'string') throw new GeneratorError(`${this.url} answered without choices[0].message.content: ${text.slice(0, 200)}`);
    return content;
  }
}
