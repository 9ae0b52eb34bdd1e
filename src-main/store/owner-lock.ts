// Which process owns a workspace: the one that trains its runs and may decide that a `running` run lost its
// process. Any number of processes may read and write the database (the app, serve mode, the CLI), but only
// the owner runs the training queue, so a second process never takes over, interrupts or deletes a run that
// trains in the first one.
//
// Ownership is the file `owner.lock` in the workspace: JSON {pid, hostname, startedAt, heartbeatAt, token}.
// - It is created atomically and complete: written under a private name, then hard-linked into place, which
//   fails if the file exists (a plain O_EXCL create is the fallback where links are unsupported).
// - The owner rewrites `heartbeatAt` every HEARTBEAT_MS (write + rename: readers never see half a file) and
//   deletes the file when it closes the workspace or exits.
// - A lock is stale when its process is gone: on this host, when the pid no longer exists (or is this process
//   but not a lock it holds: a restarted container reuses pids) or started before this boot; from another
//   host (a shared folder), when its heartbeat is older than LEASE_MS.
// - A stale lock is replaced by exactly one contender: each first hard-links a marker named after the stale
//   file's content (only one link can succeed), then renames its own lock over the stale one.

import { createHash, randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname, uptime } from 'node:os';
import { join } from 'node:path';

export const OWNER_LOCK_FILE = 'owner.lock';
export const HEARTBEAT_MS = 5_000;
/** A lock from another host whose heartbeat is older than this belongs to a process that is gone. */
export const LEASE_MS = 30_000;

export interface OwnerRecord {
  pid: number;
  hostname: string;
  /** When the owning process took the workspace (ms since the epoch). */
  startedAt: number;
  heartbeatAt: number;
  /** Tells this holding apart from an earlier one by a process with the same pid. */
  token: string;
}

/** Locks held by this process, released at exit even if nobody closes their workspace. */
const heldTokens = new Map<string, OwnerLock>();
let exitHookInstalled = false;

/** The workspace's lock, held by this process. */
export class OwnerLock {
  private readonly heartbeat: NodeJS.Timeout;
  private released = false;
  /** Another process replaced this lock (it judged it stale): this process no longer owns the workspace. */
  lost = false;

  constructor(
    private readonly file: string,
    readonly record: OwnerRecord,
  ) {
    heldTokens.set(record.token, this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.on('exit', () => {
        for (const lock of [...heldTokens.values()]) lock.release();
      });
    }
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get held(): boolean {
    return !this.released && !this.lost;
  }

  /** Rewrites heartbeatAt, unless the file is no longer ours. */
  private beat(): void {
    if (!this.held) return;
    try {
      const onDisk = readText(this.file);
      // Deleted by hand: take it back if nobody else has meanwhile.
      if (onDisk === null && createExclusively(this.file, this.record)) return;
      if (onDisk === null || parseRecord(onDisk)?.token !== this.record.token) {
        this.lost = true;
        clearInterval(this.heartbeat);
        heldTokens.delete(this.record.token);
        return;
      }
      this.record.heartbeatAt = Date.now();
      const temp = privateName(this.file, this.record.token);
      writeFileSync(temp, JSON.stringify(this.record));
      renameSync(temp, this.file);
    } catch {
      // A missed beat only matters to other hosts after LEASE_MS; the next one retries.
    }
  }

  /** Deletes the lock file if it is still ours. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.heartbeat);
    heldTokens.delete(this.record.token);
    try {
      if (readOwnerRecord(this.file)?.token === this.record.token) unlinkSync(this.file);
    } catch {
      // Gone already, or the folder went away with it.
    }
  }
}

export type OwnershipClaim = { lock: OwnerLock } | { heldBy: OwnerRecord };

/** Takes ownership of the workspace in `dir` if no live process holds it; otherwise says who does. */
export function claimOwnership(dir: string): OwnershipClaim {
  const file = join(dir, OWNER_LOCK_FILE);
  // A few rounds: each lost race (the holder released, another process took over) is decided by a re-read.
  for (let round = 0; round < 5; round++) {
    const mine = newRecord();
    if (createExclusively(file, mine)) return { lock: new OwnerLock(file, mine) };
    const text = readText(file);
    if (text === null) continue; // released between our attempt and the read: try again
    const holder = parseRecord(text);
    if (holder && isAlive(holder)) return { heldBy: holder };
    const writtenMsAgo = holder ? Infinity : msSinceWritten(file);
    if (writtenMsAgo < BEING_WRITTEN_MS) {
      sleepSync(BEING_WRITTEN_MS - writtenMsAgo);
      continue;
    }
    if (replaceStale(file, text, mine)) return { lock: new OwnerLock(file, mine) };
  }
  const holder = readOwnerRecord(file);
  if (holder) return { heldBy: holder };
  throw new Error(`${file}: could not take ownership of the workspace (the lock file keeps changing)`);
}

/** The live owner of the workspace in `dir` as its lock file says (null: nobody, or a stale lock). */
export function currentOwner(dir: string): OwnerRecord | null {
  const holder = readOwnerRecord(join(dir, OWNER_LOCK_FILE));
  return holder && isAlive(holder) ? holder : null;
}

/** "process 1234 on host-a (since 2026-11-26 10:02 UTC)" */
export function describeOwner(owner: OwnerRecord): string {
  const since = new Date(owner.startedAt).toISOString().slice(0, 16).replace('T', ' ');
  return `process ${owner.pid} on ${owner.hostname} (since ${since} UTC)`;
}

export function isAlive(owner: OwnerRecord, now = Date.now()): boolean {
  if (owner.hostname !== hostname()) return now - owner.heartbeatAt < LEASE_MS;
  if (owner.pid === process.pid) return heldTokens.has(owner.token);
  // Started before this boot: whatever has that pid now is another process.
  if (owner.startedAt < now - uptime() * 1000 - 60_000) return false;
  return processExists(owner.pid);
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function newRecord(): OwnerRecord {
  const now = Date.now();
  return { pid: process.pid, hostname: hostname(), startedAt: now, heartbeatAt: now, token: randomBytes(12).toString('hex') };
}

function privateName(file: string, token: string): string {
  return `${file}.${token}.tmp`;
}

/** Creates `file` holding `record` unless it exists; the content is complete the moment the name appears. */
function createExclusively(file: string, record: OwnerRecord): boolean {
  const temp = privateName(file, record.token);
  writeFileSync(temp, JSON.stringify(record));
  try {
    linkSync(temp, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw e;
    // A file system without hard links: O_EXCL. A reader may see the file before its content (see parseRecord).
    try {
      writeFileSync(file, JSON.stringify(record), { flag: 'wx' });
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e2;
    }
  } finally {
    rmSync(temp, { force: true });
  }
}

/**
 * Replaces the stale lock whose content is `staleText` with `mine`. Of all processes that found the same stale
 * lock, only the one whose marker link succeeds goes on; the others re-read and find the new owner.
 */
function replaceStale(file: string, staleText: string, mine: OwnerRecord): boolean {
  const marker = `${file}.takeover-${createHash('sha256').update(staleText).digest('hex').slice(0, 16)}`;
  const temp = privateName(file, mine.token);
  writeFileSync(temp, JSON.stringify(mine));
  try {
    try {
      linkSync(temp, marker);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A marker older than a lease was left by a contender that died halfway: clear it for the next round.
      if (Date.now() - statSync(marker).mtimeMs > LEASE_MS) rmSync(marker, { force: true });
      return false;
    }
    try {
      // Still the same stale lock (its owner did not come back to life and beat)?
      if (readText(file) !== staleText) return false;
      renameSync(temp, file);
      return true;
    } finally {
      rmSync(marker, { force: true });
    }
  } finally {
    rmSync(temp, { force: true });
  }
}

/** How long an unreadable lock may be one the O_EXCL fallback created and is still writing. */
const BEING_WRITTEN_MS = 2_000;

function msSinceWritten(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return Infinity;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function readOwnerRecord(file: string): OwnerRecord | null {
  const text = readText(file);
  return text === null ? null : parseRecord(text);
}

/** null for a file that is not a lock we wrote (empty, cut short, edited): treated as stale. */
function parseRecord(text: string): OwnerRecord | null {
  try {
    const r = JSON.parse(text) as Partial<OwnerRecord>;
    if (typeof r.pid !== 'number' || typeof r.hostname !== 'string' || typeof r.token !== 'string') return null;
    return { pid: r.pid, hostname: r.hostname, startedAt: Number(r.startedAt) || 0, heartbeatAt: Number(r.heartbeatAt) || 0, token: r.token };
  } catch {
    return null;
  }
}
