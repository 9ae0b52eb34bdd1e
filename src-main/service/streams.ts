// Live streams (a chat reply, a comparison): an id the UI gets at once, events while text arrives, and a way
// to stop it. Finished streams are forgotten; what they produced is in the workspace.

import { randomBytes } from 'node:crypto';
import type { GenerationResult } from '../../src-shared/api.js';
import type { EventHub } from './events.js';

export interface StreamHandle {
  readonly id: string;
  /** Text for part `key` of the stream. */
  delta(key: string, text: string): void;
  end(key: string, result: GenerationResult): void;
  error(key: string, message: string): void;
  /** Set by the producer: how to stop the part running now. */
  onCancel(cb: () => void): void;
  readonly cancelled: boolean;
  close(): void;
}

export class Streams {
  private readonly live = new Map<string, { cancel: () => void }>();

  constructor(private readonly events: EventHub) {}

  /**
   * broadcast: false for a stream whose text goes elsewhere (an OpenAI API response): it is still counted
   * and cancellable, but sends no events to the UI.
   */
  open(opts: { broadcast?: boolean } = {}): StreamHandle {
    const id = `stream_${randomBytes(8).toString('hex')}`;
    const events: Pick<EventHub, 'emit'> = opts.broadcast === false ? { emit: () => undefined } : this.events;
    let cancelled = false;
    let cancelCurrent: (() => void) | null = null;
    const entry = {
      cancel: () => {
        cancelled = true;
        cancelCurrent?.();
      },
    };
    this.live.set(id, entry);
    return {
      id,
      delta: (key, text) => events.emit({ type: 'stream.delta', streamId: id, key, text }),
      end: (key, result) => events.emit({ type: 'stream.end', streamId: id, key, result }),
      error: (key, message) => events.emit({ type: 'stream.error', streamId: id, key, message }),
      onCancel: (cb) => {
        cancelCurrent = cb;
      },
      get cancelled() {
        return cancelled;
      },
      close: () => {
        this.live.delete(id);
        events.emit({ type: 'stream.closed', streamId: id });
      },
    };
  }

  /** False when the stream has already finished. */
  cancel(id: string): boolean {
    const entry = this.live.get(id);
    entry?.cancel();
    return entry !== undefined;
  }

  get active(): number {
    return this.live.size;
  }

  cancelAll(): void {
    for (const entry of this.live.values()) entry.cancel();
  }
}
