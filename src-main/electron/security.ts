// The Electron shell's security decisions, kept apart from Electron itself so that they are unit-tested
// without the binary. docs/SECURITY.md lists the checklist item each one answers.

import { isAbsolute, join, normalize, relative, sep } from 'node:path';

/** The renderer is served from this custom scheme (a standard, secure origin), never from file://. */
export const APP_SCHEME = 'app';
export const APP_HOST = 'renderer';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_ENTRY = `${APP_ORIGIN}/index.html`;

/** Same policy as serve mode's header (src-main/server/http-server.ts), minus network access: IPC needs none. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Every BrowserWindow gets these; the checklist items they cover are in docs/SECURITY.md. */
export function secureWebPreferences(preload: string) {
  return {
    preload,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    experimentalFeatures: false,
    webviewTag: false,
    navigateOnDragDrop: false,
    spellcheck: false,
    safeDialogs: true,
  } as const;
}

/** The app's own pages: only these may be shown or talk to the main process. */
export function isAppUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST;
  } catch {
    return false;
  }
}

/** Links the user clicks may open in the system browser: http(s) only, never file:, javascript:, custom schemes. */
export function isExternalLink(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}

/**
 * An IPC message is trusted when it comes from the top frame of one of our windows showing an app:// page.
 * `frameUrl` is event.senderFrame.url; `isTopFrame` compares senderFrame with the window's mainFrame.
 */
export function isTrustedSender(frameUrl: string | undefined, isTopFrame: boolean, isOurWindow: boolean): boolean {
  return isOurWindow && isTopFrame && typeof frameUrl === 'string' && isAppUrl(frameUrl);
}

/** The file an app:// request maps to inside the renderer folder, or null for anything outside it. */
export function resolveAppFile(rendererDir: string, url: string): string | null {
  let pathname: string;
  try {
    const u = new URL(url);
    if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return null;
    pathname = decodeURIComponent(u.pathname);
  } catch {
    return null;
  }
  const rel = normalize(pathname).replace(/^([/\\])+/, '') || 'index.html';
  const file = join(rendererDir, rel);
  const inside = relative(rendererDir, file);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside) || inside.split(sep).includes('..')) return null;
  return file;
}

export const MIME_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};
