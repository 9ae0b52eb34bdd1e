// Parquet files as Hugging Face downloads them (`data/train-00000-of-00001.parquet`, sharded sets), read with
// hyparquet (pure JavaScript; snappy built in, zstd / gzip / brotli / lz4 from hyparquet-compressors) one row
// group at a time, so memory holds one group, never the whole file.
//
// Rows come out as plain objects for records.ts, with parquet's types made JSON-like: INT64 (bigint) becomes a
// number, and a BYTE_ARRAY column without a STRING annotation stays binary (Uint8Array) so that image bytes
// survive; records.ts decodes binary text fields as UTF-8 where it expects text.

import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import type { Split } from '../store/datasets.js';
import { FatalFileIssue } from './issues.js';

export interface ParquetRecord {
  /** 0-based row in the file. */
  index: number;
  rowGroup: number;
  /** 0-based row within its row group. */
  row: number;
  value: Record<string, unknown>;
}

const fatal = (file: string, message: string, rowGroup: number | null = null) =>
  new FatalFileIssue({ file, line: null, index: null, field: null, message, ...(rowGroup !== null ? { rowGroup } : {}) });

export interface ParquetFile {
  /** Top-level column names, in file order. */
  columns: string[];
  rows: number;
  rowGroups: number;
  records: AsyncGenerator<ParquetRecord>;
}

/** Opens a parquet file (footer and schema only); `records` then reads it one row group at a time. */
export async function openParquet(file: string, name: string, signal?: AbortSignal): Promise<ParquetFile> {
  let metadata: FileMetaData;
  const buffer = await asyncBufferFromFile(file);
  try {
    metadata = await parquetMetadataAsync(buffer);
  } catch (err) {
    const message = (err as Error).message;
    if (/PAR1|too short|exceeds available buffer/.test(message)) throw fatal(name, `not a parquet file, or a truncated one (${message})`);
    throw fatal(name, `cannot read the parquet footer (${message})`);
  }
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);

  async function* records(): AsyncGenerator<ParquetRecord> {
    let rowStart = 0;
    let index = 0;
    for (let g = 0; g < metadata.row_groups.length; g++) {
      signal?.throwIfAborted();
      const rowEnd = rowStart + Number(metadata.row_groups[g]!.num_rows);
      let rows: Record<string, unknown>[];
      try {
        rows = await parquetReadObjects({ file: buffer, metadata, rowStart, rowEnd, compressors, utf8: false });
      } catch (err) {
        throw fatal(name, `row group ${g} cannot be read (${(err as Error).message})`, g);
      }
      for (let r = 0; r < rows.length; r++) yield { index: index++, rowGroup: g, row: r, value: jsonLike(rows[r]!) as Record<string, unknown> };
      rowStart = rowEnd;
    }
  }
  return { columns, rows: Number(metadata.num_rows), rowGroups: metadata.row_groups.length, records: records() };
}

function jsonLike(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(jsonLike);
  if (v instanceof Uint8Array || v instanceof Date || v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = jsonLike(x);
  return out;
}

/** sha256 of a file's bytes (provenance), streamed. */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The parquet files under `dir` (a Hugging Face download: `data/*.parquet`, maybe per config), sorted by path. */
export function findParquetShards(dir: string, depth = 3): string[] {
  const out: string[] = [];
  const walk = (d: string, left: number) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue; // .cache/, .git/
      const path = join(d, entry.name);
      if (entry.isDirectory() && left > 0) walk(path, left - 1);
      else if (entry.isFile() && entry.name.toLowerCase().endsWith('.parquet')) out.push(path);
    }
  };
  walk(dir, depth);
  return out.sort((a, b) => relative(dir, a).localeCompare(relative(dir, b)));
}

/**
 * The split a shard's name gives, as Hugging Face names them: `train-00000-of-00002.parquet`,
 * `validation-...`, `test-...` (also `train.parquet`, or a `train/` folder). Null when the name tells none.
 */
export function splitFromShardName(path: string): Split | null {
  const parts = path.split(sep).join('/').toLowerCase().split('/');
  const name = parts[parts.length - 1]!;
  const words = [name.replace(/\.parquet$/, '').split(/[-_.]/)[0]!, ...(parts.length > 1 ? [parts[parts.length - 2]!] : [])];
  for (const w of words) {
    if (w === 'train') return 'train';
    if (w === 'validation' || w === 'valid' || w === 'val' || w === 'dev') return 'val';
    if (w === 'test') return 'test';
  }
  return null;
}

export const isDirectory = (path: string): boolean => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};
