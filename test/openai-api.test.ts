// Serve mode's OpenAI-compatible API (src-main/server/openai-routes.ts) driven by the official `openai` npm
// client: real HTTP server, real workspace (SQLite), the real engine process on a tiny model, and an adapter
// trained here for a few steps through the app's own run queue.

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { ApiEvent, ApiEventOf } from '../src-shared/api.js';
import { formatAlpacaPrompt } from '../src-main/engine/data.js';
import { loadTokenizer, type TextTokenizer } from '../src-main/engine/tokenizer.js';
import { newToken } from '../src-main/server/auth.js';
import { type RunningServer, startHttpServer } from '../src-main/server/http-server.js';
import { TrimmedText } from '../src-main/server/openai-routes.js';
import type { CompletionService } from '../src-main/service/completions.js';
import type { GenerateResultMessage } from '../src-main/host/protocol.js';
import { type AppFixture, buildAppParts, FAST_RECIPE, startApp, writeColorDataset, writeTinyModel } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

let app: AppFixture;
let server: RunningServer;
let client: OpenAI;
let token: string;
let modelId: string;
let runId: string;
let tokenizer: TextTokenizer;
/** Every generation's engine result, as the service returned it to the routes. */
const results: GenerateResultMessage[] = [];

beforeAll(async () => {
  buildAppParts('host');
  const dir = makeTempDir('openai-api');
  app = startApp(join(dir, 'workspace'));
  const modelDir = writeTinyModel(dir);
  modelId = (await app.call('models.add', { path: modelDir, name: 'tiny' })).id;
  tokenizer = await loadTokenizer(modelDir, { bosId: 1, eosIds: [2] });
  const datasetId = (await app.call('datasets.import', { source: { kind: 'path', path: writeColorDataset(dir) }, name: 'colors' })).dataset.id;
  // A few steps are enough for an adapter that changes the model's answers.
  const run = await app.call('runs.start', { modelId, datasetId, name: 'colors', recipe: { ...FAST_RECIPE, maxSteps: 4 } });
  runId = run.id;
  await app.waitFor((e) => e.type === 'run.updated' && e.run.id === run.id && e.run.status === 'completed');

  // The routes see the real service; this only records what each generation returned.
  const real = app.service.completions;
  const completions: CompletionService = {
    ...real,
    generate: async (model, req) => {
      const result = await real.generate(model, req);
      results.push(result);
      return result;
    },
  };
  token = newToken();
  server = await startHttpServer({ service: { ...app.service, completions }, token, host: '127.0.0.1', port: 0, staticDir: null });
  client = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: token, maxRetries: 0 });
});

afterAll(async () => {
  await server?.close();
  await app?.close();
});

describe('models', () => {
  it('lists the base model and the trained adapter, under names and under store ids', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    expect(models.map((m) => m.id)).toEqual(['tiny', 'tiny+colors']);
    expect(models[0]).toMatchObject({ object: 'model', owned_by: 'adapter-studio' });
    expect((await client.models.retrieve('tiny+colors')).id).toBe('tiny+colors');
    expect((await client.models.retrieve(`${modelId}+${runId}`)).id).toBe('tiny+colors');
  });
});

describe('chat completions', () => {
  const request = { model: 'tiny', messages: [{ role: 'system' as const, content: 'Answer briefly.' }, { role: 'user' as const, content: 'What color is sky?' }], temperature: 0, max_tokens: 24 };

  it('streamed text equals the non-streamed text at temperature 0', async () => {
    const whole = await client.chat.completions.create(request);
    expect(whole.object).toBe('chat.completion');
    expect(whole.model).toBe('tiny');
    expect(whole.choices[0].message.role).toBe('assistant');
    expect(whole.choices[0].message.content).toBe(results.at(-1)!.text);
    expect(whole.choices[0].message.content).not.toBe('');
    expect(whole.usage).toEqual({ prompt_tokens: results.at(-1)!.promptTokens, completion_tokens: results.at(-1)!.newTokens, total_tokens: results.at(-1)!.promptTokens + results.at(-1)!.newTokens });
    expect(['stop', 'length']).toContain(whole.choices[0].finish_reason);

    const stream = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(whole.choices[0].message.content);
    expect(chunks.length).toBeGreaterThan(3); // role, several deltas, finish, usage: not one lump
    expect(chunks.at(-2)!.choices[0].finish_reason).toBe(whole.choices[0].finish_reason);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual(whole.usage);
  });

  it('an adapter model answers in the Alpaca template, as the app\'s own generation does', async () => {
    const api = await client.chat.completions.create({ model: 'tiny+colors', messages: [{ role: 'user', content: 'What color is sky?' }], temperature: 0, max_tokens: 16 });
    // The same prompt through the service's generate.start (the UI's path) with the same adapter.
    const since = app.events.length;
    const { streamId } = await app.call('generate.start', { model: { modelId, adapterRunId: runId }, prompt: 'What color is sky?', template: 'alpaca', sampling: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, maxNewTokens: 16 } });
    const end = await app.waitFor((e: ApiEvent): e is ApiEventOf<'stream.end'> => e.type === 'stream.end' && e.streamId === streamId, { since });
    expect(api.choices[0].message.content).toBe(end.result.text);
    expect(api.usage!.prompt_tokens).toBe(end.result.promptTokens);
    // ... and the adapter matters: the base model prompted the same way answers differently.
    const base = await client.completions.create({ model: 'tiny', prompt: formatAlpacaPrompt('What color is sky?'), temperature: 0, max_tokens: 16, stop: ['### Instruction:', '### Input:', '### Response:'] });
    expect(base.choices[0].text).not.toBe(api.choices[0].message.content);
  });

  it('a client that goes away stops its generation', async () => {
    const long = { model: 'tiny', prompt: 'a', temperature: 0, max_tokens: 250 };
    const full = await client.completions.create(long);
    expect(full.choices[0].finish_reason).toBe('length'); // so an uninterrupted run would take all 250 tokens
    const before = results.length;
    const stream = await client.completions.create({ ...long, stream: true });
    for await (const chunk of stream) {
      if (chunk.choices[0]?.text) break; // leaving the loop aborts the request
    }
    await expect.poll(() => results.length, { timeout: 10_000 }).toBe(before + 1);
    expect(results.at(-1)!.finishReason).toBe('cancelled');
  });
});

describe('completions', () => {
  it('completes a raw prompt on the base model and an Alpaca instruction on the adapter', async () => {
    const raw = await client.completions.create({ model: 'tiny', prompt: 'The sky is', temperature: 0, max_tokens: 12 });
    expect(raw.object).toBe('text_completion');
    expect(raw.choices[0].text).toBe(results.at(-1)!.text);
    expect(raw.usage!.prompt_tokens).toBe(tokenizer.encode('The sky is', { bos: true }).length);
    const streamed = await client.completions.create({ model: 'tiny', prompt: 'The sky is', temperature: 0, max_tokens: 12, stream: true });
    let text = '';
    for await (const chunk of streamed) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(raw.choices[0].text);

    const tuned = await client.completions.create({ model: 'tiny+colors', prompt: 'What color is grass?', temperature: 0, max_tokens: 8 });
    expect(tuned.usage!.prompt_tokens).toBe(tokenizer.encode(formatAlpacaPrompt('What color is grass?'), { bos: true }).length);
  });
});

describe('refusals in OpenAI\'s shapes', () => {
  it('an unknown model is a 404 model_not_found', async () => {
    const err = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect(err.status).toBe(404);
    expect(err.code).toBe('model_not_found');
    expect(err.message).toContain('gpt-4o');
  });

  it('a bad field is a 400 naming the field', async () => {
    const err = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], temperature: 5 }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.param).toBe('temperature');
    expect(err.message).toMatch(/temperature/);
    const n = await client.completions.create({ model: 'tiny', prompt: 'hi', n: 2 }).catch((e) => e);
    expect(n).toBeInstanceOf(OpenAI.BadRequestError);
    expect(n.param).toBe('n');
  });

  it('a prompt longer than the context is a 400 context_length_exceeded', async () => {
    const err = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x'.repeat(300) }] }).catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err.code).toBe('context_length_exceeded');
    expect(err.message).toMatch(/maximum context length is 256 tokens/);
    // A prompt that fits, with a max_tokens that does not.
    const tooMany = await client.completions.create({ model: 'tiny', prompt: 'x'.repeat(200), max_tokens: 100 }).catch((e) => e);
    expect(tooMany).toBeInstanceOf(OpenAI.BadRequestError);
    expect(tooMany.code).toBe('context_length_exceeded');
    expect(tooMany.param).toBe('prompt');
  });

  it('a wrong or missing key is a 401', async () => {
    const wrong = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: 'not-the-token', maxRetries: 0 });
    const err = await wrong.models.list().catch((e) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err.status).toBe(401);
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/models`);
    expect(res.status).toBe(401);
    expect((await res.json()).error).toMatchObject({ type: 'authentication_error', code: 'invalid_api_key' });
  });
});

describe('streamed text reads as the trimmed result', () => {
  it('holds back leading and trailing whitespace', () => {
    const out: string[] = [];
    const t = new TrimmedText((s) => out.push(s));
    for (const d of ['\n', ' Blue', ' ', '\n', 'sky', '  ']) t.push(d);
    expect(out.join('')).toBe('\n Blue \nsky'.trim());
  });
});
