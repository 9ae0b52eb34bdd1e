// The main process's handle on an engine process, with real child processes: an engine that dies fails
// every open request with the reason, and an out-of-memory death is named as such.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeExit, EngineExitedError, EngineProcess, forkSpawner } from '../src-main/host/engine-process.js';
import { makeTempDir } from './helpers/tmp.js';

describe('engine process', () => {
  it('a process that dies fails its open requests with the exit reason', async () => {
    const dir = makeTempDir('engine-process');
    const entry = join(dir, 'dies.mjs');
    // Answers init, then dies on the first request, as a crashing engine would.
    writeFileSync(
      entry,
      `process.on('message', (m) => {
         if (m.kind === 'init') process.send({ kind: 'ready', backend: { name: 'cpu', skipped: [] } });
         else { process.stderr.write('something broke inside\\n'); process.exit(3); }
       });`,
    );
    const engine = new EngineProcess(forkSpawner(entry), 'inference', { backend: 'cpu', threads: 0 });
    expect((await engine.ready()).name).toBe('cpu');
    const exits: string[] = [];
    engine.onExit((reason) => exits.push(reason));
    const { result } = engine.request('inspect', { modelDir: '/nowhere' });
    const err = await result.catch((e: Error) => e);
    expect(err).toBeInstanceOf(EngineExitedError);
    expect((err as Error).message).toBe('the engine process exited with code 3 (something broke inside)');
    expect(exits).toEqual([(err as Error).message]);
    // Later requests fail at once instead of hanging.
    await expect(engine.request('inspect', { modelDir: '/nowhere' }).result).rejects.toThrow(/exited with code 3/);
  });

  it('names an out-of-memory death', () => {
    const child = spawnSync(process.execPath, ['--max-old-space-size=16', '-e', 'const a = []; for (;;) a.push(new Array(1e5).fill(1));'], { encoding: 'utf8' });
    expect(child.status === 0).toBe(false);
    expect(describeExit({ code: child.status, signal: child.signal, detail: child.stderr })).toBe('the engine process ran out of memory');
    expect(describeExit({ code: null, signal: 'SIGKILL', detail: '' })).toBe('the engine process was stopped by signal SIGKILL');
  });
});
