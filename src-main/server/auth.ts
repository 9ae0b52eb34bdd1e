// Serve mode's access checks. Anyone who can reach the port could train, read datasets and write files, so:
//   - a random token, printed in the URL at start, is required on every request and event stream;
//   - API calls must carry it in the Authorization header (a cookie alone is not enough, so another site
//     cannot make the browser call the API: cross-site request forgery);
//   - page loads may carry it as ?token=...; a valid one sets a SameSite=Strict, HttpOnly cookie so that the
//     page's scripts, styles and event stream load without it;
//   - on loopback, the Host header must name the loopback address (defeats DNS rebinding).

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

export function sameToken(expected: string, given: string | null | undefined): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/** Cookie names are per port: two servers on one machine share cookies by host name, not by port. */
export function cookieName(port: number): string {
  return `adapter_studio_${port}`;
}

export function bearerToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  const m = typeof h === 'string' ? /^Bearer\s+(\S+)$/i.exec(h) : null;
  return m ? m[1] : null;
}

export function cookieToken(req: IncomingMessage, port: number): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  const name = cookieName(port);
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) {
      try {
        return decodeURIComponent(v.join('='));
      } catch {
        return null; // not percent-encoding: no token of ours
      }
    }
  }
  return null;
}

/**
 * On loopback, the Host header must be the loopback name the server answers to. A page on evil.example that
 * rebinds its DNS to 127.0.0.1 sends `Host: evil.example` and is refused.
 */
export function hostAllowed(req: IncomingMessage, boundHost: string, port: number): boolean {
  if (!isLoopback(boundHost)) return true; // the user asked for remote access; the token still guards it
  const host = req.headers.host;
  if (!host) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  if (!m) return false;
  return isLoopback(m[1]) && (m[2] === undefined ? port === 80 : Number(m[2]) === port);
}

/** A browser sends Origin on cross-site POSTs; it must be this server. */
export function originAllowed(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser cross-origin request (curl, the tests)
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
