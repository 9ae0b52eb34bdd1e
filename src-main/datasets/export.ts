// Export as Alpaca JSON (a list of {instruction, input, output}) or JSONL (one object per line).
// The file is written next to its destination and renamed into place, so an interrupted export never
// leaves a half-written file under the final name.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { Example, Split } from '../store/datasets.js';
import type { DatasetId } from '../store/ids.js';
import type { Workspace } from '../store/workspace.js';

export type ExportFormat = 'json' | 'jsonl';

export interface ExportOptions {
  format?: ExportFormat;
  /** Only this split. */
  split?: Split;
  /** The dataset as it was at this version (default: current). */
  version?: number;
  /** Also write tags and split (readable by our importer; other tools ignore extra keys). */
  includeMeta?: boolean;
}

export interface ExportResult {
  file: string;
  format: ExportFormat;
  count: number;
  version: number;
}

export function exportDataset(ws: Workspace, datasetId: DatasetId, file: string, options: ExportOptions = {}): ExportResult {
  const dataset = ws.datasets.get(datasetId);
  const format = options.format ?? (file.toLowerCase().endsWith('.jsonl') ? 'jsonl' : 'json');
  const version = options.version ?? dataset.version;
  let examples: Iterable<Example> =
    version === dataset.version ? ws.datasets.iterate(datasetId, options.split) : ws.datasets.examplesAt(datasetId, version);
  if (options.split && version !== dataset.version) examples = [...examples].filter((e) => e.split === options.split);

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
      if (options.includeMeta) {
        record.tags = ex.tags;
        record.split = ex.split;
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
  return { file, format, count, version };
}
