// Files the UI sends (a dataset dropped on the page): streamed to disk under the workspace's uploads/ as they
// arrive, never held whole in memory, and then named by an id in API calls (`{kind: 'upload', uploadId}`).
// HTTP sends them as a PUT body (server/http-server.ts), Electron over IPC. Each upload is a folder of its own
// holding one file under its original name (the name tells the format); an import removes it, and what is left
// (a validation the user never imported, a process killed mid-way) goes after an hour (sweepUploads).

import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UPLOAD_ID_PATTERN, type UploadResult } from '../../src-shared/api.js';
import { userError } from './errors.js';

/** Largest upload by default: a dataset file, not a disk image. */
export const DEFAULT_MAX_UPLOAD_BYTES = 8 * 2 ** 30;

/** The body is larger than the limit: HTTP answers 413. */
export class UploadTooLargeError extends Error {
  override name = 'UploadTooLargeError';
  constructor(readonly limitBytes: number) {
    super(`the file is larger than the upload limit of ${formatLimit(limitBytes)}`);
  }
}

function formatLimit(bytes: number): string {
  return bytes >= 2 ** 30 ? `${+(bytes / 2 ** 30).toFixed(1)} GiB` : `${+(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** A file name as uploaded: no folders, no NUL, not `.`/`..`. */
export function checkUploadName(fileName: string): string {
  if (!fileName || fileName.length > 255 || /[\\/\0]/.test(fileName) || fileName === '.' || fileName === '..') {
    throw userError(`the upload's file name ${JSON.stringify(fileName.slice(0, 80))} must be a file name without folders or NUL characters`);
  }
  return fileName;
}

/**
 * Writes `body` to uploads/<id>/<fileName>, counting bytes; over `limitBytes` it stops, removes what it wrote
 * and throws UploadTooLargeError. A failed or aborted upload leaves nothing behind.
 */
export async function receiveUpload(uploadsDir: string, fileName: string, body: AsyncIterable<Uint8Array> | NodeJS.ReadableStream, limitBytes = DEFAULT_MAX_UPLOAD_BYTES): Promise<UploadResult> {
  checkUploadName(fileName);
  const uploadId = randomBytes(6).toString('hex');
  const dir = join(uploadsDir, uploadId);
  mkdirSync(dir, { recursive: true });
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > limitBytes) done(new UploadTooLargeError(limitBytes));
      else done(null, chunk);
    },
  });
  try {
    await pipeline(body, counter, createWriteStream(join(dir, fileName), { flags: 'wx' }));
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { uploadId, fileName, bytes };
}

/** The file of an upload, or a user error saying it is gone. */
export function uploadedFile(uploadsDir: string, uploadId: string): string {
  if (!UPLOAD_ID_PATTERN.test(uploadId)) throw userError(`${JSON.stringify(uploadId.slice(0, 40))} is not an upload id`);
  const dir = join(uploadsDir, uploadId);
  const names = existsSync(dir) ? readdirSync(dir) : [];
  if (names.length !== 1) throw userError(`upload ${uploadId} is gone (uploads are kept for an hour): choose the file again`);
  return join(dir, names[0]!);
}

export function removeUpload(uploadsDir: string, uploadId: string): void {
  if (UPLOAD_ID_PATTERN.test(uploadId)) rmSync(join(uploadsDir, uploadId), { recursive: true, force: true });
}

/**
 * Removes what imports and exports left under uploads/ when their process was killed mid-way (each is a folder
 * of its own); only entries older than `minAgeMs`, so another process's import in flight keeps its file.
 */
export function sweepUploads(dir: string, minAgeMs = 3600_000, now = Date.now()): number {
  if (!existsSync(dir)) return 0;
  let removed = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    try {
      if (now - statSync(path).mtimeMs < minAgeMs) continue;
      rmSync(path, { recursive: true, force: true });
      removed++;
    } catch {
      // gone already (another process swept it)
    }
  }
  return removed;
}
