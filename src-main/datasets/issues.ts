// What an import found wrong, in terms a user can act on: which file, which line (or record index), which
// field, and what was expected instead.

import { StoreError } from '../store/errors.js';

export interface ImportIssue {
  file: string;
  /** 1-based line where the record starts, when the format has lines. */
  line: number | null;
  /** 0-based position of the record in the file (JSON list index, JSONL/CSV record number). */
  index: number | null;
  /** The field at fault (`output`, `conversations[2].value`), or null for the record or file as a whole. */
  field: string | null;
  message: string;
  /** Parquet: the row group, and the row within it (`index` is then the row in the file). */
  rowGroup?: number;
  row?: number;
}

export function formatIssue(issue: ImportIssue): string {
  const where = [issue.file + (issue.line !== null ? `:${issue.line}` : '')];
  if (issue.rowGroup !== undefined) where.push(`row group ${issue.rowGroup}${issue.row !== undefined ? `, row ${issue.row}` : ''}`);
  else if (issue.index !== null) where.push(`record ${issue.index}`);
  if (issue.field !== null) where.push(`field "${issue.field}"`);
  return `${where.join(', ')}: ${issue.message}`;
}

export interface ImportReport {
  file: string;
  format: DatasetFileFormat;
  /** Records read (JSON list elements, JSONL lines, CSV rows), valid or not. */
  records: number;
  /** Examples the valid records turned into (a conversation can give several, see conversations.ts). */
  examples: number;
  /** Of those, the examples with an image. */
  images: number;
  invalidRecords: number;
  /** Problems with single records, the first `maxIssues` of them. */
  issues: ImportIssue[];
  /** Issues found beyond `maxIssues` (counted, not kept). */
  issuesOmitted: number;
  /** A problem with the file as a whole (not UTF-8, truncated, not a list): nothing in it can be imported. */
  fatal: ImportIssue | null;
  /** sha256 of the file's bytes, recorded as provenance. */
  sha256: string | null;
}

/** `parquet` is a file or a folder of shards; `scienceqa` is ScienceQA's published folder (problems.json, ...). */
export type DatasetFileFormat = 'json' | 'jsonl' | 'csv' | 'tsv' | 'parquet' | 'scienceqa';

/** Thrown when an import is refused; `report` holds every issue for display. */
export class DatasetImportError extends StoreError {
  override name = 'DatasetImportError';
  constructor(
    readonly report: ImportReport,
    reason: string,
  ) {
    super(describeRefusal(report, reason));
  }
}

function describeRefusal(report: ImportReport, reason: string): string {
  if (report.fatal) return `${reason}: ${formatIssue(report.fatal)}`;
  const shown = report.issues.slice(0, 5).map((i) => `  ${formatIssue(i)}`);
  const more = report.issues.length + report.issuesOmitted - shown.length;
  return [`${reason}: ${report.invalidRecords} of ${report.records} records are invalid`, ...shown, ...(more > 0 ? [`  ... and ${more} more`] : [])].join('\n');
}

/** A whole-file problem found while reading: stops the read, becomes `report.fatal`. */
export class FatalFileIssue extends Error {
  constructor(readonly issue: ImportIssue) {
    super(formatIssue(issue));
  }
}
