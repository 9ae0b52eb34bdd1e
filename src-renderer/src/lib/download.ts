// Saves a file through the browser's download (works the same in Electron).

function download(fileName: string, blob: Blob): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function downloadText(fileName: string, mimeType: string, content: string): void {
  download(fileName, new Blob([content], { type: mimeType }));
}

/** A file the API carried as base64 (a zip, a picture). */
export function downloadBase64(fileName: string, mimeType: string, base64: string): void {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  download(fileName, new Blob([bytes], { type: mimeType }));
}
