// Every run's summary and, for the runs someone looks at, its metric history: loaded from the workspace
// (so a reloaded window sees the whole curve) and extended by live events (so it keeps moving).

import type { MetricPoint, RunProgress, RunSummary } from '../../../src-shared/api';
import { api, connection, errorText } from './api';

export const ACTIVE: RunSummary['status'][] = ['queued', 'running'];

/**
 * How often live training steps reach the page. A small model trains hundreds of steps a second; redrawing
 * the curves and progress for each one starves a slow machine's page (it stops answering clicks), so steps
 * are gathered and shown together a few times a second.
 */
const LIVE_FLUSH_MS = 200;

class RunsStore {
  list = $state<RunSummary[]>([]);
  // Raw (not deep) state: a curve is replaced whole when points arrive, never mutated in place, so its
  // thousands of points are not each wrapped in a reactive proxy.
  metrics = $state.raw<Record<string, MetricPoint[]>>({});
  logs = $state<Record<string, { level: string; message: string; at: number }[]>>({});
  error = $state<string | null>(null);
  private loadingMetrics = new Set<string>();
  // Live steps not yet shown, per run: their points and the newest progress.
  private pending = new Map<string, { points: MetricPoint[]; progress: RunProgress }>();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;

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
          if (this.pending.size) this.flushLive(); // the steps before this update first, so it is not overwritten
          this.upsert(e.run);
          return;
        case 'run.metric': {
          const waiting = this.pending.get(e.runId);
          if (waiting) {
            waiting.points.push(e.point);
            waiting.progress = e.progress;
          } else this.pending.set(e.runId, { points: [e.point], progress: e.progress });
          this.flushTimer ??= setTimeout(() => this.flushLive(), LIVE_FLUSH_MS);
          return;
        }
        case 'run.log':
          (this.logs[e.runId] ??= []).push({ level: e.level, message: e.message, at: Date.now() });
          if (this.logs[e.runId].length > 500) this.logs[e.runId].splice(0, 100); // pages show the newest few
          return;
      }
    });
  }

  /** Shows the live steps gathered since the last flush: one curve update and one progress update per run. */
  private flushLive(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const updates = [...this.pending];
    this.pending.clear();
    let metrics = this.metrics;
    for (const [runId, { points, progress }] of updates) {
      const curve = metrics[runId];
      // Only extend a curve already loaded (else the first load brings everything).
      if (curve) {
        const last = curve.at(-1)?.step ?? -1;
        const fresh = points.filter((p) => p.step > last);
        if (fresh.length) metrics = { ...metrics, [runId]: [...curve, ...fresh] };
      }
      const run = this.list.find((r) => r.id === runId);
      if (run) run.progress = progress;
    }
    this.metrics = metrics;
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
      this.metrics = { ...this.metrics, [runId]: [...stored, ...live] };
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
