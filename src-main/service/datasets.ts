// datasets.*: import with a validation report, browse and edit with undo, review duplicates, split, measure,
// export. The store (src-main/store/datasets.ts) and the importers (src-main/datasets/) do the work; this file
// maps between them and the API contract.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { zipSync } from 'fflate';
import type { ApiHandlers, ApiParsedInput, DatasetSummary as ApiDatasetSummary, DatasetVersion as ApiDatasetVersion, Example as ApiExample, ImportReport as ApiImportReport, ImportSource } from '../../src-shared/api.js';
import {
  assignSplits,
  endpointGeneratorFromSettings,
  EXPORT_IMAGES_DIR,
  exportDataset,
  loadSeedTasks,
  looksLikeDataset,
  removeDuplicates,
  selfInstruct,
  tokenLengthStats,
  type ImportReport,
  type TextGenerator,
} from '../datasets/index.js';
import { imageMimeType, type DatasetId, type DatasetSummary, type DatasetVersion, type Example, type ExampleId, type ModelId, type Workspace } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { cancelTask, startTask } from './tasks.js';
import { removeUpload, uploadedFile } from './uploads.js';
import type { DatasetReadOptions } from '../host/protocol.js';
import { userError } from './errors.js';
import { resolveModel, type ResolvedModel } from './generation.js';

export function toDatasetSummary(d: DatasetSummary): ApiDatasetSummary {
  return {
    id: d.id,
    name: d.name,
    description: d.description,
    version: d.version,
    examples: d.examples,
    images: d.images,
    splits: { train: d.splits.train, val: d.splits.val, test: d.splits.test, unassigned: d.splits.unassigned },
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

export function toExample(e: Example): ApiExample {
  return { id: e.id, instruction: e.instruction, input: e.input, output: e.output, tags: e.tags, split: e.split, source: e.source, sourceLine: e.sourceLine, image: e.image, meta: e.meta };
}

function toVersion(v: DatasetVersion): ApiDatasetVersion {
  return { version: v.version, kind: v.kind, summary: v.summary, reverts: v.reverts, revertedBy: v.revertedBy, createdAt: v.createdAt, changes: v.changes };
}

function toReport(r: ImportReport): ApiImportReport {
  return { file: r.file, format: r.format, records: r.records, examples: r.examples, images: r.images, invalidRecords: r.invalidRecords, issues: r.issues, issuesOmitted: r.issuesOmitted, fatal: r.fatal };
}

function summaryOf(ws: Workspace, id: DatasetId): ApiDatasetSummary {
  const d = ws.datasets.list().find((s) => s.id === id);
  if (!d) ws.datasets.get(id); // throws not found
  return toDatasetSummary(d!);
}

/**
 * A readable file for the importer: a path as given, an upload's file, or text written under the workspace's
 * uploads folder (keeping its name, which tells the format) and removed after reading. `consumed` says the
 * source is done with (an import that succeeded), so its upload goes too.
 */
async function withSourceFile<T>(ctx: ServiceContext, source: ImportSource, fn: (file: string) => Promise<T>, consumed = false): Promise<T> {
  if (source.kind === 'path') {
    if (!looksLikeDataset(source.path)) {
      throw userError(`${basename(source.path)} is not named as a dataset file: rename it to .json, .jsonl, .csv, .tsv or .parquet, or upload it`);
    }
    return fn(source.path);
  }
  if (source.kind === 'upload') {
    const result = await fn(uploadedFile(ctx.uploadsDir(), source.uploadId));
    if (consumed) removeUpload(ctx.uploadsDir(), source.uploadId);
    return result;
  }
  // Text cannot carry parquet's bytes (a file the UI read as text is already damaged).
  if (/\.parquet$/i.test(source.fileName)) throw userError(`${source.fileName} is a binary parquet file: upload it or import it by its path, not as text`);
  const dir = join(ctx.uploadsDir(), randomBytes(6).toString('hex'));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, source.fileName);
  writeFileSync(file, source.text);
  return fn(file).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** How a source is named in progress labels: a file name, never a server path. */
function sourceLabel(ctx: ServiceContext, source: ImportSource): string {
  if (source.kind === 'text') return source.fileName;
  if (source.kind === 'path') return basename(source.path);
  try {
    return basename(uploadedFile(ctx.uploadsDir(), source.uploadId));
  } catch {
    return 'an upload';
  }
}

function readOptions(o: ApiParsedInput<'datasets.import'>['options']): DatasetReadOptions {
  return { format: o.format, shape: o.shape, fieldMap: o.fieldMap, conversation: o.conversation, imageRoot: o.imageRoot, maxImagePixels: o.maxImagePixels, multipleChoice: o.multipleChoice };
}

/** Self-instruct's text generator backed by the inference engine process (the main process never computes). */
export function engineGenerator(ctx: ServiceContext, model: ResolvedModel): TextGenerator {
  return {
    describe: () => ({ kind: 'local-engine', model: model.label, adapter: model.adapterDir }),
    async complete(prompt, o = {}) {
      const { result, cancel } = await ctx.engines.generate(
        {
          modelDir: model.modelDir,
          adapterDir: model.adapterDir,
          prompt: { template: 'none', text: prompt },
          sampling: { temperature: o.temperature ?? 0.7, topK: 0, topP: o.topP ?? 0.95, repetitionPenalty: 1, maxNewTokens: o.maxTokens ?? 512, stop: o.stop ?? [] },
          seed: o.seed ?? 0,
        },
        () => undefined,
      );
      o.signal?.addEventListener('abort', cancel, { once: true });
      return (await result).text;
    },
  };
}


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
  | 'datasets.removeDuplicates'
  | 'datasets.split'
  | 'datasets.stats'
  | 'datasets.export'
  | 'datasets.image'
  | 'datasets.selfInstruct'
  | 'tasks.cancel'
> {
  const changed = (datasetId: string | null) => ctx.events.emit({ type: 'datasets.changed', datasetId });
  const id = (s: string) => s as DatasetId;
  return {
    'datasets.validate': async ({ source, options }) =>
      withSourceFile(ctx, source, async (file) => toReport(await ctx.engines.datasetJob('datasetValidate', { file, options: readOptions(options) }))),

    'datasets.import': async ({ source, options, name, into, onInvalid }) => {
      const ws = ctx.ws();
      // What can be refused at once is, before a process is started and the file read.
      if (into) ws.datasets.get(id(into));
      const { taskId, signal, done: taskDone } = startTask('import');
      const label = `Importing ${sourceLabel(ctx, source)}`;
      // Said at once, so the UI can offer to cancel while the file is still being read.
      ctx.events.emit({ type: 'task.progress', taskId, label, done: 0, total: 0, finished: false, error: null });
      try {
        const result = await withSourceFile(
          ctx,
          source,
          (file) =>
            ctx.engines.datasetJob(
              'datasetImport',
              { workspaceDir: ws.dir, file, options: { ...readOptions(options), name: into ? undefined : name, into: into ? id(into) : undefined, onInvalid } },
              { signal, onProgress: (done, total) => ctx.events.emit({ type: 'task.progress', taskId, label, done, total, finished: false, error: null }) },
            ),
          true,
        );
        ctx.events.emit({ type: 'task.progress', taskId, label, done: result.imported, total: result.imported, finished: true, error: null });
        changed(result.datasetId);
        return { dataset: summaryOf(ws, id(result.datasetId)), report: toReport(result.report), imported: result.imported };
      } catch (e) {
        ctx.events.emit({ type: 'task.progress', taskId, label, done: 0, total: 0, finished: true, error: (e as Error).message });
        throw e;
      } finally {
        taskDone();
      }
    },

    'datasets.list': async () => ctx.ws().datasets.list().map(toDatasetSummary),
    'datasets.get': async ({ datasetId }) => summaryOf(ctx.ws(), id(datasetId)),
    'datasets.remove': async ({ datasetId }) => {
      const ws = ctx.ws();
      const users = ws.runs.list().filter((r) => r.datasetId === datasetId);
      if (users.length) throw userError(`the dataset is used by ${users.length} run(s) (${users.slice(0, 3).map((r) => r.name).join(', ')}); delete those runs first`);
      ws.datasets.delete(id(datasetId));
      // Its images go once nothing else refers to them (another dataset, an undoable version).
      ws.images.collectGarbage();
      changed(null);
      return { ok: true as const };
    },

    'datasets.query': async ({ datasetId, ...q }) => {
      const page = ctx.ws().datasets.query(id(datasetId), q);
      return { total: page.total, items: page.items.map((e) => ({ ...toExample(e), position: e.position })) };
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

    'datasets.duplicates': async ({ datasetId, near, threshold }) => {
      const ws = ctx.ws();
      ws.datasets.get(id(datasetId));
      // Searched in a dataset process: near duplicates of 100k examples take seconds.
      const groups = await ctx.engines.datasetJob('datasetDuplicates', { workspaceDir: ws.dir, datasetId, near, threshold });
      // A near group that only repeats an exact group adds nothing to review.
      const key = (ids: number[]) => [...ids].sort((x, y) => x - y).join(',');
      const exactKeys = new Set(groups.filter((g) => g.kind === 'exact').map((g) => key(g.ids)));
      return groups
        .filter((g) => g.kind === 'exact' || !exactKeys.has(key(g.ids)))
        .map((g) => ({
          kind: g.kind,
          keep: g.keep,
          examples: g.ids.map((i, k) => ({ ...toExample(ws.datasets.example(i)), similarity: g.similarity[k] ?? 1 })),
        }));
    },
    'datasets.removeDuplicates': async ({ datasetId, groups }) => {
      const v = removeDuplicates(ctx.ws(), id(datasetId), groups as { ids: ExampleId[]; keep: ExampleId }[]);
      if (v) changed(datasetId);
      return v ? toVersion(v) : null;
    },
    'datasets.split': async ({ datasetId, val, test, seed }) => {
      const ws = ctx.ws();
      const result = assignSplits(ws, id(datasetId), { val, test, train: 1 - val - test, seed });
      if (result.version) changed(datasetId);
      return { dataset: summaryOf(ws, id(datasetId)), counts: result.counts, version: result.version ? toVersion(result.version) : null };
    },

    'datasets.stats': async ({ datasetId, modelId, maxSeqLen, bins }) => {
      const ws = ctx.ws();
      const examples = [...ws.datasets.iterate(id(datasetId))].map((e) => ({ instruction: e.instruction, input: e.input, output: e.output }));
      if (!modelId) {
        // No model chosen: about four characters per token of the training text (English).
        return { tokenizer: 'estimate: characters / 4', ...tokenLengthStats(examples, { countTokens: (text) => Math.ceil(text.length / 4), maxSeqLen, bins }) };
      }
      // Tokenised in the engine process, exactly as training does (BOS + prompt + output + EOS).
      const model = ws.models.get(modelId as ModelId);
      const lengths = await ctx.engines.tokenLengths(model.path, examples);
      // tokenLengthStats counts the examples in order; it is handed the lengths measured above, in that order.
      let next = 0;
      return { tokenizer: `${model.name} tokenizer`, ...tokenLengthStats(examples, { countTokens: () => lengths[next++]!, maxSeqLen, bins }) };
    },

    'datasets.export': async ({ datasetId, format, split, includeMeta, withImages }) => {
      const ws = ctx.ws();
      const dataset = ws.datasets.get(id(datasetId));
      const fileName = `${dataset.name.replace(/[^\w.-]+/g, '_')}${split === 'all' ? '' : `-${split}`}.${format}`;
      const dir = join(ctx.uploadsDir(), `export-${randomBytes(6).toString('hex')}`);
      mkdirSync(dir, { recursive: true });
      try {
        const file = join(dir, fileName);
        const result = exportDataset(ws, dataset.id, file, { format, split: split === 'all' ? undefined : split, includeMeta, writeImages: withImages });
        const base = { examples: result.count, images: result.images };
        if (!withImages) return { fileName, mimeType: format === 'jsonl' ? 'application/jsonl' : 'application/json', encoding: 'utf8' as const, content: readFileSync(file, 'utf8'), ...base };
        // Pictures are already compressed (PNG, JPEG): stored as they are, only the data file is deflated.
        const entries: Record<string, [Uint8Array, { level: 0 | 6 }]> = { [fileName]: [readFileSync(file), { level: 6 }] };
        const imagesDir = join(dir, EXPORT_IMAGES_DIR);
        if (existsSync(imagesDir)) for (const name of readdirSync(imagesDir)) entries[`${EXPORT_IMAGES_DIR}/${name}`] = [readFileSync(join(imagesDir, name)), { level: 0 }];
        const archive = zipSync(entries);
        return { fileName: fileName.replace(/\.jsonl?$/, '.zip'), mimeType: 'application/zip', encoding: 'base64' as const, content: Buffer.from(archive).toString('base64'), ...base };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },

    'datasets.image': async ({ datasetId, exampleId }) => {
      const ws = ctx.ws();
      const ex = ws.datasets.example(exampleId as ExampleId);
      if (ex.datasetId !== datasetId) throw userError(`example ${exampleId} is not in this dataset`);
      if (!ex.image) throw userError(`example ${exampleId} has no image`);
      const { image, bytes } = ws.images.read(ex.image);
      return { sha256: image.sha256, format: image.format, mimeType: imageMimeType(image.format), width: image.width, height: image.height, bytes: image.bytes, base64: bytes.toString('base64') };
    },

    'datasets.selfInstruct': async ({ datasetId, count, generator, seedTasks, seed }) => {
      const ws = ctx.ws();
      const dataset = ws.datasets.get(id(datasetId));
      const textGenerator = generator.kind === 'local' ? engineGenerator(ctx, resolveModel(ctx, generator.model)) : endpointGeneratorFromSettings(ws);
      const seeds =
        seedTasks === 'dataset'
          ? [...ws.datasets.iterate(dataset.id)].map((e) => ({ instruction: e.instruction, input: e.input, output: e.output }))
          : await loadSeedTasks();
      if (seeds.length === 0) throw userError('the dataset has no examples to use as seed tasks; use the bundled seed tasks');
      const { taskId, signal, done: taskDone } = startTask('selfinstruct');
      const label = `Generating ${count} examples for ${dataset.name}`;
      const progress = (done: number, finished: boolean, error: string | null) =>
        ctx.events.emit({ type: 'task.progress', taskId, label, done, total: count, finished, error });
      progress(0, false, null);
      void selfInstruct(ws, {
        datasetId: dataset.id,
        generator: textGenerator,
        target: count,
        seeds,
        seedSource: seedTasks,
        seed,
        signal,
        onProgress: (p) => progress(p.accepted, false, null),
      })
        .then((result) => {
          const none = `no generated example passed the filters (${result.requests} request(s); rejected: ${JSON.stringify(result.rejected)})`;
          progress(result.added.length, true, result.added.length === 0 ? none : null);
          if (result.version) changed(dataset.id);
        })
        .catch((e: unknown) => progress(0, true, signal.aborted ? 'cancelled' : (e as Error).message))
        .finally(taskDone);
      return { taskId };
    },
    'tasks.cancel': async ({ taskId }) => {
      cancelTask(taskId);
      return { ok: true as const };
    },
  };
}
