// The engine's state for the status bar: which backend runs, whether a run trains, whether inference is busy.

import type { BackendInfo, SystemInfo } from '../../../src-shared/api';
import { api, connection, type ConnectionState } from './api';

class EngineStatus {
  backend = $state<BackendInfo | null>(null);
  inference = $state<'stopped' | 'starting' | 'ready' | 'busy'>('stopped');
  training = $state<string | null>(null);
  workspace = $state('');
  version = $state('');
  /** The process that trains this workspace's runs (another one when the app shares it with a CLI or a second server). */
  owner = $state<SystemInfo['owner']>(null);
  connection = $state<ConnectionState>('connecting');

  constructor() {
    connection.onState((s) => (this.connection = s));
    connection.on((e) => {
      if (e.type === 'hello') void this.refresh();
      if (e.type === 'engine.status') {
        this.backend = e.backend;
        this.inference = e.inference;
        this.training = e.training;
        // Another process owned the workspace: this one may just have taken it over.
        if (this.owner && !this.owner.self) void this.refresh();
      }
    });
  }

  async refresh(): Promise<void> {
    try {
      const info = await api.system.info({});
      this.backend = info.backend;
      this.inference = info.engine.inference;
      this.training = info.engine.training;
      this.workspace = info.workspace;
      this.version = info.version;
      this.owner = info.owner;
    } catch {
      // The status bar shows the connection state; the pages show their own errors.
    }
  }
}

export const engine = new EngineStatus();
