// The Electron main process: a thin shell around the same API service serve mode uses. It opens the
// workspace, starts engine processes with utilityProcess, answers the preload's IPC (sender checked, input
// validated by the contract), serves the renderer from app://, and keeps the security checklist in
// docs/SECURITY.md. Bundled to dist/electron/main.cjs.

import { app, BrowserWindow, dialog, ipcMain, type IpcMainInvokeEvent, Menu, protocol, session, shell } from 'electron';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { API_METHODS } from '../../src-shared/api.js';
import { findPackageRoot } from '../engine/backends/package-root.js';
import { createAppService, type AppService } from '../service/index.js';
import { defaultWorkspaceDir } from '../store/index.js';
import { channelFor, CHOOSE_PATH_CHANNEL, type ChoosePathRequest, EVENT_CHANNEL, UPLOAD_CHANNEL } from './bridge.js';
import { pathsUnder } from '../service/path-policy.js';
import { handleUploadRequest } from './upload-ipc.js';
import { APP_ENTRY, APP_SCHEME, CONTENT_SECURITY_POLICY, isAppUrl, isExternalLink, isTrustedSender, MIME_TYPES, resolveAppFile, secureWebPreferences } from './security.js';
import { utilitySpawner } from './utility-host.js';

const root = findPackageRoot();
const rendererDir = join(root, 'dist', 'renderer');
const preload = join(root, 'dist', 'electron', 'preload.cjs');
const hostEntry = join(root, 'dist', 'engine-host.mjs');

// Every renderer sandboxed, whatever a window's options say (checklist item 4).
app.enableSandbox();

// app:// must be registered before the app is ready: a standard, secure scheme gets a real origin.
protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: false, corsEnabled: false } }]);

/** Where the user's chosen workspace is remembered between launches. */
function prefsFile(): string {
  return join(app.getPath('userData'), 'preferences.json');
}

function rememberedWorkspace(): string {
  try {
    const prefs = JSON.parse(readFileSync(prefsFile(), 'utf8')) as { workspace?: unknown };
    if (typeof prefs.workspace === 'string' && prefs.workspace) return prefs.workspace;
  } catch {
    // first launch, or an unreadable file: the default
  }
  return defaultWorkspaceDir();
}

function rememberWorkspace(dir: string): void {
  mkdirSync(app.getPath('userData'), { recursive: true });
  writeFileSync(prefsFile(), JSON.stringify({ workspace: dir }, null, 2));
}

let service: AppService | null = null;
const windows = new Set<BrowserWindow>();

function createWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1400,
    height: 900,
    minWidth: 960,
    minHeight: 600,
    title: 'Adapter Studio',
    show: false,
    webPreferences: secureWebPreferences(preload),
  });
  windows.add(win);
  win.once('ready-to-show', () => win.show());
  win.on('closed', () => windows.delete(win));
  win.on('close', (e) => {
    // Closing the last window while a run trains: the user decides whether training goes on.
    if (windows.size > 1 || !service || !trainingRun) return;
    const choice = dialog.showMessageBoxSync(win, {
      type: 'question',
      buttons: ['Keep training in the background', 'Pause the run and quit', 'Cancel'],
      defaultId: 0,
      cancelId: 2,
      message: 'A run is training.',
      detail: 'It can keep going without a window; open Adapter Studio again to watch it. Or pause it now (it resumes from a checkpoint later).',
    });
    if (choice === 2) e.preventDefault();
    else if (choice === 1) quitting = true;
  });
  void win.loadURL(APP_ENTRY);
  return win;
}

let trainingRun: string | null = null;
let quitting = false;

async function start(): Promise<void> {
  // No permissions (camera, notifications, ...) for anything: the app needs none.
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  session.defaultSession.setPermissionCheckHandler(() => false);

  protocol.handle(APP_SCHEME, (request) => {
    const file = resolveAppFile(rendererDir, request.url);
    if (!file || !existsSync(file)) return new Response('not found', { status: 404 });
    return new Response(readFileSync(file), {
      headers: { 'Content-Type': MIME_TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Security-Policy': CONTENT_SECURITY_POLICY, 'X-Content-Type-Options': 'nosniff' },
    });
  });

  const workspaceDir = rememberedWorkspace();
  service = createAppService({
    // The page names paths only by choosing them in a dialog (CHOOSE_PATH_CHANNEL below); a page made to send
    // any other path outside the workspace is refused.
    pathPolicy: pathsUnder([workspaceDir]),
    workspaceDir,
    spawnHost: utilitySpawner(hostEntry),
    transport: 'ipc',
    version: app.getVersion(),
    rememberWorkspace,
  });
  const api = service;
  api.events.subscribe((event) => {
    if (event.type === 'engine.status') trainingRun = event.training;
    for (const win of windows) if (!win.isDestroyed()) win.webContents.send(EVENT_CHANNEL, event);
  });

  const trusted = (event: IpcMainInvokeEvent): boolean => {
    const win = BrowserWindow.fromWebContents(event.sender);
    return isTrustedSender(event.senderFrame?.url, event.senderFrame === event.sender.mainFrame, !!win && windows.has(win));
  };
  for (const method of API_METHODS) {
    ipcMain.handle(channelFor(method), async (event, input: unknown) => {
      if (!trusted(event)) return { ok: false, error: { code: 'unauthorized', message: 'this frame may not call Adapter Studio' } };
      return api.call(method, input);
    });
  }
  ipcMain.handle(CHOOSE_PATH_CHANNEL, async (event, request: ChoosePathRequest) => {
    if (!trusted(event)) return null;
    const win = BrowserWindow.fromWebContents(event.sender);
    const options: Electron.OpenDialogOptions = {
      title: typeof request?.title === 'string' ? request.title.slice(0, 200) : 'Choose',
      properties: request?.kind === 'file' ? ['openFile'] : ['openDirectory', 'createDirectory'],
    };
    const chosen = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
    const path = chosen.canceled ? undefined : chosen.filePaths[0];
    if (!path) return null;
    api.paths.allow(path);
    return path;
  });
  ipcMain.handle(UPLOAD_CHANNEL, async (event, request: unknown) => {
    if (!trusted(event)) return { ok: false, error: { code: 'unauthorized', message: 'this frame may not call Adapter Studio' } };
    return handleUploadRequest(api, request);
  });

  Menu.setApplicationMenu(null);
  createWindow();
}

// Every web contents: no navigation away from the app, no new windows, no <webview>.
app.on('web-contents-created', (_event, contents) => {
  contents.on('will-navigate', (e, url) => {
    if (!isAppUrl(url)) e.preventDefault();
  });
  contents.on('will-redirect', (e, url) => {
    if (!isAppUrl(url)) e.preventDefault();
  });
  contents.on('will-attach-webview', (e) => e.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (isExternalLink(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
});

// One instance owns the workspace; launching again focuses (or reopens) its window.
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => {
    const win = [...windows][0] ?? createWindow();
    if (win.isMinimized()) win.restore();
    win.focus();
  });
  app.on('activate', () => {
    if (windows.size === 0) createWindow();
  });
  app.on('window-all-closed', () => {
    // Training continues without a window unless the user chose to quit (see the close handler).
    if (trainingRun && !quitting) return;
    app.quit();
  });
  let closed = false;
  app.on('before-quit', (e) => {
    if (closed || !service) return;
    // Pause a training run at a checkpoint and stop the engines before the process goes.
    e.preventDefault();
    const s = service;
    service = null;
    void s.close().finally(() => {
      closed = true;
      app.quit();
    });
  });
  app.whenReady().then(start, (e: unknown) => {
    dialog.showErrorBox('Adapter Studio could not start', (e as Error).message);
    app.exit(1);
  });
}
