// Turning whatever a handler threw into the contract's error body. User-caused errors (a bad folder, a run in
// the wrong state, a refused import) keep their message; anything else is a bug, logged with its stack and
// reported as an internal error.

import { ApiError, type ApiErrorBody } from '../../src-shared/api.js';
import { CancelledError, EngineError } from '../engine/errors.js';
import { describeFsError, NotFoundError, OwnedElsewhereError, StoreError } from '../store/errors.js';
import { EngineExitedError, EngineJobError } from '../host/engine-process.js';

export function userError(message: string): ApiError {
  return new ApiError({ code: 'user', message });
}

export function conflict(message: string): ApiError {
  return new ApiError({ code: 'conflict', message });
}

export function toErrorBody(e: unknown, method: string, log: (msg: string) => void = console.error): ApiErrorBody {
  if (e instanceof ApiError) return e.toBody();
  if (e instanceof NotFoundError) return { code: 'not_found', message: e.message };
  if (e instanceof OwnedElsewhereError) return { code: 'conflict', message: e.message };
  if (e instanceof StoreError || e instanceof EngineError || e instanceof CancelledError) return { code: 'user', message: e.message };
  if (e instanceof EngineJobError && e.user) return { code: 'user', message: e.message };
  if (e instanceof EngineExitedError) return { code: 'internal', message: `${e.message}; it restarts with the next request` };
  const fsRefusal = describeFsError(e, `${method}: the file system`);
  if (fsRefusal) return { code: 'user', message: fsRefusal };
  const err = e as Error;
  log(`${method} failed: ${err?.stack ?? String(e)}`);
  return { code: 'internal', message: `${method} failed unexpectedly: ${withoutPaths(err?.message ?? String(e))} (the server's log has the details)` };
}

/** Absolute paths in a message shortened to their last part: a client never learns the server's folders. */
export function withoutPaths(message: string): string {
  return message.replace(/(?:[A-Za-z]:\\|\/)(?:[^\s'"`:]*[\\/])+([^\s'"`:/\\]*)/g, (_m, last: string) => `…/${last}`);
}
