// What every group of handlers shares: the open workspace (which `settings.switchWorkspace` may replace), the
// engine processes, the run queue, the event hub and the live streams.

import type { Settings } from '../../src-shared/api.js';
import type { Engines } from '../host/engines.js';
import type { RunQueue } from '../host/run-queue.js';
import type { Workspace } from '../store/index.js';
import type { EventHub } from './events.js';
import type { Streams } from './streams.js';

export interface ServiceContext {
  ws(): Workspace;
  settings(): Settings;
  engines: Engines;
  queue: RunQueue;
  events: EventHub;
  streams: Streams;
  transport: 'ipc' | 'http' | 'cli';
  version: string;
  /** Folder for files dropped into the UI while they are read (inside the workspace). */
  uploadsDir(): string;
}
