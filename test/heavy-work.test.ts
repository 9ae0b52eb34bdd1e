// Heavy dataset work stays off the server's process: a file is streamed to disk as it is uploaded (PUT
// /api/upload), validated, imported and searched for duplicates in a dataset process of its own, and the server
// keeps answering `system.info` meanwhile. Bodies over their limit get a 413 the client can read, not a reset.
// Over real HTTP, with the real engine host bundle.

import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, ApiResponse, UploadResult } from '../src-shared/api.js';
import { forkSpawner } from '../src-main/host/engine-process.js';
import { newToken } from '../src-main/server/auth.js';
import { type RunningServer, startHttpServer } from '../src-main/server/http-server.js';
import { type AppService, createAppService } from '../src-main/service/index.js';
import { buildAppParts, HOST_ENTRY } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

const MAX_BODY = 1 * 2 ** 20;
const MAX_UPLOAD = 64 * 2 ** 20;
/** Enough records that reading and writing them takes seconds on a slow machine. */
const RECORDS = 120_000;

let service: AppService;
let server: RunningServer;
let token: string;
let dir: string;
const events: ApiEvent[] = [];

beforeAll(async () => {
  buildAppParts();
  dir = makeTempDir('heavy-work');
  service = createAppService({ workspaceDir: join(dir, 'ws'), spawnHost: forkSpawner(HOST_ENTRY), transport: 'http', version: 'test', log: () => undefined, maxUploadBytes: MAX_UPLOAD });
  service.events.subscribe((e) => events.push(e));
  token = newToken();
  server = await startHttpServer({ service, token, host: '127.0.0.1', port: 0, staticDir: null, maxBodyBytes: MAX_BODY });
});

afterAll(async () => {
  await server?.close();
  await service?.close();
});

const auth = () => ({ Authorization: `Bearer ${token}` });

async function call<T>(method: string, input: unknown): Promise<ApiResponse<T>> {
  const res = await fetch(`http://127.0.0.1:${server.port}/api/call/${method}`, { method: 'POST', headers: auth(), body: JSON.stringify(input) });
  return (await res.json()) as ApiResponse<T>;
}

async function upload(name: string, body: string | Blob): Promise<{ status: number; answer: ApiResponse<UploadResult> }> {
  const res = await fetch(`http://127.0.0.1:${server.port}/api/upload?name=${encodeURIComponent(name)}`, { method: 'PUT', headers: auth(), body });
  return { status: res.status, answer: (await res.json()) as ApiResponse<UploadResult> };
}

/** A body sent in chunks without a Content-Length, so that only counting can find it too large. */
function chunkedPut(path: string, chunks: number, chunkBytes: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method: 'PUT', headers: auth() }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    let sent = 0;
    const chunk = Buffer.alloc(chunkBytes, 'x');
    const more = () => {
      while (sent < chunks) {
        sent++;
        if (!req.write(chunk)) return void req.once('drain', more);
      }
      req.end();
    };
    more();
  });
}

/**
 * Calls system.info every `everyMs` until `until` settles; returns the longest wait between two answers. The
 * client lives in the server's process (as the Electron window's IPC would), so a blocked event loop delays the
 * next call too: the gap between answers, not a single call's time, is what a user waits.
 */
async function slowestInfoWhile(until: Promise<unknown>, everyMs = 20): Promise<{ slowestMs: number; calls: number }> {
  let done = false;
  void until.finally(() => (done = true)).catch(() => undefined);
  let slowestMs = 0;
  let calls = 0;
  let last = performance.now();
  while (!done) {
    const answer = await call('system.info', {});
    expect(answer.ok).toBe(true);
    const now = performance.now();
    slowestMs = Math.max(slowestMs, now - last - everyMs);
    last = now;
    calls++;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return { slowestMs, calls };
}

function bigDataset(): string {
  const lines: string[] = [];
  for (let i = 0; i < RECORDS; i++) {
    lines.push(JSON.stringify({ instruction: `Write the number ${i} in words, then explain how it is spelled.`, input: `number ${i % 997}`, output: `The number ${i} is written out in words here; record ${i}.` }));
  }
  // Every 1000th record repeats an earlier one: the duplicate search has something to find.
  for (let i = 0; i < RECORDS; i += 1000) lines.push(lines[i]!);
  return `${lines.join('\n')}\n`;
}

describe('uploads', () => {
  it('answers 413 for a declared length over the limit, before reading the body', async () => {
    const { status, answer } = await upload('big.jsonl', new Blob([new Uint8Array(MAX_UPLOAD + 1)]));
    expect(status).toBe(413);
    expect(answer).toMatchObject({ ok: false, error: { code: 'too_large', message: expect.stringContaining('64 MiB') } });
  });

  it('answers 413 for a streamed body that grows over the limit, and keeps nothing of it', async () => {
    const { status, body } = await chunkedPut('/api/upload?name=big.jsonl', 80, 2 ** 20);
    expect(status).toBe(413);
    expect(JSON.parse(body)).toMatchObject({ ok: false, error: { code: 'too_large' } });
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(join(dir, 'ws', 'uploads'))).toEqual([]);
  });

  it('answers 413 for a JSON call over its limit instead of resetting the connection', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/api/call/datasets.validate`, {
      method: 'POST',
      headers: auth(),
      body: JSON.stringify({ source: { kind: 'text', fileName: 'a.json', text: 'x'.repeat(MAX_BODY) }, options: {} }),
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ ok: false, error: { code: 'too_large', message: expect.stringContaining('/api/upload') } });
  });

  it('refuses an upload without a file name, or with folders in it', async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/api/upload`, { method: 'PUT', headers: auth(), body: 'x' });
    expect(res.status).toBe(400);
    expect((await upload('../evil.json', 'x')).answer).toMatchObject({ ok: false, error: { code: 'user', message: expect.stringContaining('without folders') } });
  });
});

describe('a big import off the main process', () => {
  it('validates, imports and searches duplicates while system.info keeps answering quickly', async () => {
    const text = bigDataset();
    const uploaded = await upload('big.jsonl', text);
    expect(uploaded.answer).toMatchObject({ ok: true, value: { fileName: 'big.jsonl', bytes: Buffer.byteLength(text) } });
    const source = { kind: 'upload', uploadId: (uploaded.answer as { value: UploadResult }).value.uploadId };

    const t0 = performance.now();
    const imported = call<{ imported: number; dataset: { id: string } }>('datasets.import', { source, options: {}, name: 'big', onInvalid: 'reject' });
    const { slowestMs, calls } = await slowestInfoWhile(imported);
    const importMs = performance.now() - t0;
    const answer = await imported;
    if (!answer.ok) throw new Error(answer.error.message);
    expect(answer.value.imported).toBe(RECORDS + RECORDS / 1000);
    // Done in this process, the import blocked the server for 5.2 s of its 6.7 s (measured); here the longest
    // wait is a small part of it (84 ms on the 2-core dev machine, where the target is 100 ms).
    console.log(`import of ${answer.value.imported} records: ${importMs.toFixed(0)} ms; system.info x${calls}, slowest ${slowestMs.toFixed(0)} ms`);
    expect(calls).toBeGreaterThan(5);
    expect(slowestMs).toBeLessThan(importMs / 5);
    expect(events.some((e) => e.type === 'task.progress' && e.label === 'Importing big.jsonl' && !e.finished && e.done > 0)).toBe(true);

    const duplicates = call<{ kind: string; examples: unknown[] }[]>('datasets.duplicates', { datasetId: answer.value.dataset.id, near: false });
    await slowestInfoWhile(duplicates);
    const groups = await duplicates;
    if (!groups.ok) throw new Error(groups.error.message);
    expect(groups.value).toHaveLength(RECORDS / 1000);
    expect(groups.value.every((g) => g.kind === 'exact' && g.examples.length === 2)).toBe(true);
  }, 180_000);

  it('cancels an import: the task ends as cancelled and no dataset is made', async () => {
    const file = join(dir, 'cancel.jsonl');
    writeFileSync(file, bigDataset());
    const since = events.length;
    const imported = call('datasets.import', { source: { kind: 'path', path: file }, options: {}, name: 'cancelled', onInvalid: 'reject' });
    // The task's id comes with its first progress event, sent as it starts.
    let taskId: string | null = null;
    while (!taskId) {
      await new Promise((r) => setTimeout(r, 20));
      const started = events.slice(since).find((e) => e.type === 'task.progress' && e.label === 'Importing cancel.jsonl');
      taskId = started?.type === 'task.progress' ? started.taskId : null;
    }
    expect(await call('tasks.cancel', { taskId })).toMatchObject({ ok: true });
    const answer = await imported;
    expect(answer).toMatchObject({ ok: false, error: { code: 'user', message: 'import cancelled' } });
    const list = await call<{ name: string }[]>('datasets.list', {});
    expect(list.ok && list.value.map((d) => d.name)).not.toContain('cancelled');
    expect(events.slice(since).some((e) => e.type === 'task.progress' && e.finished && e.error === 'import cancelled')).toBe(true);
  }, 120_000);
});
