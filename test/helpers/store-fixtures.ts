// Small builders shared by the store and dataset tests: workspaces in temp folders and dataset files.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openWorkspace, type Workspace } from '../../src-main/store/index.js';
import { makeTempDir } from './tmp.js';

/** A fresh workspace in its own temp folder; closed by the caller (or left to the folder cleanup). */
export function tempWorkspace(prefix = 'ws'): { ws: Workspace; dir: string } {
  const dir = makeTempDir(`store-${prefix}`);
  return { ws: openWorkspace(dir), dir };
}

/** `n` distinct Alpaca records; every third has an input. */
export function alpacaRecords(n: number, offset = 0): { instruction: string; input: string; output: string }[] {
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    return {
      instruction: `Describe item number ${i} in one sentence.`,
      input: i % 3 === 0 ? `Item ${i} is a ${['red', 'green', 'blue'][i % 3]} object.` : '',
      output: `Item ${i} is an ordinary thing, catalogued as entry ${i * 7 + 3}.`,
    };
  });
}

export function writeFile(dir: string, name: string, content: string | Buffer): string {
  const file = join(dir, name);
  writeFileSync(file, content);
  return file;
}

export function writeJsonFile(dir: string, name: string, value: unknown): string {
  return writeFile(dir, name, JSON.stringify(value, null, 2));
}

export function writeJsonlFile(dir: string, name: string, values: unknown[]): string {
  return writeFile(dir, name, values.map((v) => JSON.stringify(v)).join('\n') + '\n');
}

/** Throws (SQLITE_CORRUPT_VTAB) unless the FTS5 index matches the examples table row for row. */
export function checkSearchIndex(ws: Workspace): void {
  ws.db.prepare(`INSERT INTO examples_fts (examples_fts, rank) VALUES ('integrity-check', 1)`).run();
}
