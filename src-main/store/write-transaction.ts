// Write transactions for a database that several processes share (the app, serve mode, the CLI).
//
// better-sqlite3's plain transaction() is BEGIN DEFERRED: it starts as a reader and becomes a writer at its
// first write. When another process commits in between, SQLite cannot upgrade the stale read snapshot and
// fails at once with SQLITE_BUSY ("database is locked"), without waiting for busy_timeout. BEGIN IMMEDIATE
// takes the write lock first, so a concurrent writer waits (up to busy_timeout) instead of failing. Nested
// calls become savepoints, whichever variant.

import type { Db } from './workspace.js';

export function writeTransaction<T>(db: Db, fn: () => T): T {
  return db.transaction(fn).immediate();
}
