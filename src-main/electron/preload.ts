// The sandboxed preload: exposes the API bridge and nothing else (bundled to dist/electron/preload.cjs).
import { contextBridge, ipcRenderer, webUtils } from 'electron';
import { buildBridge } from './bridge.js';

contextBridge.exposeInMainWorld('adapterStudio', buildBridge(ipcRenderer, (file) => webUtils.getPathForFile(file)));
