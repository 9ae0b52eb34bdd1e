#!/usr/bin/env node
// Builds the native addon (native/, node-gyp) that the engine's `native` backend loads, then checks it with one
// small product in a child process. Run by `npm install`; it never fails the install: when the addon cannot be
// built it prints one line saying why, and the engine falls back to the plain wasm backend.
//
//   node tools/build-native.mjs          build (or rebuild) and verify
//   ADAPTER_STUDIO_SKIP_NATIVE=1         skip the build (the engine then uses wasm)

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = path.join(root, 'native');
const addonPath = path.join(nativeDir, 'build', 'Release', 'adapter_native.node');
const PREFIX = 'adapter-studio:';

function unavailable(reason) {
  console.log(`${PREFIX} native backend unavailable (${reason}); the engine will use the wasm backend.`);
  process.exit(0);
}

/** node-gyp's entry script: the one npm runs scripts with, else npm's bundled copy, else a local install. */
function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((file) => file && fs.existsSync(file)) ?? null;
}

/** Node's headers: npm's `nodedir` setting when run by npm; else the prefix this node binary was installed in. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

/** A missing BLAS gives pages of compiler errors; name the package to install instead. */
function missingBlas() {
  if (process.platform !== 'linux') return null;
  const includeDirs = [
    '/usr/include',
    '/usr/include/openblas',
    ...['x86_64', 'aarch64'].map((arch) => `/usr/include/${arch}-linux-gnu/openblas-pthread`),
  ];
  const libDirs = ['/usr/lib', '/usr/lib64', '/usr/local/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu'];
  const hasHeader = includeDirs.some((dir) => fs.existsSync(path.join(dir, 'cblas.h')));
  const hasLib = libDirs.some((dir) => fs.existsSync(path.join(dir, 'libopenblas.so')));
  if (hasHeader && hasLib) return null;
  return 'OpenBLAS development files not found: install libopenblas-dev (Debian/Ubuntu) or openblas-devel (Fedora)';
}

/** The most telling line of a failed build: the first compiler/linker error, else the last non-empty line. */
function firstError(output) {
  const lines = output.split('\n').map((line) => line.trim()).filter(Boolean);
  return (
    lines.find((line) => /\berror\b/i.test(line) && !line.startsWith('gyp ERR!')) ??
    lines.filter((line) => line.startsWith('gyp ERR!')).slice(-1)[0] ??
    lines.slice(-1)[0] ??
    'no output'
  );
}

/** Loads the addon in a child process (a crash there cannot take the install down) and checks one product. */
function verify() {
  const check = `
    const addon = require(${JSON.stringify(addonPath)});
    const a = new Float32Array([1, 2, 3, 4, 5, 6]), b = new Float32Array([1, 0, 0, 1, 1, 1]), c = new Float32Array(4);
    addon.sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2);
    if (c.join() !== '4,5,10,11') throw new Error('sgemm gave ' + c.join() + ', expected 4,5,10,11');
    console.log(addon.blasInfo() + ', ' + addon.getThreads() + ' threads');
  `;
  const run = spawnSync(process.execPath, ['-e', check], { encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0) return { ok: false, reason: firstError(`${run.stderr}\n${run.stdout}`) };
  return { ok: true, info: run.stdout.trim() };
}

if (process.env.ADAPTER_STUDIO_SKIP_NATIVE) unavailable('ADAPTER_STUDIO_SKIP_NATIVE is set');
if (process.platform !== 'linux' && process.platform !== 'darwin') {
  unavailable(`no BLAS build is set up for ${process.platform}`);
}
const blasProblem = missingBlas();
if (blasProblem) unavailable(blasProblem);
const nodeGyp = findNodeGyp();
if (!nodeGyp) unavailable('node-gyp not found (it ships with npm)');

const build = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...nodedirArgs()], {
  cwd: nativeDir,
  encoding: 'utf8',
  timeout: 300_000,
});
if (build.error) unavailable(`node-gyp did not run: ${build.error.message}`);
if (build.status !== 0) unavailable(`build failed: ${firstError(`${build.stderr}\n${build.stdout}`)}`);
if (!fs.existsSync(addonPath)) unavailable(`build produced no ${path.relative(root, addonPath)}`);

const result = verify();
if (!result.ok) unavailable(`built but does not work: ${result.reason}`);
console.log(`${PREFIX} native backend built (${result.info}).`);
