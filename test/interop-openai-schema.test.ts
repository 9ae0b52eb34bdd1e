// The OpenAI-compatible API's wire format (src-main/server/openai-schema.ts): request validation with
// OpenAI-shaped errors, the Alpaca mapping of chat messages, sampling defaults, response shapes.

import { describe, expect, it } from 'vitest';
import { formatAlpacaPrompt } from '../src-main/engine/data.js';
import {
  ChatCompletionRequest, chatCompletionChunk, chatPrompt, CompletionRequest, completionPrompt, contextLengthExceeded, errorStatus,
  modelList, OpenAIRequestError, parseRequest, samplingFromRequest, sseData,
} from '../src-main/server/openai-schema.js';

function rejection(fn: () => unknown): OpenAIRequestError {
  try {
    fn();
  } catch (e) {
    if (e instanceof OpenAIRequestError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('OpenAI request validation', () => {
  it('accepts what the openai client sends and ignores unknown extras', () => {
    const req = parseRequest(ChatCompletionRequest, { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true }, metadata: { x: 1 } });
    expect(req.model).toBe('m');
    expect('metadata' in req).toBe(false);
  });

  it.each([
    [{ messages: [{ role: 'user', content: 'hi' }] }, 'model', 'model: required field is missing'],
    [{ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 3 }, 'temperature', 'temperature: Too big'],
    [{ model: 'm', messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role', 'messages[0].role:'],
    [{ model: 'm', messages: [{ role: 'user', content: 'hi' }], n: 2 }, 'n', 'n: only n = 1 is supported'],
    [{ model: 'm', messages: [{ role: 'user', content: 'hi' }], presence_penalty: 0.5 }, 'presence_penalty', 'use repetition_penalty'],
    [{ model: 'm', messages: [{ role: 'user', content: 'hi' }], stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', 'stop:'],
    [{ model: 'm', messages: [] }, 'messages', 'messages:'],
  ])('refuses %j naming the field', (body, param, message) => {
    const e = rejection(() => parseRequest(ChatCompletionRequest, body));
    expect(e.status).toBe(400);
    expect(e.body.error).toMatchObject({ type: 'invalid_request_error', param });
    expect(e.body.error.message).toContain(message);
  });

  it('refuses a body that is not an object', () => {
    expect(rejection(() => parseRequest(CompletionRequest, [1])).body.error.message).toBe('the request body must be a JSON object');
  });

  it('reports an over-long prompt as context_length_exceeded', () => {
    const e = contextLengthExceeded(4000, 200, 4096);
    expect(e.status).toBe(400);
    expect(e.body.error.code).toBe('context_length_exceeded');
    expect(e.body.error.message).toMatch(/maximum context length is 4096 tokens\. However, you requested 4200 tokens/);
    expect(errorStatus('invalid_request_error', 'model_not_found')).toBe(404);
  });
});

describe('mapping onto our templates and sampling', () => {
  it('a single user message is the Alpaca instruction, exactly as in training', () => {
    expect(chatPrompt([{ role: 'user', content: 'Name a color.' }], 'alpaca')).toBe(formatAlpacaPrompt('Name a color.'));
  });

  it('system prompt and earlier turns become the Alpaca input', () => {
    const prompt = chatPrompt(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Hi' }] },
        { role: 'assistant', content: 'Hello.' },
        { role: 'user', content: 'Name a color.' },
      ],
      'alpaca',
    );
    expect(prompt).toBe(formatAlpacaPrompt('Name a color.', 'System: Be brief.\n\nUser: Hi\n\nAssistant: Hello.'));
    expect(prompt.endsWith('### Response:')).toBe(true);
  });

  it('the model answers the last message, which must be the user\'s', () => {
    const e = rejection(() => chatPrompt([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }], 'alpaca'));
    expect(e.body.error.param).toBe('messages[1].role');
    expect(chatPrompt([{ role: 'user', content: 'a' }], 'plain')).toBe('User: a\n\nAssistant:');
  });

  it('completions: raw prompt for base models, Alpaca instruction for adapters', () => {
    const req = parseRequest(CompletionRequest, { model: 'm', prompt: ['Once'] });
    expect(completionPrompt(req, 'none')).toBe('Once');
    expect(completionPrompt(req, 'alpaca')).toBe(formatAlpacaPrompt('Once'));
  });

  it('sampling: OpenAI defaults, our extensions, and the max_tokens cap', () => {
    const req = parseRequest(ChatCompletionRequest, { model: 'm', messages: [{ role: 'user', content: 'x' }], stop: 'END', top_k: 40, seed: 3 });
    expect(samplingFromRequest(req, { defaultMaxTokens: 64, maxTokensCap: 512 })).toEqual({ temperature: 1, topP: 1, topK: 40, repetitionPenalty: 1, maxNewTokens: 64, stop: ['END'], seed: 3 });
    const big = parseRequest(ChatCompletionRequest, { model: 'm', messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 9000 });
    expect(rejection(() => samplingFromRequest(big, { defaultMaxTokens: 64, maxTokensCap: 512 })).body.error).toMatchObject({ param: 'max_completion_tokens' });
  });
});

describe('responses', () => {
  it('stream chunks and the usage chunk have OpenAI\'s shapes', () => {
    const ids = { id: 'chatcmpl-1', created: 1700000000, model: 'm' };
    expect(chatCompletionChunk(ids, { role: 'assistant', content: '' }, null).choices[0]).toEqual({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null });
    const last = chatCompletionChunk(ids, {}, null, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
    expect(last).toMatchObject({ choices: [], usage: { total_tokens: 5 } });
    expect(sseData({ a: 1 })).toBe('data: {"a":1}\n\n');
    expect(modelList([{ id: 'base', created: new Date(1700000000123) }]).data[0]).toEqual({ id: 'base', object: 'model', created: 1700000000, owned_by: 'adapter-studio' });
  });
});
