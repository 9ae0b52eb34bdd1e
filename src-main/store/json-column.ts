// JSON columns: written with JSON.stringify, read back with a check, so a hand-edited database fails with a
// message that names the table and column instead of a bare SyntaxError.

import { StoreError } from './errors.js';

export function readJson<T>(text: string, where: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new StoreError(`${where}: stored JSON is unreadable (${(err as Error).message})`);
  }
}

export function writeJson(value: unknown, where: string): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new StoreError(`${where}: value cannot be stored as JSON`);
  return text;
}
