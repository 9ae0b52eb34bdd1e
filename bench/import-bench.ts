// Import benchmark: generates a 50K-example Alpaca JSON file (the size class of Stanford Alpaca's 52K
// alpaca_data.json, ~20 MB) and times reading it, importing it into a fresh workspace, and the curation
// steps that run over a whole dataset. Prints the numbers; asserts nothing.
//
// Run (from the repository root):
//   npx esbuild bench/import-bench.ts --bundle --platform=node --format=esm --packages=external \
//     --outfile=test-output/import-bench.mjs && node test-output/import-bench.mjs [examples]
// or, with vitest's vite-node:  npx vite-node bench/import-bench.ts [examples]

import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assignSplits, exportDataset, findExactDuplicates, findNearDuplicates, importDataset, readDatasetFile } from '../src-main/datasets/index.js';
import { seededRandom } from '../src-main/datasets/rng.js';
import { openWorkspace } from '../src-main/store/index.js';

const count = Number(process.argv[2] ?? 50_000);
const random = seededRandom('import-bench');
const WORDS = (
  'the a of to and in is for that on with as it by be this are from or at an was which have not can will more ' +
  'explain describe write list give suggest create compare summarize translate classify identify rewrite generate ' +
  'water energy history music city river computer science language market health food travel school garden ' +
  'quickly carefully simple important different several common modern ancient useful possible typical ' +
  'because although however therefore while during between through without within around about'
).split(' ');
const words = (n: number) => Array.from({ length: n }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ');
const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));

const dir = mkdtempSync(join(tmpdir(), 'import-bench-'));
try {
  // Alpaca's averages: instruction ~13 words, 40% of examples with an input (~12 words), output ~45 words.
  const records = Array.from({ length: count }, (_, i) => ({
    instruction: `${words(between(6, 20))} (${i})`,
    input: random() < 0.4 ? words(between(4, 25)) : '',
    output: words(between(10, 90)),
  }));
  const file = join(dir, 'alpaca_data.json');
  writeFileSync(file, JSON.stringify(records, null, 4));
  const mb = statSync(file).size / 1e6;

  const time = <T>(label: string, fn: () => T): T => {
    const t0 = performance.now();
    const result = fn();
    const seconds = (performance.now() - t0) / 1000;
    console.log(`${label.padEnd(44)} ${seconds.toFixed(2)} s`);
    return result;
  };
  const timeAsync = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const result = await fn();
    const seconds = (performance.now() - t0) / 1000;
    console.log(`${label.padEnd(44)} ${seconds.toFixed(2)} s`);
    return result;
  };

  console.log(`${count} examples, ${mb.toFixed(1)} MB of Alpaca JSON (node ${process.version})`);
  const parsed = await timeAsync('read + validate (no database)', () => readDatasetFile(file));
  if (parsed.report.invalidRecords || parsed.report.fatal) throw new Error('the generated file should be valid');

  const ws = openWorkspace(join(dir, 'workspace'));
  const result = await timeAsync('import (read + validate + one transaction)', () => importDataset(ws, file, { name: 'bench' }));
  console.log(`${'  imported'.padEnd(44)} ${result.imported} examples`);
  const id = result.dataset.id;
  time('full-text search, 3 words (first page)', () => ws.datasets.query(id, { search: 'explain water history' }));
  time('exact duplicates', () => findExactDuplicates(ws, id));
  time('near duplicates (MinHash, 128 perms)', () => findNearDuplicates(ws, id, { threshold: 0.8 }));
  time('seeded split 90/5/5', () => assignSplits(ws, id, { seed: 1 }));
  time('undo the split', () => ws.datasets.undo(id));
  time('export JSONL', () => exportDataset(ws, id, join(dir, 'out.jsonl')));
  ws.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
