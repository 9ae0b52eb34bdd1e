// The preload's bridge, generated from the API contract: one function per method, each an IPC invoke on its
// own channel, plus a subscription to events. No raw ipcRenderer reaches the page. Shared by preload.ts and
// main.ts so both ends agree on channel names.

// Types only from the contract, and the bare name list: the sandboxed preload stays small (no zod).
import type { ApiEvent, ApiMethod, ApiResponse } from '../../src-shared/api.js';
import { API_METHOD_NAMES as API_METHODS } from '../../src-shared/api-methods.js';

export const EVENT_CHANNEL = 'api:event';

export function channelFor(method: ApiMethod): string {
  return `api:${method}`;
}

/** What the preload needs from ipcRenderer (Electron's object satisfies it). */
export interface InvokeOnly {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  on(channel: string, listener: (event: unknown, payload: unknown) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, payload: unknown) => void): unknown;
}

/** The object exposed to the page as window.adapterStudio (see src-renderer/src/lib/api.ts). */
export interface Bridge {
  methods: Record<ApiMethod, (input: unknown) => Promise<ApiResponse<unknown>>>;
  onEvent(cb: (event: ApiEvent) => void): () => void;
}

export function buildBridge(ipc: InvokeOnly): Bridge {
  const methods = {} as Bridge['methods'];
  for (const method of API_METHODS) {
    // Only the input crosses: the page cannot pick the channel or pass extra arguments.
    methods[method] = (input: unknown) => ipc.invoke(channelFor(method), input) as Promise<ApiResponse<unknown>>;
  }
  return {
    methods,
    onEvent(cb) {
      const listener = (_event: unknown, payload: unknown) => cb(payload as ApiEvent);
      ipc.on(EVENT_CHANNEL, listener);
      return () => void ipc.removeListener(EVENT_CHANNEL, listener);
    },
  };
}
