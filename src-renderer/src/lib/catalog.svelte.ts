// What many pages pick from: models, datasets, and completed runs (adapters). Refetched when the server
// says something changed, and after every (re)connection.

import type { DatasetSummary, ModelSummary } from '../../../src-shared/api';
import { api, connection, errorText } from './api';

class Catalog {
  /** Every added model: language models and vision towers (the Models page). */
  allModels = $state<ModelSummary[]>([]);
  /** Language models: what trains, chats and evaluates. */
  readonly models = $derived(this.allModels.filter((m) => m.kind === 'llama'));
  /** CLIP vision towers, for multi-modal adapters. */
  readonly visionTowers = $derived(this.allModels.filter((m) => m.kind === 'vision'));
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
      this.allModels = await api.models.list({});
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
    return this.allModels.find((m) => m.id === id)?.name ?? '—';
  }
}

export const catalog = new Catalog();
