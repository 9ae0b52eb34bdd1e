// Export as Alpaca JSON (a list of {instruction, input, output}) or JSONL (one object per line).
// The file is written next to its destination and renamed into place, so an interrupted export never
// leaves a half-written file under the final name. Images go beside it, one file per distinct image, as
// images/<sha256>.<ext>, and a record's "image" is that relative path (what our importer and LLaVA-style
// tools read back); they are written before the dataset file, so a finished export never points at a missing one.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Example, Split } from '../store/datasets.js';
import type { DatasetId } from '../store/ids.js';
import { imageExtension } from '../store/images.js';
import type { Workspace } from '../store/workspace.js';

export const EXPORT_IMAGES_DIR = 'images';

export type ExportFormat = 'json' | 'jsonl';

export interface ExportOptions {
  format?: ExportFormat;
  /** Only this split. */
  split?: Split;
  /** The dataset as it was at this version (default: current). */
  version?: number;
  /** Also write tags, split and meta (readable by our importer; other tools ignore extra keys). */
  includeMeta?: boolean;
  /** Write the image files beside the dataset file (default true); false only names them in the records. */
  writeImages?: boolean;
}

export interface ExportResult {
  file: string;
  format: ExportFormat;
  count: number;
  version: number;
  /** Distinct images written to images/ beside the file. */
  images: number;
}

export function exportDataset(ws: Workspace, datasetId: DatasetId, file: string, options: ExportOptions = {}): ExportResult {
  const dataset = ws.datasets.get(datasetId);
  const format = options.format ?? (file.toLowerCase().endsWith('.jsonl') ? 'jsonl' : 'json');
  const version = options.version ?? dataset.version;
  let examples: Iterable<Example> =
    version === dataset.version ? ws.datasets.iterate(datasetId, options.split) : ws.datasets.examplesAt(datasetId, version);
  if (options.split && version !== dataset.version) examples = [...examples].filter((e) => e.split === options.split);

  // Images first (a missing or changed image file fails the export before the dataset file exists).
  const imageDir = join(dirname(file), EXPORT_IMAGES_DIR);
  const written = new Map<string, string>();
  const imagePath = (sha: string): string => {
    let rel = written.get(sha);
    if (rel) return rel;
    rel = `${EXPORT_IMAGES_DIR}/${sha}.${imageExtension(ws.images.get(sha).format)}`;
    const target = join(dirname(file), rel);
    if (options.writeImages !== false && !existsSync(target)) {
      const { bytes } = ws.images.read(sha);
      mkdirSync(imageDir, { recursive: true });
      const part = `${target}.partial-${process.pid}`;
      writeFileSync(part, bytes);
      renameSync(part, target);
    }
    written.set(sha, rel);
    return rel;
  };
  // Looked up before the examples stream: the connection is busy while it iterates.
  const shas = Array.isArray(examples) ? examples.map((e) => e.image) : ws.datasets.imagesOf(datasetId, options.split);
  for (const sha of shas) if (sha) imagePath(sha);

  const temp = `${file}.partial-${process.pid}`;
  const fd = openSync(temp, 'w');
  let count = 0;
  try {
    let buffer = format === 'json' ? '[' : '';
    const flush = () => {
      writeSync(fd, buffer);
      buffer = '';
    };
    for (const ex of examples) {
      const record: Record<string, unknown> = { instruction: ex.instruction, input: ex.input, output: ex.output };
      if (ex.image) record.image = written.get(ex.image);
      if (options.includeMeta) {
        record.tags = ex.tags;
        record.split = ex.split;
        if (Object.keys(ex.meta).length) record.meta = ex.meta;
      }
      if (format === 'json') buffer += `${count ? ',' : ''}\n  ${JSON.stringify(record)}`;
      else buffer += `${JSON.stringify(record)}\n`;
      count++;
      if (buffer.length > 1 << 20) flush();
    }
    if (format === 'json') buffer += count ? '\n]\n' : ']\n';
    flush();
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temp, file);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    rmSync(temp, { force: true });
    throw err;
  }
  return { file, format, count, version, images: written.size };
}
