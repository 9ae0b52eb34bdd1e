// The engine's state for the status bar: which backend runs, whether a run trains, whether inference is busy.

import type { BackendInfo } from '../../../src-shared/api';
import { api, connection, type ConnectionState } from './api';

class EngineStatus {
  backend = $state<BackendInfo | null>(null);
  inference = $state<'stopped' | 'starting' | 'ready' | 'busy'>('stopped');
  training = $state<string | null>(null);
  workspace = $state('');
  version = $state('');
  connection = $state<ConnectionState>('connecting');

  constructor() {
    connection.onState((s) => (this.connection = s));
    connection.on((e) => {
      if (e.type === 'hello') void this.refresh();
      if (e.type === 'engine.status') {
        this.backend = e.backend;
        this.inference = e.inference;
        this.training = e.training;
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
    } catch {
      // The status bar shows the connection state; the pages show their own errors.
    }
  }
}

export const engine = new EngineStatus();
