// The bundled multi-modal starter (assets/starter/vision, assets/starter/scienceqa-demo, built by
// tools/starter/vision/build_vision_starter.py): the CLIP folder loads with the loader users' CLIP folders go
// through, its features tell the demo's pictures apart, and the demo data is in ScienceQA's layout with a test
// split of pictures never seen in training.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readScienceQaFolder } from '../src-main/datasets/scienceqa.js';
import { initBackend } from '../src-main/engine/backend.js';
import { STARTER, starterPath } from '../src-main/engine/starter.js';
import { loadImageEncoder } from '../src-main/engine/vision/encoder.js';
import { makeTempDir } from './helpers/tmp.js';

/** Debian's interpreter, which tools/setup.sh gives Pillow (python3-pil), before whatever python3 is first on PATH. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

const folder = starterPath(STARTER.scienceQaDemo);

describe('the multi-modal starter', () => {
  beforeAll(() => initBackend('cpu'));

  it('the vision tower is a CLIP folder the engine loads, with a build report and a model card', () => {
    const encoder = loadImageEncoder(starterPath(STARTER.visionDir));
    try {
      expect(encoder.record.modelType).toBe('clip');
      expect(encoder.featureDim({ kind: 'projected' })).toBe(encoder.tower.config.projectionDim);
    } finally {
      encoder.dispose();
    }
    const report = JSON.parse(readFileSync(join(starterPath(STARTER.visionDir), 'build-report.json'), 'utf8'));
    expect(report.command).toMatch(/build_vision_starter\.py/);
    expect(readFileSync(join(starterPath(STARTER.visionDir), 'MODEL_CARD.md'), 'utf8')).toMatch(/synthetic/i);
  });

  it("the demo data has ScienceQA's layout and fields, both splits, and test pictures unseen in training", async () => {
    const data = await readScienceQaFolder(folder);
    const train = data.problems.filter((p) => p.split === 'train');
    const test = data.problems.filter((p) => p.split === 'test');
    expect(train.length).toBeGreaterThan(500);
    expect(test.length).toBeGreaterThan(100);
    for (const p of data.problems.slice(0, 50)) {
      for (const key of ['question', 'choices', 'answer', 'hint', 'subject', 'grade', 'lecture', 'solution']) expect(p.value).toHaveProperty(key);
    }
    const hash = (rel: string) => createHash('sha256').update(readFileSync(join(folder, rel))).digest('hex');
    const trainPictures = new Set(train.filter((p) => p.imagePath).map((p) => hash(p.imagePath!)));
    const testPictures = test.filter((p) => p.imagePath).map((p) => hash(p.imagePath!));
    expect(testPictures.length).toBeGreaterThan(50);
    expect(testPictures.filter((h) => trainPictures.has(h))).toEqual([]);
    // Questions that need the picture, ones the hint answers, and ones with neither.
    expect(test.some((p) => p.imagePath)).toBe(true);
    expect(test.some((p) => !p.imagePath && (p.value.hint as string) !== '')).toBe(true);
    expect(test.some((p) => !p.imagePath && (p.value.hint as string) === '')).toBe(true);
  });

  it('the demo dataset is what its script builds, byte for byte (deterministic from the seed)', () => {
    const out = join(makeTempDir('scienceqa-demo'), 'demo');
    execFileSync(PYTHON, [join(import.meta.dirname, '..', 'tools', 'starter', 'vision', 'build_vision_starter.py'), '--seed', '0', '--dataset-only', out], { stdio: 'pipe' });
    const files = filesUnder(out);
    expect(files).toEqual(filesUnder(folder));
    const differing = files.filter((f) => !readFileSync(join(out, f)).equals(readFileSync(join(folder, f))));
    expect(differing).toEqual([]);
  });

  it('no test question repeats a training question (hint and fact questions are reworded or name other things)', async () => {
    const data = await readScienceQaFolder(folder);
    const key = (p: (typeof data.problems)[number]) => `${p.value.question as string}\n${p.value.hint as string}`;
    const train = new Set(data.problems.filter((p) => p.split === 'train').map(key));
    const textOnly = data.problems.filter((p) => p.split === 'test' && !p.imagePath);
    expect(textOnly.length).toBeGreaterThan(50);
    expect(textOnly.filter((p) => train.has(key(p))).map(key)).toEqual([]);
  });

  it('the tower tells the demo pictures apart: no two different pictures share a feature', async () => {
    const data = await readScienceQaFolder(folder);
    const files = data.problems.filter((p) => p.imagePath).slice(0, 24).map((p) => join(folder, p.imagePath!));
    const encoder = loadImageEncoder(starterPath(STARTER.visionDir));
    try {
      const rows = await encoder.encode(files.map((f) => new Uint8Array(readFileSync(f))), { kind: 'projected' }, files);
      const keys = new Set(rows.map((r) => [...r.slice(0, 8)].map((v) => v.toFixed(4)).join()));
      expect(keys.size).toBe(new Set(files.map((f) => createHash('sha256').update(readFileSync(f)).digest('hex'))).size);
    } finally {
      encoder.dispose();
    }
  });
});
