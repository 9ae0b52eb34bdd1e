// The renderer's only way out: the typed API client. Two transports carry the same contract
// (src-shared/api.ts): the Electron preload bridge (window.adapterStudio) or, in serve mode, HTTP calls plus
// server-sent events, authorised by the token from the page URL.

import { issuesInWords, placeIssues } from '../../../src-shared/field-errors';
import { API_METHODS, ApiError, type ApiClient, type ApiEvent, type ApiMethod, type ApiResponse, type UploadResult } from '../../../src-shared/api';

/** What the Electron preload exposes (src-main/electron/preload.ts): one function per method, plus events. */
export interface PreloadBridge {
  methods: Record<ApiMethod, (input: unknown) => Promise<ApiResponse<unknown>>>;
  onEvent(cb: (event: ApiEvent) => void): () => void;
  upload(file: File): Promise<ApiResponse<UploadResult>>;
  choosePath(request: { kind: 'folder' | 'file'; title: string }): Promise<string | null>;
}

declare global {
  interface Window {
    adapterStudio?: PreloadBridge;
  }
}

export type ConnectionState = 'connecting' | 'open' | 'lost';

interface Transport {
  readonly kind: 'ipc' | 'http';
  call(method: ApiMethod, input: unknown): Promise<ApiResponse<unknown>>;
  /** Sends a file to the main process, which streams it to disk; API calls then name it by the id answered. */
  upload(file: File): Promise<ApiResponse<UploadResult>>;
  /** A native open dialog (desktop app only: there the page cannot name paths any other way). */
  choosePath?(request: { kind: 'folder' | 'file'; title: string }): Promise<string | null>;
  listen(onEvent: (e: ApiEvent) => void, onState: (s: ConnectionState) => void): void;
}

const TOKEN_KEY = 'adapter-studio-token';

/** The serve-mode token: from ?token= in the URL (kept for reloads in this tab). */
export function pageToken(): string | null {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function answerOf(res: Response): Promise<ApiResponse<unknown>> {
  try {
    return (await res.json()) as ApiResponse<unknown>;
  } catch {
    return { ok: false, error: { code: 'internal', message: `the server answered ${res.status} ${res.statusText} without a readable body` } };
  }
}

function httpTransport(token: string | null): Transport {
  return {
    kind: 'http',
    async call(method, input) {
      let res: Response;
      try {
        res = await fetch(`api/call/${method}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify(input ?? {}),
        });
      } catch {
        return { ok: false, error: { code: 'internal', message: 'cannot reach Adapter Studio: is `adapter-studio serve` still running?' } };
      }
      return answerOf(res);
    },
    async upload(file) {
      let res: Response;
      try {
        // The File is the body: the browser streams it from disk.
        res = await fetch(`api/upload?name=${encodeURIComponent(file.name)}`, { method: 'PUT', headers: token ? { Authorization: `Bearer ${token}` } : {}, body: file });
      } catch {
        return { ok: false, error: { code: 'internal', message: `could not send ${file.name}: is \`adapter-studio serve\` still running?` } };
      }
      return answerOf(res) as Promise<ApiResponse<UploadResult>>;
    },
    listen(onEvent, onState) {
      onState('connecting');
      const source = new EventSource(`api/events${token ? `?token=${encodeURIComponent(token)}` : ''}`);
      source.onopen = () => onState('open');
      // EventSource reconnects by itself; the server's `hello` on each connection tells the UI to refetch.
      source.onerror = () => onState(source.readyState === EventSource.CLOSED ? 'lost' : 'connecting');
      source.onmessage = (m) => onEvent(JSON.parse(m.data) as ApiEvent);
    },
  };
}

function ipcTransport(bridge: PreloadBridge): Transport {
  return {
    kind: 'ipc',
    call: (method, input) => bridge.methods[method](input),
    upload: (file) => bridge.upload(file),
    choosePath: (request) => bridge.choosePath(request),
    listen(onEvent, onState) {
      bridge.onEvent(onEvent);
      onState('open');
      onEvent({ type: 'hello', at: Date.now() });
    },
  };
}

/** `api.models.add(...)` for the method 'models.add'. */
type GroupOf<M extends string> = M extends `${infer G}.${string}` ? G : never;
export type GroupedClient = {
  [G in GroupOf<ApiMethod>]: { [M in ApiMethod as M extends `${G}.${infer N}` ? N : never]: ApiClient[M] };
};

type Listener = (e: ApiEvent) => void;

/** Stream events kept for a while, so that a caller that subscribes after the first deltas still gets them. */
const STREAM_REPLAY_MS = 120_000;

export class Connection {
  readonly api: GroupedClient;
  readonly transport: 'ipc' | 'http';
  private readonly listeners = new Set<Listener>();
  private readonly stateListeners = new Set<(s: ConnectionState) => void>();
  private readonly streamLog = new Map<string, { at: number; events: ApiEvent[] }>();
  state: ConnectionState = 'connecting';

  constructor(private readonly t: Transport) {
    this.transport = t.kind;
    const api: Record<string, Record<string, unknown>> = {};
    for (const method of API_METHODS) {
      const [group, name] = method.split('.') as [string, string];
      (api[group] ??= {})[name] = (input: unknown) => this.call(method, input);
    }
    this.api = api as unknown as GroupedClient;
    t.listen(
      (e) => this.dispatch(e),
      (s) => {
        this.state = s;
        for (const l of this.stateListeners) l(s);
      },
    );
  }

  async call(method: ApiMethod, input: unknown): Promise<unknown> {
    const answer = await this.t.call(method, input ?? {});
    if (!answer.ok) throw new ApiError(answer.error);
    return answer.value;
  }

  /** Uploads a file (streamed to the main process's disk); throws ApiError when refused. */
  async upload(file: File): Promise<UploadResult> {
    const answer = await this.t.upload(file);
    if (!answer.ok) throw new ApiError(answer.error);
    return answer.value;
  }

  /** Whether paths are chosen in a native dialog (the desktop app) rather than typed. */
  get choosesPaths(): boolean {
    return !!this.t.choosePath;
  }

  /** The folder or file the user chose in a native dialog, or null (cancelled, or not the desktop app). */
  async choosePath(kind: 'folder' | 'file', title: string): Promise<string | null> {
    return (await this.t.choosePath?.({ kind, title })) ?? null;
  }

  /** Every event; returns the unsubscribe function. */
  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onState(listener: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(listener);
    listener(this.state);
    return () => this.stateListeners.delete(listener);
  }

  /**
   * Events of one stream, including those that arrived before this call. Those are replayed just after this
   * returns (a microtask, before any newer event can arrive), so that a listener may already call the
   * unsubscribe function it was given: a short stream can have closed before its start call answered.
   */
  stream(streamId: string, listener: Listener): () => void {
    const earlier = [...(this.streamLog.get(streamId)?.events ?? [])];
    let active = true;
    const off = this.on((e) => {
      if (active && 'streamId' in e && e.streamId === streamId) listener(e);
    });
    queueMicrotask(() => {
      for (const e of earlier) if (active) listener(e);
    });
    return () => {
      active = false;
      off();
    };
  }

  private dispatch(e: ApiEvent): void {
    if ('streamId' in e) {
      const now = Date.now();
      const entry = this.streamLog.get(e.streamId) ?? { at: now, events: [] };
      entry.events.push(e);
      this.streamLog.set(e.streamId, entry);
      for (const [id, old] of this.streamLog) if (now - old.at > STREAM_REPLAY_MS) this.streamLog.delete(id);
    }
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        console.error('event handler failed', err);
      }
    }
  }
}

export function connect(): Connection {
  const bridge = window.adapterStudio;
  return new Connection(bridge ? ipcTransport(bridge) : httpTransport(pageToken()));
}

/** The one connection of this window. */
export const connection = connect();
export const api = connection.api;

/** An error's message for the user, with the fields an invalid request named. */
export function errorText(e: unknown): string {
  // A refused request names its fields in words ("max new tokens: Too small"), not as the contract's paths.
  if (e instanceof ApiError) return e.code === 'invalid_input' && e.issues.length ? issuesInWords(e.issues) : e.message;
  return e instanceof Error ? e.message : String(e);
}

/** An error split for a form: the contract's complaints beside their fields (`fieldOf`), the rest in words. */
export function placeError(e: unknown, fieldOf: (path: string) => string | null): { fields: Record<string, string>; rest: string | null } {
  if (e instanceof ApiError && e.code === 'invalid_input' && e.issues.length) return placeIssues(e.issues, fieldOf);
  return { fields: {}, rest: errorText(e) };
}
