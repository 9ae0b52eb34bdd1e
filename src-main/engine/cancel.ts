// Long loops that can be stopped (training, generation, evaluation, pre-training): an abort check that throws the
// engine's CancelledError, and a macrotask boundary so that cancel messages and progress I/O get through.

import { CancelledError } from './errors.js';

/** A macrotask boundary: awaiting tensor data alone only runs microtasks, which starves I/O. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Make a CancelledError-aware abort check for loops outside the trainer (generation, eval). */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new CancelledError(what);
}
