// The preload's bridge, generated from the API contract: one function per method, each an IPC invoke on its
// own channel, plus a subscription to events. No raw ipcRenderer reaches the page. Shared by preload.ts and
// main.ts so both ends agree on channel names.

// Types only from the contract, and the bare name list: the sandboxed preload stays small (no zod).
import type { ApiEvent, ApiMethod, ApiResponse, UploadResult } from '../../src-shared/api.js';
import { API_METHOD_NAMES as API_METHODS } from '../../src-shared/api-methods.js';

export const EVENT_CHANNEL = 'api:event';
export const UPLOAD_CHANNEL = 'api:upload';
export const CHOOSE_PATH_CHANNEL = 'api:choose-path';

/** A native open dialog: the desktop app's only way to name a folder or file (see service/path-policy.ts). */
export interface ChoosePathRequest {
  kind: 'folder' | 'file';
  title: string;
}

/**
 * What the upload channel carries: a file the user chose or dropped is named by its path on disk (Electron
 * knows it; the main process streams it from there, no copy through memory), any other File (pasted, made
 * by the page) by its bytes. See upload-ipc.ts for the main side.
 */
export type UploadRequest = { fileName: string; path: string } | { fileName: string; bytes: Uint8Array };

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
  upload(file: File): Promise<ApiResponse<UploadResult>>;
  /** The path the user chose in a native dialog (from then on the main process accepts it), or null. */
  choosePath(request: ChoosePathRequest): Promise<string | null>;
}

/** `pathForFile`: Electron's webUtils.getPathForFile ("" for a File that is not on disk). */
export function buildBridge(ipc: InvokeOnly, pathForFile: (file: File) => string = () => ''): Bridge {
  const methods = {} as Bridge['methods'];
  for (const method of API_METHODS) {
    // Only the input crosses: the page cannot pick the channel or pass extra arguments.
    methods[method] = (input: unknown) => ipc.invoke(channelFor(method), input) as Promise<ApiResponse<unknown>>;
  }
  return {
    methods,
    async upload(file) {
      const path = pathForFile(file);
      const request: UploadRequest = path ? { fileName: file.name, path } : { fileName: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
      return ipc.invoke(UPLOAD_CHANNEL, request) as Promise<ApiResponse<UploadResult>>;
    },
    choosePath: (request) => ipc.invoke(CHOOSE_PATH_CHANNEL, { kind: request.kind, title: String(request.title) }) as Promise<string | null>,
    onEvent(cb) {
      const listener = (_event: unknown, payload: unknown) => cb(payload as ApiEvent);
      ipc.on(EVENT_CHANNEL, listener);
      return () => void ipc.removeListener(EVENT_CHANNEL, listener);
    },
  };
}
