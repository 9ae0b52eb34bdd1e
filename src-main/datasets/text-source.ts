// Reads a dataset file as UTF-8 text in chunks (never the whole file at once), hashing its bytes on the way.
// Anything that is not UTF-8 stops the read with the line and byte offset of the first bad byte: a file in
// another encoding is wrong throughout, so importing "the valid part" of it would make no sense.

import { createHash } from 'node:crypto';
import { createReadStream, openSync, readSync, closeSync } from 'node:fs';
import { FatalFileIssue } from './issues.js';

export interface TextSourceOptions {
  /** Bytes per chunk read from disk. */
  chunkBytes?: number;
  signal?: AbortSignal;
}

export interface TextSource {
  /** Decoded text, chunk by chunk (a BOM at the start is dropped). */
  chunks: AsyncGenerator<string>;
  /** The sha256 of every byte read, available once `chunks` is exhausted. */
  sha256: () => string | null;
}

const fatal = (file: string, line: number | null, message: string) =>
  new FatalFileIssue({ file, line, index: null, field: null, message });

/** Recognises files that are clearly not text before any decoding. */
function sniff(file: string): void {
  const head = Buffer.alloc(4);
  const fd = openSync(file, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (n >= 2 && ((head[0] === 0xff && head[1] === 0xfe) || (head[0] === 0xfe && head[1] === 0xff))) {
    throw fatal(file, 1, 'the file is UTF-16 text; save it as UTF-8 and import again');
  }
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) throw fatal(file, null, 'the file is gzip-compressed; decompress it first');
  if (n >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    throw fatal(file, null, 'the file is a zip archive; extract the dataset file from it first');
  }
}

export function openTextSource(file: string, options: TextSourceOptions = {}): TextSource {
  const hash = createHash('sha256');
  let digest: string | null = null;

  async function* chunks(): AsyncGenerator<string> {
    sniff(file);
    // fatal: invalid bytes throw instead of turning into U+FFFD, which would silently corrupt the data.
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const stream = createReadStream(file, { highWaterMark: options.chunkBytes ?? 1 << 20, signal: options.signal });
    for await (const bytes of stream as AsyncIterable<Buffer>) {
      hash.update(bytes);
      let text: string;
      try {
        text = decoder.decode(bytes, { stream: true });
      } catch {
        throw await notUtf8(file);
      }
      if (text) yield text;
    }
    let tail: string;
    try {
      tail = decoder.decode();
    } catch {
      throw await notUtf8(file);
    }
    if (tail) yield tail;
    digest = hash.digest('hex');
  }

  return { chunks: chunks(), sha256: () => digest };
}

/** Finds the first invalid UTF-8 sequence (only on the error path) and says where it is. */
async function notUtf8(file: string): Promise<FatalFileIssue> {
  const found = await findInvalidUtf8(file);
  if (!found) return fatal(file, null, 'the file is not valid UTF-8 text; save it as UTF-8 and import again');
  const what = found.truncated
    ? 'the file ends in the middle of a UTF-8 character (truncated?)'
    : `byte 0x${found.byte.toString(16).padStart(2, '0')} at byte offset ${found.offset} is not valid UTF-8`;
  return fatal(file, found.line, `${what}; the file must be UTF-8 text (save it as UTF-8 and import again)`);
}

export interface InvalidUtf8 {
  offset: number;
  line: number;
  byte: number;
  truncated: boolean;
}

/** Scans a file for the first byte that breaks UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
export async function findInvalidUtf8(file: string): Promise<InvalidUtf8 | null> {
  let line = 1;
  let offset = 0; // file offset of carry[0] / the current chunk's first byte
  let carry = Buffer.alloc(0); // an incomplete sequence left at the end of the previous chunk
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const bytes = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    let i = 0;
    while (i < bytes.length) {
      const b = bytes[i]!;
      if (b < 0x80) {
        if (b === 0x0a) line++;
        i++;
        continue;
      }
      let need: number;
      let lo = 0x80;
      let hi = 0xbf;
      if (b >= 0xc2 && b <= 0xdf) need = 1;
      else if (b >= 0xe0 && b <= 0xef) {
        need = 2;
        if (b === 0xe0) lo = 0xa0; // overlong
        if (b === 0xed) hi = 0x9f; // UTF-16 surrogates
      } else if (b >= 0xf0 && b <= 0xf4) {
        need = 3;
        if (b === 0xf0) lo = 0x90; // overlong
        if (b === 0xf4) hi = 0x8f; // above U+10FFFF
      } else return { offset: offset + i, line, byte: b, truncated: false };
      if (i + need >= bytes.length) break; // may continue in the next chunk
      // Report the sequence's first byte: that is the odd character an editor shows.
      const second = bytes[i + 1]!;
      let valid = second >= lo && second <= hi;
      for (let k = 2; valid && k <= need; k++) valid = bytes[i + k]! >= 0x80 && bytes[i + k]! <= 0xbf;
      if (!valid) return { offset: offset + i, line, byte: b, truncated: false };
      i += need + 1;
    }
    carry = Buffer.from(bytes.subarray(i));
    offset += i;
  }
  return carry.length ? { offset, line, byte: carry[0]!, truncated: true } : null;
}
