// `adapter-studio demo`: the whole idea on the bundled starter model, headless. Answers the held-out
// demo questions with the base model, trains a LLaMA-Adapter on the demo set, answers again, and
// prints the before/after table with exact match and ROUGE-L.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeBackend, initBackend } from '../engine/backend.js';
import { readInstructionFile } from '../engine/data.js';
import { formatDemoTable, runDemo } from '../engine/demo.js';
import type { EvalExample } from '../engine/eval.js';
import { loadModel } from '../engine/load.js';
import { STARTER, starterPath } from '../engine/starter.js';
import { loadTokenizer } from '../engine/tokenizer.js';
import { flag, type IO, numberFlag, parseFlags } from './flags.js';

export async function demoCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { out: 'string', 'test-limit': 'string', backend: 'string', json: 'boolean' });
  const report = await initBackend((flag(flags, 'backend') ?? 'auto') as never);
  io.stderr(describeBackend(report) + '\n');
  const modelDir = starterPath(STARTER.modelDir);
  const model = loadModel(modelDir);
  const tokenizer = await loadTokenizer(modelDir, { bosId: model.config.bosId, eosIds: model.config.eosIds });
  const train = readInstructionFile(starterPath(STARTER.demoTrain));
  const limit = numberFlag(flags, 'test-limit', 'int');
  // Validated as instructions, then read again for the `task` field that groups the scores.
  const checked = readInstructionFile(starterPath(STARTER.demoTest));
  const tasks = (JSON.parse(readFileSync(starterPath(STARTER.demoTest), 'utf8')) as { task?: string }[]).map((r) => r.task);
  const test: EvalExample[] = checked.map((ex, i) => ({ ...ex, task: tasks[i] })).slice(0, limit ?? undefined);
  const outDir = flag(flags, 'out') ?? mkdtempSync(join(tmpdir(), 'adapter-studio-demo-'));
  io.stderr(`starter model: ${modelDir}\nanswering ${test.length} held-out questions, training an adapter on ${train.length} examples, answering again\n`);
  let answered = 0;
  const result = await runDemo({
    model, tokenizer, train, test, outDir,
    onAnswer: (phase) => {
      answered++;
      if (answered % 25 === 0) io.stderr(`  ${phase}: ${answered % test.length || test.length}/${test.length} answered\n`);
    },
    onTrainEvent: (e) => {
      if (e.type === 'step' && (e.step % 100 === 0 || e.step === e.totalSteps)) {
        io.stderr(`  train step ${e.step}/${e.totalSteps}  loss ${e.loss.toFixed(3)}  ${e.tokensPerSec.toFixed(0)} tok/s  eta ${Math.round(e.etaSec)}s\n`);
      }
    },
  });
  if (flags.json) {
    io.stdout(JSON.stringify({ base: result.base, adapted: result.adapted, trainSeconds: result.trainSeconds, adapterDir: result.adapterDir }) + '\n');
  } else {
    io.stdout(formatDemoTable(result) + `\nadapter saved to ${result.adapterDir}\n`);
  }
  return 0;
}
