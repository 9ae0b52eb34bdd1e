// Importing a file: upload it (streamed to the main process's disk, whatever its size), have the main process
// validate it (nothing is written), show the report, then import all of it, only its valid records, or nothing.
// Changing the format or shape validates the same upload again.

import type { DatasetSummary, ImportReport } from '../../../../src-shared/api';
import { api, connection, errorText } from '../../lib/api';
import { catalog } from '../../lib/catalog.svelte';
import { toasts } from '../../lib/toasts.svelte';

export type FormatChoice = 'auto' | 'json' | 'jsonl' | 'csv' | 'tsv' | 'parquet';
export type ShapeChoice = 'auto' | 'alpaca' | 'conversation';

export class ImportState {
  fileName = $state<string | null>(null);
  private uploadId: string | null = null;
  name = $state('');
  format = $state<FormatChoice>('auto');
  shape = $state<ShapeChoice>('auto');
  report = $state<ImportReport | null>(null);
  busy = $state<'uploading' | 'validating' | 'importing' | null>(null);
  error = $state<string | null>(null);

  readonly canImport = $derived(!!this.report && !this.report.fatal && this.report.examples > 0 && !!this.name.trim());

  async chooseFile(file: File): Promise<void> {
    this.reset();
    this.fileName = file.name;
    this.name = file.name.replace(/\.[^.]+$/, '');
    this.busy = 'uploading';
    try {
      this.uploadId = (await connection.upload(file)).uploadId;
    } catch (e) {
      this.error = `Could not send ${file.name}: ${errorText(e)}`;
      this.busy = null;
      return;
    }
    await this.validate();
  }

  async validate(): Promise<void> {
    if (!this.uploadId) return;
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
    if (!this.uploadId) return null;
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
    this.uploadId = null;
    this.report = null;
    this.error = null;
  }

  private source() {
    return { kind: 'upload' as const, uploadId: this.uploadId! };
  }

  private options() {
    return { format: this.format, shape: this.shape };
  }
}
