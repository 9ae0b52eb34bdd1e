// End-to-end harness: the real serve mode (dist/serve.mjs, started as a process the way a user starts it)
// on a fresh workspace with a tiny model, driven by Debian's Chromium through playwright-core.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { COLOR_DATA } from '../test/helpers/color-task.js';
import { writeTinyLlama } from '../test/helpers/tiny-model.js';

export const ROOT = join(import.meta.dirname, '..');
export const SCREENSHOTS = join(ROOT, 'test-output', 'e2e');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function buildApp(): void {
  execFileSync(process.execPath, [join(ROOT, 'tools', 'build-app.mjs'), '--only', 'host,serve,renderer'], { cwd: ROOT, stdio: 'inherit' });
}

export interface Fixture {
  dir: string;
  modelDir: string;
  goodFile: string;
  badFile: string;
}

/** A tiny model that learns the color task, the task as Alpaca JSON, and a malformed JSONL file. */
export function writeFixture(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'adapter-studio-e2e-'));
  const modelDir = join(dir, 'tiny-llama');
  writeTinyLlama(modelDir, { seed: 3, finalNormScale: 3 });
  const goodFile = join(dir, 'colors.json');
  writeFileSync(goodFile, JSON.stringify(COLOR_DATA, null, 2));
  const badFile = join(dir, 'broken.jsonl');
  writeFileSync(
    badFile,
    [
      '{"instruction": "What color is sky?", "output": "blue"}',
      '{"instruction": "What color is grass?"}',
      '{"instruction": 42, "output": "green"}',
      '{"instruction": "What color is snow?", "output": "white"',
    ].join('\n') + '\n',
  );
  return { dir, modelDir, goodFile, badFile };
}

export interface Server {
  url: string;
  origin: string;
  token: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** `node dist/serve.mjs --port 0 --workspace DIR --json`; resolves once the URL is printed. */
export function startServer(workspace: string): Promise<Server> {
  mkdirSync(workspace, { recursive: true });
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'serve.mjs'), '--port', '0', '--workspace', workspace, '--json'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (process.env.E2E_SERVER_LOG) process.stderr.write(d);
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`serve mode did not start in 30 s:\n${stderr}`)), 30_000);
    child.once('exit', (code) => reject(new Error(`serve mode exited with ${code}:\n${stderr}`)));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (!out.includes('\n')) return;
      clearTimeout(timer);
      const info = JSON.parse(line) as { url: string; token: string };
      resolve({
        url: info.url,
        origin: new URL(info.url).origin,
        token: info.token,
        process: child,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
            setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
          }),
      });
    });
  });
}

export async function openBrowser(): Promise<{ browser: Browser; page: Page }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
  const context = await browser.newContext({ viewport: { width: 1440, height: 960 }, colorScheme: 'light' });
  const page = await context.newPage();
  // E2E_CPU_THROTTLE=6 slows the page's CPU six times, to try the suite as a slow CI machine runs it.
  const throttle = Number(process.env.E2E_CPU_THROTTLE ?? 1);
  if (throttle > 1) await (await context.newCDPSession(page)).send('Emulation.setCPUThrottlingRate', { rate: throttle });
  page.on('pageerror', (e) => console.error('page error:', e));
  page.on('console', (m) => {
    if (m.type() === 'error') console.error('console error:', m.text());
  });
  return { browser, page };
}

/**
 * The whole page. The window is made as tall as the content first (instead of Playwright's fullPage
 * stitching), so the sticky navigation and status bar sit where a user would see them.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = join(SCREENSHOTS, `${name}.png`);
  const viewport = page.viewportSize()!;
  await page.evaluate(() => window.scrollTo(0, 0));
  for (let i = 0; i < 2; i++) {
    // Twice: a taller window can lay the page out taller still (charts, sticky columns).
    const height = await page.evaluate(() => document.documentElement.scrollHeight);
    await page.setViewportSize({ width: viewport.width, height: Math.max(viewport.height, Math.min(height, 4000)) });
  }
  await page.screenshot({ path: file });
  await page.setViewportSize(viewport);
  return file;
}

export function removeFixture(f: Fixture): void {
  rmSync(f.dir, { recursive: true, force: true });
}
