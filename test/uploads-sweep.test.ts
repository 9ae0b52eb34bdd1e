// An import killed mid-way leaves its upload under the workspace's uploads/ (issue: 50 MB per kill, forever):
// the next start removes what is older than an hour and keeps what another process may still be reading.

import { mkdirSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sweepUploads } from '../src-main/service/uploads.js';
import { makeTempDir } from './helpers/tmp.js';

describe('uploads sweep', () => {
  it('removes leftovers older than an hour, keeps fresh ones', () => {
    const dir = join(makeTempDir('uploads'), 'uploads');
    for (const name of ['old-import', 'export-old', 'fresh']) {
      mkdirSync(join(dir, name), { recursive: true });
      writeFileSync(join(dir, name, 'data.jsonl'), 'x'.repeat(1000));
    }
    const twoHoursAgo = (Date.now() - 2 * 3600_000) / 1000;
    for (const name of ['old-import', 'export-old']) utimesSync(join(dir, name), twoHoursAgo, twoHoursAgo);
    expect(sweepUploads(dir)).toBe(2);
    expect(existsSync(join(dir, 'old-import'))).toBe(false);
    expect(existsSync(join(dir, 'export-old'))).toBe(false);
    expect(existsSync(join(dir, 'fresh', 'data.jsonl'))).toBe(true);
    expect(sweepUploads(join(dir, 'nowhere'))).toBe(0);
  });
});
