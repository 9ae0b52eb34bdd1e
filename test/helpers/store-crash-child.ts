// Child process for the crash tests (bundled with esbuild and run by plain node, then SIGKILLed by the
// test at a moment it picks). It reports progress on stdout with synchronous writes, so that what the
// parent reads is what had happened when it pulled the trigger.
//
//   node child.mjs import  WORKSPACE FILE   import FILE; "progress N" inside the transaction, "committed" after
//   node child.mjs metrics WORKSPACE        a running run writing batches of 500 metric points forever,
//                                           "batch K" after each commit, a checkpoint every other batch

import { writeSync } from 'node:fs';
import { importDataset } from '../../src-main/datasets/import.js';
import { openWorkspace } from '../../src-main/store/workspace.js';

const say = (line: string) => writeSync(1, `${line}\n`);
/** Stands in for a slow disk, so the transaction is still open when the parent's SIGKILL arrives. */
const stall = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

const [mode, dir, file] = process.argv.slice(2);
const ws = openWorkspace(dir!);

if (mode === 'import') {
  say('ready');
  await importDataset(ws, file!, {
    name: 'crash-import',
    onProgress: (done) => {
      say(`progress ${done}`);
      stall(15);
    },
  });
  say('committed');
  ws.close();
} else if (mode === 'metrics') {
  const run = ws.runs.create({ method: 'adapter', recipe: { lr: 1e-3 }, backend: 'cpu' });
  ws.runs.start(run.id);
  say(`run ${run.id}`);
  const BATCH = 500;
  for (let batch = 1; ; batch++) {
    const points = Array.from({ length: BATCH }, (_, k) => {
      const step = (batch - 1) * BATCH + k + 1;
      return { step, loss: 3 / Math.sqrt(step), lr: 1e-3, tokensPerSec: 1000 + (step % 17), memoryBytes: 1 << 24, elapsedMs: step * 10 };
    });
    ws.runs.appendMetrics(run.id, points);
    if (batch % 2 === 0) ws.runs.addCheckpoint(run.id, { step: batch * BATCH, path: `runs/${run.id}/step-${batch * BATCH}` });
    say(`batch ${batch}`);
  }
} else {
  throw new Error(`unknown mode ${mode}`);
}
