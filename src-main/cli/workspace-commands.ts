// Commands that work on a workspace through the app's own service (the code the UI calls), so a run, an
// evaluation or a judgement made here shows up in the app and the other way round:
//   train --workspace   queue a run (adapter, LoRA or full fine-tune) and follow it to the end
//   eval                answer a held-out split with several columns and score every answer
//   compare             the method table, outputs side by side, and an LLM judge's verdicts

import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { tally } from '../../src-shared/ab-stats.js';
import { type ApiEvent, ApiError, type ApiInput, type ApiMethod, type ApiOutput, type EvalSuiteSummary, type EvalSystem, type MethodRow, METHODS, type Method } from '../../src-shared/api.js';
import { formatCount, methodTableCsv, methodTableMarkdown } from '../../src-shared/method-table.js';
import { EngineError } from '../engine/errors.js';
import { PRESETS, type PresetName, type Recipe } from '../engine/recipe.js';
import { forkSpawner } from '../host/engine-process.js';
import { createAppService, type AppService } from '../service/index.js';
import { defaultWorkspaceDir } from '../store/index.js';
import { flag, type Flags, type IO, numberFlag, parseFlags } from './flags.js';
import { applyRecipeFlags, recipeFlagSpec } from './recipe-flags.js';
import { SCIENCEQA_TABLE_COLUMNS } from '../../src-shared/scienceqa-table.js';
import { builtPaths } from './serve-command.js';

export const WORKSPACE_USAGE = `  train     --workspace DIR --model NAME|ID|DIR --dataset NAME|ID   queue a run in a workspace (as the app's
            [--split train|val|test|all] [--name NAME] [--method adapter|lora|full] [--preset P]
            [recipe flags as above] [--json]   Train page does) and follow it until it ends
            [--vision NAME|ID|DIR [--vision-feature projected|class-tokens:L,..] [--projection-hidden H]]
            a multi-modal adapter: the CLIP tower's image feature added to every adaption prompt
  eval      --workspace DIR [--dataset NAME|ID] [--split test] [--limit N] | [--prompts FILE]
            [--column base|RUN|model:NAME|refs:FILE[=LABEL]]... [--model NAME|ID] [--name NAME]
            [--max-new-tokens N] [--scienceqa-out DIR] [--json]   answer the set with every column (default: the
            base model and each of its completed runs) and score each answer: exact match, ROUGE-L, token F1,
            perplexity; imported ScienceQA questions also get ScienceQA's table and, with --scienceqa-out, one
            results file per column for eval-scienceqa
  compare   --workspace DIR [--eval ID|NAME] [--format markdown|csv] [--out FILE] [--examples N]
            [--judge A,B (--judge-url URL --judge-model M [--judge-key-env VAR] | --judge-local MODEL[+RUN])]
            the method table of an evaluation (default: the newest), N outputs side by side, and an
            LLM judge's pairwise verdicts between columns A and B (0-based), labelled as such
`;

/** A service on the workspace with engine processes from the built bundle. */
export class Session {
  readonly events: ApiEvent[] = [];
  private readonly waiters: { match: (e: ApiEvent) => boolean; resolve: (e: ApiEvent) => void }[] = [];
  readonly service: AppService;

  constructor(workspaceDir: string, startQueue: boolean, io: IO) {
    const paths = builtPaths();
    if (!existsSync(paths.hostEntry)) throw new EngineError(`${paths.hostEntry} is missing: run "npm run build" first`);
    this.service = createAppService({ workspaceDir, spawnHost: forkSpawner(paths.hostEntry), transport: 'cli', version: paths.version, log: (m) => io.stderr(`${m}\n`), startQueue });
    this.service.events.subscribe((e) => {
      this.events.push(e);
      for (const w of [...this.waiters]) {
        if (w.match(e)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(e);
        }
      }
    });
  }

  async call<M extends ApiMethod>(method: M, input: ApiInput<M>): Promise<ApiOutput<M>> {
    const answer = await this.service.call(method, input);
    if (!answer.ok) throw new EngineError(new ApiError(answer.error).message);
    return answer.value as ApiOutput<M>;
  }

  /** The next event (from now on) that matches. */
  next<T extends ApiEvent>(match: (e: ApiEvent) => e is T): Promise<T> {
    return new Promise((resolve) => this.waiters.push({ match, resolve: resolve as (e: ApiEvent) => void }));
  }

  close(): Promise<void> {
    return this.service.close();
  }
}

export async function withSession<T>(flags: Flags, startQueue: boolean, io: IO, fn: (s: Session) => Promise<T>): Promise<T> {
  const session = new Session(resolve(flag(flags, 'workspace') ?? defaultWorkspaceDir()), startQueue, io);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

/** Ctrl-C runs `onStop` once (to stop gracefully); a second Ctrl-C quits. */
export function onInterrupt(onStop: () => void): () => void {
  const handler = () => {
    process.off('SIGINT', handler);
    onStop();
  };
  process.on('SIGINT', handler);
  return () => process.off('SIGINT', handler);
}

export function byNameOrId<T extends { id: string; name: string }>(items: T[], wanted: string, what: string): T {
  const hit = items.find((i) => i.id === wanted) ?? items.filter((i) => i.name === wanted).at(0);
  if (!hit) throw new EngineError(`no ${what} named or with id "${wanted}" in this workspace${items.length ? `; there are: ${items.map((i) => i.name).join(', ')}` : ''}`);
  return hit;
}

export async function findModel(s: Session, wanted: string): Promise<string> {
  const models = await s.call('models.list', {});
  const hit = models.find((m) => m.id === wanted || m.name === wanted || resolve(m.path) === resolve(wanted));
  if (hit) return hit.id;
  if (existsSync(wanted) && statSync(wanted).isDirectory()) return (await s.call('models.add', { path: resolve(wanted) })).id;
  return byNameOrId(models, wanted, 'model').id;
}

// --- train --workspace ------------------------------------------------------------------------------------------

export async function workspaceTrainCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, {
    workspace: 'string', model: 'string', dataset: 'string', split: 'string', name: 'string', method: 'string', preset: 'string',
    'lora-targets': 'string', json: 'boolean', vision: 'string', 'vision-feature': 'string', 'projection-hidden': 'string', ...recipeFlagSpec(),
  });
  const method = flag(flags, 'method') as Method | undefined;
  if (method !== undefined && !METHODS.includes(method)) throw new EngineError(`--method must be one of ${METHODS.join(', ')}, got "${method}"`);
  const preset = flag(flags, 'preset') as PresetName | undefined;
  if (preset !== undefined && !(preset in PRESETS)) throw new EngineError(`unknown --preset "${preset}"; available: ${Object.keys(PRESETS).join(', ')}`);
  if (!flag(flags, 'vision') && (flag(flags, 'vision-feature') || flag(flags, 'projection-hidden'))) throw new EngineError('--vision-feature and --projection-hidden need --vision');
  const split = (flag(flags, 'split') ?? 'all') as 'train' | 'val' | 'test' | 'all';
  if (!['train', 'val', 'test', 'all'].includes(split)) throw new EngineError(`--split must be train, val, test or all, got "${split}"`);
  if (!flag(flags, 'model') || !flag(flags, 'dataset')) throw new EngineError('train --workspace needs --model and --dataset');

  return withSession(flags, true, io, async (s) => {
    const modelId = await findModel(s, flag(flags, 'model')!);
    const datasetId = byNameOrId(await s.call('datasets.list', {}), flag(flags, 'dataset')!, 'dataset').id;
    // The method's preset for this model (the UI's defaults), then --preset, then the flags.
    const base = await s.call('runs.defaults', { modelId, method: method ?? (preset === 'alpaca' ? 'full' : preset === 'alpaca-lora' ? 'lora' : 'adapter') });
    const recipe = applyRecipeFlags(flags, { ...base } as unknown as Recipe) as unknown as Record<string, unknown>;
    const targets = flag(flags, 'lora-targets');
    if (targets !== undefined) recipe.loraTargets = targets.split(',').map((t) => t.trim().replace(/_proj$/, ''));
    // A multi-modal run: the tower by name, id or folder (a folder is added to the workspace as a vision model).
    const vision = flag(flags, 'vision')
      ? {
          modelId: await findModel(s, flag(flags, 'vision')!),
          feature: flag(flags, 'vision-feature') ?? 'projected',
          projectionHidden: numberFlag(flags, 'projection-hidden', 'int') ?? 128,
        }
      : undefined;
    const plan = await s.call('runs.plan', { modelId, datasetId, split, recipe: recipe as never, vision });
    if (plan.problems.length) throw new EngineError(plan.problems.map((p) => (p.field ? `--${p.field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${p.message}` : p.message)).join('; '));
    const run = await s.call('runs.start', { modelId, datasetId, split, name: flag(flags, 'name'), recipe: recipe as never, vision });
    io.stderr(`queued run "${run.name}" (${run.id}): ${run.method}, ${formatCount(plan.trainableParameters)} trainable parameters, ${plan.totalSteps} steps\n`);
    const { owner } = await s.call('system.info', {});
    if (owner && !owner.self) io.stderr(`it trains in ${owner.description}, which owns this workspace; following it from here\n`);
    const stop = onInterrupt(() => {
      io.stderr('\npausing: writing a checkpoint (resume it from the app or with the same workspace)\n');
      // Refused when the run trains in another process: say so (a second Ctrl-C quits).
      void s.call('runs.pause', { runId: run.id }).catch((e: Error) => io.stderr(`${e.message}\n`));
    });
    let lastShown = 0;
    const every = Math.max(1, Math.round(plan.totalSteps / 20));
    const unsubscribe = s.service.events.subscribe((e) => {
      if (e.type === 'run.metric' && e.runId === run.id) {
        if (flags.json) io.stdout(`${JSON.stringify({ type: 'step', ...e.point })}\n`);
        else if (e.point.step - lastShown >= every || e.point.step === plan.totalSteps) {
          lastShown = e.point.step;
          io.stderr(`  step ${e.point.step}/${plan.totalSteps}  loss ${e.point.loss?.toFixed(4)}  ${Math.round(e.point.tokensPerSec ?? 0)} tok/s\n`);
        }
      }
      if (e.type === 'run.log' && e.runId === run.id && e.level !== 'info') io.stderr(`  ${e.level}: ${e.message}\n`);
    });
    // When the run trains in another process, only the service's (unref'd) database polls bring its events:
    // keep this process alive until it ends.
    const keepAlive = setInterval(() => undefined, 60_000);
    try {
      const done = await s.next((e): e is Extract<ApiEvent, { type: 'run.updated' }> => e.type === 'run.updated' && e.run.id === run.id && ['completed', 'failed', 'cancelled', 'paused', 'interrupted'].includes(e.run.status));
      const detail = await s.call('runs.get', { runId: run.id });
      const summary = { runId: run.id, name: run.name, method: run.method, status: done.run.status, error: done.run.error, trainingSeconds: detail.trainingSeconds, adapterPath: detail.adapterPath };
      io.stdout(flags.json ? `${JSON.stringify(summary)}\n` : `run "${run.name}" ${done.run.status}${done.run.error ? `: ${done.run.error}` : ''}${detail.trainingSeconds ? ` after ${detail.trainingSeconds.toFixed(1)} s` : ''}\n`);
      return done.run.status === 'completed' ? 0 : done.run.status === 'paused' ? 130 : 1;
    } finally {
      clearInterval(keepAlive);
      unsubscribe();
      stop();
    }
  });
}

// --- eval --------------------------------------------------------------------------------------------------------

export async function evalCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(
    args,
    { workspace: 'string', dataset: 'string', split: 'string', limit: 'string', prompts: 'string', column: 'string', model: 'string', name: 'string', 'max-new-tokens': 'string', json: 'boolean', help: 'boolean', 'scienceqa-out': 'string' },
    ['column'],
  );
  if (flags.help) {
    io.stdout(WORKSPACE_USAGE);
    return 0;
  }
  const split = (flag(flags, 'split') ?? 'test') as 'train' | 'val' | 'test' | 'all';
  if (!['train', 'val', 'test', 'all'].includes(split)) throw new EngineError(`--split must be train, val, test or all, got "${split}"`);
  if (flag(flags, 'prompts') && flag(flags, 'dataset')) throw new EngineError('give --dataset or --prompts, not both');
  return withSession(flags, false, io, async (s) => {
    const set = await evalSet(s, flags, split);
    const systems = await evalColumns(s, flags, (flags.column as string[] | undefined) ?? []);
    const started = await s.call('evals.start', { name: flag(flags, 'name') ?? 'Evaluation', set, systems, maxNewTokens: numberFlag(flags, 'max-new-tokens', 'int') ?? 64 });
    const stop = onInterrupt(() => {
      io.stderr('\ncancelling after the current batch (resume it with the app)\n');
      void s.call('tasks.cancel', { taskId: started.taskId });
    });
    let lastPercent = -1;
    const unsubscribe = s.service.events.subscribe((e) => {
      if (e.type !== 'task.progress' || e.taskId !== started.taskId || e.total === 0) return;
      const percent = Math.floor((100 * e.done) / e.total / 10) * 10;
      if (percent > lastPercent && !e.finished) {
        lastPercent = percent;
        io.stderr(`  ${e.done}/${e.total} answers\n`);
      }
    });
    try {
      const end = await s.next((e): e is Extract<ApiEvent, { type: 'task.progress' }> => e.type === 'task.progress' && e.taskId === started.taskId && e.finished);
      const suite = await s.call('evals.get', { suiteId: started.suiteId, limit: 1 });
      const table = await s.call('evals.methodTable', { suiteId: started.suiteId });
      // Imported ScienceQA questions: ScienceQA's own table too, and its results files with --scienceqa-out.
      const scienceqa = set.kind === 'split' ? await s.call('evals.scienceqa', { suiteId: started.suiteId }).catch(() => null) : null;
      if (flag(flags, 'scienceqa-out')) {
        if (!scienceqa) throw new EngineError('--scienceqa-out: this evaluation is not of imported ScienceQA questions');
        const dir = flag(flags, 'scienceqa-out')!;
        mkdirSync(dir, { recursive: true });
        for (const c of scienceqa) {
          const file = join(dir, `${c.label.replace(/[^\w.+-]+/g, '_')}.json`);
          writeFileSync(file, `${JSON.stringify({ results: c.results })}\n`);
          io.stderr(`  ${c.label}: ScienceQA results written to ${file}\n`);
        }
      }
      if (flags.json) io.stdout(`${JSON.stringify({ suiteId: suite.id, status: suite.status, error: end.error, set: suite.setLabel, columns: suite.columns.map(({ label, kind, metrics, status }) => ({ label, kind, status, metrics })), methodTable: table, scienceqa: scienceqa?.map(({ results: _r, ...rest }) => rest) ?? null })}\n`);
      else io.stdout(`evaluation ${suite.id} (${suite.name}) on ${suite.setLabel}: ${suite.status}${end.error ? ` (${end.error})` : ''}\n\n${methodTableMarkdown(table)}${scienceqa ? `\n${scienceQaTable(scienceqa)}` : ''}`);
      return suite.status === 'completed' ? 0 : suite.status === 'cancelled' ? 130 : 1;
    } finally {
      unsubscribe();
      stop();
    }
  });
}


/** ScienceQA's accuracy table (the paper's Table 2 layout), one row per column. */
function scienceQaTable(rows: ApiOutput<'evals.scienceqa'>): string {
  const head = `| column | ${SCIENCEQA_TABLE_COLUMNS.map(([, l]) => l).join(' | ')} | unparsed |`;
  const rule = `|---|${SCIENCEQA_TABLE_COLUMNS.map(() => '---').join('|')}|---|`;
  const body = rows.map((r) => `| ${r.label} | ${SCIENCEQA_TABLE_COLUMNS.map(([k]) => (r.scores[k] == null ? 'n/a' : r.scores[k]!.toFixed(2))).join(' | ')} | ${r.unparseable} |`);
  return ['ScienceQA accuracy (%):', '', head, rule, ...body, ''].join('\n');
}

async function evalSet(s: Session, flags: Flags, split: 'train' | 'val' | 'test' | 'all'): Promise<ApiInput<'evals.start'>['set']> {
  const promptsFile = flag(flags, 'prompts');
  if (promptsFile) {
    const prompts = readFileSync(promptsFile, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
    if (prompts.length === 0) throw new EngineError(`${promptsFile}: no prompts (one per line)`);
    return { kind: 'prompts', prompts };
  }
  const datasets = await s.call('datasets.list', {});
  const wanted = flag(flags, 'dataset');
  if (!wanted && datasets.length !== 1) throw new EngineError(`say which dataset with --dataset (${datasets.length ? `there are: ${datasets.map((d) => d.name).join(', ')}` : 'the workspace has none'})`);
  const dataset = wanted ? byNameOrId(datasets, wanted, 'dataset') : datasets[0];
  return { kind: 'split', datasetId: dataset.id, split, limit: numberFlag(flags, 'limit', 'int') ?? null };
}

/** --column values, or by default the base model and every completed run of it. */
async function evalColumns(s: Session, flags: Flags, specs: string[]): Promise<EvalSystem[]> {
  const runs = (await s.call('runs.list', { status: 'completed' })).filter((r) => r.modelId !== null);
  const models = await s.call('models.list', {});
  const baseWanted = flag(flags, 'model');
  const baseId = baseWanted ? await findModel(s, baseWanted) : runs.at(0)?.modelId ?? (models.length === 1 ? models[0].id : null);
  const base = (): string => {
    if (!baseId) throw new EngineError('say which base model with --model');
    return baseId;
  };
  if (specs.length === 0) {
    const own = runs.filter((r) => r.modelId === base()).reverse(); // oldest first
    return [{ kind: 'model', model: { modelId: base(), adapterRunId: null } }, ...own.map((r) => ({ kind: 'model' as const, model: { modelId: base(), adapterRunId: r.id } }))];
  }
  const out: EvalSystem[] = [];
  for (const spec of specs) {
    if (spec === 'base') out.push({ kind: 'model', model: { modelId: base(), adapterRunId: null } });
    else if (spec.startsWith('model:')) out.push({ kind: 'model', model: { modelId: await findModel(s, spec.slice(6)), adapterRunId: null } });
    else if (spec.startsWith('refs:')) {
      const [file, label] = spec.slice(5).split('=');
      if (!existsSync(file)) throw new EngineError(`--column ${spec}: no file ${file}`);
      out.push({ kind: 'references', label: label ?? basename(file).replace(/\.json$/, ''), fileName: basename(file), content: readFileSync(file, 'utf8') });
    } else {
      const all = await s.call('runs.list', {});
      const run = byNameOrId(all.map((r) => ({ ...r, name: r.name })), spec, 'run');
      if (run.status !== 'completed') throw new EngineError(`--column ${spec}: run "${run.name}" is ${run.status}, not completed`);
      out.push({ kind: 'model', model: { modelId: run.modelId!, adapterRunId: run.id } });
    }
  }
  return out;
}

// --- compare -----------------------------------------------------------------------------------------------------

export async function compareCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, {
    workspace: 'string', eval: 'string', format: 'string', out: 'string', examples: 'string', judge: 'string',
    'judge-url': 'string', 'judge-model': 'string', 'judge-key-env': 'string', 'judge-local': 'string', json: 'boolean', help: 'boolean',
  });
  if (flags.help) {
    io.stdout(WORKSPACE_USAGE);
    return 0;
  }
  const format = flag(flags, 'format') ?? 'markdown';
  if (format !== 'markdown' && format !== 'csv') throw new EngineError(`--format must be markdown or csv, got "${format}"`);
  return withSession(flags, false, io, async (s) => {
    const suites = await s.call('evals.list', {});
    if (suites.length === 0) throw new EngineError('the workspace has no evaluations yet: run "adapter-studio eval" first');
    const wanted = flag(flags, 'eval');
    const suite: EvalSuiteSummary = wanted ? byNameOrId(suites, wanted, 'evaluation') : suites[0];

    let judged: { columns: [number, number]; judge: string; tally: ReturnType<typeof tally>; unrated: number; comparisonId: string } | null = null;
    const judgeSpec = flag(flags, 'judge');
    if (judgeSpec) judged = await runJudge(s, flags, suite, judgeSpec, io);

    const table: MethodRow[] = await s.call('evals.methodTable', { suiteId: suite.id });
    const rendered = format === 'csv' ? methodTableCsv(table) : methodTableMarkdown(table);
    const out = flag(flags, 'out');
    if (out) {
      writeFileSync(out, rendered);
      io.stderr(`method table written to ${out}\n`);
    }
    const n = numberFlag(flags, 'examples', 'int') ?? 0;
    const rows = n > 0 ? (await s.call('evals.get', { suiteId: suite.id, limit: Math.min(n, 1000) })).rows : [];
    if (flags.json) {
      io.stdout(`${JSON.stringify({ suiteId: suite.id, name: suite.name, set: suite.setLabel, methodTable: table, examples: rows, judge: judged })}\n`);
      return 0;
    }
    io.stdout(`evaluation ${suite.id} (${suite.name}) on ${suite.setLabel}, ${suite.status}\n\n`);
    if (!out) io.stdout(rendered);
    for (const row of rows) {
      io.stdout(`\n### ${row.position + 1}. ${row.instruction}${row.input ? `\n    input: ${row.input}` : ''}\n`);
      if (row.reference !== null) io.stdout(`    reference: ${row.reference}\n`);
      suite.columns.forEach((c, i) => io.stdout(`    ${c.label}: ${row.outputs[i]?.text ?? '(not answered)'}\n`));
    }
    if (judged) {
      const [a, b] = judged.columns.map((i) => suite.columns[i].label);
      const t = judged.tally;
      io.stdout(
        `\nLLM-as-judge (${judged.judge}; an opinion, not a measurement): ${a} vs ${b}\n` +
          `  ${a} wins ${t.wins}, ties ${t.ties}, ${b} wins ${t.losses}${judged.unrated ? `, unreadable ${judged.unrated}` : ''}\n` +
          `  ${a}'s score ${(t.score * 100).toFixed(1)}% (95% interval ${(t.low * 100).toFixed(1)}-${(t.high * 100).toFixed(1)}%)\n`,
      );
    }
    return 0;
  });
}

async function runJudge(s: Session, flags: Flags, suite: EvalSuiteSummary, spec: string, io: IO) {
  const columns = spec.split(',').map((v) => Number(v.trim()));
  if (columns.length !== 2 || columns.some((c) => !Number.isInteger(c) || c < 0)) throw new EngineError(`--judge takes two column numbers such as 0,1, got "${spec}"`);
  const local = flag(flags, 'judge-local');
  let judge: ApiInput<'evals.judge'>['judge'];
  let judgeName: string;
  if (local) {
    const [modelPart, runPart] = local.split('+');
    const modelId = await findModel(s, modelPart);
    const runId = runPart ? byNameOrId(await s.call('runs.list', {}), runPart, 'run').id : null;
    judge = { kind: 'local', model: { modelId, adapterRunId: runId } };
    judgeName = local;
  } else {
    const url = flag(flags, 'judge-url');
    const model = flag(flags, 'judge-model');
    if (!url || !model) throw new EngineError('--judge needs --judge-url and --judge-model (an OpenAI-compatible server), or --judge-local MODEL');
    const keyEnv = flag(flags, 'judge-key-env');
    const apiKey = keyEnv ? process.env[keyEnv] : undefined;
    if (keyEnv && !apiKey) throw new EngineError(`--judge-key-env ${keyEnv}: that environment variable is not set`);
    // The endpoint goes into the workspace settings, as the Settings page would put it (the key too, when given).
    await s.call('settings.update', { openai: { url, model, apiKey: apiKey ?? '' } });
    judge = { kind: 'openai' };
    judgeName = model;
  }
  const started = await s.call('evals.judge', { suiteId: suite.id, columns: columns as [number, number], judge });
  io.stderr(`LLM judge (${judgeName}) on ${suite.columns[columns[0]]?.label} vs ${suite.columns[columns[1]]?.label}...\n`);
  const end = await s.next((e): e is Extract<ApiEvent, { type: 'task.progress' }> => e.type === 'task.progress' && e.taskId === started.taskId && e.finished);
  if (end.error && end.done === 0) throw new EngineError(`the judge failed: ${end.error}`);
  if (end.error) io.stderr(`note: ${end.error}\n`);
  const t = await s.call('compare.tally', { comparisonId: started.comparisonId });
  const verdicts = [...Array(t.wins[0]).fill('a'), ...Array(t.wins[1]).fill('b'), ...Array(t.ties).fill('tie')];
  return { columns: columns as [number, number], judge: judgeName, tally: tally(verdicts), unrated: t.unrated, comparisonId: started.comparisonId };
}
