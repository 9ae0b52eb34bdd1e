// `adapter-studio serve`: the app in a browser. Serves the built renderer and the API on loopback with a
// random access token in the printed URL; training and inference run in engine processes (child_process.fork).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { findPackageRoot } from '../engine/backends/package-root.js';
import { EngineError } from '../engine/errors.js';
import { forkSpawner } from '../host/engine-process.js';
import { isLoopback, newToken } from '../server/auth.js';
import { startHttpServer } from '../server/http-server.js';
import { createAppService } from '../service/index.js';
import { anyPath, pathsUnder } from '../service/path-policy.js';
import { defaultWorkspaceDir } from '../store/index.js';
import { flag, type IO, numberFlag, parseFlags } from './flags.js';

export const DEFAULT_PORT = 5317;

export const SERVE_USAGE = `adapter-studio serve [--host 127.0.0.1] [--port ${DEFAULT_PORT}] [--workspace DIR] [--allow-remote] [--root DIR ...] [--starter] [--json]
  Serves the app at http://HOST:PORT/?token=... (open that URL; the token is new at every start).
  --port 0 picks a free port. A host other than loopback needs --allow-remote: anyone who can reach the
  port and learns the token can read your data and run code on this machine's CPU/GPU.
  With --allow-remote, the page may name only paths (model folders, dataset files) inside the workspace
  and the folders given with --root (repeatable); locally, any path unless --root is given.
  --json prints {"url", "port", "token", "workspace"} as the first line (for scripts).`;

/** Paths of the built pieces, relative to the package folder. */
export function builtPaths(root = findPackageRoot()): { hostEntry: string; rendererDir: string; version: string } {
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  return { hostEntry: join(root, 'dist', 'engine-host.mjs'), rendererDir: join(root, 'dist', 'renderer'), version };
}

export async function serveCommand(args: string[], io: IO, stop?: AbortSignal): Promise<number> {
  const flags = parseFlags(args, { host: 'string', port: 'string', workspace: 'string', 'allow-remote': 'boolean', root: 'string', json: 'boolean', help: 'boolean', starter: 'boolean' }, ['root']);
  if (flags.help) {
    io.stdout(`${SERVE_USAGE}\n`);
    return 0;
  }
  const host = flag(flags, 'host') ?? '127.0.0.1';
  const port = numberFlag(flags, 'port', 'int') ?? DEFAULT_PORT;
  if (port < 0 || port > 65535) throw new EngineError(`--port must be between 0 and 65535, got ${port}`);
  if (!isLoopback(host)) {
    if (!flags['allow-remote']) {
      throw new EngineError(`--host ${host} would let other machines reach Adapter Studio; add --allow-remote if that is what you want`);
    }
    io.stderr(
      `warning: serving on ${host}, reachable from other machines. Anyone with the URL's token can read your datasets and run training here.\n` +
        '         Prefer an SSH tunnel to a loopback server (ssh -L) where you can.\n',
    );
  }
  const workspaceDir = flag(flags, 'workspace') ?? defaultWorkspaceDir();
  const paths = builtPaths();
  const roots = (flags.root as string[] | undefined) ?? [];
  for (const root of roots) if (!existsSync(root)) throw new EngineError(`--root ${root} does not exist`);
  // Other machines may send any path they like: only the workspace and the named roots are readable.
  const pathPolicy = flags['allow-remote'] || roots.length ? pathsUnder([workspaceDir, ...roots]) : anyPath();
  const service = createAppService({ workspaceDir, spawnHost: forkSpawner(paths.hostEntry), transport: 'http', version: paths.version, log: (m) => io.stderr(`${m}\n`), seedStarter: Boolean(flags.starter), pathPolicy });
  const token = newToken();
  let server;
  try {
    server = await startHttpServer({ service, token, host, port, staticDir: paths.rendererDir });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE' && flag(flags, 'port') === undefined) {
      // The default port is taken (another instance?): any free port will do.
      server = await startHttpServer({ service, token, host, port: 0, staticDir: paths.rendererDir });
    } else {
      await service.close();
      if (err.code === 'EADDRINUSE') throw new EngineError(`port ${port} on ${host} is already in use; choose another with --port`);
      if (err.code === 'EADDRNOTAVAIL') throw new EngineError(`${host} is not an address of this machine`);
      throw e;
    }
  }
  if (flags.json) io.stdout(`${JSON.stringify({ url: server.url, port: server.port, token, workspace: workspaceDir })}\n`);
  else {
    io.stdout(
      [
        'Adapter Studio is running.',
        `  Open:      ${server.url}`,
        `  Workspace: ${workspaceDir}`,
        'Press Ctrl-C to stop (a training run is paused at a checkpoint first).',
        '',
      ].join('\n'),
    );
  }

  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    process.once('SIGHUP', done);
    stop?.addEventListener('abort', done, { once: true });
    // Started by a launcher (npm start) that was killed without passing the signal on: stop rather than go on
    // serving as an orphan. POSIX reparents an orphan, so its parent pid changes.
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid !== parent) done();
    }, 1000);
    watch.unref();
  });
  io.stderr('stopping...\n');
  await server.close();
  await service.close();
  return 0;
}
