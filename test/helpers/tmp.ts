// Temporary folders for tests, removed when the test file finishes.
//
// The afterAll hook below is registered when a test file imports this module (vitest loads
// each test file's modules afresh), so every file cleans up its own folders.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const created: string[] = [];

afterAll(() => {
  for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A new empty folder under the OS temp dir, e.g. makeTempDir('safetensors') -> /tmp/safetensors-AbC123. */
export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  created.push(dir);
  return dir;
}
