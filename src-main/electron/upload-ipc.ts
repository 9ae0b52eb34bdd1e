// The main side of the preload's upload channel (bridge.ts): checks what crossed and streams the file into the
// workspace's uploads/ through the same service call HTTP uploads use. No Electron imports: tests drive it.

import { createReadStream, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { ApiResponse, UploadResult } from '../../src-shared/api.js';
import type { AppService } from '../service/index.js';

export async function handleUploadRequest(service: Pick<AppService, 'upload'>, request: unknown): Promise<ApiResponse<UploadResult>> {
  const r = request as { fileName?: unknown; path?: unknown; bytes?: unknown } | null;
  if (typeof r?.fileName !== 'string') return refuse('an upload names its file (fileName)');
  if (typeof r.path === 'string') {
    // The preload took the path from a File the user chose or dropped (webUtils.getPathForFile); the page
    // cannot make one up. It must still be a plain file.
    let isFile = false;
    try {
      isFile = statSync(r.path).isFile();
    } catch {
      // reported below
    }
    if (!isFile) return refuse(`${r.fileName} is not a readable file`);
    return service.upload(r.fileName, createReadStream(r.path));
  }
  if (r.bytes instanceof Uint8Array) return service.upload(r.fileName, Readable.from([r.bytes]));
  return refuse('an upload carries a path or bytes');
}

function refuse(message: string): ApiResponse<UploadResult> {
  return { ok: false, error: { code: 'invalid_input', message } };
}
