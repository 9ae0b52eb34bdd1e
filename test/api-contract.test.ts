// The API contract rejects bad requests at the boundary with messages that name the method and the field,
// fills defaults, refuses unknown fields, and checks events and answers too.

import { describe, expect, it } from 'vitest';
import { API, API_METHODS, ApiError, checkResponse, isApiMethod, parseEvent, parseRequest } from '../src-shared/api.js';
import { API_METHOD_NAMES } from '../src-shared/api-methods.js';

function rejection(method: Parameters<typeof parseRequest>[0], input: unknown): ApiError {
  try {
    parseRequest(method, input);
  } catch (e) {
    if (e instanceof ApiError) return e;
    throw e;
  }
  throw new Error(`${method} accepted ${JSON.stringify(input)}`);
}

describe('requests', () => {
  it('names the method, the field path and what was expected', () => {
    const e = rejection('datasets.query', { datasetId: 'ds_1', limit: 0 });
    expect(e.code).toBe('invalid_input');
    expect(e.message).toMatch(/^datasets\.query: field "limit": /);
    expect(e.message).toMatch(/>=1/);
    expect(e.issues).toEqual([{ path: 'limit', message: expect.any(String) }]);
  });

  it('reports every bad field, nested ones with their full path', () => {
    const e = rejection('runs.start', { modelId: '', datasetId: 'ds', recipe: { lr: 'fast', betas: [0.9, 2] } });
    const paths = e.issues.map((i) => i.path).sort();
    expect(paths).toEqual(['modelId', 'recipe.betas.1', 'recipe.lr']);
    expect(e.message).toContain('field "recipe.lr"');
  });

  it('refuses fields the method does not know (a typo is not silently ignored)', () => {
    const e = rejection('datasets.get', { datasetId: 'ds_1', datasetID: 'ds_1' });
    expect(e.message).toMatch(/datasetID/);
  });

  it('fills documented defaults', () => {
    const q = parseRequest('datasets.query', { datasetId: 'ds_1' });
    expect(q.offset).toBe(0);
    expect(q.limit).toBe(100);
    const chat = parseRequest('chats.create', {});
    expect(chat.title).toBe('New chat');
    expect(chat.sampling).toEqual({ temperature: 0.7, topK: 40, topP: 0.95, repetitionPenalty: 1, maxNewTokens: 128 });
    expect(parseRequest('runs.start', { modelId: 'm', datasetId: 'd' }).split).toBe('all');
  });

  it('checks relations between fields, not only types', () => {
    expect(rejection('datasets.split', { datasetId: 'd', val: 0.6, test: 0.5 }).message).toMatch(/leave some examples for train/);
    expect(rejection('chats.send', { chatId: 'c', content: '   ' }).message).toMatch(/field "content": must not be empty/);
    expect(rejection('datasets.editExample', { datasetId: 'd', exampleId: 1, patch: { output: '' } }).message).toMatch(/field "patch.output"/);
  });

  it('refuses a dropped file name that could escape the uploads folder', () => {
    for (const fileName of ['../evil.json', 'a/b.json', 'a\\b.json', '..']) {
      expect(rejection('datasets.validate', { source: { kind: 'text', fileName, text: '[]' } }).message).toMatch(/field "source.fileName"/);
    }
  });

  it('treats a missing body as an empty request', () => {
    expect(parseRequest('system.info', undefined)).toEqual({});
    expect(rejection('models.info', undefined).message).toMatch(/field "modelId"/);
  });
});

describe('the method table', () => {
  it('the bare name list (used by the preload) names exactly the methods of the table', () => {
    expect([...API_METHOD_NAMES].sort()).toEqual(Object.keys(API).sort());
    expect(API_METHODS.length).toBe(Object.keys(API).length);
  });

  it('every method has an input and an output schema and a summary', () => {
    for (const m of API_METHODS) {
      expect(typeof API[m].input.safeParse).toBe('function');
      expect(typeof API[m].output.safeParse).toBe('function');
      expect(API[m].summary.length).toBeGreaterThan(5);
    }
    expect(isApiMethod('runs.start')).toBe(true);
    expect(isApiMethod('constructor')).toBe(false);
    expect(isApiMethod('__proto__')).toBe(false);
  });

  it('an answer that breaks the contract is an internal error, not passed on', () => {
    expect(() => checkResponse('models.list', [{ id: 'm' }])).toThrow(/models\.list produced an answer that breaks the API contract/);
    expect(checkResponse('models.remove', { ok: true })).toEqual({ ok: true });
  });
});

describe('events', () => {
  it('accepts well-formed events and rejects malformed ones', () => {
    expect(parseEvent({ type: 'stream.delta', streamId: 's1', key: 'reply', text: 'hi' }).type).toBe('stream.delta');
    expect(() => parseEvent({ type: 'stream.delta', streamId: 's1', text: 'hi' })).toThrow();
    expect(() => parseEvent({ type: 'no.such.event' })).toThrow();
  });
});
