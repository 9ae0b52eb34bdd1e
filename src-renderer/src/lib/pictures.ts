// Pictures as data URLs for <img>, each fetched once; and a picture file uploaded into the workspace's image store.

import { type ExampleImage, MAX_PICTURE_BYTES, pictureTooLarge } from '../../../src-shared/api';
import { api } from './api';

/** What a picture file input accepts: the formats the server decodes (PNG, JPEG, WebP, GIF). */
export const PICTURE_TYPES = 'image/png,image/jpeg,image/webp,image/gif';

const urls = new Map<string, Promise<string>>();

export function pictureUrl(sha256: string, fetch: () => Promise<{ mimeType: string; base64: string }>): Promise<string> {
  let url = urls.get(sha256);
  if (!url) {
    url = fetch().then((p) => `data:${p.mimeType};base64,${p.base64}`);
    urls.set(sha256, url);
    url.catch(() => urls.delete(sha256));
  }
  return url;
}

export async function fileBase64(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = '';
  // In chunks: String.fromCharCode(...bytes) overflows the stack for large files.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Uploads a picture the user picked, dropped or pasted; the server checks and stores it (its sha256 names it). */
export async function uploadPicture(file: File): Promise<{ stored: Omit<ExampleImage, 'base64'>; url: string }> {
  // Said before reading it: a 2 GB file would otherwise be read into the page and only then refused.
  if (file.size > MAX_PICTURE_BYTES) throw new Error(pictureTooLarge(file.name, file.size));
  const base64 = await fileBase64(file);
  const stored = await api.images.upload({ fileName: file.name, base64 });
  const url = `data:${stored.mimeType};base64,${base64}`;
  urls.set(stored.sha256, Promise.resolve(url));
  return { stored, url };
}
