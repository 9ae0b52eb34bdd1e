/**
 * An error caused by the user's input (a file, a field, a flag) rather than a bug.
 * The message names what is wrong and where, in words a user can act on.
 */
export class EngineError extends Error {
  override name = 'EngineError';
}

/** Thrown when a caller cancels a long operation (training, generation). */
export class CancelledError extends Error {
  override name = 'CancelledError';
  constructor(what = 'operation') {
    super(`${what} cancelled`);
  }
}
