// Serve mode's HTTP server: the built renderer as static files, the API as POST /api/call/<method>, the
// events as server-sent events on GET /api/events, files as PUT /api/upload?name=<file name> (the body streamed
// to disk, see service/uploads.ts), and an OpenAI-compatible API under /v1/ (openai-routes.ts).
// Every route checks the access token (see auth.ts). A body over its limit is answered 413, not a reset.

import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { extname, join, normalize, sep } from 'node:path';
import type { ApiResponse } from '../../src-shared/api.js';
import type { AppService } from '../service/index.js';
import { bearerToken, cookieName, cookieToken, hostAllowed, originAllowed, sameToken } from './auth.js';
import { handleOpenAIRequest, isOpenAIPath } from './openai-routes.js';
import { decodedOrNull, discardRest, readBody } from './request-body.js';

export interface HttpServerOptions {
  service: AppService;
  token: string;
  host: string;
  port: number;
  /** The built renderer (dist/renderer); null serves the API only. */
  staticDir: string | null;
  /** Largest JSON request body in bytes (a picture travels as base64; big files go through /api/upload). */
  maxBodyBytes?: number;
}

export interface RunningServer {
  server: Server;
  port: number;
  /** The address to open, token included. */
  url: string;
  close(): Promise<void>;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

/** The page may load only its own scripts and talk only to this server. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  // Svelte and chart.js set style attributes at run time.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function securityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // The token is in the page's URL: never send it to another site as a Referer.
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function refuse(res: ServerResponse, status: number, message: string): void {
  const code = status === 401 || status === 403 ? 'unauthorized' : status === 413 ? 'too_large' : 'invalid_input';
  sendJson(res, status, { ok: false, error: { code, message } });
}

/** HTTP status of an API answer. */
function statusOf(answer: ApiResponse<unknown>): number {
  if (answer.ok) return 200;
  return { not_found: 404, internal: 500, too_large: 413, unauthorized: 401 }[answer.error.code as string] ?? 400;
}

/** Answers 413 to a body over its limit; the rest of the body is discarded, then the connection closes. */
function refuseTooLarge(req: IncomingMessage, res: ServerResponse, message: string): void {
  res.setHeader('Connection', 'close');
  refuse(res, 413, message);
  discardRest(req);
}

/** The declared body length is already over the limit. */
function declaredOver(req: IncomingMessage, limit: number): boolean {
  const length = Number(req.headers['content-length']);
  return Number.isFinite(length) && length > limit;
}

export function startHttpServer(opts: HttpServerOptions): Promise<RunningServer> {
  const { service, token } = opts;
  const maxBody = opts.maxBodyBytes ?? 128 * 2 ** 20;
  const sockets = new Set<ServerResponse>();
  let port = opts.port;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    securityHeaders(res);
    if (!hostAllowed(req, opts.host, port)) return refuse(res, 403, 'this server answers only to its loopback address');
    const url = new URL(req.url ?? '/', 'http://local');

    if (isOpenAIPath(url.pathname)) return handleOpenAIRequest(req, res, url, { completions: service.completions, token });

    if (url.pathname.startsWith('/api/call/')) {
      if (req.method !== 'POST') return refuse(res, 405, 'API calls are POST requests');
      if (!originAllowed(req)) return refuse(res, 403, 'cross-origin API calls are not allowed');
      if (!sameToken(token, bearerToken(req))) return refuse(res, 401, 'missing or wrong access token: open the URL that `adapter-studio serve` printed');
      const method = decodedOrNull(url.pathname.slice('/api/call/'.length));
      if (method === null) return refuse(res, 400, 'the method name in the URL is not valid percent-encoding');
      const tooLarge = `the request is larger than ${Math.round(maxBody / 2 ** 20)} MiB: send big files with PUT /api/upload`;
      if (declaredOver(req, maxBody)) return refuseTooLarge(req, res, tooLarge);
      let input: unknown;
      try {
        const body = await readBody(req, maxBody);
        if (body === null) return refuseTooLarge(req, res, tooLarge);
        input = body.trim() === '' ? {} : JSON.parse(body);
      } catch (e) {
        return refuse(res, 400, `the request body is not valid JSON: ${(e as Error).message}`);
      }
      const answer = await service.call(method, input);
      return sendJson(res, statusOf(answer), answer);
    }

    if (url.pathname === '/api/upload') {
      if (req.method !== 'PUT') return refuse(res, 405, 'uploads are PUT requests');
      if (!originAllowed(req)) return refuse(res, 403, 'cross-origin uploads are not allowed');
      if (!sameToken(token, bearerToken(req))) return refuse(res, 401, 'missing or wrong access token: open the URL that `adapter-studio serve` printed');
      const fileName = url.searchParams.get('name');
      if (!fileName) return refuse(res, 400, 'name the uploaded file: PUT /api/upload?name=<file name>');
      if (declaredOver(req, service.maxUploadBytes)) return refuseTooLarge(req, res, `the file is larger than the upload limit of ${Math.round(service.maxUploadBytes / 2 ** 20)} MiB`);
      // Through a pipe, so that a refused upload stops the copy without destroying the request: the 413 still
      // reaches a client that is sending.
      const body = new PassThrough();
      req.pipe(body);
      const answer = await service.upload(fileName, body);
      req.unpipe(body);
      if (!answer.ok && answer.error.code === 'too_large') return refuseTooLarge(req, res, answer.error.message);
      return sendJson(res, statusOf(answer), answer);
    }

    if (url.pathname === '/api/events') {
      const given = url.searchParams.get('token') ?? bearerToken(req) ?? cookieToken(req, port);
      if (!sameToken(token, given)) return refuse(res, 401, 'missing or wrong access token');
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      res.write('retry: 1500\n\n');
      const send = (event: unknown) => res.write(`data: ${JSON.stringify(event)}\n\n`);
      send({ type: 'hello', at: Date.now() });
      const unsubscribe = service.events.subscribe(send);
      // A comment now and then keeps proxies and idle timeouts from closing a quiet stream.
      const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
      sockets.add(res);
      req.on('close', () => {
        clearInterval(keepAlive);
        unsubscribe();
        sockets.delete(res);
      });
      return;
    }

    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'only GET is served here');
    const queryToken = url.searchParams.get('token');
    const authorised = sameToken(token, queryToken) || sameToken(token, cookieToken(req, port)) || sameToken(token, bearerToken(req));
    if (!authorised) {
      res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('Adapter Studio: this page needs its access token. Open the full URL that `adapter-studio serve` printed (it ends in ?token=...).\n');
      return;
    }
    if (sameToken(token, queryToken)) {
      res.setHeader('Set-Cookie', `${cookieName(port)}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`);
    }
    serveStatic(opts.staticDir, url.pathname, res);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      console.error('request failed:', e);
      if (!res.headersSent) sendJson(res, 500, { ok: false, error: { code: 'internal', message: (e as Error).message } });
      else res.end();
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      port = (server.address() as AddressInfo).port;
      const shownHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
      resolve({
        server,
        port,
        url: `http://${shownHost}:${port}/?token=${token}`,
        close: () =>
          new Promise<void>((done) => {
            for (const res of sockets) res.end();
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

function serveStatic(root: string | null, pathname: string, res: ServerResponse): void {
  if (!root || !existsSync(join(root, 'index.html'))) {
    res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('The user interface is not built: run `npm run build` (the API under /api/ works without it).\n');
    return;
  }
  let relative: string;
  try {
    relative = normalize(decodeURIComponent(pathname)).replace(/^([/\\])+/, '');
  } catch {
    res.writeHead(400).end();
    return;
  }
  let file = join(root, relative);
  if (!file.startsWith(root + sep) && file !== root) {
    res.writeHead(403).end();
    return;
  }
  const exists = relative !== '' && existsSync(file) && !statSync(file).isDirectory();
  if (!exists && extname(relative) !== '') {
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('not found\n');
    return;
  }
  // Anything else without a file is a page of the app: its routes live in the URL's #fragment.
  if (!exists) file = join(root, 'index.html');
  const type = MIME[extname(file)] ?? 'application/octet-stream';
  // Built assets have content hashes in their names; the page itself must always be fresh.
  const cache = file.endsWith('index.html') ? 'no-store' : 'public, max-age=31536000, immutable';
  res.writeHead(200, { 'Content-Type': type, 'Cache-Control': cache, 'Content-Length': statSync(file).size });
  createReadStream(file).pipe(res);
}
