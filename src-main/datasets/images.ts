// Images named by dataset records: where their bytes come from, and the check that they are a picture the
// vision tower can read. The check decodes every pixel (sharp / libvips): a header alone does not show a
// truncated file. A pixel limit (PIL's default, 89 478 485) stops decompression bombs before decoding.
//
// A record names its image as
//   "pics/cat.png"                  a path, relative to the dataset file's folder (or to `imageRoot`)
//   "data:image/png;base64,..."     a data URL
//   {"bytes": <binary>, "path": ..} Hugging Face's Image feature (parquet); `path` is used when bytes are null

import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import sharp from 'sharp';
import { IMAGE_FORMATS, type ImageFormat, type ImageInfo, sha256Of } from '../store/images.js';
import { isPlainObject, typeName } from './conversations.js';

export interface ImageLimits {
  /** Largest width x height accepted. */
  maxImagePixels: number;
  /** Largest file accepted, in bytes. */
  maxImageBytes: number;
}

export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = { maxImagePixels: 89_478_485, maxImageBytes: 64 * 1024 * 1024 };

/** Where a record's image comes from, before it is read. */
export type ImageRef = { kind: 'path'; path: string } | { kind: 'bytes'; bytes: Uint8Array; label: string };

/** What a record's image field means, or why it cannot be one. Null/empty means "no image". */
export function toImageRef(value: unknown): { ref: ImageRef | null; problem?: string } {
  if (value === undefined || value === null || value === '') return { ref: null };
  if (typeof value === 'string') {
    const data = /^data:([\w/+.-]*)(;base64)?,/.exec(value);
    if (data) {
      if (!data[2]) return { ref: null, problem: 'a data: URL must be base64-encoded (data:image/png;base64,...)' };
      return { ref: { kind: 'bytes', bytes: Buffer.from(value.slice(data[0].length), 'base64'), label: 'the data: URL' } };
    }
    return { ref: { kind: 'path', path: value } };
  }
  if (isPlainObject(value) && ('bytes' in value || 'path' in value)) {
    const bytes = value.bytes;
    if (bytes instanceof Uint8Array && bytes.length > 0) return { ref: { kind: 'bytes', bytes, label: typeof value.path === 'string' && value.path ? `bytes of ${value.path}` : 'the embedded bytes' } };
    if (bytes !== undefined && bytes !== null && !(bytes instanceof Uint8Array)) return { ref: null, problem: `"bytes" must be binary, got ${typeName(bytes)}` };
    if (typeof value.path === 'string' && value.path !== '') return { ref: { kind: 'path', path: value.path } };
    return { ref: null };
  }
  return { ref: null, problem: `expected a path, a data: URL or {bytes, path}, got ${typeName(value)}` };
}

export type ImageCheck = { ok: true; info: ImageInfo; bytes: Uint8Array } | { ok: false; message: string };

/** Reads a record's image (a path relative to `baseDir`) and checks it. Never throws for bad content. */
export async function loadImage(ref: ImageRef, baseDir: string, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<ImageCheck> {
  if (ref.kind === 'bytes') return checkImageBytes(ref.bytes, ref.label, limits);
  const file = isAbsolute(ref.path) ? ref.path : resolve(baseDir, ref.path);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, message: `image file ${ref.path} not found (looked at ${file})` };
    if (code === 'EISDIR') return { ok: false, message: `image ${ref.path} is a folder, not a file` };
    return { ok: false, message: `cannot read image file ${file}: ${(err as Error).message}` };
  }
  return checkImageBytes(bytes, `image file ${ref.path}`, limits);
}

/** Checks that `bytes` are a whole PNG, JPEG, WebP or GIF within the limits. `label` names it in messages. */
export async function checkImageBytes(bytes: Uint8Array, label: string, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Promise<ImageCheck> {
  if (bytes.length === 0) return { ok: false, message: `${label} is empty` };
  if (bytes.length > limits.maxImageBytes) return { ok: false, message: `${label} is ${bytes.length} bytes, over the limit of ${limits.maxImageBytes}` };
  // The header only, with no pixel limit, so that an oversized image is reported with its size below.
  const meta = await sharp(bytes, { limitInputPixels: false })
    .metadata()
    .catch((err: unknown) => err as Error);
  if (meta instanceof Error) return { ok: false, message: `${label} is not an image that can be read (${meta.message})` };
  const format = (meta.format as string) === 'jpg' ? 'jpeg' : meta.format;
  if (!IMAGE_FORMATS.includes(format as ImageFormat)) {
    return { ok: false, message: `${label} is a ${String(meta.format).toUpperCase()} image; use PNG, JPEG, WebP or GIF` };
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width <= 0 || height <= 0) return { ok: false, message: `${label} has no width or height` };
  if (width * height > limits.maxImagePixels) {
    return { ok: false, message: `${label} is ${width} x ${height} = ${width * height} pixels, over the limit of ${limits.maxImagePixels} (a decompression bomb, or raise the pixel limit)` };
  }
  try {
    // Decoding every pixel is the only way to find a truncated or corrupt file; GIFs decode their first frame.
    await sharp(bytes, { failOn: 'error', limitInputPixels: limits.maxImagePixels }).raw().toBuffer();
  } catch (err) {
    return { ok: false, message: `${label} cannot be decoded: truncated or corrupt (${(err as Error).message})` };
  }
  return { ok: true, info: { sha256: sha256Of(bytes), format: format as ImageFormat, width, height, bytes: bytes.length }, bytes };
}
