// Images of examples, kept inside the workspace and addressed by the sha256 of their bytes: a dataset never
// depends on a path outside the folder that can vanish, and the same picture used by many examples (or
// imported twice) is stored once.
//
//   images/<first two hex digits>/<sha256>.<png|jpg|webp|gif>    the bytes, as imported (never re-encoded)
//   images (table)                                                 sha256, format, width, height, byte count
//
// Crash safety. An import stages its files under images/.staging-*, checks everything, then renames the files
// into place and fsyncs them *before* the SQLite transaction that records their rows and the examples commits.
// A crash before the commit leaves only files without rows; those (and stale staging folders) are removed by
// `collectGarbage` once they are older than a grace period, so an import still running in another process is
// never robbed of its files. A row (and its file) goes only when no example, no before-image of any version, no
// chat message and no comparison item refers to it, so undo can always bring an example back with its picture.

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError, StoreError } from './errors.js';
import type { DatasetId } from './ids.js';
import type { Db, Workspace } from './workspace.js';
import { writeTransaction } from './write-transaction.js';

export const IMAGE_FORMATS = ['png', 'jpeg', 'webp', 'gif'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

const EXTENSIONS: Record<ImageFormat, string> = { png: 'png', jpeg: 'jpg', webp: 'webp', gif: 'gif' };
const MIME_TYPES: Record<ImageFormat, string> = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif' };

export const IMAGES_DIR = 'images';
const STAGING_PREFIX = '.staging-';

/** What the store records about one image (checked by the importer before it gets here). */
export interface ImageInfo {
  sha256: string;
  format: ImageFormat;
  width: number;
  height: number;
  /** Size of the file in bytes. */
  bytes: number;
}

export interface StoredImage extends ImageInfo {
  createdAt: number;
}

interface ImageRow {
  sha256: string;
  format: ImageFormat;
  width: number;
  height: number;
  bytes: number;
  created_at: number;
}

const toImage = (r: ImageRow): StoredImage => ({ sha256: r.sha256, format: r.format, width: r.width, height: r.height, bytes: r.bytes, createdAt: r.created_at });

export const sha256Of = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

export const imageExtension = (format: ImageFormat): string => EXTENSIONS[format];
export const imageMimeType = (format: ImageFormat): string => MIME_TYPES[format];

/** images/ab/ab12....png, relative to the workspace folder. */
export function imageRelativePath(info: Pick<ImageInfo, 'sha256' | 'format'>): string {
  return `${IMAGES_DIR}/${info.sha256.slice(0, 2)}/${info.sha256}.${EXTENSIONS[info.format]}`;
}

function writeDurably(file: string, bytes: Uint8Array): void {
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  // Makes a rename durable. Not every platform lets a folder be opened for fsync (Windows); there the rename
  // is as durable as the OS makes it.
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // see above
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

export class ImageStore {
  private readonly s;

  constructor(
    private readonly db: Db,
    private readonly ws: Workspace,
  ) {
    this.s = {
      get: db.prepare<[string], ImageRow>('SELECT * FROM images WHERE sha256 = ?'),
      insert: db.prepare('INSERT OR IGNORE INTO images (sha256, format, width, height, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)'),
      all: db.prepare<[], { sha256: string }>('SELECT sha256 FROM images'),
      unreferenced: db.prepare<[], ImageRow>(`
        SELECT i.* FROM images i
        WHERE NOT EXISTS (SELECT 1 FROM examples e WHERE e.image = i.sha256)
          AND NOT EXISTS (SELECT 1 FROM dataset_changes c WHERE c.before IS NOT NULL AND json_extract(c.before, '$.image') = i.sha256)
          AND NOT EXISTS (SELECT 1 FROM messages m WHERE json_extract(m.meta, '$.image') = i.sha256)
          AND NOT EXISTS (SELECT 1 FROM comparison_items c WHERE c.image = i.sha256)`),
      remove: db.prepare('DELETE FROM images WHERE sha256 = ?'),
      countIn: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM examples WHERE dataset_id = ? AND image IS NOT NULL'),
    };
  }

  find(sha256: string): StoredImage | null {
    const row = this.s.get.get(sha256);
    return row ? toImage(row) : null;
  }

  get(sha256: string): StoredImage {
    const image = this.find(sha256);
    if (!image) throw new NotFoundError('image', sha256);
    return image;
  }

  /** Absolute path of the image's file. */
  filePath(info: Pick<ImageInfo, 'sha256' | 'format'>): string {
    return join(this.ws.dir, imageRelativePath(info));
  }

  /** The image's bytes, checked against its hash (a file changed or lost outside the app is named, not served). */
  read(sha256: string): { image: StoredImage; bytes: Buffer } {
    const image = this.get(sha256);
    const file = this.filePath(image);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new StoreError(`image ${sha256} is recorded but its file ${file} is missing`);
      throw err;
    }
    if (sha256Of(bytes) !== sha256) throw new StoreError(`image file ${file} no longer matches its sha256 (changed outside the app)`);
    return { image, bytes };
  }

  /** Examples of the dataset that carry an image. */
  countIn(datasetId: DatasetId): number {
    return this.s.countIn.get(datasetId)!.n;
  }

  /**
   * Records images whose files are already in place (see ImageStaging.commit). Call it inside the transaction
   * that inserts the examples using them; an image recorded before is left as it is.
   */
  record(images: Iterable<ImageInfo>): void {
    const now = Date.now();
    for (const i of images) {
      if (!existsSync(this.filePath(i))) throw new StoreError(`image ${i.sha256}: its file ${this.filePath(i)} is not in place`);
      this.s.insert.run(i.sha256, i.format, i.width, i.height, i.bytes, now);
    }
  }

  /** A staging area for an import's images (see the top of this file). */
  stage(): ImageStaging {
    return new ImageStaging(this, join(this.ws.dir, IMAGES_DIR));
  }

  /**
   * Deletes images that nothing refers to any more (no example, no before-image of any version, no chat message), then files
   * without a row and staging folders, both only when older than `minAgeMs` (default one hour) so that an
   * import running in another process keeps its files.
   */
  collectGarbage(options: { minAgeMs?: number; now?: number } = {}): { rows: number; files: number } {
    const minAge = options.minAgeMs ?? 3600_000;
    const now = options.now ?? Date.now();
    const gone = writeTransaction(this.db, () => {
      const rows = this.s.unreferenced.all();
      for (const r of rows) this.s.remove.run(r.sha256);
      return rows;
    });
    let files = 0;
    for (const r of gone) {
      rmSync(this.filePath(r), { force: true });
      files++;
    }
    const root = join(this.ws.dir, IMAGES_DIR);
    if (!existsSync(root)) return { rows: gone.length, files };
    const known = new Set(this.s.all.all().map((r) => r.sha256));
    const old = (path: string) => now - statSync(path).mtimeMs >= minAge;
    for (const entry of readdirSync(root, { withFileTypes: true })) {
      const path = join(root, entry.name);
      if (!entry.isDirectory()) continue;
      if (entry.name.startsWith(STAGING_PREFIX)) {
        if (old(path)) rmSync(path, { recursive: true, force: true });
        continue;
      }
      for (const file of readdirSync(path)) {
        const sha = file.split('.')[0]!;
        const filePath = join(path, file);
        if (!known.has(sha) && old(filePath)) {
          unlinkSync(filePath);
          files++;
        }
      }
    }
    return { rows: gone.length, files };
  }
}

/**
 * An import's images before they join the store: written (and fsynced) under a private folder while the
 * import reads and checks its records, then moved into place by `commit` just before the transaction that
 * records them. `discard` drops everything (a refused import stores nothing).
 */
export class ImageStaging {
  private readonly dir: string;
  private readonly staged = new Map<string, ImageInfo>();
  private created = false;
  /** Files this staging moved into the store (so a failed transaction can take back the ones it added). */
  private moved: ImageInfo[] = [];

  constructor(
    private readonly store: ImageStore,
    private readonly root: string,
  ) {
    this.dir = join(root, `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  /** Distinct images staged so far. */
  get images(): ImageInfo[] {
    return [...this.staged.values()];
  }

  /** Keeps `bytes` (already checked to be an image of `format`) for the import; the same bytes twice are kept once. */
  add(bytes: Uint8Array, checked: Omit<ImageInfo, 'sha256' | 'bytes'>): ImageInfo {
    const sha256 = sha256Of(bytes);
    const known = this.staged.get(sha256);
    if (known) return known;
    const info: ImageInfo = { sha256, format: checked.format, width: checked.width, height: checked.height, bytes: bytes.length };
    this.staged.set(sha256, info);
    const stored = this.store.find(sha256);
    if (stored && existsSync(this.store.filePath(stored))) return info; // already in the store: nothing to write
    if (!this.created) {
      mkdirSync(this.dir, { recursive: true });
      this.created = true;
    }
    writeDurably(join(this.dir, sha256), bytes);
    return info;
  }

  /**
   * Moves the staged files (those in `keep`, when given) into the store, durably, and drops the rest. Call right
   * before the transaction that records them.
   */
  commit(keep?: ReadonlySet<string>): void {
    const dirs = new Set<string>();
    for (const info of this.staged.values()) {
      if (keep && !keep.has(info.sha256)) continue;
      const from = join(this.dir, info.sha256);
      if (!existsSync(from)) continue; // already in the store
      const to = this.store.filePath(info);
      const dir = join(this.root, info.sha256.slice(0, 2));
      mkdirSync(dir, { recursive: true });
      if (existsSync(to)) rmSync(from);
      else {
        renameSync(from, to);
        this.moved.push(info);
        dirs.add(dir);
      }
    }
    for (const dir of dirs) fsyncDir(dir);
    fsyncDir(this.root);
    this.discard();
  }

  /** After a failed transaction: removes the files `commit` added that no row records. */
  rollback(): void {
    for (const info of this.moved) {
      if (!this.store.find(info.sha256)) rmSync(this.store.filePath(info), { force: true });
    }
    this.moved = [];
    this.discard();
  }

  discard(): void {
    if (this.created) rmSync(this.dir, { recursive: true, force: true });
    this.created = false;
  }
}
