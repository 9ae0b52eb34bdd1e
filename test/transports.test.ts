// Every API method is reachable through both transports and answers with the contract's envelope: over
// HTTP (serve mode), and through the preload bridge (buildBridge, the code the Electron preload exposes),
// here carried by an in-process channel that does what ipcMain.handle does in src-main/electron/main.ts.

import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_METHODS, type ApiMethod, type ApiResponse } from '../src-shared/api.js';
import { buildBridge, channelFor, EVENT_CHANNEL, UPLOAD_CHANNEL } from '../src-main/electron/bridge.js';
import { handleUploadRequest } from '../src-main/electron/upload-ipc.js';
import { forkSpawner } from '../src-main/host/engine-process.js';
import { newToken } from '../src-main/server/auth.js';
import { type RunningServer, startHttpServer } from '../src-main/server/http-server.js';
import { type AppService, createAppService } from '../src-main/service/index.js';
import { HOST_ENTRY } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

let service: AppService;
let server: RunningServer;
let token: string;

/** Requests that every method must refuse politely: the empty request (or, where that is valid, an unknown id). */
function probe(method: ApiMethod): unknown {
  const ids: Record<string, unknown> = { modelId: 'model_none', datasetId: 'ds_none', runId: 'run_none', chatId: 'chat_none', comparisonId: 'cmps_none', streamId: 'stream_none', taskId: 'task_none' };
  return method.endsWith('.list') || method === 'system.info' || method === 'settings.get' ? {} : ids;
}

beforeAll(async () => {
  const dir = makeTempDir('transports');
  service = createAppService({ workspaceDir: join(dir, 'ws'), spawnHost: forkSpawner(HOST_ENTRY), transport: 'http', version: 'test', log: () => undefined });
  token = newToken();
  server = await startHttpServer({ service, token, host: '127.0.0.1', port: 0, staticDir: null });
});

afterAll(async () => {
  await server?.close();
  await service?.close();
});

function expectEnvelope(method: string, answer: ApiResponse<unknown>): void {
  if (answer.ok) return;
  // Refused for the request's content (bad fields, unknown ids), never because the method is missing.
  expect(answer.error.code, `${method}: ${answer.error.message}`).toMatch(/^(invalid_input|not_found|user|conflict)$/);
  expect(answer.error.message).not.toMatch(/unknown API method/);
}

describe('HTTP', () => {
  it.each(API_METHODS)('%s answers over HTTP', async (method) => {
    const res = await fetch(`http://127.0.0.1:${server.port}/api/call/${method}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
      body: JSON.stringify(probe(method)),
    });
    expectEnvelope(method, (await res.json()) as ApiResponse<unknown>);
  });
});

describe('preload bridge', () => {
  // What main.ts registers with ipcMain.handle: one channel per method, answered by service.call.
  const handlers = new Map<string, (input: unknown) => Promise<unknown>>();
  const listeners = new Map<string, Set<(event: unknown, payload: unknown) => void>>();
  const channel = {
    invoke: (ch: string, input: unknown) => {
      const handler = handlers.get(ch);
      if (!handler) return Promise.reject(new Error(`No handler registered for '${ch}'`));
      return handler(input);
    },
    on: (ch: string, l: (event: unknown, payload: unknown) => void) => listeners.set(ch, (listeners.get(ch) ?? new Set()).add(l)),
    removeListener: (ch: string, l: (event: unknown, payload: unknown) => void) => listeners.get(ch)?.delete(l),
  };

  beforeAll(() => {
    for (const method of API_METHODS) handlers.set(channelFor(method), (input) => service.call(method, input));
    handlers.set(UPLOAD_CHANNEL, (request) => handleUploadRequest(service, request));
    service.events.subscribe((e) => {
      for (const l of listeners.get(EVENT_CHANNEL) ?? []) l({}, e);
    });
  });

  it('exposes exactly one function per API method and nothing else', () => {
    const bridge = buildBridge(channel);
    expect(Object.keys(bridge.methods).sort()).toEqual([...API_METHODS].sort());
    expect(Object.keys(bridge).sort()).toEqual(['choosePath', 'methods', 'onEvent', 'upload']);
  });

  it('uploads a file by its bytes or, when it is on disk, by its path; either imports', async () => {
    const text = JSON.stringify([{ instruction: 'Say hi', input: '', output: 'hi' }]);
    const onDisk = join(makeTempDir('bridge-upload'), 'hi.json');
    writeFileSync(onDisk, text);
    for (const pathForFile of [() => '', () => onDisk]) {
      const answer = await buildBridge(channel, pathForFile).upload(new File([text], 'hi.json'));
      if (!answer.ok) throw new Error(answer.error.message);
      expect(answer.value).toMatchObject({ fileName: 'hi.json', bytes: text.length });
      const report = await service.call('datasets.validate', { source: { kind: 'upload', uploadId: answer.value.uploadId }, options: {} });
      expect(report).toMatchObject({ ok: true, value: { examples: 1, invalidRecords: 0 } });
    }
    // A folder is not a file to upload.
    expect(await buildBridge(channel, () => dirname(onDisk)).upload(new File([], 'x.json'))).toMatchObject({ ok: false, error: { code: 'invalid_input' } });
  });

  it.each(API_METHODS)('%s answers through the bridge', async (method) => {
    const bridge = buildBridge(channel);
    expectEnvelope(method, await bridge.methods[method](probe(method)));
  });

  it('delivers events and stops after unsubscribe', async () => {
    const bridge = buildBridge(channel);
    const seen: string[] = [];
    const off = bridge.onEvent((e) => seen.push(e.type));
    await bridge.methods['settings.update']({ theme: 'dark' });
    service.events.emit({ type: 'models.changed' });
    off();
    service.events.emit({ type: 'models.changed' });
    expect(seen).toEqual(['models.changed']);
  });
});
