// Image features for the multi-modal adapter, computed once per image by the frozen vision tower and cached on
// disk by content, so epochs, resumed runs and evaluations never run the tower on the same picture twice.
//
// Cache layout: <cacheDir>/<tower fingerprint>/<feature>/<sha256[0:2]>/<sha256>.f32, raw little-endian float32.
// A file is written to a temporary name, fsynced and renamed, so it exists whole or not at all; one that does not
// have the expected length or holds a non-finite value (a disk fault, another tool) is recomputed.

import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { EngineError } from './errors.js';
import { describeFeature, type ImageFeatureChoice, type VisionTowerRecord } from './image-prompt.js';

/** What the trainer and the generator need from a loaded vision tower. */
export interface ImageEncoder {
  record: VisionTowerRecord;
  featureDim(feature: ImageFeatureChoice): number;
  /** Features of encoded images (PNG, JPEG, WebP, GIF bytes), one row per image; `names` label errors. */
  encode(images: Uint8Array[], feature: ImageFeatureChoice, names: string[]): Promise<Float32Array[]>;
}

export interface FeatureOptions {
  /** Where features are cached; null computes without caching. */
  cacheDir: string | null;
  /** Images per tower forward pass. */
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * One feature row per entry of `files` (null where the example has no image), each image read, hashed and encoded
 * at most once however many examples share it.
 */
export async function imageFeatures(encoder: ImageEncoder, files: (string | null)[], feature: ImageFeatureChoice, opts: FeatureOptions): Promise<(Float32Array | null)[]> {
  const dim = encoder.featureDim(feature);
  const byHash = new Map<string, { file: string; bytes: Uint8Array | null; feature: Float32Array | null }>();
  const hashOf = new Map<string, string>(); // file -> sha256
  for (const file of new Set(files.filter((f): f is string => f !== null))) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new EngineError(`${file}: cannot read the image (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const hash = sha256Hex(bytes);
    hashOf.set(file, hash);
    if (!byHash.has(hash)) byHash.set(hash, { file, bytes, feature: null });
  }
  const cachePath = (hash: string) =>
    opts.cacheDir === null ? null : join(opts.cacheDir, encoder.record.fingerprint, describeFeature(feature).replace(/[^a-z0-9,-]/gi, '_'), hash.slice(0, 2), `${hash}.f32`);
  const missing: string[] = [];
  for (const [hash, entry] of byHash) {
    const cached = readCached(cachePath(hash), dim);
    if (cached) {
      entry.feature = cached;
      entry.bytes = null;
    } else missing.push(hash);
  }
  const total = missing.length;
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  opts.onProgress?.(0, total);
  for (let i = 0; i < missing.length; i += batchSize) {
    if (opts.signal?.aborted) throw new EngineError('image feature extraction was cancelled');
    const hashes = missing.slice(i, i + batchSize);
    const entries = hashes.map((h) => byHash.get(h)!);
    const rows = await encoder.encode(entries.map((e) => e.bytes!), feature, entries.map((e) => e.file));
    rows.forEach((row, j) => {
      if (row.length !== dim) throw new EngineError(`the vision tower gave ${row.length} values for ${entries[j].file}; expected ${dim}`);
      entries[j].feature = row;
      entries[j].bytes = null;
      writeCached(cachePath(hashes[j]), row);
    });
    opts.onProgress?.(Math.min(i + batchSize, total), total);
  }
  return files.map((f) => (f === null ? null : byHash.get(hashOf.get(f)!)!.feature));
}

function readCached(path: string | null, dim: number): Float32Array | null {
  if (path === null || !existsSync(path)) return null;
  try {
    const buf = readFileSync(path);
    if (buf.length !== dim * 4) return null;
    const row = new Float32Array(dim);
    new Uint8Array(row.buffer).set(buf);
    return row.every(Number.isFinite) ? row : null;
  } catch {
    return null;
  }
}

function writeCached(path: string | null, row: Float32Array): void {
  if (path === null) return;
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, new Uint8Array(row.buffer, row.byteOffset, row.byteLength));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
