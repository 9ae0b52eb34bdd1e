// The OpenAI-compatible API's wire format, as pure functions: request schemas (zod), their mapping
// onto our prompt templates and sampling options, and builders for responses, stream chunks and
// errors in OpenAI's shapes. No HTTP here: serve mode's routes use these.
//
// Follows the OpenAI API reference for POST /v1/chat/completions, POST /v1/completions and
// GET /v1/models. Fields we cannot honour are refused with a 400 naming the field, never ignored
// silently (n > 1, logprobs, tools, logit_bias, presence/frequency penalties); unknown extra fields
// are ignored, as OpenAI's own server does for forward compatibility.

import { z } from 'zod';
import { MAX_PICTURE_BASE64 } from '../../src-shared/api.js';
import { formatAlpacaPrompt } from '../engine/data.js';
import type { SamplingOptions } from '../engine/sample.js';

// ---------------------------------------------------------------------------------------------
// Requests

const text = z.string().max(1_000_000);

/** Content is a string or a list of parts: text, and pictures as data: URLs for multi-modal adapters. */
const Content = z.union([
  text,
  z
    .array(
      z.union([
        z.object({ type: z.literal('text'), text }),
        z.object({
          type: z.literal('image_url'),
          image_url: z.object({
            url: z.string().max(MAX_PICTURE_BASE64 + 'data:image/jpeg;base64,'.length).regex(/^data:image\/(png|jpeg|webp|gif);base64,/, 'only data: URLs of PNG, JPEG, WebP or GIF pictures (the server fetches nothing)'),
            detail: z.enum(['auto', 'low', 'high']).optional(),
          }),
        }),
      ]),
    )
    .min(1),
]);

export const ChatMessage = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: Content,
  name: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

const Stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullish();

/** Sampling fields shared by both endpoints. top_k and repetition_penalty are common extensions (vLLM, llama.cpp). */
const SamplingFields = {
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  repetition_penalty: z.number().gt(0).max(10).nullish(),
  max_tokens: z.number().int().min(1).nullish(),
  stop: Stop,
  seed: z.number().int().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  user: z.string().nullish(),
  n: z.literal(1, { message: 'only n = 1 is supported' }).nullish(),
  presence_penalty: z.literal(0, { message: 'is not supported (use repetition_penalty)' }).nullish(),
  frequency_penalty: z.literal(0, { message: 'is not supported (use repetition_penalty)' }).nullish(),
  logit_bias: z.record(z.string(), z.number()).refine((v) => Object.keys(v).length === 0, 'is not supported').nullish(),
};

export const ChatCompletionRequest = z.object({
  model: z.string().min(1),
  messages: z.array(ChatMessage).min(1),
  ...SamplingFields,
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.literal(false, { message: 'is not supported' }).nullish(),
  top_logprobs: z.null().optional(),
  tools: z.array(z.unknown()).max(0, 'tools are not supported').nullish(),
  tool_choice: z.literal('none').nullish(),
  response_format: z.object({ type: z.literal('text', { message: 'only "text" is supported' }) }).nullish(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const CompletionRequest = z.object({
  model: z.string().min(1),
  prompt: z.union([text, z.array(text).length(1, 'one prompt per request is supported')]),
  ...SamplingFields,
  echo: z.literal(false, { message: 'is not supported' }).nullish(),
  suffix: z.null({ message: 'is not supported' }).optional(),
  logprobs: z.null({ message: 'is not supported' }).optional(),
  best_of: z.literal(1, { message: 'only best_of = 1 is supported' }).nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

// ---------------------------------------------------------------------------------------------
// Errors: {error: {message, type, param, code}}

export type OpenAIErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error';

export interface OpenAIError {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null };
}

export class OpenAIRequestError extends Error {
  constructor(
    readonly status: number,
    readonly body: OpenAIError,
  ) {
    super(body.error.message);
  }
}

export function openAIError(message: string, type: OpenAIErrorType = 'invalid_request_error', param: string | null = null, code: string | null = null): OpenAIError {
  return { error: { message, type, param, code } };
}

/** HTTP status for each error type, as OpenAI uses them. */
export function errorStatus(type: OpenAIErrorType, code: string | null = null): number {
  if (code === 'model_not_found') return 404;
  return { invalid_request_error: 400, authentication_error: 401, not_found_error: 404, rate_limit_error: 429, server_error: 500 }[type];
}

/**
 * Parse a request body with `schema`; a failure becomes a 400 whose message and `param` name the
 * first bad field ("messages[1].content: ...").
 */
export function parseRequest<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new OpenAIRequestError(400, openAIError('the request body must be a JSON object'));
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('') || null;
  const missing = issue.code === 'invalid_type' && issue.path.length === 1 && !(String(issue.path[0]) in body);
  const message = missing ? `${param}: required field is missing` : `${param ?? 'body'}: ${issue.message}`;
  throw new OpenAIRequestError(400, openAIError(message, 'invalid_request_error', param, missing ? 'missing_required_parameter' : 'invalid_value'));
}

export function modelNotFound(model: string): OpenAIRequestError {
  return new OpenAIRequestError(404, openAIError(`The model "${model}" does not exist; GET /v1/models lists the available ones`, 'invalid_request_error', 'model', 'model_not_found'));
}

/** A prompt longer than the model's context: OpenAI's 400 "context_length_exceeded". */
export function contextLengthExceeded(promptTokens: number, maxNewTokens: number, contextLength: number, param: 'messages' | 'prompt' = 'messages'): OpenAIRequestError {
  return new OpenAIRequestError(
    400,
    openAIError(
      `This model's maximum context length is ${contextLength} tokens. However, you requested ${promptTokens + maxNewTokens} tokens (${promptTokens} in the ${param}, ${maxNewTokens} in the completion). Please reduce the length of the ${param} or completion.`,
      'invalid_request_error',
      param,
      'context_length_exceeded',
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Mapping onto our templates and sampling

export function contentText(content: ChatMessage['content']): string {
  return typeof content === 'string' ? content : content.map((p) => (p.type === 'text' ? p.text : '')).join('');
}

/**
 * The picture a multi-modal adapter reads: the last image_url part of the conversation (the adapter takes one),
 * decoded from its data: URL; null when there is none.
 */
export function chatPicture(messages: ChatMessage[]): { bytes: Uint8Array; param: string } | null {
  for (let m = messages.length - 1; m >= 0; m--) {
    const content = messages[m]!.content;
    if (typeof content === 'string') continue;
    for (let p = content.length - 1; p >= 0; p--) {
      const part = content[p]!;
      if (part.type !== 'image_url') continue;
      const base64 = part.image_url.url.slice(part.image_url.url.indexOf(',') + 1);
      return { bytes: new Uint8Array(Buffer.from(base64, 'base64')), param: `messages[${m}].content[${p}].image_url.url` };
    }
  }
  return null;
}

/** How chat messages become one prompt: the Alpaca template (adapter models) or a plain transcript. */
export type ChatTemplate = 'alpaca' | 'plain';

/**
 * Messages -> prompt text.
 *
 * alpaca: the last user message is the instruction; whatever came before it (system/developer
 * messages and earlier turns) is the input, one "Role: text" paragraph each, so a system prompt
 * becomes Alpaca's "### Input:" context. The prompt ends in "### Response:" as in training.
 * plain: "System: ...\n\nUser: ...\n\nAssistant:" for base models, which were not tuned on a template.
 * The last message must be the user's: the model answers it.
 */
export function chatPrompt(messages: ChatMessage[], template: ChatTemplate): string {
  const last = messages[messages.length - 1];
  if (!last || last.role !== 'user') {
    throw new OpenAIRequestError(400, openAIError('the last message must have role "user": the model answers it', 'invalid_request_error', `messages[${messages.length - 1}].role`, 'invalid_value'));
  }
  const label = (m: ChatMessage) => ({ system: 'System', developer: 'System', user: 'User', assistant: 'Assistant' })[m.role];
  if (template === 'alpaca') {
    const context = messages.slice(0, -1).map((m) => `${label(m)}: ${contentText(m.content)}`).join('\n\n');
    return formatAlpacaPrompt(contentText(last.content), context);
  }
  return [...messages.map((m) => `${label(m)}: ${contentText(m.content)}`), 'Assistant:'].join('\n\n');
}

/** The prompt of a /v1/completions request, optionally wrapped as an Alpaca instruction. */
export function completionPrompt(req: CompletionRequest, template: 'alpaca' | 'none'): string {
  const prompt = typeof req.prompt === 'string' ? req.prompt : req.prompt[0];
  return template === 'alpaca' ? formatAlpacaPrompt(prompt) : prompt;
}

export interface SamplingLimits {
  /** max_tokens when the request gives none. */
  defaultMaxTokens: number;
  /** Upper bound for max_tokens (the model's context, or a server setting). */
  maxTokensCap: number;
}

/** OpenAI's defaults: temperature 1, top_p 1. Our extensions top_k / repetition_penalty default off. */
export function samplingFromRequest(req: ChatCompletionRequest | CompletionRequest, limits: SamplingLimits): SamplingOptions & { seed: number | null } {
  const requested = ('max_completion_tokens' in req ? req.max_completion_tokens : null) ?? req.max_tokens ?? limits.defaultMaxTokens;
  if (requested > limits.maxTokensCap) {
    const param = 'max_completion_tokens' in req && req.max_completion_tokens ? 'max_completion_tokens' : 'max_tokens';
    throw new OpenAIRequestError(400, openAIError(`${param}: ${requested} is more than this server allows (${limits.maxTokensCap})`, 'invalid_request_error', param, 'invalid_value'));
  }
  return {
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    topK: req.top_k ?? 0,
    repetitionPenalty: req.repetition_penalty ?? 1,
    maxNewTokens: requested,
    stop: req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop,
    seed: req.seed ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// Responses

export type FinishReason = 'stop' | 'length';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number; // unix seconds
  owned_by: string;
}

export function modelList(models: { id: string; created: Date | number; ownedBy?: string }[]): { object: 'list'; data: ModelEntry[] } {
  return {
    object: 'list',
    data: models.map((m) => ({ id: m.id, object: 'model', created: Math.floor((m.created instanceof Date ? m.created.getTime() : m.created) / 1000), owned_by: m.ownedBy ?? 'adapter-studio' })),
  };
}

export interface ResponseIds {
  id: string; // "chatcmpl-..." / "cmpl-..."
  created: number; // unix seconds
  model: string;
}

export function chatCompletion(ids: ResponseIds, content: string, finish: FinishReason, u: Usage) {
  return {
    id: ids.id,
    object: 'chat.completion' as const,
    created: ids.created,
    model: ids.model,
    choices: [{ index: 0, message: { role: 'assistant' as const, content, refusal: null }, logprobs: null, finish_reason: finish }],
    usage: u,
  };
}

/**
 * One streamed chunk. The first carries the role, then content deltas, then one with
 * finish_reason and an empty delta; with stream_options.include_usage a last chunk has no choices
 * and the usage.
 */
export function chatCompletionChunk(ids: ResponseIds, delta: { role?: 'assistant'; content?: string }, finish: FinishReason | null, u?: Usage) {
  return {
    id: ids.id,
    object: 'chat.completion.chunk' as const,
    created: ids.created,
    model: ids.model,
    choices: u ? [] : [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(u ? { usage: u } : {}),
  };
}

export function completion(ids: ResponseIds, textOut: string, finish: FinishReason, u: Usage) {
  return {
    id: ids.id,
    object: 'text_completion' as const,
    created: ids.created,
    model: ids.model,
    choices: [{ index: 0, text: textOut, logprobs: null, finish_reason: finish }],
    usage: u,
  };
}

export function completionChunk(ids: ResponseIds, textOut: string, finish: FinishReason | null, u?: Usage) {
  return {
    id: ids.id,
    object: 'text_completion' as const,
    created: ids.created,
    model: ids.model,
    choices: u ? [] : [{ index: 0, text: textOut, logprobs: null, finish_reason: finish }],
    ...(u ? { usage: u } : {}),
  };
}

/** One server-sent event line pair; the stream ends with sseDone(). */
export function sseData(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}

export function sseDone(): string {
  return 'data: [DONE]\n\n';
}
