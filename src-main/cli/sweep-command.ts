// `adapter-studio sweep`: the paper's ablations on a workspace's model and data, through the app's service (so
// the sweep, its runs and evaluations show up in the app). It queues every point's run, follows the sweep
// until each run has trained and been evaluated, prints the table and, with --out, writes it beside the plots.
// The sweep lives in the workspace: after Ctrl-C or a crash, `--resume ID` follows it again and nothing
// finished is redone.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import type { ApiInput, Method, SweepResults, SweepSummary } from '../../src-shared/api.js';
import { METHODS } from '../../src-shared/api.js';
import { sweepCsv, sweepMarkdown, sweepPlots } from '../../src-shared/sweep-report.js';
import { EngineError } from '../engine/errors.js';
import type { Recipe } from '../engine/recipe.js';
import { flag, type IO, numberFlag, parseFlags } from './flags.js';
import { applyRecipeFlags, recipeFlagSpec } from './recipe-flags.js';
import { byNameOrId, findModel, onInterrupt, type Session, withSession } from './workspace-commands.js';

export const SWEEP_USAGE = `  sweep     --workspace DIR --model NAME|ID|DIR --dataset NAME|ID --vary FIELD=V1,V2,... [--vary FIELD=...]
            [--split train] [--eval-split test] [--eval-limit N] [--max-new-tokens N] [--data-seed N]
            [--method adapter|lora|full] [recipe flags as above] [--name NAME] [--plan] [--json] [--out DIR]
            [--resume ID|NAME]   train every combination of one or two varied settings (a recipe field such
            as adapterLayers, adapterLen, gateMode, init, lr, epochs, method; or data.fraction, data.count,
            data.tag, data.source), evaluate each run on the held-out split, print the table (last line JSON:
            {"rows": [...]}; --json: one JSON line per change of a point, then that line) and with --out
            write sweep.csv, sweep.md, sweep.json and the plots (SVG and PNG)
`;

const SPLITS = ['train', 'val', 'test', 'all'] as const;
type SplitName = (typeof SPLITS)[number];

function splitFlag(value: string | undefined, name: string, fallback: SplitName): SplitName {
  const v = (value ?? fallback) as SplitName;
  if (!SPLITS.includes(v)) throw new EngineError(`--${name} must be train, val, test or all, got "${v}"`);
  return v;
}

/** "adapterLayers=1,2,4" -> {field, values}; values stay strings (the service reads each as its field's type). */
export function parseVary(spec: string): { field: string; values: string[] } {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new EngineError(`--vary takes FIELD=V1,V2,..., got "${spec}"`);
  const values = spec.slice(eq + 1).split(',').map((v) => v.trim());
  if (values.some((v) => v === '')) throw new EngineError(`--vary ${spec.slice(0, eq)}: an empty value in "${spec.slice(eq + 1)}"`);
  return { field: spec.slice(0, eq).trim(), values };
}

function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export async function sweepCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(
    args,
    {
      workspace: 'string', model: 'string', dataset: 'string', split: 'string', vary: 'string', 'eval-split': 'string', 'eval-limit': 'string',
      'max-new-tokens': 'string', 'data-seed': 'string', method: 'string', 'lora-targets': 'string', name: 'string', plan: 'boolean', json: 'boolean',
      out: 'string', resume: 'string', help: 'boolean', ...recipeFlagSpec(),
    },
    ['vary'],
  );
  if (flags.help) {
    io.stdout(SWEEP_USAGE);
    return 0;
  }
  const method = flag(flags, 'method') as Method | undefined;
  if (method !== undefined && !METHODS.includes(method)) throw new EngineError(`--method must be one of ${METHODS.join(', ')}, got "${method}"`);
  const resumeWanted = flag(flags, 'resume');
  const vary = ((flags.vary as string[] | undefined) ?? []).map(parseVary);
  if (!resumeWanted && (!flag(flags, 'model') || !flag(flags, 'dataset') || vary.length === 0)) throw new EngineError('sweep needs --model, --dataset and at least one --vary FIELD=V1,V2 (or --resume ID)');

  return withSession(flags, true, io, async (s) => {
    let sweep: SweepSummary;
    if (resumeWanted) {
      sweep = byNameOrId(await s.call('sweeps.list', {}), resumeWanted, 'sweep');
      if (sweep.status === 'running') sweep = await s.call('sweeps.resume', { sweepId: sweep.id });
      io.stderr(`following sweep "${sweep.name}" (${sweep.id}): ${sweep.finished} of ${sweep.points.length} points finished\n`);
    } else {
      const modelId = await findModel(s, flag(flags, 'model')!);
      const datasetId = byNameOrId(await s.call('datasets.list', {}), flag(flags, 'dataset')!, 'dataset').id;
      const base = await s.call('runs.defaults', { modelId, method: method ?? 'adapter' });
      const recipe = applyRecipeFlags(flags, { ...base } as unknown as Recipe) as unknown as Record<string, unknown>;
      const targets = flag(flags, 'lora-targets');
      if (targets !== undefined) recipe.loraTargets = targets.split(',').map((t) => t.trim().replace(/_proj$/, ''));
      const request: ApiInput<'sweeps.plan'> = {
        name: flag(flags, 'name'),
        modelId,
        datasetId,
        split: splitFlag(flag(flags, 'split'), 'split', 'train'),
        recipe: recipe as never,
        vary,
        evalSplit: splitFlag(flag(flags, 'eval-split'), 'eval-split', 'test'),
        evalLimit: numberFlag(flags, 'eval-limit', 'int') ?? null,
        maxNewTokens: numberFlag(flags, 'max-new-tokens', 'int') ?? 64,
        dataSeed: numberFlag(flags, 'data-seed', 'int') ?? 0,
      };
      const plan = await s.call('sweeps.plan', request);
      if (plan.problems.length) throw new EngineError(plan.problems.map((p) => p.message).join('; '));
      for (const w of plan.warnings) io.stderr(`warning: ${w}\n`);
      const steps = plan.points.reduce((n, p) => n + p.totalSteps, 0);
      io.stderr(
        `sweep "${plan.name}": ${plan.points.length} runs (${steps} optimizer steps in all), each evaluated on ${plan.evalExamples} examples; ` +
          `${plan.estimatedSeconds === null ? `no time estimate (${plan.estimateBasis})` : `about ${formatDuration(plan.estimatedSeconds)} (from ${plan.estimateBasis})`}\n`,
      );
      if (flags.plan) {
        io.stdout(`${JSON.stringify(plan)}\n`);
        return 0;
      }
      sweep = await s.call('sweeps.start', request);
      io.stderr(`queued sweep ${sweep.id}; resume following it with --resume ${sweep.id}\n`);
      if (flags.json) io.stdout(`${JSON.stringify({ type: 'sweep', sweepId: sweep.id, points: sweep.points.length })}\n`);
    }
    const results = await follow(s, sweep, io, !!flags.json);
    const out = flag(flags, 'out');
    if (out) await writeReport(resolve(out), results, io);
    if (!flags.json) io.stdout(sweepMarkdown(results));
    io.stdout(`${JSON.stringify({ sweepId: results.sweep.id, status: results.sweep.status, rows: results.rows.map((r) => ({ settings: r.settings, state: r.state, metrics: r.metrics })) })}\n`);
    return results.sweep.status === 'completed' && results.rows.every((r) => r.state === 'done') ? 0 : results.sweep.status === 'running' ? 130 : 1;
  });
}

/** Until the sweep ends (or Ctrl-C: the sweep stays in the workspace, resumable). */
async function follow(s: Session, sweep: SweepSummary, io: IO, json: boolean): Promise<SweepResults> {
  let stopped = false;
  let wake: () => void = () => undefined;
  const stop = onInterrupt(() => {
    io.stderr(`\nstopping: the sweep stays in the workspace; follow it again with --resume ${sweep.id}\n`);
    stopped = true;
    wake();
  });
  const shown = new Map<number, string>();
  const unsubscribe = s.service.events.subscribe((e) => {
    if (e.type !== 'sweep.updated' || e.sweep.id !== sweep.id) return;
    for (const p of e.sweep.points) {
      const line = `${p.state}${p.state === 'evaluating' && p.evalTotal ? ` ${p.evalDone}/${p.evalTotal}` : ''}`;
      if (shown.get(p.position) === line) continue;
      shown.set(p.position, line);
      const text = `  [${e.sweep.finished}/${e.sweep.points.length}] ${Object.entries(p.settings).map(([k, v]) => `${k}=${v}`).join(', ')}: ${line}${p.error ? ` (${p.error})` : ''}`;
      if (json) io.stdout(`${JSON.stringify({ type: 'point', position: p.position, state: p.state, runId: p.runId, error: p.error })}\n`);
      else io.stderr(`${text}\n`);
    }
    if (e.sweep.status !== 'running') wake();
  });
  const keepAlive = setInterval(() => undefined, 60_000);
  try {
    for (;;) {
      const current = await s.call('sweeps.get', { sweepId: sweep.id });
      if (current.sweep.status !== 'running' || stopped) return current;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 5000);
      });
    }
  } finally {
    clearInterval(keepAlive);
    unsubscribe();
    stop();
  }
}

async function writeReport(dir: string, results: SweepResults, io: IO): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'sweep.csv'), sweepCsv(results));
  writeFileSync(join(dir, 'sweep.md'), sweepMarkdown(results));
  writeFileSync(join(dir, 'sweep.json'), `${JSON.stringify(results, null, 2)}\n`);
  for (const plot of sweepPlots(results)) {
    writeFileSync(join(dir, `${plot.name}.svg`), plot.svg);
    await sharp(Buffer.from(plot.svg), { density: 144 }).png().toFile(join(dir, `${plot.name}.png`));
  }
  io.stderr(`wrote sweep.csv, sweep.md, sweep.json and ${sweepPlots(results).length} plots (SVG and PNG) to ${dir}\n`);
}
