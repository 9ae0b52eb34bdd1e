// The Electron shell's security decisions (src-main/electron/security.ts), tested without the Electron
// binary: which URLs are the app, which links may open outside, which IPC senders are trusted, which files
// app:// may serve, and the window's web preferences.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { APP_ENTRY, CONTENT_SECURITY_POLICY, isAppUrl, isExternalLink, isTrustedSender, resolveAppFile, secureWebPreferences } from '../src-main/electron/security.js';

describe('Electron security decisions', () => {
  it('only app://renderer pages are the app', () => {
    expect(isAppUrl(APP_ENTRY)).toBe(true);
    expect(isAppUrl('app://renderer/index.html#/train')).toBe(true);
    for (const url of ['file:///etc/passwd', 'https://example.com', 'app://other/index.html', 'javascript:alert(1)', 'not a url']) expect(isAppUrl(url)).toBe(false);
  });

  it('only http(s) links may open in the system browser', () => {
    expect(isExternalLink('https://arxiv.org/abs/2303.16199')).toBe(true);
    for (const url of ['file:///etc/passwd', 'javascript:alert(1)', 'smb://host/share', 'app://renderer/x', '']) expect(isExternalLink(url)).toBe(false);
  });

  it('trusts IPC only from the top frame of our own window showing an app page', () => {
    expect(isTrustedSender(APP_ENTRY, true, true)).toBe(true);
    expect(isTrustedSender(APP_ENTRY, false, true)).toBe(false); // an iframe
    expect(isTrustedSender(APP_ENTRY, true, false)).toBe(false); // some other web contents
    expect(isTrustedSender('https://evil.example/', true, true)).toBe(false);
    expect(isTrustedSender(undefined, true, true)).toBe(false);
  });

  it('app:// serves files inside the renderer folder only', () => {
    const root = '/opt/app/dist/renderer';
    expect(resolveAppFile(root, 'app://renderer/')).toBe(join(root, 'index.html'));
    expect(resolveAppFile(root, 'app://renderer/assets/index-1.js')).toBe(join(root, 'assets/index-1.js'));
    for (const url of ['app://renderer/../secret', 'app://renderer/%2e%2e/%2e%2e/etc/passwd', 'app://renderer/assets/..%2f..%2f..%2fetc%2fpasswd', 'app://other/index.html', 'file:///etc/passwd']) {
      const file = resolveAppFile(root, url);
      expect(file === null || file.startsWith(root + '/'), `${url} -> ${file}`).toBe(true);
    }
  });

  it('windows are isolated and sandboxed, with no Node in the page', () => {
    const prefs = secureWebPreferences('/p/preload.cjs');
    expect(prefs).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true, allowRunningInsecureContent: false, webviewTag: false, nodeIntegrationInSubFrames: false });
  });

  it('the page may run only its own scripts and reach nothing over the network', () => {
    expect(CONTENT_SECURITY_POLICY).toMatch(/default-src 'none'/);
    expect(CONTENT_SECURITY_POLICY).toMatch(/script-src 'self'(;|$)/);
    expect(CONTENT_SECURITY_POLICY).toMatch(/connect-src 'none'/);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe-eval/);
  });
});
