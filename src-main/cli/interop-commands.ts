// CLI commands for interoperability: official LLaMA-Adapter checkpoints, Meta's original layout,
// and scale-out jobs for PEFT on transformers (src-main/interop/).

import fs from 'node:fs';
import { loadAdapter, saveAdapter } from '../engine/adapter-io.js';
import { disposeAdapter } from '../engine/adapter.js';
import { type BackendChoice, describeBackend, initBackend } from '../engine/backend.js';
import type { Instruction } from '../engine/data.js';
import { EngineError } from '../engine/errors.js';
import { loadModel, readModelConfig } from '../engine/load.js';
import { disposeModel } from '../engine/model.js';
import { paperRecipe, type Recipe } from '../engine/recipe.js';
import { convertMetaCheckpoint, type OutputDtype } from '../interop/meta-checkpoint.js';
import { exportOfficialAdapter, importOfficialAdapter, OFFICIAL_GATE_FORMS, type OfficialGateForm } from '../interop/official-adapter.js';
import { convertInProcess } from '../interop/job-convert.js';
import { importJobAsRun, findWorkspaceModel } from '../interop/job-run.js';
import { exportJob, importJobResult, type JobOrigin } from '../interop/scaleout.js';
import { openWorkspace } from '../store/index.js';
import type { SavedFloatDtype } from '../interop/torch-file.js';
import { readTrainingData } from './engine-commands.js';
import { type Flags, flag, type IO, numberFlag, parseFlags, requireFlag } from './flags.js';
import { applyRecipeFlags, recipeFlagSpec } from './recipe-flags.js';

export const INTEROP_USAGE = `  import-official --model DIR --adapter FILE.pth --out DIR [--gate-form tanh|raw] [--adapter-len K]
            (default gate form: raw for a release extract, as example.py; tanh for a training checkpoint)
            an official LLaMA-Adapter v1 checkpoint -> our adapter folder (tanh: training form, default;
            raw: the repository's inference code)
  export-official --model DIR --adapter DIR --out FILE.pth [--gate-form tanh|raw] [--dtype float32|float16|bfloat16]
  convert-meta --src DIR --out DIR [--tokenizer FILE.json | --no-tokenizer] [--max-positions N]
            [--rope-scaling-factor X] [--dtype source|float32|float16|bfloat16] [--bos-id N] [--eos-id N]...
            Meta's params.json + consolidated.NN.pth -> an HF-layout folder
  export-job --model DIR --data FILE --out DIR [--recipe FILE.json] [recipe flags as for train]
            [--base-model PATH_OR_HUB_ID] [--dataset-name NAME] [--fingerprint]
            a job folder for PEFT's adaption prompt on transformers (torchrun / accelerate);
            --fingerprint reads the weights once so that import-job can check the base model
  export-job --workspace DIR --dataset NAME|ID [--split all|train|val|test] --model ID|NAME|DIR --out DIR [...]
            the same from a workspace dataset (its current version) and model, recorded in job.json
  import-job --job DIR --model DIR --out DIR [--output DIR]
            the job's PEFT adapter and loss per step -> our adapter folder + metrics.json
  import-job --job DIR --workspace DIR [--model ID|NAME|DIR] [--name NAME] [--output DIR]
            the same as a completed run of the workspace's run history (adapter in the run's folder,
            loss per step as its metrics), usable in chat and compare
`;

/** Tensor-only work: the pure-JS backend starts instantly and is all it needs (override with --backend). */
async function startBackend(flags: Flags, io: IO): Promise<void> {
  const report = await initBackend((flag(flags, 'backend') ?? 'cpu') as BackendChoice);
  if (!flags.json) io.stderr(describeBackend(report) + '\n');
}

function gateFormFlag(flags: Flags): OfficialGateForm | undefined {
  const v = flag(flags, 'gate-form');
  if (v !== undefined && !OFFICIAL_GATE_FORMS.includes(v as OfficialGateForm)) {
    throw new EngineError(`--gate-form must be one of ${OFFICIAL_GATE_FORMS.join(', ')}, got "${v}"`);
  }
  return v as OfficialGateForm | undefined;
}

function print(io: IO, flags: Flags, value: unknown, text: string): void {
  io.stdout(flags.json ? JSON.stringify(value) + '\n' : text.endsWith('\n') ? text : `${text}\n`);
}

export async function importOfficialCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { model: 'string', adapter: 'string', out: 'string', 'gate-form': 'string', 'adapter-len': 'string', json: 'boolean', backend: 'string' });
  const modelDir = requireFlag(flags, 'model');
  const file = requireFlag(flags, 'adapter');
  const outDir = requireFlag(flags, 'out');
  const asked = gateFormFlag(flags);
  const adapterLen = numberFlag(flags, 'adapter-len', 'int');
  await startBackend(flags, io);
  const model = loadModel(modelDir);
  try {
    const { adapter, contents, gateForm, gateFormSource } = importOfficialAdapter(file, model, { gateForm: asked, adapterLen });
    try {
      const meta = { baseFingerprint: model.fingerprint, baseModelPath: model.dir, source: { kind: 'official-llama-adapter-v1', file, gateForm, storedDtype: contents.dtype } };
      await saveAdapter(outDir, adapter, model.config, meta);
    } finally {
      disposeAdapter(adapter);
    }
    for (const w of contents.warnings) io.stderr(`warning: ${w}\n`);
    const summary = { out: outDir, adapterLen: contents.adapterLen, adapterLenSource: contents.adapterLenSource, layers: contents.layers, gateForm, gateFormSource, gateMode: gateForm === 'tanh' ? 'per-head-tanh' : 'per-head', storedDtype: contents.dtype, warnings: contents.warnings };
    const why =
      gateFormSource === 'release extract'
        ? "raw gates, as the official example.py applies them to a release file (no training args in it); --gate-form tanh for the training code's form"
        : gateFormSource === 'training checkpoint'
          ? 'tanh gates, as the training code that wrote this checkpoint applies them'
          : `${gateForm} gates (--gate-form)`;
    print(io, flags, summary, `imported ${file}: K=${contents.adapterLen} (from ${contents.adapterLenSource}) on layers ${contents.layers[0]}-${contents.layers.at(-1)}, ${why}, stored as ${contents.dtype}\nadapter saved to ${outDir}`);
    return 0;
  } finally {
    disposeModel(model);
  }
}

export async function exportOfficialCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { model: 'string', adapter: 'string', out: 'string', 'gate-form': 'string', dtype: 'string', json: 'boolean', backend: 'string' });
  const modelDir = requireFlag(flags, 'model');
  const adapterDir = requireFlag(flags, 'adapter');
  const out = requireFlag(flags, 'out');
  const dtype = flag(flags, 'dtype') ?? 'float32';
  if (!['float32', 'float16', 'bfloat16'].includes(dtype)) throw new EngineError(`--dtype must be float32, float16 or bfloat16, got "${dtype}"`);
  const gateForm = gateFormFlag(flags) ?? 'tanh';
  await startBackend(flags, io);
  const model = loadModel(modelDir);
  try {
    const adapter = loadAdapter(adapterDir, model);
    try {
      await exportOfficialAdapter(out, adapter, model.config, { gateForm, dtype: dtype as SavedFloatDtype });
      const summary = { out, adapterLen: adapter.spec.adapterLen, layers: adapter.spec.layers, from: adapter.spec.gateMode, gateForm, dtype };
      print(io, flags, summary, `wrote ${out}: adapter_query.weight [${adapter.spec.layers.length * adapter.spec.adapterLen}, ${model.config.dim}] and ${model.config.nLayers} gates (${gateForm} form, from ${adapter.spec.gateMode}), ${dtype}`);
    } finally {
      disposeAdapter(adapter);
    }
    return 0;
  } finally {
    disposeModel(model);
  }
}

export async function convertMetaCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(
    args,
    { src: 'string', out: 'string', tokenizer: 'string', 'no-tokenizer': 'boolean', 'max-positions': 'string', 'rope-scaling-factor': 'string', dtype: 'string', 'bos-id': 'string', 'eos-id': 'string', json: 'boolean' },
    ['eos-id'],
  );
  const src = requireFlag(flags, 'src');
  const out = requireFlag(flags, 'out');
  const dtype = (flag(flags, 'dtype') ?? 'source') as OutputDtype;
  if (!['source', 'float32', 'float16', 'bfloat16'].includes(dtype)) throw new EngineError(`--dtype must be source, float32, float16 or bfloat16, got "${dtype}"`);
  if (flags.tokenizer !== undefined && flags['no-tokenizer']) throw new EngineError('--tokenizer and --no-tokenizer exclude each other');
  const eos = (flags['eos-id'] as string[] | undefined)?.map((v) => {
    if (!/^\d+$/.test(v)) throw new EngineError(`--eos-id must be a token id, got "${v}"`);
    return Number(v);
  });
  const factor = numberFlag(flags, 'rope-scaling-factor', 'number');
  let lastShown = 0;
  const result = convertMetaCheckpoint(src, out, {
    tokenizer: flag(flags, 'tokenizer'),
    noTokenizer: Boolean(flags['no-tokenizer']),
    maxPositions: numberFlag(flags, 'max-positions', 'int'),
    ropeScaling: factor === undefined ? undefined : { factor },
    dtype,
    bosId: numberFlag(flags, 'bos-id', 'int'),
    eosIds: eos,
    onProgress: (done, total) => {
      // A line every 5% keeps a 7B conversion (291 tensors) readable.
      if (!flags.json && (done === total || done - lastShown >= Math.max(1, Math.round(total / 20)))) {
        lastShown = done;
        io.stderr(`converted ${done}/${total} tensors\n`);
      }
    },
  });
  for (const note of result.notes) io.stderr(`note: ${note}\n`);
  const c = result.config;
  print(io, flags, result, `wrote ${out}: ${c.nLayers} layers, hidden ${c.dim}, ${c.nHeads} heads (${c.nKvHeads} KV), vocab ${c.vocabSize}, from ${result.modelParallel} model-parallel shard(s); ${(result.bytes / 2 ** 30).toFixed(2)} GiB in ${result.files.length} file(s); tokenizer ${result.tokenizer}`);
  return 0;
}


/** A recipe JSON file: a bare recipe, or any file of ours that holds one under "recipe" (adapter_config.json, job.json). */
function readRecipeFile(file: string): Partial<Recipe> {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new EngineError(`${file}: ${err.code === 'ENOENT' ? 'file not found' : `invalid JSON (${err.message})`}`);
  }
  const obj = v as Record<string, unknown> | null;
  const recipe = obj && typeof obj.recipe === 'object' && obj.recipe !== null ? obj.recipe : obj;
  if (typeof recipe !== 'object' || recipe === null || Array.isArray(recipe)) throw new EngineError(`${file}: expected a JSON object holding a recipe`);
  return recipe as Partial<Recipe>;
}

/** The examples, model folder and origin of an export from a workspace (--workspace, --dataset, --split). */
function workspaceExport(flags: Flags): { modelDir: string; fingerprint: string | undefined; data: Instruction[]; dataset: { name: string; version: number }; origin: JobOrigin } {
  const dir = requireFlag(flags, 'workspace');
  const split = flag(flags, 'split') ?? 'all';
  if (!['all', 'train', 'val', 'test'].includes(split)) throw new EngineError(`--split must be all, train, val or test, got "${split}"`);
  if (flags.data !== undefined) throw new EngineError('--data and --workspace exclude each other: with --workspace, --dataset names the examples');
  const ws = openWorkspace(dir, { claimOwnership: false }); // reads only: the app may be training meanwhile
  try {
    const dataset = ws.datasets.find(requireFlag(flags, 'dataset'));
    const data = ws.datasets.examplesAt(dataset.id, dataset.version).filter((e) => split === 'all' || e.split === split);
    const modelRef = requireFlag(flags, 'model');
    const model = findWorkspaceModel(ws, modelRef);
    if (!model && !fs.existsSync(modelRef)) throw new EngineError(`--model ${modelRef}: no model of the workspace ${ws.dir} has this id, name or folder`);
    return {
      modelDir: model?.path ?? modelRef,
      // A registered model's fingerprint is known without reading its weights.
      fingerprint: model?.fingerprint,
      data: data.map((e) => ({ instruction: e.instruction, input: e.input, output: e.output })),
      dataset: { name: dataset.name, version: dataset.version },
      origin: { workspace: ws.dir, modelId: model?.id ?? null, datasetId: dataset.id, datasetVersion: dataset.version, split: split as JobOrigin['split'] },
    };
  } finally {
    ws.close();
  }
}

export async function exportJobCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { model: 'string', data: 'string', out: 'string', recipe: 'string', 'base-model': 'string', 'dataset-name': 'string', fingerprint: 'boolean', json: 'boolean', backend: 'string', workspace: 'string', dataset: 'string', split: 'string', ...recipeFlagSpec() });
  const fromWorkspace = flags.workspace !== undefined ? workspaceExport(flags) : null;
  const modelDir = fromWorkspace?.modelDir ?? requireFlag(flags, 'model');
  const dataFile = fromWorkspace ? null : requireFlag(flags, 'data');
  const outDir = requireFlag(flags, 'out');
  const data = fromWorkspace?.data ?? (await readTrainingData(dataFile!));
  const config = readModelConfig(modelDir);
  const recipeFile = flag(flags, 'recipe');
  const recipe: Recipe = { ...paperRecipe(config), ...(recipeFile ? readRecipeFile(recipeFile) : {}) };
  applyRecipeFlags(flags, recipe);
  await startBackend(flags, io);
  // The fingerprint needs the weights read once; it lets import-job check the base model.
  let fingerprint = fromWorkspace?.fingerprint;
  if (flags.fingerprint && fingerprint === undefined) {
    const model = loadModel(modelDir);
    fingerprint = model.fingerprint;
    disposeModel(model);
  }
  const { job, files } = await exportJob({
    modelDir,
    data,
    recipe,
    outDir,
    baseModel: flag(flags, 'base-model'),
    baseFingerprint: fingerprint,
    dataset: fromWorkspace ? { name: flag(flags, 'dataset-name') ?? fromWorkspace.dataset.name, version: fromWorkspace.dataset.version } : { name: flag(flags, 'dataset-name'), source: dataFile! },
    origin: fromWorkspace?.origin,
  });
  if (job.peft.gateNote && !flags.json) io.stderr(`note: ${job.peft.gateNote}\n`);
  const s = job.schedule;
  print(io, flags, { out: outDir, job, files }, `wrote job ${outDir}: ${s.examples} examples, ${s.totalSteps} steps (${s.stepsPerEpoch}/epoch), peak lr ${s.peakLr.toExponential(3)}\nrun it with: python ${outDir}/train.py  (or ${outDir}/launch.sh for every GPU; see README.md)`);
  return 0;
}

export async function importJobCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { job: 'string', model: 'string', out: 'string', output: 'string', json: 'boolean', backend: 'string', workspace: 'string', name: 'string' });
  const jobDir = requireFlag(flags, 'job');
  if (flags.workspace !== undefined) return importJobIntoWorkspace(flags, jobDir, io);
  if (flags.name !== undefined) throw new EngineError('--name names the run that --workspace records; without --workspace there is no run');
  const modelDir = requireFlag(flags, 'model');
  const outDir = requireFlag(flags, 'out');
  await startBackend(flags, io);
  const model = loadModel(modelDir);
  try {
    const result = await importJobResult(jobDir, model, outDir, { outputDir: flag(flags, 'output') });
    disposeAdapter(result.adapter);
    const losses = result.metrics.filter((m) => m.loss !== null);
    const summary = { out: outDir, jobId: result.job.jobId, steps: result.metrics.length, completed: result.completed, worldSize: result.worldSize, device: result.device, firstLoss: losses[0]?.loss ?? null, lastLoss: losses.at(-1)?.loss ?? null, metrics: result.metrics };
    print(
      io,
      flags,
      summary,
      `imported job ${result.job.jobId}: ${result.metrics.length} steps${result.worldSize ? ` on ${result.worldSize} process(es) (${result.device})` : ''}, loss ${summary.firstLoss?.toFixed(4)} -> ${summary.lastLoss?.toFixed(4)}${result.completed ? '' : ' (unfinished)'}\nadapter saved to ${outDir} (per-layer gates), metrics in ${outDir}/metrics.json`,
    );
    return 0;
  } finally {
    disposeModel(model);
  }
}

/** import-job --workspace: the job's result as a completed run of the workspace (interop/job-run.ts). */
async function importJobIntoWorkspace(flags: Flags, jobDir: string, io: IO): Promise<number> {
  if (flags.out !== undefined) throw new EngineError('--out and --workspace exclude each other: with --workspace the adapter goes to the run\'s folder');
  await startBackend(flags, io);
  // Records a finished run; it trains nothing, so it does not claim the workspace from the app.
  const ws = openWorkspace(requireFlag(flags, 'workspace'), { claimOwnership: false });
  try {
    // The CLI is its own process: it converts here (the app does it in an engine process).
    const { run, result, datasetNote } = await importJobAsRun(ws, { jobDir, outputDir: flag(flags, 'output'), model: flag(flags, 'model'), name: flag(flags, 'name') }, convertInProcess);
    const losses = result.metrics.filter((m) => m.loss !== null);
    const summary = { runId: run.id, name: run.name, adapterDir: ws.runDir(run.id), jobId: result.job.jobId, modelId: run.modelId, datasetId: run.datasetId, datasetVersion: run.datasetVersion, datasetNote, backend: run.backend, steps: result.metrics.length, completed: result.completed };
    if (datasetNote && !flags.json) io.stderr(`note: the run records no dataset: ${datasetNote}\n`);
    print(
      io,
      flags,
      summary,
      `recorded job ${result.job.jobId} as run "${run.name}" (${run.id}): ${result.metrics.length} steps, loss ${losses[0]?.loss?.toFixed(4)} -> ${losses.at(-1)?.loss?.toFixed(4)}, ${run.backend}\nadapter in ${ws.runDir(run.id)}`,
    );
    return 0;
  } finally {
    ws.close();
  }
}
