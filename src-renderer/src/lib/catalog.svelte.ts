// What many pages pick from: models, datasets, and completed runs (adapters). Refetched when the server
// says something changed, and after every (re)connection.

import type { DatasetSummary, ModelSummary } from '../../../src-shared/api';
import { api, connection, errorText } from './api';

class Catalog {
  models = $state<ModelSummary[]>([]);
  datasets = $state<DatasetSummary[]>([]);
  loadError = $state<string | null>(null);
  loaded = $state(false);

  constructor() {
    connection.on((e) => {
      if (e.type === 'hello' || e.type === 'models.changed') void this.refreshModels();
      if (e.type === 'hello' || e.type === 'datasets.changed') void this.refreshDatasets();
    });
  }

  async refreshModels(): Promise<void> {
    try {
      this.models = await api.models.list({});
      this.loadError = null;
    } catch (e) {
      this.loadError = errorText(e);
    } finally {
      this.loaded = true;
    }
  }

  async refreshDatasets(): Promise<void> {
    try {
      this.datasets = await api.datasets.list({});
      this.loadError = null;
    } catch (e) {
      this.loadError = errorText(e);
    }
  }

  modelName(id: string | null | undefined): string {
    return this.models.find((m) => m.id === id)?.name ?? '—';
  }
}

export const catalog = new Catalog();
