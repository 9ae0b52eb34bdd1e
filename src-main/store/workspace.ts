// A workspace is one folder: `workspace.sqlite` (everything the app records) plus the files that rows point
// to (models, adapters, checkpoints), stored relative to the folder so that it can be moved as a whole.
//
// One Workspace object per process owns the connection. better-sqlite3 is synchronous: every call here
// finishes before it returns, and a transaction cannot be interleaved with other work on the same connection.
//
// Several processes may open one workspace (the app, serve mode, the CLI). One of them is its owner
// (owner-lock.ts): only the owner trains runs and recovers the runs a crash left `running`; the others read,
// write data and queue runs for the owner to train.

import Database from 'better-sqlite3';
import { closeSync, existsSync, mkdirSync, openSync, readSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ChatStore } from './chats.js';
import { ComparisonStore } from './comparisons.js';
import { DatasetStore } from './datasets.js';
import { StoreError } from './errors.js';
import { EvaluationStore } from './evaluations.js';
import { SweepStore } from './sweeps.js';
import { ImageStore } from './images.js';
import type { CheckpointId, RunId } from './ids.js';
import { ModelStore } from './models.js';
import { RunStore } from './runs.js';
import { claimOwnership, currentOwner, type OwnerLock, type OwnerRecord } from './owner-lock.js';
import { MIGRATIONS, SCHEMA_VERSION, type Migration } from './schema.js';
import { SettingsStore } from './settings.js';
import { writeTransaction } from './write-transaction.js';

export type Db = Database.Database;

export const DATABASE_FILE = 'workspace.sqlite';

/** 'ADST' in the SQLite header: tells our database apart from any other SQLite file at open. */
const APPLICATION_ID = 0x41445354;

export interface RecoveryReport {
  /**
   * Runs found `running` when this process became the owner (their process died) and now `interrupted`, with
   * the checkpoint to resume. Empty for a process that does not own the workspace.
   */
  interruptedRuns: { runId: RunId; checkpointId: CheckpointId | null }[];
  /** Schema versions migrated at this open, oldest first (empty when the database was current). */
  migrated: number[];
}

export class Workspace {
  readonly models: ModelStore;
  readonly datasets: DatasetStore;
  readonly images: ImageStore;
  readonly runs: RunStore;
  readonly evaluations: EvaluationStore;
  readonly sweeps: SweepStore;
  readonly comparisons: ComparisonStore;
  readonly chats: ChatStore;
  readonly settings: SettingsStore;
  private ownerLock: OwnerLock | null = null;

  constructor(
    readonly dir: string,
    readonly db: Db,
    readonly recovery: RecoveryReport,
  ) {
    this.models = new ModelStore(db, this);
    this.datasets = new DatasetStore(db);
    this.images = new ImageStore(db, this);
    this.runs = new RunStore(db, this);
    this.evaluations = new EvaluationStore(db);
    this.sweeps = new SweepStore(db);
    this.comparisons = new ComparisonStore(db);
    this.chats = new ChatStore(db);
    this.settings = new SettingsStore(db);
  }

  /**
   * Runs `fn` in one write transaction (BEGIN IMMEDIATE, see write-transaction.ts; nested calls become
   * savepoints); a throw rolls everything back.
   */
  transaction<T>(fn: () => T): T {
    return writeTransaction(this.db, fn);
  }

  /** Whether this process owns the workspace: it trains the runs (see the header comment). */
  get isOwner(): boolean {
    return this.ownerLock?.held ?? false;
  }

  /** The live owner as the lock file says now (this process or another), or null when nobody owns it. */
  owner(): OwnerRecord | null {
    return this.isOwner ? this.ownerLock!.record : currentOwner(this.dir);
  }

  /**
   * Becomes the owner unless another live process is (its lock is left alone), and then recovers the runs
   * that a dead owner left `running`. Returns whether this process owns the workspace now.
   */
  claimOwnership(): boolean {
    if (this.isOwner) return true;
    if (!this.db.open) return false;
    const claim = claimOwnership(this.dir);
    if (!('lock' in claim)) return false;
    this.ownerLock = claim.lock;
    try {
      this.recovery.interruptedRuns = this.runs.recoverInterrupted();
    } catch (err) {
      this.releaseOwnership();
      throw err;
    }
    return true;
  }

  private releaseOwnership(): void {
    this.ownerLock?.release();
    this.ownerLock = null;
  }

  /** Where a run keeps its files (checkpoints, exported adapters). */
  runDir(runId: RunId): string {
    return join(this.dir, 'runs', runId);
  }

  /** Paths inside the workspace are stored relative to it; others stay absolute. */
  toStoredPath(path: string): string {
    const abs = resolve(this.dir, path);
    const rel = relative(this.dir, abs);
    return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? abs : rel.split(sep).join('/');
  }

  fromStoredPath(stored: string): string {
    return isAbsolute(stored) ? stored : join(this.dir, stored);
  }

  close(): void {
    this.releaseOwnership();
    if (this.db.open) this.db.close();
  }
}

/** The workspace folder: $ADAPTER_STUDIO_WORKSPACE, else ~/.adapter-studio. */
export function defaultWorkspaceDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.ADAPTER_STUDIO_WORKSPACE || join(homedir(), '.adapter-studio');
}

export interface OpenOptions {
  /**
   * Become the owner if no live process is (default true). A process that never trains (a CLI command that
   * imports or evaluates) says false, so that it does not keep the app from training while it works.
   */
  claimOwnership?: boolean;
}

/**
 * Opens (creating if needed) the workspace in `dir`: runs missing migrations in order, then, as the owner,
 * marks runs that a crash left `running` as `interrupted`.
 */
export function openWorkspace(dir: string, opts: OpenOptions = {}): Workspace {
  const root = resolve(dir);
  const file = join(root, DATABASE_FILE);
  let db: Db;
  try {
    mkdirSync(root, { recursive: true });
    if (existsSync(file)) checkSqliteHeader(file);
    db = new Database(file);
  } catch (err) {
    if (err instanceof StoreError) throw err;
    // /proc/self, a read-only disk, a file where the folder should be: the folder's fault, said as such.
    throw new StoreError(`${root} cannot hold a workspace: ${(err as Error).message}`);
  }
  try {
    configureConnection(db);
    const migrated = migrate(db, file);
    const ws = new Workspace(root, db, { interruptedRuns: [], migrated });
    if (opts.claimOwnership !== false) ws.claimOwnership();
    return ws;
  } catch (err) {
    db.close();
    throw err;
  }
}

export function configureConnection(db: Db): void {
  db.pragma('journal_mode = WAL');
  // FULL: a committed transaction survives power loss too, not only a crashed process; metrics are written
  // once per step, so the extra fsync does not matter.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  // A CLI command and the app may share a workspace: wait for the other writer instead of failing at once.
  db.pragma('busy_timeout = 5000');
}

/**
 * Runs the migrations after the database's user_version, up to `upTo` (the newest by default; tests build
 * an older database by stopping early). Returns the versions applied.
 */
export function migrate(db: Db, file = db.name, upTo: number = SCHEMA_VERSION, migrations: readonly Migration[] = MIGRATIONS): number[] {
  // Another process may be migrating the same file: each step re-reads the version inside its write
  // transaction and skips what that process already applied.
  const current = db.pragma('user_version', { simple: true }) as number;
  const appId = db.pragma('application_id', { simple: true }) as number;
  if (current === 0) {
    const tables = db.prepare(`SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'`).get() as { n: number };
    if (tables.n > 0) throw new StoreError(`${file}: this SQLite database is not an Adapter Studio workspace (it has tables but no schema version)`);
  } else if (appId !== APPLICATION_ID) {
    throw new StoreError(`${file}: this SQLite database is not an Adapter Studio workspace`);
  }
  if (current > SCHEMA_VERSION) {
    throw new StoreError(
      `${file}: workspace schema version ${current} is newer than this build understands (${SCHEMA_VERSION}); ` +
        'update Adapter Studio to open it',
    );
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current || m.version > upTo) continue;
    const ran = writeTransaction(db, () => {
      if ((db.pragma('user_version', { simple: true }) as number) >= m.version) return false;
      db.exec(m.sql);
      if (m.version === 1) db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${m.version}`);
      return true;
    });
    if (ran) applied.push(m.version);
  }
  return applied;
}

function checkSqliteHeader(file: string): void {
  const header = Buffer.alloc(16);
  const fd = openSync(file, 'r');
  let length: number;
  try {
    length = readSync(fd, header, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (length > 0 && header.toString('latin1') !== 'SQLite format 3\u0000') {
    throw new StoreError(`${file}: not a SQLite database, so not an Adapter Studio workspace`);
  }
}
