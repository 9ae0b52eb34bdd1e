/**
 * An error the user can act on: an unknown dataset, a run in the wrong state, a workspace written by a newer
 * version. Bugs and SQLite failures stay ordinary errors.
 */
export class StoreError extends Error {
  override name = 'StoreError';
}

/** The named thing does not exist (a dataset id, a run id, ...). */
export class NotFoundError extends StoreError {
  override name = 'NotFoundError';
  constructor(what: string, id: string | number) {
    super(`${what} ${JSON.stringify(id)} not found`);
  }
}

/**
 * The workspace is owned by another live process (its runs train there), and what was asked would change a run
 * that process is responsible for. The message names the process.
 */
export class OwnedElsewhereError extends StoreError {
  override name = 'OwnedElsewhereError';
}

/**
 * A file-system refusal (a folder that cannot be created, a path under /proc, no permission) in words, or null
 * for any other error. The input's fault, not a bug; named by the file's base name, since the full path may be
 * the server's, not the user's.
 */
export function describeFsError(e: unknown, what = 'the file system'): string | null {
  const err = e as { code?: unknown; syscall?: unknown; path?: unknown } | null;
  if (typeof err?.code !== 'string' || !/^E[A-Z]+$/.test(err.code) || typeof err.syscall !== 'string') return null;
  const file = typeof err.path === 'string' ? ` ${JSON.stringify(err.path.split(/[\\/]/).at(-1))}` : '';
  return `${what} refused to ${err.syscall}${file} (${err.code})`;
}
