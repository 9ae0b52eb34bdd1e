// datasets.*: import with a validation report, browse and edit with undo, review duplicates, split, measure,
// export. The store (src-main/store/datasets.ts) and the importers (src-main/datasets/) do the work; this file
// maps between them and the API contract.

import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ApiHandlers, DatasetStats, DatasetSummary as ApiDatasetSummary, DatasetVersion as ApiDatasetVersion, Example as ApiExample, ImportReport as ApiImportReport, ImportSource } from '../../src-shared/api.js';
import { importDataset, readDatasetFile, type ReadOptions } from '../datasets/import.js';
import { DatasetImportError, type ImportReport } from '../datasets/issues.js';
import type { DatasetId, DatasetSummary, DatasetVersion, Example, ExampleId, ModelId, Workspace } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { userError } from './errors.js';

export function toDatasetSummary(d: DatasetSummary): ApiDatasetSummary {
  return {
    id: d.id,
    name: d.name,
    description: d.description,
    version: d.version,
    examples: d.examples,
    splits: { train: d.splits.train, val: d.splits.val, test: d.splits.test, unassigned: d.splits.unassigned },
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

export function toExample(e: Example): ApiExample {
  return { id: e.id, instruction: e.instruction, input: e.input, output: e.output, tags: e.tags, split: e.split, source: e.source, sourceLine: e.sourceLine };
}

function toVersion(v: DatasetVersion): ApiDatasetVersion {
  return { version: v.version, kind: v.kind, summary: v.summary, reverts: v.reverts, revertedBy: v.revertedBy, createdAt: v.createdAt, changes: v.changes };
}

function toReport(r: ImportReport): ApiImportReport {
  return { file: r.file, format: r.format, records: r.records, examples: r.examples, invalidRecords: r.invalidRecords, issues: r.issues, issuesOmitted: r.issuesOmitted, fatal: r.fatal };
}

function summaryOf(ws: Workspace, id: DatasetId): ApiDatasetSummary {
  const d = ws.datasets.list().find((s) => s.id === id);
  if (!d) ws.datasets.get(id); // throws not found
  return toDatasetSummary(d!);
}

/**
 * A readable file for the importer. Text dropped into the UI is written under the workspace's uploads folder
 * (keeping its name, which tells the format) and removed after reading.
 */
function withSourceFile<T>(ctx: ServiceContext, source: ImportSource, fn: (file: string) => Promise<T>): Promise<T> {
  if (source.kind === 'path') return fn(source.path);
  const dir = join(ctx.uploadsDir(), randomBytes(6).toString('hex'));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, source.fileName);
  writeFileSync(file, source.text);
  return fn(file).finally(() => rmSync(dir, { recursive: true, force: true }));
}

function readOptions(o: { format: 'auto' | 'json' | 'jsonl' | 'csv' | 'tsv'; shape: ReadOptions['shape']; fieldMap: ReadOptions['fieldMap']; conversation: ReadOptions['conversation'] }): ReadOptions {
  return { format: o.format, shape: o.shape, fieldMap: o.fieldMap, conversation: o.conversation };
}

function sortedQuantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
}

/** Equal-width bins from 0 to the longest example. */
export function histogram(values: number[], bins: number): { binEdges: number[]; counts: number[] } {
  const max = Math.max(1, ...values);
  const width = Math.ceil(max / bins);
  const binEdges = Array.from({ length: bins + 1 }, (_, i) => i * width);
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(v / width))]++;
  return { binEdges, counts };
}

let taskCounter = 0;

export function datasetHandlers(ctx: ServiceContext): Pick<
  ApiHandlers,
  | 'datasets.validate'
  | 'datasets.import'
  | 'datasets.list'
  | 'datasets.get'
  | 'datasets.remove'
  | 'datasets.query'
  | 'datasets.tags'
  | 'datasets.addExample'
  | 'datasets.editExample'
  | 'datasets.deleteExamples'
  | 'datasets.tag'
  | 'datasets.undo'
  | 'datasets.history'
  | 'datasets.duplicates'
  | 'datasets.stats'
  | 'datasets.export'
> {
  const changed = (datasetId: string | null) => ctx.events.emit({ type: 'datasets.changed', datasetId });
  const id = (s: string) => s as DatasetId;
  return {
    'datasets.validate': async ({ source, options }) =>
      withSourceFile(ctx, source, async (file) => toReport((await readDatasetFile(file, readOptions(options))).report)),

    'datasets.import': async ({ source, options, name, into, onInvalid }) => {
      const ws = ctx.ws();
      const taskId = `import${++taskCounter}`;
      const label = `Importing ${source.kind === 'text' ? source.fileName : source.path}`;
      try {
        const result = await withSourceFile(ctx, source, (file) =>
          importDataset(ws, file, {
            ...readOptions(options),
            name: into ? undefined : name,
            into: into ? id(into) : undefined,
            onInvalid,
            onProgress: (done, total) => ctx.events.emit({ type: 'task.progress', taskId, label, done, total, finished: false, error: null }),
          }),
        );
        ctx.events.emit({ type: 'task.progress', taskId, label, done: result.imported, total: result.imported, finished: true, error: null });
        changed(result.dataset.id);
        return { dataset: summaryOf(ws, result.dataset.id), report: toReport(result.report), imported: result.imported };
      } catch (e) {
        if (e instanceof DatasetImportError) {
          ctx.events.emit({ type: 'task.progress', taskId, label, done: 0, total: 0, finished: true, error: e.message });
        }
        throw e;
      }
    },

    'datasets.list': async () => ctx.ws().datasets.list().map(toDatasetSummary),
    'datasets.get': async ({ datasetId }) => summaryOf(ctx.ws(), id(datasetId)),
    'datasets.remove': async ({ datasetId }) => {
      const ws = ctx.ws();
      const users = ws.runs.list().filter((r) => r.datasetId === datasetId);
      if (users.length) throw userError(`the dataset is used by ${users.length} run(s) (${users.slice(0, 3).map((r) => r.name).join(', ')}); delete those runs first`);
      ws.datasets.delete(id(datasetId));
      changed(null);
      return { ok: true as const };
    },

    'datasets.query': async ({ datasetId, ...q }) => {
      const page = ctx.ws().datasets.query(id(datasetId), q);
      return { total: page.total, items: page.items.map(toExample) };
    },
    'datasets.tags': async ({ datasetId }) => ctx.ws().datasets.tagCounts(id(datasetId)),

    'datasets.addExample': async ({ datasetId, example }) => {
      const v = ctx.ws().datasets.addExamples(id(datasetId), [{ ...example, source: 'manual' }], 'added an example by hand');
      changed(datasetId);
      return toVersion(v!);
    },
    'datasets.editExample': async ({ datasetId, exampleId, patch }) => {
      const ws = ctx.ws();
      const ex = ws.datasets.example(exampleId as ExampleId);
      if (ex.datasetId !== datasetId) throw userError(`example ${exampleId} is not in this dataset`);
      const v = ws.datasets.edit(ex.id, patch);
      if (v) changed(datasetId);
      return v ? toVersion(v) : null;
    },
    'datasets.deleteExamples': async ({ datasetId, exampleIds }) => {
      const v = ctx.ws().datasets.deleteExamples(id(datasetId), exampleIds as ExampleId[]);
      if (v) changed(datasetId);
      return v ? toVersion(v) : null;
    },
    'datasets.tag': async ({ datasetId, exampleIds, add, remove }) => {
      const ws = ctx.ws();
      // Both in one transaction: one undo step from the user's point of view is still two versions here.
      const result = ws.transaction(() => {
        let v: DatasetVersion | null = null;
        if (add.length) v = ws.datasets.addTags(id(datasetId), exampleIds as ExampleId[], add) ?? v;
        if (remove.length) v = ws.datasets.removeTags(id(datasetId), exampleIds as ExampleId[], remove) ?? v;
        return v;
      });
      if (result) changed(datasetId);
      return result ? toVersion(result) : null;
    },
    'datasets.undo': async ({ datasetId }) => {
      const v = ctx.ws().datasets.undo(id(datasetId));
      changed(datasetId);
      return toVersion(v);
    },
    'datasets.history': async ({ datasetId }) =>
      ctx
        .ws()
        .datasets.versions(id(datasetId))
        .map(toVersion)
        .sort((a, b) => b.version - a.version),

    'datasets.duplicates': async ({ datasetId }) => {
      const ws = ctx.ws();
      return ws.datasets.exactDuplicateGroups(id(datasetId)).map((g) => ({
        kind: 'exact' as const,
        similarity: 1,
        examples: g.ids.map((i) => toExample(ws.datasets.example(i))),
      }));
    },

    'datasets.stats': async ({ datasetId, modelId, maxSeqLen, bins }) => {
      const ws = ctx.ws();
      const examples = [...ws.datasets.iterate(id(datasetId))].map((e) => ({ instruction: e.instruction, input: e.input, output: e.output }));
      let lengths: number[];
      let tokenizer: string;
      if (modelId) {
        const model = ws.models.get(modelId as ModelId);
        lengths = await ctx.engines.tokenLengths(model.path, examples);
        tokenizer = `${model.name} tokenizer`;
      } else {
        // No model chosen: about four characters per token for English text.
        lengths = examples.map((e) => Math.ceil((e.instruction.length + e.input.length + e.output.length) / 4));
        tokenizer = 'estimate (characters / 4)';
      }
      const sorted = [...lengths].sort((a, b) => a - b);
      const stats: DatasetStats = {
        examples: lengths.length,
        tokenizer,
        histogram: histogram(lengths, bins),
        mean: lengths.length ? lengths.reduce((a, b) => a + b, 0) / lengths.length : 0,
        p50: sortedQuantile(sorted, 0.5),
        p95: sortedQuantile(sorted, 0.95),
        max: sorted.at(-1) ?? 0,
        maxSeqLen,
        truncated: lengths.filter((n) => n > maxSeqLen).length,
      };
      return stats;
    },

    'datasets.export': async ({ datasetId, format, split }) => {
      const ws = ctx.ws();
      const dataset = ws.datasets.get(id(datasetId));
      const rows = [...ws.datasets.iterate(dataset.id, split === 'all' ? undefined : split)].map((e) => ({ instruction: e.instruction, input: e.input, output: e.output }));
      const base = `${dataset.name.replace(/[^\w.-]+/g, '_')}${split === 'all' ? '' : `-${split}`}`;
      return format === 'jsonl'
        ? { fileName: `${base}.jsonl`, mimeType: 'application/jsonl', content: rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''), examples: rows.length }
        : { fileName: `${base}.json`, mimeType: 'application/json', content: JSON.stringify(rows, null, 2) + '\n', examples: rows.length };
    },
  };
}
