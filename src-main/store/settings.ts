// Workspace settings: JSON values by key (generator endpoint, default recipe, UI preferences).

import { readJson, writeJson } from './json-column.js';
import type { Db } from './workspace.js';

export class SettingsStore {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      get: db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?'),
      all: db.prepare<[], { key: string; value: string }>('SELECT key, value FROM settings ORDER BY key'),
      put: db.prepare(`
        INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
      delete: db.prepare('DELETE FROM settings WHERE key = ?'),
    };
  }

  get<T>(key: string): T | undefined;
  get<T>(key: string, fallback: T): T;
  get<T>(key: string, fallback?: T): T | undefined {
    const row = this.s.get.get(key);
    return row ? readJson<T>(row.value, `settings.${key}`) : fallback;
  }

  set(key: string, value: unknown): void {
    this.s.put.run(key, writeJson(value, `settings.${key}`), Date.now());
  }

  delete(key: string): void {
    this.s.delete.run(key);
  }

  all(): Record<string, unknown> {
    return Object.fromEntries(this.s.all.all().map((r) => [r.key, readJson(r.value, `settings.${r.key}`)]));
  }
}
