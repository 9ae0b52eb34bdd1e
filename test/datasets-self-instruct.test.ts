// Self-instruct end to end against a real OpenAI-compatible HTTP server on 127.0.0.1.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildSelfInstructPrompt,
  endpointGeneratorFromSettings,
  GENERATOR_ENDPOINT_SETTING,
  GeneratorError,
  importDataset,
  loadSeedTasks,
  OpenAICompatibleGenerator,
  parseGeneratedTasks,
  rougeL,
  selfInstruct,
} from '../src-main/datasets/index.js';
import { startFakeOpenAIServer, type FakeOpenAIServer } from './helpers/dataset-openai-server.js';
import { alpacaRecords, tempWorkspace, writeJsonFile } from './helpers/store-fixtures.js';
import { makeTempDir } from './helpers/tmp.js';

const KEY = 'sk-test-123';
let server: FakeOpenAIServer;

beforeAll(async () => {
  server = await startFakeOpenAIServer(KEY);
});
afterAll(async () => {
  await server.close();
});

describe('parsing generated tasks', () => {
  it('reads numbered triples, a reply that continues the prompt, and <noinput>', () => {
    const reply = ' Name a colour.\n4. Input:\n<noinput>\n4. Output:\nBlue\n###\n5. Instruction: Add the numbers.\n5. Input:\n2 and 3\n5. Output:\n5\nwhich is\nodd\n###\n6. Instruction: Missing output here.\n6. Input:\nx';
    expect(parseGeneratedTasks(reply, 4)).toEqual([
      { number: 4, instruction: 'Name a colour.', input: '', output: 'Blue' },
      { number: 5, instruction: 'Add the numbers.', input: '2 and 3', output: '5\nwhich is\nodd' },
    ]);
    expect(parseGeneratedTasks('###\n2. Instruction: A\n2. Output: B', 2)).toEqual([{ number: 2, instruction: 'A', input: '', output: 'B' }]);
    expect(parseGeneratedTasks('Sorry, I cannot help with that.', 4)).toEqual([]);
  });

  it('builds a prompt from the bundled seed tasks', async () => {
    const seeds = await loadSeedTasks();
    expect(seeds.length).toBeGreaterThanOrEqual(20);
    const prompt = buildSelfInstructPrompt(seeds.slice(0, 3), 5);
    expect(prompt).toContain('up to task 8');
    expect(prompt).toContain(`1. Instruction: ${seeds[0]!.instruction}`);
    expect(prompt.endsWith('4. Instruction:')).toBe(true);
  });
});

describe('self-instruct against an OpenAI-compatible server', () => {
  it('generates, filters and adds a new version with provenance', async () => {
    const { ws } = tempWorkspace('selfinstruct');
    const dir = makeTempDir('self-instruct');
    const { dataset } = await importDataset(ws, writeJsonFile(dir, 'base.json', alpacaRecords(10)), { name: 'grow' });
    const seeds = await loadSeedTasks();
    const generator = new OpenAICompatibleGenerator({ baseUrl: `${server.baseUrl}/v1/`, model: 'tiny-llama', apiKey: KEY });
    const before = server.requests.length;
    const progress: number[] = [];

    const result = await selfInstruct(ws, {
      datasetId: dataset.id,
      generator,
      target: 12,
      seed: 5,
      tasksPerPrompt: 8,
      onProgress: (p) => progress.push(p.accepted),
    });

    // Each request went over HTTP with the model, key, seed and a prompt of three seed tasks.
    const sent = server.requests.slice(before);
    expect(sent).toHaveLength(result.requests);
    expect(sent.map((r) => r.body.seed)).toEqual(sent.map((_, k) => 5 + k));
    for (const r of sent) {
      expect(r.authorization).toBe(`Bearer ${KEY}`);
      expect(r.body.model).toBe('tiny-llama');
      expect(r.body.messages[0]!.content).toMatch(/\n4\. Instruction:$/);
      const shown = [...r.body.messages[0]!.content.matchAll(/^\d+\. Instruction: (.*)$/gm)].map((m) => m[1]);
      expect(shown).toHaveLength(3);
      for (const s of shown) expect(seeds.map((x) => x.instruction)).toContain(s);
    }

    // The server puts four bad tasks first in every reply; each was caught by its own filter.
    expect(result.rejected).toMatchObject({ 'banned-word': result.requests, 'too-short': result.requests, 'empty-output': result.requests });
    expect(result.rejected.similar).toBeGreaterThanOrEqual(result.requests); // at least the seed copies
    expect(result.added).toHaveLength(12);
    expect(progress.at(-1)).toBe(12);

    // What was added: distinct from each other, from the seeds and from the dataset, by ROUGE-L.
    const existing = [...alpacaRecords(10), ...seeds].map((e) => e.instruction);
    result.added.forEach((a, k) => {
      for (const other of [...existing, ...result.added.slice(0, k).map((x) => x.instruction)]) expect(rougeL(a.instruction, other)).toBeLessThan(0.7);
      expect(a.output).not.toBe('');
    });
    expect(result.added.some((a) => a.input !== '')).toBe(true);

    const version = result.version!;
    expect(version).toMatchObject({ kind: 'generate', version: 2, changes: 12 });
    expect(version.provenance).toMatchObject({
      method: 'self-instruct',
      generator: { kind: 'openai-compatible', url: `${server.baseUrl}/v1/chat/completions`, model: 'tiny-llama' },
      seeds: { source: 'bundled', count: seeds.length, perPrompt: 3 },
      requests: result.requests,
    });
    expect(JSON.stringify(version.provenance)).not.toContain(KEY);
    const generated = ws.datasets.query(dataset.id, { tags: ['self-instruct'], limit: 100 });
    expect(generated.total).toBe(12);
    expect(generated.items.every((e) => e.source === 'self-instruct')).toBe(true);

    // Undo removes the whole generation.
    ws.datasets.undo(dataset.id);
    expect(ws.datasets.count(dataset.id)).toBe(10);
    ws.close();
  });

  it('the same seed gives the same examples (endpoint from the workspace settings)', async () => {
    const { ws } = tempWorkspace('selfinstruct-repeat');
    expect(() => endpointGeneratorFromSettings(ws)).toThrow(/no generator endpoint configured/);
    ws.settings.set(GENERATOR_ENDPOINT_SETTING, { baseUrl: server.baseUrl, model: 'tiny-llama', apiKey: KEY });
    const generator = endpointGeneratorFromSettings(ws);
    const a = ws.datasets.create('a');
    const b = ws.datasets.create('b');
    const ra = await selfInstruct(ws, { datasetId: a.id, generator, target: 5, seed: 11 });
    const rb = await selfInstruct(ws, { datasetId: b.id, generator, target: 5, seed: 11 });
    expect(rb.added).toEqual(ra.added);
    ws.close();
  });

  it('reports server errors and unreachable servers clearly, and adds nothing', async () => {
    const { ws } = tempWorkspace('selfinstruct-errors');
    const ds = ws.datasets.create('d');
    server.failNext(1, 503);
    const generator = new OpenAICompatibleGenerator({ baseUrl: server.baseUrl, model: 'm', apiKey: KEY });
    await expect(selfInstruct(ws, { datasetId: ds.id, generator, target: 3 })).rejects.toThrow(/chat\/completions answered 503 Service Unavailable: .*overloaded/);
    const wrongKey = new OpenAICompatibleGenerator({ baseUrl: server.baseUrl, model: 'm', apiKey: 'nope' });
    await expect(wrongKey.complete('hi')).rejects.toThrow(/answered 401/);
    // A port nothing listens on (the server's own port after closing a second server).
    const other = await startFakeOpenAIServer(KEY);
    await other.close();
    const gone = new OpenAICompatibleGenerator({ baseUrl: other.baseUrl, model: 'm' });
    const err = await gone.complete('hi').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GeneratorError);
    expect((err as Error).message).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions: ECONNREFUSED/);
    expect(ws.datasets.get(ds.id).version).toBe(1);
    expect(() => new OpenAICompatibleGenerator({ baseUrl: 'localhost:8080', model: 'm' })).toThrow(/must start with http/);
    ws.close();
  });
});
