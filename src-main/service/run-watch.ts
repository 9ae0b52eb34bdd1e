// Run events in a process that does not own the workspace. The owner trains and emits run.updated and
// run.metric as things happen; here the same events are read off the database, every poll: run.updated for a
// run whose row changed, run.metric for each new step of a running run. So a second window, a second server
// or `adapter-studio train` beside the app follow runs that train elsewhere.

import type { RunId } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { type RunViews, toMetricPoint } from './runs.js';

export class OtherProcessRuns {
  /** updatedAt of every run at the last look; null before the first look (which only takes the baseline). */
  private updatedAt: Map<RunId, number> | null = null;
  /** The last step reported per running run. */
  private readonly lastStep = new Map<RunId, number>();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly views: RunViews,
  ) {}

  /** Forgets what was seen (this process became the owner, or switched workspaces). */
  reset(): void {
    this.updatedAt = null;
    this.lastStep.clear();
  }

  look(): void {
    const ws = this.ctx.ws();
    const runs = ws.runs.list();
    const before = this.updatedAt;
    this.updatedAt = new Map(runs.map((r) => [r.id, r.updatedAt]));
    for (const run of runs) {
      if (before && before.get(run.id) !== run.updatedAt) this.ctx.events.emit({ type: 'run.updated', run: this.views.summary(run) });
      if (run.status !== 'running') continue;
      const known = this.lastStep.get(run.id);
      if (known === undefined && before === null) {
        // Training already at the first look: followed from its current step on, not replayed.
        this.lastStep.set(run.id, ws.runs.metrics(run.id).at(-1)?.step ?? -1);
        continue;
      }
      const points = ws.runs.metrics(run.id, known ?? -1);
      if (points.length === 0) continue;
      const planned = this.views.summary(run).progress;
      for (const p of points) {
        const progress = { step: p.step, totalSteps: Math.max(p.step, planned?.totalSteps ?? 0), epoch: planned?.epoch ?? 0, loss: p.loss, lr: p.lr, tokensPerSec: p.tokensPerSec, etaSec: null };
        this.ctx.events.emit({ type: 'run.metric', runId: run.id, point: toMetricPoint(p), progress });
      }
      this.lastStep.set(run.id, points.at(-1)!.step);
    }
  }
}
