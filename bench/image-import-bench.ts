// Image import benchmark: generates a ScienceQA-shaped folder (problems.json, pid_splits.json, images/) whose
// pictures have ScienceQA's typical size (a few hundred pixels a side, PNG, noisy enough not to compress to
// nothing) and times checking (full decode) plus storing them, for the folder and for the same data as a
// parquet shard. Prints the numbers; asserts nothing. Needs python3 with pyarrow for the parquet part.
//
// Run (from the repository root):
//   npx esbuild bench/image-import-bench.ts --bundle --platform=node --format=esm --packages=external \
//     --outfile=test-output/image-import-bench.mjs && node test-output/image-import-bench.mjs [problems]

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { importDataset } from '../src-main/datasets/index.js';
import { seededRandom } from '../src-main/datasets/rng.js';
import { openWorkspace } from '../src-main/store/index.js';

const count = Number(process.argv[2] ?? 2000);
const random = seededRandom('image-import-bench');
const dir = mkdtempSync(join(tmpdir(), 'image-import-bench-'));
try {
  const root = join(dir, 'scienceqa');
  const problems: Record<string, unknown> = {};
  const splits: Record<string, string[]> = { train: [], val: [], test: [] };
  let bytes = 0;
  const started = performance.now();
  for (let i = 1; i <= count; i++) {
    const pid = String(i);
    const split = i % 10 < 6 ? 'train' : i % 10 < 8 ? 'val' : 'test';
    splits[split]!.push(pid);
    const image = i % 2 === 0; // about half of ScienceQA's problems have an image
    problems[pid] = {
      question: `Which choice is right for problem ${i}?`,
      choices: ['first', 'second', 'third'],
      answer: i % 3,
      hint: i % 3 ? '' : `A hint for ${i}.`,
      image: image ? 'image.png' : null,
      task: 'closed choice',
      grade: `grade${(i % 12) + 1}`,
      subject: ['natural science', 'social science', 'language science'][i % 3],
      topic: 'topic',
      category: 'category',
      skill: 'skill',
      lecture: 'A lecture.',
      solution: 'A solution.',
      split,
    };
    if (image) {
      const width = 300 + Math.floor(random() * 300);
      const height = 200 + Math.floor(random() * 200);
      const pixels = Buffer.alloc(width * height * 3);
      for (let k = 0; k < pixels.length; k++) pixels[k] = (k % 3 === 0 ? 200 : 40) + Math.floor(random() * 16);
      const png = await sharp(pixels, { raw: { width, height, channels: 3 } }).png().toBuffer();
      mkdirSync(join(root, 'images', split, pid), { recursive: true });
      writeFileSync(join(root, 'images', split, pid, 'image.png'), png);
      bytes += png.length;
    }
  }
  writeFileSync(join(root, 'problems.json'), JSON.stringify(problems, null, 4));
  writeFileSync(join(root, 'pid_splits.json'), JSON.stringify(splits));
  const images = Math.floor(count / 2);
  console.log(`generated ${count} problems, ${images} PNGs (${(bytes / 1e6).toFixed(1)} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const ws = openWorkspace(join(dir, 'ws'));
  let t = performance.now();
  const folder = await importDataset(ws, root);
  let s = (performance.now() - t) / 1000;
  console.log(`ScienceQA folder: ${folder.imported} examples, ${folder.report.images} images in ${s.toFixed(2)} s (${(images / s).toFixed(0)} images/s, ${(bytes / 1e6 / s).toFixed(1)} MB/s)`);

  const parquet = join(dir, 'parquet');
  mkdirSync(parquet);
  const script = `
import json, os, sys, pyarrow as pa, pyarrow.parquet as pq
root, out = sys.argv[1], sys.argv[2]
problems = json.load(open(os.path.join(root, 'problems.json')))
rows = []
for pid, p in problems.items():
    img = None
    if p['image']:
        img = {'bytes': open(os.path.join(root, 'images', p['split'], pid, 'image.png'), 'rb').read(), 'path': None}
    rows.append({'image': img, **{k: p[k] for k in ('question', 'choices', 'answer', 'hint', 'task', 'grade', 'subject', 'topic', 'category', 'skill', 'lecture', 'solution')}})
pq.write_table(pa.Table.from_pylist(rows), os.path.join(out, 'train-00000-of-00001.parquet'), row_group_size=200)
`;
  try {
    execFileSync('python3', ['-c', script, root, parquet], { stdio: 'inherit' });
    t = performance.now();
    const shard = await importDataset(ws, parquet, { name: 'parquet' });
    s = (performance.now() - t) / 1000;
    console.log(`parquet shard (same images, already stored): ${shard.imported} examples in ${s.toFixed(2)} s (${(images / s).toFixed(0)} images/s)`);
  } catch (err) {
    console.log(`parquet part skipped: ${(err as Error).message.split('\n')[0]}`);
  }
  ws.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
