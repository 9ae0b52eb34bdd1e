// The example table's data: the current query (search and filters), the total, and pages fetched as the
// table scrolls. Edits go through the API as new dataset versions, so each one can be undone.

import type { Example as StoredExample, Split } from '../../../../src-shared/api';

/** A row as the table shows it: `position` is its number within the dataset (ids are the workspace's). */
export type Example = StoredExample & { position: number };
import { api, connection, errorText } from '../../lib/api';
import { uploadPicture } from '../../lib/pictures';

export const PAGE_SIZE = 100;

export interface Filters {
  search: string;
  split: '' | Split | 'none';
  hasInput: '' | 'yes' | 'no';
  hasImage: '' | 'yes' | 'no';
  tag: string;
}

export class ExamplesState {
  datasetId = $state<string | null>(null);
  filters = $state<Filters>({ search: '', split: '', hasInput: '', hasImage: '', tag: '' });
  total = $state(0);
  pages = $state<Record<number, Example[]>>({});
  error = $state<string | null>(null);
  selected = $state<Example | null>(null);
  saving = $state(false);
  editError = $state<string | null>(null);
  lastChange = $state<string | null>(null);
  tags = $state<{ tag: string; count: number }[]>([]);
  private generation = 0;
  private loading = new Set<number>();

  constructor() {
    connection.on((e) => {
      if (e.type === 'datasets.changed' && e.datasetId === this.datasetId) void this.reload();
    });
  }

  open(datasetId: string | null): void {
    if (datasetId === this.datasetId) return;
    this.datasetId = datasetId;
    this.selected = null;
    void this.reload();
  }

  /** Drops the cached pages and refetches the first one (after a filter change or an edit). */
  async reload(): Promise<void> {
    this.generation++;
    this.pages = {};
    this.loading.clear();
    if (!this.datasetId) return;
    await Promise.all([this.ensure(0), this.loadTags()]);
  }

  rowAt(index: number): Example | undefined {
    return this.pages[Math.floor(index / PAGE_SIZE)]?.[index % PAGE_SIZE];
  }

  /** Makes sure the page holding row `index` is loaded. */
  async ensure(page: number): Promise<void> {
    if (!this.datasetId || this.pages[page] || this.loading.has(page)) return;
    const generation = this.generation;
    this.loading.add(page);
    const f = this.filters;
    try {
      const result = await api.datasets.query({
        datasetId: this.datasetId,
        search: f.search.trim() || undefined,
        split: f.split || undefined,
        hasInput: f.hasInput === '' ? undefined : f.hasInput === 'yes',
        hasImage: f.hasImage === '' ? undefined : f.hasImage === 'yes',
        tags: f.tag ? [f.tag] : undefined,
        offset: page * PAGE_SIZE,
        limit: PAGE_SIZE,
      });
      if (generation !== this.generation) return; // a newer query replaced this one
      this.total = result.total;
      this.pages[page] = result.items;
      this.error = null;
    } catch (e) {
      this.error = errorText(e);
    } finally {
      this.loading.delete(page);
    }
  }

  private async loadTags(): Promise<void> {
    if (!this.datasetId) return;
    try {
      this.tags = await api.datasets.tags({ datasetId: this.datasetId });
    } catch {
      this.tags = [];
    }
  }

  /** Saves the fields given (a new dataset version); the editor's other fields are left as they are. */
  async save(patch: Partial<{ instruction: string; input: string; output: string; split: Split | null; tags: string[]; image: string | null }>): Promise<boolean> {
    if (!this.selected || !this.datasetId) return false;
    this.saving = true;
    this.editError = null;
    try {
      const version = await api.datasets.editExample({ datasetId: this.datasetId, exampleId: this.selected.id, patch });
      this.lastChange = version ? version.summary : 'nothing changed';
      this.selected = { ...this.selected, ...patch };
      await this.reload();
      return true;
    } catch (e) {
      this.editError = errorText(e);
      return false;
    } finally {
      this.saving = false;
    }
  }

  /** Gives the selected example a new picture (uploaded first), or takes its picture off (null). */
  async setPicture(file: File | null): Promise<boolean> {
    this.editError = null;
    try {
      const image = file ? (await uploadPicture(file)).stored.sha256 : null;
      return await this.save({ image });
    } catch (e) {
      this.editError = errorText(e);
      return false;
    }
  }

  async remove(ids: number[]): Promise<void> {
    if (!this.datasetId || ids.length === 0) return;
    try {
      const version = await api.datasets.deleteExamples({ datasetId: this.datasetId, exampleIds: ids });
      this.lastChange = version?.summary ?? null;
      this.selected = null;
      await this.reload();
    } catch (e) {
      this.editError = errorText(e);
    }
  }

  async undo(): Promise<void> {
    if (!this.datasetId) return;
    try {
      const version = await api.datasets.undo({ datasetId: this.datasetId });
      this.lastChange = version.summary;
      this.editError = null;
      this.selected = null;
      await this.reload();
    } catch (e) {
      this.editError = errorText(e);
    }
  }
}
