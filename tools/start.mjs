#!/usr/bin/env node
// `npm start`: builds, then opens the desktop app when the Electron binary is installed (and a display is
// there); otherwise starts serve mode and prints the URL to open, so the app always runs.
//
//   node tools/start.mjs [--no-build] [--serve] [serve flags such as --port 8080 --workspace DIR]

import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const own = new Set(['--no-build', '--serve']);
const passThrough = args.filter((a) => !own.has(a));

if (!args.includes('--no-build')) execFileSync(process.execPath, [join(root, 'tools', 'build.mjs')], { cwd: root, stdio: 'inherit' });

/** The Electron binary, or why it cannot be used here. */
function electronBinary() {
  if (args.includes('--serve')) return { path: null, why: 'serve mode was asked for' };
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return { path: null, why: 'there is no display' };
  try {
    // The electron package exports the binary's path, and throws when its download never happened.
    const path = createRequire(join(root, 'package.json'))('electron');
    return typeof path === 'string' && existsSync(path) ? { path, why: null } : { path: null, why: 'the Electron binary is not installed' };
  } catch {
    return { path: null, why: 'the Electron binary is not installed' };
  }
}

const electron = electronBinary();
const child = electron.path
  ? spawn(electron.path, [root, ...passThrough], { cwd: root, stdio: 'inherit' })
  : (process.stderr.write(`Starting Adapter Studio in serve mode (${electron.why}); open the URL below in a browser.\n`),
    spawn(process.execPath, [join(root, 'dist', 'serve.mjs'), '--starter', ...passThrough], { cwd: root, stdio: 'inherit' }));

// Ctrl-C reaches the child through the terminal; a signal sent to this process alone (a supervisor, `kill` on
// npm's pid) is passed on, and the two exit together.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
// npm killed without passing the signal on leaves this process an orphan (reparented): stop the app then too.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) child.kill('SIGTERM');
}, 1000).unref();
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
