// A child Node process whose stdout is read line by line, for tests that drive real processes (crash and
// two-process tests): wait for a line, read them all, and how it exited.

import { type ChildProcess, spawn } from 'node:child_process';

export interface Child {
  proc: ChildProcess;
  pid: number;
  lines: string[];
  /** Resolves with the first stdout line matching `pattern` (seen already or to come). */
  waitFor: (pattern: RegExp) => Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

export function startChild(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  let buffer = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (w.pattern.test(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal, stdout: lines.join('\n') + buffer, stderr })),
  );
  const waitFor = (pattern: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const seen = lines.find((l) => pattern.test(l));
      if (seen) return resolve(seen);
      waiters.push({ pattern, resolve });
      void exited.then((e) => reject(new Error(`child exited (${e.code ?? e.signal}) before printing ${pattern}: ${e.stderr}`)));
    });
  return { proc, pid: proc.pid!, lines, waitFor, exited };
}
