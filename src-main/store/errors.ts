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
