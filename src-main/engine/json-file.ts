// A Hugging Face folder's JSON files (config.json, preprocessor_config.json, ...), read with errors that name
// the file.

import { readFileSync } from 'node:fs';
import { EngineError } from './errors.js';

export function readJsonObject(file: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EngineError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new EngineError(`${file}: expected a JSON object`);
  return raw as Record<string, unknown>;
}
