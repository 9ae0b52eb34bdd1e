// `adapter-studio`: the headless entry point (also what a GPU server runs).

import { CancelledError, EngineError } from '../engine/errors.js';
import { datasetCommand } from './dataset-command.js';
import { serveCommand } from './serve-command.js';
import { demoCommand } from './demo-command.js';
import { EVAL_SCIENCEQA_USAGE, evalScienceQaCommand } from './eval-scienceqa-command.js';
import { EXPORT_GGUF_USAGE, exportGgufCommand } from './gguf-command.js';
import { embedImageCommand, VISION_USAGE, visionInfoCommand } from './vision-commands.js';
import { forwardCommand, generateCommand, infoCommand, trainCommand } from './engine-commands.js';
import { convertMetaCommand, exportJobCommand, exportOfficialCommand, importJobCommand, importOfficialCommand, INTEROP_USAGE } from './interop-commands.js';
import type { IO } from './flags.js';
import { compareCommand, evalCommand, WORKSPACE_USAGE, workspaceTrainCommand } from './workspace-commands.js';
import { SWEEP_USAGE, sweepCommand } from './sweep-command.js';

const USAGE = `adapter-studio <command> [flags]

Commands:
  info      --model DIR [--json]                     config, parameter count, memory estimate, backend
  train     --model DIR --data FILE --out DIR         fine-tune: LLaMA-Adapter by default (the paper preset),
            [--method adapter|lora|full] [--preset paper|alpaca-lora|alpaca]   or the Alpaca baselines
            [--adapter-len K] [--adapter-layers L] [--gate-mode per-head-tanh|per-head|per-layer]
            [--lora-rank R] [--lora-alpha A] [--lora-dropout P] [--lora-targets q,v]
            [--epochs N] [--warmup-epochs N | --warmup-steps N] [--blr X | --lr X] [--min-lr X] [--weight-decay X]
            [--schedule cosine|linear] [--prompt-template alpaca|alpaca-lora] [--init zero|random] [--max-grad-norm X] [--train-on-inputs true|false] [--drop-last true|false]
            [--batch-size N] [--accum-steps N] [--max-seq-len N] [--seed N] [--checkpoint-every N]
            [--val-set-size N] [--eval-steps N] [--max-steps N] [--resume] [--json]
  generate  --model DIR [--adapter DIR] --prompt TEXT  (--adapter: an adapter or LoRA folder; a full
            fine-tune is a model folder: pass it as --model)
            [--input TEXT] [--template alpaca|none]
            [--sampling default|greedy|paper] [--temperature X] [--top-k N] [--top-p X]
            [--repetition-penalty X] [--max-new-tokens N]
            (default as the app's Chat: 0.7, 40, 0.95, 1, 128; greedy: temperature 0; paper: the
            official example.py's temperature 0.1, top-p 0.75; single flags override the preset)
            [--stop S]... [--seed N] [--json]
  forward   --model DIR [--adapter DIR] --input-ids 1,2,3[;4,5,6] [--labels=-100,5,6] --json
            logits (and loss + adapter gradients with --labels), to check against a reference

  demo      [--out DIR] [--test-limit N]            the bundled starter model: base vs LLaMA-Adapter on
            held-out questions, with exact match and ROUGE-L (minutes on 2 cores)
  demo --multimodal [--out DIR] [--test-limit N] [--json]   the paper's ScienceQA comparison on the
            starter models: text-only vs multi-modal adapter (starter CLIP tower), ScienceQA's table
  serve     [--host 127.0.0.1] [--port N] [--workspace DIR]   the app in your browser (prints the URL
            with its access token); --allow-remote to bind a non-loopback address
  dataset   import|list|export|dedupe|split|undo [--workspace DIR] [--json]   curate datasets in a
            workspace (run "adapter-studio dataset --help"); imports ScienceQA folders and parquet too
${EVAL_SCIENCEQA_USAGE}${VISION_USAGE}
In a workspace (what the app shows; --workspace defaults to $ADAPTER_STUDIO_WORKSPACE or ~/.adapter-studio):
${WORKSPACE_USAGE}${SWEEP_USAGE}

Interoperability:
${INTEROP_USAGE}  ${EXPORT_GGUF_USAGE}
Engine commands take --backend auto|tensorflow|webgpu|native|wasm|cpu (default auto).
`;

type Command = (args: string[], io: IO) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  info: infoCommand,
  // With --workspace (or --dataset) a run is queued in a workspace, as the app does; otherwise files in, folder out.
  train: (args, io) => (args.some((a) => /^--(workspace|dataset)(=|$)/.test(a)) ? workspaceTrainCommand(args, io) : trainCommand(args, io)),
  eval: evalCommand,
  'eval-scienceqa': evalScienceQaCommand,
  'vision-info': visionInfoCommand,
  'embed-image': embedImageCommand,
  compare: compareCommand,
  sweep: sweepCommand,
  generate: generateCommand,
  forward: forwardCommand,
  dataset: datasetCommand,
  serve: serveCommand,
  demo: demoCommand,
  'export-gguf': exportGgufCommand,
  'import-official': importOfficialCommand,
  'export-official': exportOfficialCommand,
  'convert-meta': convertMetaCommand,
  'export-job': exportJobCommand,
  'import-job': importJobCommand,
};

export async function main(argv: string[], io: IO): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr(`unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command(args, io);
  } catch (e) {
    if (e instanceof EngineError) {
      io.stderr(`error: ${e.message}\n`);
      return 1;
    }
    if (e instanceof CancelledError) {
      io.stderr(`${e.message}\n`);
      return 130;
    }
    throw e;
  }
}

export const processIO: IO = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
};
