// `npm start` stops as a whole (issue: SIGTERM to npm's pid left tools/start.mjs -> serve -> engine host serving):
// a signal sent to tools/start.mjs alone is passed on, and a launcher killed without passing anything on (npm
// killed with SIGKILL) does not leave the app serving as an orphan. Real processes, a real port.

import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildAppParts } from './helpers/app-fixture.js';
import { makeTempDir } from './helpers/tmp.js';

const ROOT = join(import.meta.dirname, '..');
const started: ChildProcess[] = [];
afterAll(() => {
  for (const p of started) p.kill('SIGKILL');
});

/** A launcher like npm: runs tools/start.mjs, prints its pid, never forwards signals. */
function launch(): Promise<{ launcher: ChildProcess; startPid: number; port: number }> {
  const workspace = makeTempDir('start-signals');
  const script = `const { spawn } = require('node:child_process');
const c = spawn(process.execPath, [${JSON.stringify(join(ROOT, 'tools', 'start.mjs'))}, '--no-build', '--serve', '--port', '0', '--workspace', ${JSON.stringify(workspace)}, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
console.log(JSON.stringify({ startPid: c.pid }));
c.stdout.pipe(process.stdout);
setInterval(() => {}, 1000);`;
  const launcher = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  started.push(launcher);
  return new Promise((resolve, reject) => {
    let out = '';
    let startPid = 0;
    const timer = setTimeout(() => reject(new Error(`no URL in 60 s: ${out}`)), 60_000);
    launcher.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue;
        const v = JSON.parse(line);
        if (v.startPid) startPid = v.startPid;
        if (v.port && startPid) {
          clearTimeout(timer);
          resolve({ launcher, startPid, port: v.port });
        }
      }
    });
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

describe('npm start stops as a whole', () => {
  it('SIGTERM to tools/start.mjs stops serve mode too', async () => {
    buildAppParts('host');
    const { startPid, port } = await launch();
    expect(await portOpen(port)).toBe(true);
    process.kill(startPid, 'SIGTERM');
    expect(await until(async () => !alive(startPid) && !(await portOpen(port)), 20_000)).toBe(true);
  });

  it('a launcher killed outright (SIGKILL, nothing passed on) leaves nothing serving', async () => {
    const { launcher, startPid, port } = await launch();
    expect(await portOpen(port)).toBe(true);
    launcher.kill('SIGKILL');
    expect(await until(async () => !alive(startPid) && !(await portOpen(port)), 20_000)).toBe(true);
  });
});
