// Importing a file: read it in the browser, have the main process validate it (nothing is written), show the
// report, then import all of it, only its valid records, or nothing.

import type { DatasetSummary, ImportReport } from '../../../../src-shared/api';
import { api, errorText } from '../../lib/api';
import { catalog } from '../../lib/catalog.svelte';
import { toasts } from '../../lib/toasts.svelte';

export type FormatChoice = 'auto' | 'json' | 'jsonl' | 'csv' | 'tsv';
export type ShapeChoice = 'auto' | 'alpaca' | 'conversation';

export class ImportState {
  fileName = $state<string | null>(null);
  private text = '';
  name = $state('');
  format = $state<FormatChoice>('auto');
  shape = $state<ShapeChoice>('auto');
  report = $state<ImportReport | null>(null);
  busy = $state<'reading' | 'validating' | 'importing' | null>(null);
  error = $state<string | null>(null);

  readonly canImport = $derived(!!this.report && !this.report.fatal && this.report.examples > 0 && !!this.name.trim());

  async chooseFile(file: File): Promise<void> {
    this.reset();
    this.fileName = file.name;
    this.name = file.name.replace(/\.[^.]+$/, '');
    this.busy = 'reading';
    try {
      this.text = await file.text();
    } catch (e) {
      this.error = `Could not read ${file.name}: ${errorText(e)}`;
      this.busy = null;
      return;
    }
    await this.validate();
  }

  async validate(): Promise<void> {
    if (!this.fileName) return;
    this.busy = 'validating';
    this.error = null;
    try {
      this.report = await api.datasets.validate({ source: this.source(), options: this.options() });
    } catch (e) {
      this.error = errorText(e);
    } finally {
      this.busy = null;
    }
  }

  /** `skipInvalid`: import the valid records even though some are invalid. */
  async import(skipInvalid: boolean): Promise<DatasetSummary | null> {
    if (!this.fileName) return null;
    this.busy = 'importing';
    this.error = null;
    try {
      const result = await api.datasets.import({ source: this.source(), options: this.options(), name: this.name.trim(), onInvalid: skipInvalid ? 'skip' : 'reject' });
      toasts.show(`Imported ${result.imported} examples into “${result.dataset.name}”`);
      await catalog.refreshDatasets();
      this.reset();
      return result.dataset;
    } catch (e) {
      this.error = errorText(e);
      return null;
    } finally {
      this.busy = null;
    }
  }

  reset(): void {
    this.fileName = null;
    this.text = '';
    this.report = null;
    this.error = null;
  }

  private source() {
    return { kind: 'text' as const, fileName: this.fileName!, text: this.text };
  }

  private options() {
    return { format: this.format, shape: this.shape };
  }
}
