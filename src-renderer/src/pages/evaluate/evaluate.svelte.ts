// The Evaluate page's state: the new-evaluation form (set, columns, limits; the server's field errors placed
// beside the field that caused them), and the evaluations with their live progress, results and method table.

import { type ApiEvent, type ApiOutput, type EvalRow, type EvalSuiteSummary, type EvalSystem, type MethodRow, type ModelRef, type RunSummary } from '../../../../src-shared/api';
import { api, errorText, placeError } from '../../lib/api';
import { catalog } from '../../lib/catalog.svelte';
import { runs } from '../../lib/runs.svelte';
import { toasts } from '../../lib/toasts.svelte';

/** What a completed run adds to its base model, as a column's name says it. */
export const METHOD_NAMES: Record<string, string> = { adapter: 'LLaMA-Adapter', lora: 'LoRA', full: 'full fine-tune' };

/** One column of the form. `source`: '' (not chosen), 'model:<id>', 'run:<id>' or 'refs'. */
export interface ColumnDraft {
  key: number;
  source: string;
  label: string;
  /** Imported reference outputs: the chosen file's name and text. */
  fileName: string | null;
  content: string | null;
}

export type SplitChoice = 'test' | 'val' | 'train' | 'all';

/** Completed runs whose result can answer: an adapter, LoRA weights or a fine-tuned model folder. */
export function usableRuns(list: RunSummary[]): RunSummary[] {
  return list.filter((r) => r.status === 'completed' && r.modelId && r.adapterPath);
}

export class EvalForm {
  name = $state('');
  setKind = $state<'split' | 'prompts'>('split');
  datasetId = $state('');
  split = $state<SplitChoice>('test');
  /** "First N": empty (null, or undefined/NaN from a cleared number input) for all. */
  limit = $state<number | null | undefined>(null);
  prompts = $state('');
  columns = $state<ColumnDraft[]>([]);
  maxNewTokens = $state<number | null | undefined>(64);
  starting = $state(false);
  /** The server's answer: field errors (`name`, `set`, `limit`, `maxNewTokens`, `column.<i>`) and the rest. */
  serverErrors = $state<Record<string, string>>({});
  error = $state<string | null>(null);
  /** Set once the user edits the columns: from then on the defaults leave them alone. */
  touched = false;
  private nextKey = 1;

  readonly dataset = $derived(catalog.datasets.find((d) => d.id === this.datasetId) ?? null);

  get promptList(): string[] {
    return this.prompts
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
  }

  /** Examples the chosen set holds (before the limit), or null when unknown. */
  readonly setSize = $derived.by(() => {
    if (this.setKind === 'prompts') return this.promptList.length;
    const d = this.dataset;
    if (!d) return null;
    return this.split === 'all' ? d.examples : d.splits[this.split];
  });

  /** What stops the form from being sent, by field; shown beside the field. */
  readonly problems = $derived.by(() => {
    const p: Record<string, string> = {};
    if (this.setKind === 'split') {
      if (!this.dataset) p.set = 'Choose a dataset.';
      else if (this.setSize === 0) p.set = this.split === 'all' ? 'This dataset has no examples.' : `This dataset has no ${this.split} split: split it on the Datasets page, or choose all examples.`;
      if (this.limit !== null && this.limit !== undefined && !(Number.isInteger(this.limit) && this.limit >= 1)) p.limit = 'A whole number of at least 1, or empty for all.';
    } else if (!this.promptList.length) p.set = 'Write at least one prompt.';
    if (!this.columns.length) p.columns = 'Add at least one column.';
    this.columns.forEach((c, i) => {
      if (!c.source) p[`column.${i}`] = 'Choose what answers in this column.';
      else if (c.source === 'refs' && c.content === null) p[`column.${i}`] = 'Choose a JSON file of reference outputs.';
      else if (c.source === 'refs' && !c.label.trim()) p[`column.${i}`] = 'Name this column (for example "Alpaca-7B").';
    });
    const n = this.maxNewTokens;
    if (!(typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 2048)) p.maxNewTokens = 'A whole number from 1 to 2048.';
    return p;
  });

  /** A field's message: the form's own check first, then what the server said. */
  errorFor(field: string): string | null {
    return this.problems[field] ?? this.serverErrors[field] ?? null;
  }

  newColumn(source = '', label = ''): ColumnDraft {
    return { key: this.nextKey++, source, label, fileName: null, content: null };
  }

  addColumn(): void {
    this.touched = true;
    if (this.columns.length < 8) this.columns.push(this.newColumn());
  }

  removeColumn(index: number): void {
    this.touched = true;
    this.columns.splice(index, 1);
    this.serverErrors = {};
  }

  /** The base model and every completed run trained on it. */
  useDefaults(modelId: string): void {
    const trained = usableRuns(runs.list)
      .filter((r) => r.modelId === modelId)
      .sort((a, b) => (a.finishedAt ?? a.createdAt) - (b.finishedAt ?? b.createdAt))
      .slice(0, 7);
    this.columns = [this.newColumn(`model:${modelId}`), ...trained.map((r) => this.newColumn(`run:${r.id}`))];
  }

  /** The dataset's held-out split when it has one; otherwise all of it. */
  pickDataset(datasetId: string): void {
    this.datasetId = datasetId;
    const d = catalog.datasets.find((x) => x.id === datasetId);
    this.split = d && d.splits.test > 0 ? 'test' : 'all';
  }

  async readReferences(index: number, file: File): Promise<void> {
    const column = this.columns[index];
    if (!column) return;
    this.touched = true;
    column.fileName = file.name;
    column.content = await file.text();
    const { [`column.${index}`]: _stale, ...rest } = this.serverErrors;
    this.serverErrors = rest;
    if (!column.label.trim()) column.label = file.name.replace(/\.json$/i, '');
  }

  private system(c: ColumnDraft): EvalSystem {
    if (c.source === 'refs') return { kind: 'references', label: c.label.trim(), fileName: c.fileName ?? 'references.json', content: c.content ?? '' };
    const label = c.label.trim() || undefined;
    if (c.source.startsWith('run:')) {
      const runId = c.source.slice(4);
      const model: ModelRef = { modelId: runs.get(runId)?.modelId ?? '', adapterRunId: runId };
      return { kind: 'model', label, model };
    }
    return { kind: 'model', label, model: { modelId: c.source.slice(6), adapterRunId: null } };
  }

  /** Starts the evaluation; returns its suite and task ids, or null (the errors are on the form). */
  async start(): Promise<{ suiteId: string; taskId: string } | null> {
    if (Object.keys(this.problems).length || this.starting) return null;
    this.starting = true;
    this.error = null;
    this.serverErrors = {};
    try {
      const limit = typeof this.limit === 'number' && Number.isFinite(this.limit) ? this.limit : null;
      const started = await api.evals.start({
        name: this.name.trim() || undefined,
        set: this.setKind === 'split' ? { kind: 'split', datasetId: this.datasetId, split: this.split, limit } : { kind: 'prompts', prompts: this.promptList },
        systems: this.columns.map((c) => this.system(c)),
        maxNewTokens: this.maxNewTokens as number,
      });
      toasts.show(`Started “${this.name.trim() || 'Evaluation'}”`);
      this.name = '';
      return started;
    } catch (e) {
      this.placeError(e);
      return null;
    } finally {
      this.starting = false;
    }
  }

  /** Puts each of the server's complaints beside its field; what has no field goes to the error note. */
  private placeError(e: unknown): void {
    const placed = placeError(e, fieldOf);
    // "column 3 (Alpaca outputs): alpaca.json has no response for ..." belongs to the third column.
    const m = placed.rest ? /^column (\d+) \(/.exec(placed.rest) : null;
    if (placed.rest && m && Number(m[1]) >= 1 && Number(m[1]) <= this.columns.length) {
      placed.fields[`column.${Number(m[1]) - 1}`] = placed.rest.slice(placed.rest.indexOf(':') + 1).trim();
      placed.rest = null;
    }
    this.serverErrors = placed.fields;
    this.error = placed.rest;
  }
}

/** A request path ("systems.2.content", "set.limit") -> the form field that shows it. */
function fieldOf(path: string): string | null {
  const parts = path.split('.');
  if (parts[0] === 'systems' && /^\d+$/.test(parts[1] ?? '')) return `column.${parts[1]}`;
  if (parts[0] === 'systems') return 'columns';
  if (path === 'set.limit') return 'limit';
  if (parts[0] === 'set') return 'set';
  if (path === 'name' || path === 'maxNewTokens') return path;
  return null;
}

const LAST_OPENED_KEY = 'adapter-studio.evaluate.last';

/** The evaluation last opened in this browser profile (ids are unique across workspaces), or null. */
export function lastOpened(): string | null {
  try {
    return localStorage.getItem(LAST_OPENED_KEY);
  } catch {
    return null; // storage disabled: the newest opens instead
  }
}

export function rememberOpened(suiteId: string): void {
  try {
    localStorage.setItem(LAST_OPENED_KEY, suiteId);
  } catch {
    // storage disabled: nothing to remember with
  }
}

export interface TaskProgress {
  label: string;
  done: number;
  total: number;
  finished: boolean;
  error: string | null;
}

export type SuiteDetail = EvalSuiteSummary & { rows: EvalRow[] };
export type ScienceQaColumn = ApiOutput<'evals.scienceqa'>[number];

export const PAGE_SIZE = 20;

/** The evaluations in the workspace, the open one with a page of its outputs, and live task progress. */
export class EvalsState {
  list = $state<EvalSuiteSummary[]>([]);
  loaded = $state(false);
  listError = $state<string | null>(null);
  /** task id -> its latest progress event. */
  progress = $state<Record<string, TaskProgress>>({});
  current = $state<SuiteDetail | null>(null);
  table = $state<MethodRow[] | null>(null);
  /** ScienceQA's accuracy table, when the set is of imported ScienceQA questions; else null. */
  scienceqa = $state<ScienceQaColumn[] | null>(null);
  offset = $state(0);
  loading = $state(false);
  error = $state<string | null>(null);
  private openId: string | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;

  async refreshList(): Promise<void> {
    try {
      this.list = await api.evals.list({});
      this.listError = null;
    } catch (e) {
      this.listError = errorText(e);
    } finally {
      this.loaded = true;
    }
  }

  /** Opens an evaluation (or another page of its outputs). */
  async open(suiteId: string | null, offset = 0): Promise<void> {
    const changed = suiteId !== this.openId;
    this.openId = suiteId;
    if (!suiteId) {
      this.current = null;
      this.table = null;
      return;
    }
    if (changed) {
      this.current = null;
      this.table = null;
    }
    this.loading = true;
    try {
      const [detail, table, scienceqa] = await Promise.all([
        api.evals.get({ suiteId, offset, limit: PAGE_SIZE }),
        api.evals.methodTable({ suiteId }),
        // Only an evaluation of ScienceQA questions has one; any other answers with an error, shown as nothing.
        api.evals.scienceqa({ suiteId }).catch(() => null),
      ]);
      if (this.openId !== suiteId) return;
      this.current = detail;
      this.table = table;
      this.scienceqa = scienceqa;
      this.offset = offset;
      this.error = null;
    } catch (e) {
      if (this.openId === suiteId) this.error = errorText(e);
    } finally {
      this.loading = false;
    }
  }

  reload(): Promise<void> {
    return this.open(this.openId, this.offset);
  }

  /** Progress of a suite's running task: the live event, else what the stored answers say. */
  progressOf(s: EvalSuiteSummary): TaskProgress | null {
    if (s.status !== 'running') return null;
    const live = s.taskId ? this.progress[s.taskId] : undefined;
    if (live) return live;
    return { label: 'Evaluating', done: s.columns.reduce((n, c) => n + c.done, 0), total: s.examples * s.columns.length, finished: false, error: null };
  }

  onEvent(e: ApiEvent): void {
    if (e.type === 'hello') {
      void this.refreshList();
      void this.reload();
      return;
    }
    if (e.type !== 'task.progress') return;
    const ours = this.list.some((s) => s.taskId === e.taskId) || e.taskId in this.progress;
    if (!ours) return;
    this.progress[e.taskId] = { label: e.label, done: e.done, total: e.total, finished: e.finished, error: e.error };
    if (e.finished) {
      void this.refreshList();
      void this.reload();
      return;
    }
    // While it runs, the open evaluation's scores and outputs fill in (at most a few times a second).
    if (this.current?.taskId === e.taskId && !this.refreshTimer) {
      this.refreshTimer = setTimeout(() => {
        this.refreshTimer = undefined;
        void this.reload();
      }, 400);
    }
  }

  /** Follows a task this window started (its events may arrive before the list knows it). */
  watch(taskId: string, label: string, total = 0): void {
    this.progress[taskId] ??= { label, done: 0, total, finished: false, error: null };
  }

  async cancel(taskId: string): Promise<void> {
    try {
      await api.tasks.cancel({ taskId });
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async resume(suiteId: string): Promise<void> {
    try {
      const { taskId } = await api.evals.resume({ suiteId });
      this.watch(taskId, 'Resuming');
      await this.refreshList();
      if (this.openId === suiteId) await this.reload();
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async remove(suiteId: string): Promise<boolean> {
    try {
      await api.evals.remove({ suiteId });
      await this.refreshList();
      return true;
    } catch (e) {
      this.error = errorText(e);
      return false;
    }
  }
}
