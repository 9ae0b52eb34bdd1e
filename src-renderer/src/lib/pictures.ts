// Pictures as data URLs for <img>, each fetched once; and a File read as base64 for images.upload.

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
