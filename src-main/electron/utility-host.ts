// Engine host processes in the desktop app: Electron's utilityProcess (a Node child that Electron manages
// and kills with the app), speaking the same messages as child_process.fork in serve mode.

import { utilityProcess } from 'electron';
import type { HostSpawner } from '../host/engine-process.js';
import type { FromHost } from '../host/protocol.js';

export function utilitySpawner(entry: string): HostSpawner {
  return (role, env) => {
    const child = utilityProcess.fork(entry, [`--role=${role}`], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'inherit', 'pipe'],
      serviceName: `Adapter Studio engine (${role})`,
    });
    let tail = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-4000);
    });
    let exited = false;
    return {
      get pid() {
        return child.pid;
      },
      send: (msg) => {
        if (!exited) child.postMessage(msg);
      },
      onMessage: (cb) => child.on('message', (m: unknown) => cb(m as FromHost)),
      onExit: (cb) =>
        child.once('exit', (code: number) => {
          exited = true;
          // utilityProcess reports a crash as a non-zero code; a signal name is not given.
          cb({ code, signal: null, detail: tail });
        }),
      kill: () => {
        child.kill();
      },
    };
  };
}
