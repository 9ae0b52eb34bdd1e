// Run events in a process that does not own the workspace. The owner trains and emits run.updated and
// run.metric as things happen; here the same events are read off the database, every poll: run.updated for a
// run whose row changed, run.metric for each new step of a running run. So a second window, a second server
// or `adapter-studio train` beside the app follow runs that train elsewhere.

import type { Run, RunId, RunStatus } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { type RunViews, toMetricPoint } from './runs.js';

const UNFINISHED: readonly RunStatus[] = ['queued', 'running', 'paused', 'interrupted'];

export class OtherProcessRuns {
  /** Every run at the last look (updatedAt, status); null before the first look, which only takes the baseline. */
  private seen: Map<RunId, { updatedAt: number; status: RunStatus }> | null = null;
  /** The last step reported per unfinished run. */
  private readonly lastStep = new Map<RunId, number>();

  constructor(
    private readonly ctx: ServiceContext,
    private readonly views: RunViews,
  ) {}

  /** Forgets what was seen (this process became the owner, or switched workspaces). */
  reset(): void {
    this.seen = null;
    this.lastStep.clear();
  }

  look(): void {
    const ws = this.ctx.ws();
    const runs = ws.runs.list();
    const before = this.seen;
    this.seen = new Map(runs.map((r) => [r.id, { updatedAt: r.updatedAt, status: r.status }]));
    for (const run of runs) {
      if (before === null) {
        // The baseline: what is recorded already is history, not news.
        if (UNFINISHED.includes(run.status)) this.lastStep.set(run.id, ws.runs.metrics(run.id).at(-1)?.step ?? -1);
        continue;
      }
      const was = before.get(run.id);
      const changed = was?.updatedAt !== run.updatedAt;
      // Steps first, then the new status: a follower sees every step before the run ends. A run may have
      // started and ended between two looks, so an unfinished run that changed is read too.
      if (run.status === 'running' || (changed && (!was || UNFINISHED.includes(was.status)))) this.emitSteps(run);
      if (changed) this.ctx.events.emit({ type: 'run.updated', run: this.views.summary(run) });
      if (!UNFINISHED.includes(run.status)) this.lastStep.delete(run.id);
    }
  }

  private emitSteps(run: Run): void {
    const points = this.ctx.ws().runs.metrics(run.id, this.lastStep.get(run.id) ?? -1);
    if (points.length === 0) return;
    const planned = this.views.summary(run).progress;
    for (const p of points) {
      const progress = { step: p.step, totalSteps: Math.max(p.step, planned?.totalSteps ?? 0), epoch: planned?.epoch ?? 0, loss: p.loss, lr: p.lr, tokensPerSec: p.tokensPerSec, etaSec: null };
      this.ctx.events.emit({ type: 'run.metric', runId: run.id, point: toMetricPoint(p), progress });
    }
    this.lastStep.set(run.id, points.at(-1)!.step);
  }
}
