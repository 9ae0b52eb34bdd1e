// Models page state: adding a folder, and the details of the selected model.

import type { ModelInfo } from '../../../../src-shared/api';
import { api, errorText } from '../../lib/api';
import { catalog } from '../../lib/catalog.svelte';
import { toasts } from '../../lib/toasts.svelte';

export class ModelsState {
  path = $state('');
  name = $state('');
  adding = $state(false);
  addError = $state<string | null>(null);
  info = $state<ModelInfo | null>(null);
  infoError = $state<string | null>(null);

  async add(): Promise<void> {
    if (!this.path.trim()) {
      this.addError = 'Enter the path of a model folder (it holds config.json, *.safetensors and tokenizer.json).';
      return;
    }
    this.adding = true;
    this.addError = null;
    try {
      const info = await api.models.add({ path: this.path.trim(), name: this.name.trim() || undefined });
      this.info = info;
      this.path = '';
      this.name = '';
      await catalog.refreshModels();
      toasts.show(`Added ${info.name}`);
    } catch (e) {
      this.addError = errorText(e);
    } finally {
      this.adding = false;
    }
  }

  async select(modelId: string): Promise<void> {
    this.infoError = null;
    try {
      this.info = await api.models.info({ modelId });
    } catch (e) {
      this.info = null;
      this.infoError = errorText(e);
    }
  }

  async remove(modelId: string): Promise<void> {
    try {
      await api.models.remove({ modelId });
      this.info = null;
      await catalog.refreshModels();
    } catch (e) {
      this.infoError = errorText(e);
    }
  }
}
