// Serve mode's OpenAI-compatible API, so that OpenAI clients (the official SDKs, LangChain, curl) can use
// the workspace's models and fine-tunes:
//
//   GET  /v1/models              every base model and every completed fine-tune (ids: service/completions.ts)
//   GET  /v1/models/{id}
//   POST /v1/chat/completions    messages -> the Alpaca template for fine-tunes, a plain transcript for base models
//   POST /v1/completions         the prompt as an Alpaca instruction for fine-tunes, raw for base models
//
// Both generation routes stream as server-sent events with `stream: true`. Generation runs on the inference
// engine process through the app service, never on this server's thread; a client that disconnects stops
// its generation. The wire format (validation, templates, response shapes) is openai-schema.ts; this module
// only routes, authenticates and drives one generation per request.
//
// Authentication is serve mode's access token as an OpenAI API key: `Authorization: Bearer <token>`.

import { randomBytes, randomInt } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from '../../src-shared/api.js';
import type { SamplingOptions } from '../engine/sample.js';
import { EngineJobError } from '../host/engine-process.js';
import { TURN_STOPS } from '../host/prompt.js';
import type { CompletionService, ServedModel } from '../service/completions.js';
import { bearerToken, originAllowed, sameToken } from './auth.js';
import {
  ChatCompletionRequest, chatCompletion, chatCompletionChunk, chatPicture, chatPrompt, CompletionRequest, completion, completionChunk, completionPrompt,
  contextLengthExceeded, type FinishReason, modelList, modelNotFound, type OpenAIError, openAIError, OpenAIRequestError, parseRequest,
  type ResponseIds, samplingFromRequest, sseData, sseDone, usage,
} from './openai-schema.js';
import { decodedOrNull, discardRest, readBody } from './request-body.js';

export interface OpenAIRouteOptions {
  completions: CompletionService;
  token: string;
}

/** max_tokens when a request gives none (less when the prompt leaves less room in the context). */
export const DEFAULT_MAX_TOKENS = 256;

/** Request bodies are messages and sampling fields: far below this. */
const MAX_BODY_BYTES = 32 * 2 ** 20;

/** A base model answers a plain transcript ("User: ...\n\nAssistant:"); it stops before writing the next turn itself. */
const PLAIN_TURN_STOPS = ['\nUser:', '\nSystem:'];

export function isOpenAIPath(pathname: string): boolean {
  return pathname === '/v1' || pathname.startsWith('/v1/');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Whatever a route threw, as OpenAI's error shape and status. */
function toOpenAIError(e: unknown): { status: number; body: OpenAIError } {
  if (e instanceof OpenAIRequestError) return { status: e.status, body: e.body };
  // Refused for the request's content: an adapter that cannot be loaded, a run without files.
  if ((e instanceof ApiError && e.code !== 'internal') || (e instanceof EngineJobError && e.user)) {
    return { status: 400, body: openAIError((e as Error).message) };
  }
  console.error('OpenAI API request failed:', e);
  return { status: 500, body: openAIError(`the server failed: ${(e as Error).message}`, 'server_error') };
}

export async function handleOpenAIRequest(req: IncomingMessage, res: ServerResponse, url: URL, opts: OpenAIRouteOptions): Promise<void> {
  try {
    if (!originAllowed(req)) throw new OpenAIRequestError(403, openAIError('cross-origin requests are not allowed', 'invalid_request_error', null, 'forbidden'));
    if (!sameToken(opts.token, bearerToken(req))) {
      throw new OpenAIRequestError(
        401,
        openAIError('missing or wrong API key: send serve mode\'s access token (the token=... of the URL `adapter-studio serve` printed) as "Authorization: Bearer <token>"', 'authentication_error', null, 'invalid_api_key'),
      );
    }
    const path = url.pathname.replace(/\/+$/, '');
    const route = `${req.method} ${path}`;
    if (route === 'GET /v1/models') return sendJson(res, 200, modelList(opts.completions.models().map((m) => ({ id: m.id, created: m.created }))));
    if (req.method === 'GET' && path.startsWith('/v1/models/')) {
      const id = decodedOrNull(path.slice('/v1/models/'.length));
      if (id === null) throw new OpenAIRequestError(400, openAIError('the model id in the URL is not valid percent-encoding', 'invalid_request_error', null, 'invalid_model_id'));
      const model = opts.completions.find(id);
      if (!model) throw modelNotFound(id);
      return sendJson(res, 200, modelList([{ id: model.id, created: model.created }]).data[0]);
    }
    if (route === 'POST /v1/chat/completions') return await complete(req, res, opts.completions, 'chat');
    if (route === 'POST /v1/completions') return await complete(req, res, opts.completions, 'text');
    const known = ['/v1/models', '/v1/chat/completions', '/v1/completions'].includes(path);
    throw new OpenAIRequestError(known ? 405 : 404, openAIError(`${known ? 'Method not allowed' : 'Unknown request URL'}: ${req.method} ${url.pathname}`, 'invalid_request_error', null, known ? 'method_not_allowed' : 'unknown_url'));
  } catch (e) {
    const { status, body } = toOpenAIError(e);
    if (!res.headersSent) sendJson(res, status, body);
    else if (!res.writableEnded) res.end(sseData(body));
  }
}

async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  const text = await readBody(req, MAX_BODY_BYTES);
  if (text === null) {
    res.setHeader('Connection', 'close');
    discardRest(req);
    throw new OpenAIRequestError(413, openAIError(`the request is larger than ${Math.round(MAX_BODY_BYTES / 2 ** 20)} MiB`));
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new OpenAIRequestError(400, openAIError(`the request body is not valid JSON: ${(e as Error).message}`));
  }
}

/** Everything a generation route has decided before the engine starts. */
interface Plan {
  model: ServedModel;
  prompt: string;
  /** The conversation's picture, for a multi-modal adapter. */
  image: { bytes: Uint8Array; name: string } | null;
  promptTokens: number;
  sampling: SamplingOptions;
  seed: number;
  stream: boolean;
  includeUsage: boolean;
}

async function plan(kind: 'chat' | 'text', body: unknown, completions: CompletionService): Promise<Plan> {
  const req = kind === 'chat' ? parseRequest(ChatCompletionRequest, body) : parseRequest(CompletionRequest, body);
  const model = completions.find(req.model);
  if (!model) throw modelNotFound(req.model);
  const prompt = 'messages' in req ? chatPrompt(req.messages, model.fineTuned ? 'alpaca' : 'plain') : completionPrompt(req, model.fineTuned ? 'alpaca' : 'none');
  const picture = 'messages' in req ? chatPicture(req.messages) : null;
  if (picture && !model.multimodal) {
    throw new OpenAIRequestError(400, openAIError(`${picture.param}: the model "${model.id}" takes no images (only multi-modal adapters, trained with a vision tower, read them)`, 'invalid_request_error', picture.param, 'invalid_value'));
  }
  const requested = samplingFromRequest(req, { defaultMaxTokens: DEFAULT_MAX_TOKENS, maxTokensCap: model.contextLength });
  if (requested.seed !== null && !(Number.isSafeInteger(requested.seed) && requested.seed >= 0)) {
    throw new OpenAIRequestError(400, openAIError(`seed: must be an integer from 0 to 2^53 - 1, got ${requested.seed}`, 'invalid_request_error', 'seed', 'invalid_value'));
  }

  // The prompt must leave room for the completion: an explicit max_tokens must fit, the default shrinks to fit.
  const promptTokens = await completions.countTokens(model, prompt);
  const explicit = req.max_tokens != null || ('max_completion_tokens' in req && req.max_completion_tokens != null);
  const room = model.contextLength - promptTokens;
  const maxNewTokens = explicit ? requested.maxNewTokens : Math.min(requested.maxNewTokens, room);
  if (maxNewTokens < 1 || maxNewTokens > room) throw contextLengthExceeded(promptTokens, Math.max(maxNewTokens, 1), model.contextLength, kind === 'chat' ? 'messages' : 'prompt');

  // Stop before the model writes the next turn of its template itself.
  const templateStops = model.fineTuned ? TURN_STOPS : kind === 'chat' ? PLAIN_TURN_STOPS : [];
  const { seed, ...sampling } = requested;
  return {
    model,
    prompt,
    image: picture ? { bytes: picture.bytes, name: picture.param } : null,
    promptTokens,
    sampling: { ...sampling, maxNewTokens, stop: [...new Set([...sampling.stop, ...templateStops])] },
    seed: seed ?? randomInt(0, 2 ** 31),
    stream: req.stream === true,
    includeUsage: req.stream_options?.include_usage === true,
  };
}

function finishReason(engine: string): FinishReason {
  return engine === 'length' ? 'length' : 'stop';
}

async function complete(req: IncomingMessage, res: ServerResponse, completions: CompletionService, kind: 'chat' | 'text'): Promise<void> {
  // The client going away (closing the connection) stops the generation, also when it leaves before it starts.
  const disconnect = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) disconnect.abort();
  });
  const p = await plan(kind, await readJson(req, res), completions);
  if (disconnect.signal.aborted) return;
  const ids: ResponseIds = { id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`, created: Math.floor(Date.now() / 1000), model: p.model.id };

  if (!p.stream) {
    const result = await completions.generate(p.model, { text: p.prompt, image: p.image, sampling: p.sampling, seed: p.seed, onText: () => undefined, signal: disconnect.signal });
    if (disconnect.signal.aborted) return;
    const u = usage(result.promptTokens, result.newTokens);
    const finish = finishReason(result.finishReason);
    return sendJson(res, 200, kind === 'chat' ? chatCompletion(ids, result.text, finish, u) : completion(ids, result.text, finish, u));
  }

  res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  const send = (text: string) => {
    if (!res.destroyed && !res.writableEnded) res.write(text);
  };
  const delta = (text: string) => send(sseData(kind === 'chat' ? chatCompletionChunk(ids, { content: text }, null) : completionChunk(ids, text, null)));
  if (kind === 'chat') send(sseData(chatCompletionChunk(ids, { role: 'assistant', content: '' }, null)));
  const text = new TrimmedText(delta);
  const result = await completions.generate(p.model, { text: p.prompt, image: p.image, sampling: p.sampling, seed: p.seed, onText: (t) => text.push(t), signal: disconnect.signal });
  const finish = finishReason(result.finishReason);
  send(sseData(kind === 'chat' ? chatCompletionChunk(ids, {}, finish) : completionChunk(ids, '', finish)));
  if (p.includeUsage) {
    const u = usage(result.promptTokens, result.newTokens);
    send(sseData(kind === 'chat' ? chatCompletionChunk(ids, {}, null, u) : completionChunk(ids, '', null, u)));
  }
  send(sseDone());
  if (!res.writableEnded) res.end();
}

/**
 * Streamed text as the final result reads it: the engine returns its text trimmed, so the stream holds back
 * leading whitespace and any trailing whitespace until more text follows it. Streamed and non-streamed
 * responses then say the same.
 */
export class TrimmedText {
  private started = false;
  private held = '';

  constructor(private readonly emit: (text: string) => void) {}

  push(delta: string): void {
    let text = this.held + delta;
    if (!this.started) {
      text = text.trimStart();
      if (text === '') return;
      this.started = true;
    }
    const body = text.trimEnd();
    this.held = text.slice(body.length);
    if (body !== '') this.emit(body);
  }
}
