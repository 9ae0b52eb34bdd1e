// Every run's summary and, for the runs someone looks at, its metric history: loaded from the workspace
// (so a reloaded window sees the whole curve) and extended by live events (so it keeps moving).

import type { MetricPoint, RunSummary } from '../../../src-shared/api';
import { api, connection, errorText } from './api';

export const ACTIVE: RunSummary['status'][] = ['queued', 'running'];

class RunsStore {
  list = $state<RunSummary[]>([]);
  metrics = $state<Record<string, MetricPoint[]>>({});
  logs = $state<Record<string, { level: string; message: string; at: number }[]>>({});
  error = $state<string | null>(null);
  private loadingMetrics = new Set<string>();

  readonly active = $derived(this.list.find((r) => r.status === 'running') ?? null);
  readonly queued = $derived(
    this.list.filter((r) => r.queuePosition !== null).sort((a, b) => (a.queuePosition ?? 0) - (b.queuePosition ?? 0)),
  );

  constructor() {
    connection.on((e) => {
      switch (e.type) {
        case 'hello':
          void this.refresh();
          // Metrics may have moved on while disconnected: reload the curves being watched.
          for (const id of Object.keys(this.metrics)) void this.loadMetrics(id, true);
          return;
        case 'run.updated':
          this.upsert(e.run);
          return;
        case 'run.metric': {
          const points = this.metrics[e.runId];
          // Only append to a curve already loaded (else the first load brings everything).
          if (points && (points.length === 0 || points[points.length - 1].step < e.point.step)) points.push(e.point);
          const run = this.list.find((r) => r.id === e.runId);
          if (run) run.progress = e.progress;
          return;
        }
        case 'run.log':
          (this.logs[e.runId] ??= []).push({ level: e.level, message: e.message, at: Date.now() });
          return;
      }
    });
  }

  async refresh(): Promise<void> {
    try {
      this.list = await api.runs.list({});
      this.error = null;
    } catch (e) {
      this.error = errorText(e);
    }
  }

  /** Loads a run's curve once (or again with `force`), keeping live points that arrived meanwhile. */
  async loadMetrics(runId: string, force = false): Promise<void> {
    if ((this.metrics[runId] && !force) || this.loadingMetrics.has(runId)) return;
    this.loadingMetrics.add(runId);
    try {
      const stored = await api.runs.metrics({ runId });
      const live = (this.metrics[runId] ?? []).filter((p) => p.step > (stored.at(-1)?.step ?? -1));
      this.metrics[runId] = [...stored, ...live];
    } catch (e) {
      this.error = errorText(e);
    } finally {
      this.loadingMetrics.delete(runId);
    }
  }

  /** A run's newest summary: replaces the one listed, or lists a new run first. */
  upsert(run: RunSummary): void {
    const i = this.list.findIndex((r) => r.id === run.id);
    if (i >= 0) this.list[i] = run;
    else this.list.unshift(run);
  }

  get(runId: string | null): RunSummary | null {
    return this.list.find((r) => r.id === runId) ?? null;
  }
}

export const runs = new RunsStore();
