// Importing a dataset file: read and check every record first (streaming), then write in one transaction.
//
// Reading never touches the workspace, so `readDatasetFile` doubles as the validation step the UI shows
// before the user picks "import the valid records" (onInvalid: 'skip') or "import nothing" ('reject').
// The write is a single transaction: the dataset gets every accepted example or none of them.

import { statSync } from 'node:fs';
import { basename, dirname, extname, relative, resolve, sep } from 'node:path';
import { createHash } from 'node:crypto';
import type { Dataset, DatasetVersion, NewExample, Split } from '../store/datasets.js';
import { StoreError } from '../store/errors.js';
import type { DatasetId } from '../store/ids.js';
import type { ImageInfo } from '../store/images.js';
import type { Workspace } from '../store/workspace.js';
import type { ConversationMode, FieldProblem } from './conversations.js';
import { DEFAULT_IMAGE_LIMITS, loadImage, type ImageCheck, type ImageLimits, type ImageRef } from './images.js';
import { DatasetImportError, FatalFileIssue, type DatasetFileFormat, type ImportIssue, type ImportReport } from './issues.js';
import { MultipleChoiceError, resolveTemplate, type MultipleChoiceTemplate } from './multiple-choice.js';
import { fileSha256, findParquetShards, isDirectory, openParquet, splitFromShardName } from './parquet.js';
import { readDelimited, readJsonLines, readJsonList, type RawRecord } from './readers.js';
import { recordToExamples, resolveColumns, rowToExamples, type ExampleDraft, type FieldMap, type RecordOptions, type RecordShape } from './records.js';
import { isScienceQaFolder, PID_SPLITS_FILE, PROBLEMS_FILE, readScienceQaFolder } from './scienceqa.js';
import { openTextSource } from './text-source.js';

/** The extensions a dataset file has (detectFormat reads the format from them). */
export const DATASET_EXTENSIONS = ['.json', '.jsonl', '.ndjson', '.csv', '.tsv', '.tab', '.parquet'] as const;
const DATASET_EXTENSIONS_TEXT = '.json, .jsonl, .csv, .tsv or .parquet';

/**
 * Whether `path` names something that is a dataset by its name: a folder (ScienceQA, parquet shards) or a file
 * with a dataset extension. A file by another name (/etc/passwd) is not read for a client that named it by
 * path, so no error message can quote what it holds.
 */
export function looksLikeDataset(path: string): boolean {
  return isDirectory(path) || (DATASET_EXTENSIONS as readonly string[]).includes(extname(path).toLowerCase());
}

export interface ReadOptions {
  /** Container format; 'auto' goes by extension (.json, .jsonl/.ndjson, .csv, .tsv/.tab, .parquet) or, for a
   * folder, by what it holds (ScienceQA's problems.json + pid_splits.json, or parquet shards). */
  format?: DatasetFileFormat | 'auto';
  /** Record shape; 'auto' treats records with "conversations"/"messages" as chats, records with question +
   * choices + answer as multiple-choice questions (ScienceQA), others as Alpaca. */
  shape?: RecordShape;
  /** Which key/column holds each field when the defaults do not match (see records.ts). */
  fieldMap?: FieldMap;
  /** How a conversation becomes examples (see conversations.ts). */
  conversation?: ConversationMode;
  /** How multiple-choice questions are written (multiple-choice.ts); fields left out keep the default. */
  multipleChoice?: Partial<MultipleChoiceTemplate>;
  /** CSV only: the delimiter (default "," for .csv, tab for .tsv). */
  delimiter?: string;
  /** The folder image paths are relative to (default: the dataset file's folder; LLaVA keeps them apart). */
  imageRoot?: string;
  /** Largest image accepted, in pixels (width x height). Default 89 478 485, as PIL. */
  maxImagePixels?: number;
  /** Longest instruction/input/output accepted (characters). Default 100 000. */
  maxFieldChars?: number;
  /** Longest raw record read (characters). Default 1 000 000. */
  maxRecordChars?: number;
  /** Issues kept in the report (the rest are counted). Default 1000. */
  maxIssues?: number;
  /** Bytes read per chunk (default 1 MiB); tests use tiny chunks to cross every boundary. */
  chunkBytes?: number;
  signal?: AbortSignal;
}

export interface ParsedDataset {
  report: ImportReport;
  /** The examples from valid records, in file order, with their source line; `image` is the sha256 of its bytes. */
  examples: NewExample[];
  /** The distinct images the examples use. */
  images: ImageInfo[];
}

/** Where checked image bytes go while reading (the import's ImageStaging); validation alone passes none. */
export interface ImageSink {
  add(bytes: Uint8Array, checked: Omit<ImageInfo, 'sha256' | 'bytes'>): ImageInfo;
}

export const DEFAULT_LIMITS = { maxFieldChars: 100_000, maxRecordChars: 1_000_000, maxIssues: 1000 };

export function detectFormat(file: string): DatasetFileFormat {
  if (isDirectory(file)) {
    if (isScienceQaFolder(file)) return 'scienceqa';
    if (findParquetShards(file).length) return 'parquet';
    throw new StoreError(`${file}: this folder holds neither ScienceQA's ${PROBLEMS_FILE} + ${PID_SPLITS_FILE} nor .parquet files; pass a dataset file`);
  }
  const ext = extname(file).toLowerCase();
  if (basename(file) === PROBLEMS_FILE && isScienceQaFolder(dirname(file))) return 'scienceqa';
  if (ext === '.json') return 'json';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv' || ext === '.tab') return 'tsv';
  if (ext === '.parquet') return 'parquet';
  throw new StoreError(`${basename(file)}: cannot tell the format from the extension "${ext}"; rename it to ${DATASET_EXTENSIONS_TEXT} (or give a ScienceQA or parquet folder), or say which format it is`);
}

/** Where a record sits, for its issues. */
interface RecordAt {
  file: string;
  line: number | null;
  index: number;
  rowGroup?: number;
  row?: number;
}

/**
 * Reads and checks a dataset file or folder without writing to the workspace (images go to `images` when
 * given). Never throws for bad content: see report.fatal.
 */
export async function readDatasetFile(file: string, options: ReadOptions = {}, images?: ImageSink): Promise<ParsedDataset> {
  const format = options.format && options.format !== 'auto' ? options.format : detectFormat(file);
  const root = format === 'scienceqa' && !isDirectory(file) ? dirname(file) : file;
  const name = basename(root);
  const limits = { maxRecordChars: options.maxRecordChars ?? DEFAULT_LIMITS.maxRecordChars };
  const recordOptions: RecordOptions = {
    shape: options.shape ?? 'auto',
    fieldMap: options.fieldMap ?? {},
    conversation: options.conversation ?? 'last-turn',
    maxFieldChars: options.maxFieldChars ?? DEFAULT_LIMITS.maxFieldChars,
    multipleChoice: templateOf(options.multipleChoice),
  };
  const imageLimits: ImageLimits = { ...DEFAULT_IMAGE_LIMITS, ...(options.maxImagePixels !== undefined ? { maxImagePixels: options.maxImagePixels } : {}) };
  const imageField = options.fieldMap?.image ?? 'image';
  const maxIssues = options.maxIssues ?? DEFAULT_LIMITS.maxIssues;
  const report: ImportReport = { file: name, format, records: 0, examples: 0, images: 0, invalidRecords: 0, issues: [], issuesOmitted: 0, fatal: null, sha256: null };
  const examples: NewExample[] = [];
  const used = new Map<string, ImageInfo>();
  const checkedPaths = new Map<string, ImageCheck>();

  const addIssue = (issue: ImportIssue) => {
    if (report.issues.length < maxIssues) report.issues.push(issue);
    else report.issuesOmitted++;
  };
  const issueAt = (at: RecordAt, field: string | null, message: string): ImportIssue => ({
    file: at.file,
    line: at.line,
    index: at.index,
    field,
    message,
    ...(at.rowGroup !== undefined ? { rowGroup: at.rowGroup, row: at.row } : {}),
  });
  const imageOf = async (ref: ImageRef, baseDir: string): Promise<ImageCheck> => {
    if (ref.kind === 'bytes') return loadImage(ref, baseDir, imageLimits);
    const key = resolve(baseDir, ref.path);
    let check = checkedPaths.get(key);
    if (!check) {
      check = await loadImage(ref, baseDir, imageLimits);
      // Keep the verdict, not the bytes: a picture many records share is read and decoded once.
      checkedPaths.set(key, check.ok ? { ...check, bytes: new Uint8Array(0) } : check);
      if (check.ok) used.set(check.info.sha256, images ? images.add(check.bytes, check.info) : check.info);
    }
    return check;
  };
  const accept = async (at: RecordAt, result: { examples: ExampleDraft[]; problems: FieldProblem[] }, baseDir: string) => {
    report.records++;
    if (result.problems.length) {
      report.invalidRecords++;
      for (const p of result.problems) addIssue(issueAt(at, p.field, p.message));
      return;
    }
    const shas: (string | null)[] = [];
    for (const draft of result.examples) {
      if (!draft.imageRef) {
        shas.push(null);
        continue;
      }
      const check = await imageOf(draft.imageRef, baseDir);
      if (!check.ok) {
        report.invalidRecords++;
        addIssue(issueAt(at, imageField, check.message));
        return;
      }
      if (draft.imageRef.kind === 'bytes' && !used.has(check.info.sha256)) used.set(check.info.sha256, images ? images.add(check.bytes, check.info) : check.info);
      shas.push(check.info.sha256);
    }
    result.examples.forEach(({ imageRef: _ref, ...draft }, k) => {
      const image = shas[k];
      examples.push({ ...draft, ...(image ? { image } : {}), source: at.file, sourceLine: at.line });
    });
  };

  try {
    if (format === 'scienceqa') {
      const folder = await readScienceQaFolder(root);
      for (const p of folder.problems) {
        options.signal?.throwIfAborted();
        const result = recordToExamples(p.value, { ...recordOptions, shape: 'scienceqa' });
        for (const ex of result.examples) {
          ex.split = p.split; // pid_splits.json decides
          if (p.tags.length) ex.tags = p.tags;
          ex.meta = { pid: p.pid, ...ex.meta };
          if (p.imagePath) ex.imageRef = { kind: 'path', path: p.imagePath };
          else delete ex.imageRef;
        }
        await accept({ file: PROBLEMS_FILE, line: p.line, index: p.index }, result, root);
      }
      report.sha256 = folder.sha256;
    } else if (format === 'parquet') {
      const folder = isDirectory(file);
      const shards = folder ? findParquetShards(file) : [file];
      const hashes: string[] = [];
      for (const shard of shards) {
        const shardName = folder ? relative(file, shard).split(sep).join('/') : name;
        await readParquetShard(shard, shardName, folder ? splitFromShardName(shardName) : splitFromShardName(name));
        hashes.push(`${shardName} ${await fileSha256(shard)}`);
      }
      report.sha256 = shards.length === 1 ? hashes[0]!.slice(hashes[0]!.lastIndexOf(' ') + 1) : createHash('sha256').update(hashes.join('\n')).digest('hex');
    } else if (format === 'csv' || format === 'tsv') {
      if (recordOptions.shape === 'conversation' || recordOptions.shape === 'scienceqa') {
        throw new FatalFileIssue({ file: name, line: null, index: null, field: null, message: `${recordOptions.shape === 'conversation' ? 'conversations' : 'multiple-choice questions'} cannot be read from CSV/TSV; use JSON or JSONL` });
      }
      const source = openTextSource(file, { signal: options.signal, chunkBytes: options.chunkBytes });
      const delimiter = options.delimiter ?? (format === 'tsv' ? '\t' : ',');
      let columns: FieldMap = {};
      for await (const item of readDelimited(name, source.chunks, delimiter, limits)) {
        if ('header' in item) {
          const resolved = resolveColumns(item.header, recordOptions.fieldMap);
          if (resolved.missing) throw new FatalFileIssue({ file: name, line: 1, index: null, field: null, message: resolved.missing });
          columns = resolved.columns;
          continue;
        }
        const at = { file: name, line: item.line, index: item.index };
        if (item.problem) {
          report.records++;
          report.invalidRecords++;
          addIssue(issueAt(at, null, item.problem));
          continue;
        }
        await accept(at, rowToExamples(item.cells, { ...recordOptions, fieldMap: columns }), options.imageRoot ?? dirname(file));
      }
      report.sha256 = source.sha256();
    } else {
      const source = openTextSource(file, { signal: options.signal, chunkBytes: options.chunkBytes });
      const records: AsyncGenerator<RawRecord> =
        format === 'json' ? readJsonList(name, source.chunks, limits) : readJsonLines(name, source.chunks, limits);
      for await (const rec of records) {
        const at = { file: name, line: rec.line, index: rec.index };
        if (rec.problem !== undefined) {
          report.records++;
          report.invalidRecords++;
          addIssue(issueAt(at, null, rec.problem));
        } else await accept(at, recordToExamples(rec.value, recordOptions), options.imageRoot ?? dirname(file));
      }
      report.sha256 = source.sha256();
    }
  } catch (err) {
    // A folder's issue names the file in it (a shard, problems.json); a file's issue names the file.
    if (err instanceof FatalFileIssue) report.fatal = { ...err.issue, file: isDirectory(root) ? err.issue.file : name };
    else if ((err as NodeJS.ErrnoException).code === 'ENOENT') report.fatal = { file: name, line: null, index: null, field: null, message: `no such file: ${resolve(file)}` };
    else if ((err as NodeJS.ErrnoException).code === 'EISDIR') report.fatal = { file: name, line: null, index: null, field: null, message: 'this is a folder, not a dataset file' };
    else throw err;
    return { report, examples: [], images: [] };
  }
  report.examples = examples.length;
  report.images = examples.filter((e) => e.image).length;
  return { report, examples, images: [...used.values()] };

  /** One parquet file: its columns decide the record shape, then it is read row group by row group. */
  async function readParquetShard(path: string, shardName: string, shardSplit: Split | null): Promise<void> {
    const parquet = await openParquet(path, shardName, options.signal);
    const columns = new Set(parquet.columns);
    let shape = recordOptions.shape;
    let fieldMap = recordOptions.fieldMap;
    if (shape === 'auto') {
      if (columns.has('conversations') || columns.has('messages')) shape = 'conversation';
      else if (columns.has('question') && columns.has('choices') && columns.has('answer') && !columns.has('instruction')) shape = 'scienceqa';
      else shape = 'alpaca';
    }
    if (shape === 'alpaca') {
      const resolved = resolveColumns(parquet.columns, recordOptions.fieldMap);
      if (resolved.missing) throw new FatalFileIssue({ file: shardName, line: null, index: null, field: null, message: resolved.missing });
      fieldMap = resolved.columns;
    }
    const baseDir = options.imageRoot ?? dirname(path);
    for await (const rec of parquet.records) {
      const result = recordToExamples(rec.value, { ...recordOptions, shape, fieldMap });
      if (shardSplit) for (const ex of result.examples) ex.split ??= shardSplit;
      await accept({ file: shardName, line: null, index: rec.index, rowGroup: rec.rowGroup, row: rec.row }, result, baseDir);
    }
  }
}

function templateOf(partial: Partial<MultipleChoiceTemplate> | undefined): MultipleChoiceTemplate {
  try {
    return resolveTemplate(partial);
  } catch (err) {
    if (err instanceof MultipleChoiceError) throw new StoreError(err.message);
    throw err;
  }
}

function datasetExists(ws: Workspace, name: string): boolean {
  try {
    ws.datasets.find(name);
    return true;
  } catch {
    return false;
  }
}

/** The path a dataset's default name comes from: a ScienceQA problems.json names its folder. */
function defaultName(file: string): string {
  if (basename(file) === PROBLEMS_FILE && isScienceQaFolder(dirname(file))) return basename(dirname(resolve(file)));
  try {
    if (statSync(file).isDirectory()) return basename(resolve(file));
  } catch {
    // reported by the read
  }
  return basename(file, extname(file));
}

export interface ImportOptions extends ReadOptions {
  /** Name of the new dataset (default: the file name without extension). Ignored with `into`. */
  name?: string;
  description?: string;
  /** Add to this existing dataset as a new version instead of creating one. */
  into?: DatasetId;
  /** 'reject' (default): any invalid record refuses the whole import. 'skip': import the valid ones. */
  onInvalid?: 'reject' | 'skip';
  /** The split of every imported example that names none itself (say, a held-out file imported as `test`). */
  split?: Split;
  /** Tags added to every imported example. */
  tags?: string[];
  /** Progress while writing (inside the transaction). */
  onProgress?: (done: number, total: number) => void;
}

export interface ImportResult {
  dataset: Dataset;
  version: DatasetVersion;
  imported: number;
  report: ImportReport;
}

/**
 * Reads `file` (or folder), and if acceptable writes it as a new dataset (or a new version of `into`) in one
 * transaction. Its images are staged while reading and moved into the workspace's image store just before
 * that transaction (see store/images.ts); a refused import leaves nothing behind.
 */
export async function importDataset(ws: Workspace, file: string, options: ImportOptions = {}): Promise<ImportResult> {
  // Fail on a bad target before spending time reading the file.
  if (options.into) ws.datasets.get(options.into);
  const name = (options.name ?? defaultName(file)).trim();
  if (!options.into && datasetExists(ws, name)) throw new StoreError(`a dataset named ${JSON.stringify(name)} already exists`);
  const staging = ws.images.stage();
  let parsed: ParsedDataset;
  try {
    parsed = await readDatasetFile(file, options, staging);
  } catch (err) {
    staging.discard();
    throw err;
  }
  const { report, examples } = parsed;
  const refuse = (reason: string) => {
    staging.discard();
    return new DatasetImportError(report, reason);
  };
  if (report.fatal) throw refuse('nothing imported');
  if (report.invalidRecords > 0 && (options.onInvalid ?? 'reject') === 'reject') {
    throw refuse('nothing imported (choose to import only the valid records to skip the invalid ones)');
  }
  if (examples.length === 0) throw refuse('nothing imported: the file has no valid records');

  if (options.split) {
    for (const ex of examples) ex.split ??= options.split;
  }
  if (options.tags?.length) {
    for (const ex of examples) ex.tags = [...new Set([...(ex.tags ?? []), ...options.tags])];
  }
  const skipped = report.invalidRecords ? `, skipped ${report.invalidRecords} invalid record(s)` : '';
  const withImages = report.images ? ` (${report.images} with an image)` : '';
  const change = {
    kind: 'import' as const,
    summary: `imported ${examples.length} example(s)${withImages} from ${report.file}${skipped}`,
    provenance: {
      file: resolve(file),
      sha256: report.sha256,
      format: report.format,
      records: report.records,
      skippedRecords: report.invalidRecords,
      images: report.images,
      options: {
        shape: options.shape ?? 'auto',
        conversation: options.conversation ?? 'last-turn',
        fieldMap: options.fieldMap ?? {},
        ...(options.multipleChoice ? { multipleChoice: options.multipleChoice } : {}),
        ...(options.imageRoot ? { imageRoot: resolve(options.imageRoot) } : {}),
      },
    },
    inserts: examples,
  };
  const progress = { onProgress: options.onProgress };
  // Only the images accepted examples use join the store (a skipped record's picture does not).
  const keep = new Set(examples.map((e) => e.image).filter((i): i is string => !!i));
  const images = parsed.images.filter((i) => keep.has(i.sha256));
  staging.commit(keep);
  try {
    return ws.transaction(() => {
      ws.images.record(images);
      if (options.into) {
        const version = ws.datasets.applyChange(options.into, change, progress)!;
        return { dataset: ws.datasets.get(options.into), version, imported: examples.length, report };
      }
      const { dataset, version } = ws.datasets.createWith(name, options.description ?? '', change, progress);
      return { dataset, version, imported: examples.length, report };
    });
  } catch (err) {
    staging.rollback();
    throw err;
  }
}
