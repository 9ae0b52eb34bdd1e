// Reading a request body with a size limit: both the app's API and the OpenAI-compatible API take JSON bodies.

import type { IncomingMessage } from 'node:http';

/** The body as text, or null once it grows past `limit` (the caller answers 413; the rest is not read). */
export function readBody(req: IncomingMessage, limit: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        chunks.length = 0;
        resolve(null);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** What is read and thrown away of a refused body while the client takes in the answer (then the socket closes). */
const DRAIN_BYTES = 64 * 2 ** 20;
const DRAIN_MS = 2000;

/**
 * After answering a body that was refused half-read (413): reads the rest and throws it away for a moment, so
 * that a client still sending sees the answer rather than a broken pipe, then lets the connection close (at
 * once past DRAIN_BYTES or DRAIN_MS: a huge body is not read to its end). The caller sets `Connection: close`.
 */
export function discardRest(req: IncomingMessage): void {
  let drained = 0;
  const timer = setTimeout(() => req.destroy(), DRAIN_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_BYTES) req.destroy();
  });
  req.once('end', () => clearTimeout(timer));
  req.resume();
}

/** decodeURIComponent, or null where the text is not valid percent-encoding (`%ff`) instead of a throw. */
export function decodedOrNull(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}
