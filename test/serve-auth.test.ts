// Serve mode's access rules over real HTTP: the token is needed on every request and event stream, API calls
// need it in the Authorization header (a cookie is not enough), loopback servers refuse foreign Host headers
// (DNS rebinding), cross-origin POSTs are refused, static files cannot escape the renderer folder, and
// binding beyond loopback needs an explicit flag.

import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveCommand } from '../src-main/cli/serve-command.js';
import { forkSpawner } from '../src-main/host/engine-process.js';
import { cookieName, hostAllowed, isLoopback, newToken, sameToken } from '../src-main/server/auth.js';
import { type RunningServer, startHttpServer } from '../src-main/server/http-server.js';
import { type AppService, createAppService } from '../src-main/service/index.js';
import { HOST_ENTRY } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

let service: AppService;
let server: RunningServer;
let token: string;
let base: string;

/** A raw request, so that headers browsers would not let us set (Host) can be sent. */
function raw(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      // An event stream never ends by itself: take what arrived first.
      if (res.headers['content-type']?.startsWith('text/event-stream')) setTimeout(() => req.destroy(), 200);
    });
    req.on('error', (e) => (e.message === 'socket hang up' ? undefined : reject(e)));
    req.on('close', () => undefined);
    req.end(opts.body);
  });
}

function events(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      const done = () => resolve({ status: res.statusCode!, body });
      if (res.statusCode !== 200) res.on('end', done);
      else
        setTimeout(() => {
          done();
          req.destroy();
        }, 300);
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  const dir = makeTempDir('serve-auth');
  const renderer = join(dir, 'renderer');
  mkdirSync(join(renderer, 'assets'), { recursive: true });
  writeFileSync(join(renderer, 'index.html'), '<!doctype html><title>Adapter Studio</title>');
  writeFileSync(join(renderer, 'assets', 'app.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret.txt'), 'do not serve');
  service = createAppService({ workspaceDir: join(dir, 'ws'), spawnHost: forkSpawner(HOST_ENTRY), transport: 'http', version: 'test', log: () => undefined });
  token = newToken();
  server = await startHttpServer({ service, token, host: '127.0.0.1', port: 0, staticDir: renderer });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server?.close();
  await service?.close();
});

describe('the token', () => {
  it('is long, random and compared in constant time', () => {
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(newToken()).not.toBe(token);
    expect(sameToken(token, token)).toBe(true);
    expect(sameToken(token, token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).toBe(false);
    expect(sameToken(token, undefined)).toBe(false);
  });

  it('the printed URL carries it', () => {
    expect(server.url).toBe(`${base}/?token=${token}`);
  });

  it('API calls need it as a Bearer header', async () => {
    const call = (headers: Record<string, string>) => fetch(`${base}/api/call/system.info`, { method: 'POST', headers, body: '{}' });
    const none = await call({});
    expect(none.status).toBe(401);
    expect((await none.json()).error.code).toBe('unauthorized');
    expect((await call({ Authorization: 'Bearer wrong' })).status).toBe(401);
    const ok = await call({ Authorization: `Bearer ${token}` });
    expect(ok.status).toBe(200);
    expect((await ok.json()).value.transport).toBe('http');
  });

  it('a cookie alone does not authorise API calls (no cross-site request forgery)', async () => {
    const res = await fetch(`${base}/api/call/system.info`, { method: 'POST', headers: { Cookie: `${cookieName(server.port)}=${token}` }, body: '{}' });
    expect(res.status).toBe(401);
  });

  it('the page loads with ?token= and sets a strict, HttpOnly cookie that then loads its assets', async () => {
    expect((await fetch(`${base}/`)).status).toBe(401);
    const page = await fetch(`${base}/?token=${token}`);
    expect(page.status).toBe(200);
    const cookie = page.headers.get('set-cookie')!;
    expect(cookie).toMatch(new RegExp(`^${cookieName(server.port)}=`));
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect((await fetch(`${base}/assets/app.js`)).status).toBe(401);
    const asset = await fetch(`${base}/assets/app.js`, { headers: { Cookie: cookie.split(';')[0] } });
    expect(asset.status).toBe(200);
    expect(await asset.text()).toBe('console.log(1)');
  });

  it('the event stream needs it too, and greets with hello', async () => {
    expect((await events('/api/events')).status).toBe(401);
    expect((await events('/api/events?token=nope')).status).toBe(401);
    const ok = await events(`/api/events?token=${token}`);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatch(/data: \{"type":"hello"/);
  });
});

describe('other protections', () => {
  it('a loopback server refuses a foreign Host header (DNS rebinding)', async () => {
    const res = await raw(`/api/call/system.info`, { method: 'POST', headers: { Host: `evil.example:${server.port}`, Authorization: `Bearer ${token}` }, body: '{}' });
    expect(res.status).toBe(403);
    const local = await raw(`/api/call/system.info`, { method: 'POST', headers: { Host: `localhost:${server.port}`, Authorization: `Bearer ${token}` }, body: '{}' });
    expect(local.status).toBe(200);
    expect(hostAllowed({ headers: { host: '127.0.0.1:9' } } as never, '127.0.0.1', 9)).toBe(true);
    expect(hostAllowed({ headers: { host: '127.0.0.1:10' } } as never, '127.0.0.1', 9)).toBe(false);
    expect(hostAllowed({ headers: {} } as never, '127.0.0.1', 9)).toBe(false);
  });

  it('refuses cross-origin API calls even with the token', async () => {
    const res = await fetch(`${base}/api/call/system.info`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, Origin: 'http://evil.example' }, body: '{}' });
    expect(res.status).toBe(403);
  });

  it('static files cannot escape the renderer folder; pages fall back to index.html, missing assets are 404', async () => {
    const cookie = `${cookieName(server.port)}=${token}`;
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt']) {
      const res = await raw(path, { headers: { Cookie: cookie, Host: `127.0.0.1:${server.port}` } });
      expect(res.body).not.toContain('do not serve');
    }
    expect((await raw('/assets/missing.js', { headers: { Cookie: cookie, Host: `127.0.0.1:${server.port}` } })).status).toBe(404);
    expect((await raw('/datasets', { headers: { Cookie: cookie, Host: `127.0.0.1:${server.port}` } })).body).toContain('<title>Adapter Studio');
  });

  it('sends a strict Content-Security-Policy and no Referer (the token is in the URL)', async () => {
    const res = await fetch(`${base}/?token=${token}`);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(res.headers.get('content-security-policy')).not.toMatch(/unsafe-eval/);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
  });

  it('bad API requests get the contract error, not a crash', async () => {
    const post = (path: string, body: string) => fetch(`${base}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body });
    const notJson = await post('/api/call/system.info', '{');
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error.message).toMatch(/not valid JSON/);
    const unknown = await post('/api/call/no.such', '{}');
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.message).toMatch(/unknown API method "no.such"/);
    const invalid = await post('/api/call/datasets.query', '{"datasetId": 5}');
    expect(invalid.status).toBe(400);
    expect((await invalid.json()).error).toMatchObject({ code: 'invalid_input', issues: [{ path: 'datasetId' }] });
    expect((await fetch(`${base}/api/call/system.info`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(405);
  });

  it('inputs the contract used to let through are 400s with a message, never 500s naming server paths', async () => {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as { error: { message: string; issues?: { path: string; message: string }[] } } };
    };
    const badEscape = await fetch(`${base}/api/call/system.%ff`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: '{}' });
    expect(badEscape.status).toBe(400);
    expect(((await badEscape.json()) as { error: { message: string } }).error.message).toMatch(/not valid percent-encoding/);
    const model = await fetch(`${base}/v1/models/%ff`, { headers: { Authorization: `Bearer ${token}` } });
    expect(model.status).toBe(400);
    expect(((await model.json()) as { error: { message: string } }).error.message).toMatch(/model id in the URL is not valid percent-encoding/);

    const nul = await post('/api/call/datasets.validate', { source: { kind: 'text', fileName: 'a\u0000.json', text: '[]' }, options: {} });
    expect(nul.status).toBe(400);
    expect(nul.body.error.issues![0]).toMatchObject({ path: 'source.fileName', message: expect.stringMatching(/NUL/) });
    const nulPath = await post('/api/call/models.add', { path: '/tmp/a\u0000b' });
    expect(nulPath.status).toBe(400);
    expect(nulPath.body.error.issues![0]).toMatchObject({ path: 'path', message: 'must not contain a NUL character' });
    const upload = await post('/api/call/images.upload', { fileName: 'x\u0000.png', base64: 'AAAA' });
    expect(upload.status).toBe(400);

    const proc = await post('/api/call/settings.switchWorkspace', { path: '/proc/self' });
    expect(proc.status).toBe(400);
    expect(proc.body.error.message).not.toMatch(/failed unexpectedly/);
    expect(JSON.stringify(proc.body)).not.toMatch(/\/tmp\/|at .*\.js:\d+/);
  });
});

describe('binding', () => {
  it('loopback names are recognised', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopback(h)).toBe(true);
    for (const h of ['0.0.0.0', '192.168.1.5', '::', 'example.com']) expect(isLoopback(h)).toBe(false);
  });

  it('a non-loopback host needs --allow-remote', async () => {
    const io = { stdout: () => undefined, stderr: () => undefined };
    await expect(serveCommand(['--host', '0.0.0.0', '--port', '0'], io)).rejects.toThrow(/--allow-remote/);
  });

  it('with --allow-remote it warns and serves (token still required)', async () => {
    let err = '';
    let out = '';
    const stop = new AbortController();
    const dir = makeTempDir('serve-remote');
    const done = serveCommand(['--host', '0.0.0.0', '--allow-remote', '--port', '0', '--workspace', dir, '--json'], { stdout: (s) => (out += s), stderr: (s) => (err += s) }, stop.signal);
    while (!out.includes('\n')) await new Promise((r) => setTimeout(r, 20));
    expect(err).toMatch(/warning: serving on 0\.0\.0\.0/);
    const info = JSON.parse(out.split('\n')[0]) as { port: number; token: string };
    const res = await fetch(`http://127.0.0.1:${info.port}/api/call/system.info`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(401);
    stop.abort();
    expect(await done).toBe(0);
  });
});
