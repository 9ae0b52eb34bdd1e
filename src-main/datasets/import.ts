// Importing a dataset file: read and check every record first (streaming), then write in one transaction.
//
// Reading never touches the workspace, so `readDatasetFile` doubles as the validation step the UI shows
// before the user picks "import the valid records" (onInvalid: 'skip') or "import nothing" ('reject').
// The write is a single transaction: the dataset gets every accepted example or none of them.

import { basename, extname, resolve } from 'node:path';
import type { Dataset, DatasetVersion, NewExample, Split } from '../store/datasets.js';
import { StoreError } from '../store/errors.js';
import type { DatasetId } from '../store/ids.js';
import type { Workspace } from '../store/workspace.js';
import type { ConversationMode } from './conversations.js';
import { DatasetImportError, FatalFileIssue, type DatasetFileFormat, type ImportIssue, type ImportReport } from './issues.js';
import { readDelimited, readJsonLines, readJsonList, type RawRecord } from './readers.js';
import { recordToExamples, resolveColumns, rowToExamples, type FieldMap, type RecordOptions, type RecordShape } from './records.js';
import { openTextSource } from './text-source.js';

export interface ReadOptions {
  /** Container format; 'auto' goes by extension (.json, .jsonl/.ndjson, .csv, .tsv/.tab). */
  format?: DatasetFileFormat | 'auto';
  /** Record shape; 'auto' treats records with "conversations"/"messages" as chats, others as Alpaca. */
  shape?: RecordShape;
  /** Which key/column holds each field when the defaults do not match (see records.ts). */
  fieldMap?: FieldMap;
  /** How a conversation becomes examples (see conversations.ts). */
  conversation?: ConversationMode;
  /** CSV only: the delimiter (default "," for .csv, tab for .tsv). */
  delimiter?: string;
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
  /** The examples from valid records, in file order, with their source line. */
  examples: NewExample[];
}

export const DEFAULT_LIMITS = { maxFieldChars: 100_000, maxRecordChars: 1_000_000, maxIssues: 1000 };

export function detectFormat(file: string): DatasetFileFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv' || ext === '.tab') return 'tsv';
  throw new StoreError(`${file}: cannot tell the format from the extension "${ext}"; use .json, .jsonl, .csv or .tsv, or pass a format`);
}

/** Reads and checks a dataset file without writing anything. Never throws for bad content: see report.fatal. */
export async function readDatasetFile(file: string, options: ReadOptions = {}): Promise<ParsedDataset> {
  const name = basename(file);
  const format = options.format && options.format !== 'auto' ? options.format : detectFormat(file);
  const limits = { maxRecordChars: options.maxRecordChars ?? DEFAULT_LIMITS.maxRecordChars };
  const recordOptions: RecordOptions = {
    shape: options.shape ?? 'auto',
    fieldMap: options.fieldMap ?? {},
    conversation: options.conversation ?? 'last-turn',
    maxFieldChars: options.maxFieldChars ?? DEFAULT_LIMITS.maxFieldChars,
  };
  const maxIssues = options.maxIssues ?? DEFAULT_LIMITS.maxIssues;
  const report: ImportReport = { file: name, format, records: 0, examples: 0, invalidRecords: 0, issues: [], issuesOmitted: 0, fatal: null, sha256: null };
  const examples: NewExample[] = [];

  const addIssue = (issue: ImportIssue) => {
    if (report.issues.length < maxIssues) report.issues.push(issue);
    else report.issuesOmitted++;
  };
  const accept = (index: number, line: number, result: ReturnType<typeof recordToExamples>) => {
    report.records++;
    if (result.problems.length) {
      report.invalidRecords++;
      for (const p of result.problems) addIssue({ file: name, line, index, field: p.field, message: p.message });
      return;
    }
    for (const draft of result.examples) examples.push({ ...draft, source: name, sourceLine: line });
  };

  const source = openTextSource(file, { signal: options.signal, chunkBytes: options.chunkBytes });
  try {
    if (format === 'csv' || format === 'tsv') {
      if (recordOptions.shape === 'conversation') throw new FatalFileIssue({ file: name, line: null, index: null, field: null, message: 'conversations cannot be read from CSV/TSV; use JSON or JSONL' });
      const delimiter = options.delimiter ?? (format === 'tsv' ? '\t' : ',');
      let columns: FieldMap = {};
      for await (const item of readDelimited(name, source.chunks, delimiter, limits)) {
        if ('header' in item) {
          const resolved = resolveColumns(item.header, recordOptions.fieldMap);
          if (resolved.missing) throw new FatalFileIssue({ file: name, line: 1, index: null, field: null, message: resolved.missing });
          columns = resolved.columns;
          continue;
        }
        if (item.problem) {
          report.records++;
          report.invalidRecords++;
          addIssue({ file: name, line: item.line, index: item.index, field: null, message: item.problem });
          continue;
        }
        accept(item.index, item.line, rowToExamples(item.cells, { ...recordOptions, fieldMap: columns }));
      }
    } else {
      const records: AsyncGenerator<RawRecord> =
        format === 'json' ? readJsonList(name, source.chunks, limits) : readJsonLines(name, source.chunks, limits);
      for await (const rec of records) {
        if (rec.problem !== undefined) {
          report.records++;
          report.invalidRecords++;
          addIssue({ file: name, line: rec.line, index: rec.index, field: null, message: rec.problem });
        } else accept(rec.index, rec.line, recordToExamples(rec.value, recordOptions));
      }
    }
    report.sha256 = source.sha256();
  } catch (err) {
    if (err instanceof FatalFileIssue) report.fatal = { ...err.issue, file: name };
    else if ((err as NodeJS.ErrnoException).code === 'ENOENT') report.fatal = { file: name, line: null, index: null, field: null, message: `no such file: ${resolve(file)}` };
    else if ((err as NodeJS.ErrnoException).code === 'EISDIR') report.fatal = { file: name, line: null, index: null, field: null, message: 'this is a folder, not a dataset file' };
    else throw err;
    return { report, examples: [] };
  }
  report.examples = examples.length;
  return { report, examples };
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

/** Reads `file`, and if acceptable writes it as a new dataset (or a new version of `into`) in one transaction. */
export async function importDataset(ws: Workspace, file: string, options: ImportOptions = {}): Promise<ImportResult> {
  // Fail on a bad target before spending time reading the file.
  if (options.into) ws.datasets.get(options.into);
  const { report, examples } = await readDatasetFile(file, options);
  if (report.fatal) throw new DatasetImportError(report, 'nothing imported');
  if (report.invalidRecords > 0 && (options.onInvalid ?? 'reject') === 'reject') {
    throw new DatasetImportError(report, 'nothing imported (choose to import only the valid records to skip the invalid ones)');
  }
  if (examples.length === 0) throw new DatasetImportError(report, 'nothing imported: the file has no valid records');

  if (options.split) {
    for (const ex of examples) ex.split ??= options.split;
  }
  if (options.tags?.length) {
    for (const ex of examples) ex.tags = [...new Set([...(ex.tags ?? []), ...options.tags])];
  }
  const skipped = report.invalidRecords ? `, skipped ${report.invalidRecords} invalid record(s)` : '';
  const change = {
    kind: 'import' as const,
    summary: `imported ${examples.length} example(s) from ${report.file}${skipped}`,
    provenance: {
      file: resolve(file),
      sha256: report.sha256,
      format: report.format,
      records: report.records,
      skippedRecords: report.invalidRecords,
      options: { shape: options.shape ?? 'auto', conversation: options.conversation ?? 'last-turn', fieldMap: options.fieldMap ?? {} },
    },
    inserts: examples,
  };
  const progress = { onProgress: options.onProgress };
  if (options.into) {
    const version = ws.datasets.applyChange(options.into, change, progress)!;
    return { dataset: ws.datasets.get(options.into), version, imported: examples.length, report };
  }
  const name = options.name ?? basename(file, extname(file));
  const { dataset, version } = ws.datasets.createWith(name, options.description ?? '', change, progress);
  return { dataset, version, imported: examples.length, report };
}
