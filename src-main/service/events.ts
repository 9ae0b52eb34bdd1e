// The event hub: everything the UI should hear about as it happens (run progress, streamed text, task
// progress). Transports subscribe (one subscription per window or server-sent-events connection); nothing is
// buffered here, because everything worth replaying after a reload is in the workspace database.

import { type ApiEvent, parseEvent } from '../../src-shared/api.js';

export type EventListener = (event: ApiEvent) => void;

export class EventHub {
  private readonly listeners = new Set<EventListener>();

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Checks the event against the contract (a malformed event is a bug here, not in the UI), then delivers it. */
  emit(event: ApiEvent): void {
    const checked = parseEvent(event);
    for (const listener of this.listeners) {
      try {
        listener(checked);
      } catch (e) {
        // One broken connection must not stop delivery to the others.
        console.error('event listener failed:', e);
      }
    }
  }

  get size(): number {
    return this.listeners.size;
  }
}
