// Scale-out: a run exported as a job folder for PEFT's adaption prompt on Hugging Face transformers
// (launched with torchrun or accelerate on machines with GPUs), and its result imported back.
//
// A job folder holds everything the run is made of, so the job repeats the run rather than
// approximating it:
//
//   job.json               format + version, the recipe (ours, verbatim), the PEFT mapping, the
//                          schedule it implies, the base model (where to load it from, its BOS/EOS,
//                          its fingerprint here), the dataset (name, version, sha256, count)
//   templates.json         the Alpaca templates, verbatim
//   data/train.jsonl       the examples, one {instruction, input, output} per line
//   data/order.json        each epoch's example order from our seeded shuffle (engine/data.ts epochOrder)
//   data/check_ids.json    our token ids for the first examples: train.py stops if its tokenizer differs
//   init_adapter/          a PEFT adapter holding our seeded initial prompts (gates 0)
//   train.py               the loop of engine/train.ts on PEFT (job-train-script.ts); launch.sh (torchrun),
//   accelerate_config.yaml, requirements.txt, README.md
//
// PEFT has one form of gate: a raw scalar per layer (our 'per-layer'). A recipe with per-head tanh
// gates is exported with per-layer gates, and the job's README and job.json say so.
//
// The job writes output/ (PEFT adapter_config.json + adapter_model.safetensors, trainer_state.json
// with one log_history entry per optimizer step); `importJobResult` reads it back.

import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Adapter, disposeAdapter, initAdapter, topLayers } from '../engine/adapter.js';
import { exportPeftAdapter, loadAdapter, saveAdapter } from '../engine/adapter-io.js';
import { type LlamaConfig, requirePlainLlama } from '../engine/config.js';
import { epochOrder, formatAlpacaPrompt, type Instruction, tokenizeExample } from '../engine/data.js';
import { EngineError } from '../engine/errors.js';
import { type LoadedModel, readModelConfig } from '../engine/load.js';
import { effectiveBatch, peakLearningRate, type Recipe, validateRecipe } from '../engine/recipe.js';
import { Rng } from '../engine/rng.js';
import { loadTokenizer } from '../engine/tokenizer.js';
import { TRAIN_SCRIPT } from './job-train-script.js';

export const JOB_FORMAT = 'adapter-studio.peft-job';
export const JOB_FORMAT_VERSION = 1;

/** What train.py reads. Field names are camelCase like our recipe. */
export interface JobFile {
  format: typeof JOB_FORMAT;
  formatVersion: typeof JOB_FORMAT_VERSION;
  jobId: string;
  createdAt: string;
  recipe: Recipe;
  peft: { peftType: 'ADAPTION_PROMPT'; adapterLen: number; adapterLayers: number; layers: number[]; gate: 'per-layer'; gateNote: string | null };
  schedule: { examples: number; microBatchesPerEpoch: number; stepsPerEpoch: number; totalSteps: number; peakLr: number; effectiveBatch: number };
  baseModel: { loadFrom: string; localPath: string; fingerprint: string | null; bosId: number | null; eosIds: number[]; config: Record<string, number | boolean> };
  dataset: { name: string | null; version: number | null; source: string | null; sha256: string; examples: number };
  /**
   * The workspace the run was exported from, so that import-job can record the result in its run history
   * against the same model and dataset version. Null for a job made from files; absent in older job files.
   */
  origin?: JobOrigin | null;
}

export interface JobOrigin {
  workspace: string;
  /** Null when the model folder is not registered in that workspace (import then finds it by fingerprint). */
  modelId: string | null;
  datasetId: string;
  datasetVersion: number;
  /** Which of the dataset's examples: a split, or all. */
  split: 'all' | 'train' | 'val' | 'test';
}

export interface ExportJobOptions {
  /** The local HF model folder the run uses (config.json and tokenizer.json are read; weights are not). */
  modelDir: string;
  data: Instruction[];
  recipe: Recipe;
  outDir: string;
  /** What train.py loads: a path on the cluster or a hub id. Default: the absolute modelDir. */
  baseModel?: string;
  /** The local model's fingerprint (LoadedModel.fingerprint), so the import can check the base. */
  baseFingerprint?: string;
  dataset?: { name?: string; version?: number; source?: string };
  origin?: JobOrigin;
  /** Examples whose token ids train.py checks against ours (default 8). */
  checkExamples?: number;
}

export interface ExportJobResult {
  outDir: string;
  job: JobFile;
  files: string[];
}

const ALPACA_TEMPLATES = {
  // Recovered from formatAlpacaPrompt itself, so the job can never drift from what we train with.
  prompt_input: formatAlpacaPrompt('{instruction}', '{input}'),
  prompt_no_input: formatAlpacaPrompt('{instruction}', ''),
};

/** The hash job.json records for its examples; import-job compares a workspace dataset version with it. */
export function datasetHash(data: Instruction[]): string {
  const h = createHash('sha256');
  for (const ex of data) h.update(JSON.stringify([ex.instruction, ex.input, ex.output]) + '\n');
  return h.digest('hex');
}

/**
 * Write a job folder for `recipe` on `data`. The model's weights are not loaded (a 7B model need not
 * fit this machine); the tokenizer is, to record the ids train.py must reproduce. Needs a tfjs
 * backend (the initial adapter is made by the engine's own initAdapter).
 */
export async function exportJob(opts: ExportJobOptions): Promise<ExportJobResult> {
  const c = readModelConfig(opts.modelDir);
  requirePlainLlama(c, "a scale-out job (PEFT's adaption prompt on LlamaForCausalLM)");
  if (opts.recipe.method !== 'adapter') {
    throw new EngineError(`a scale-out job trains LLaMA-Adapter (PEFT's adaption prompt); this recipe's method is "${opts.recipe.method}"`);
  }
  const recipe = validateRecipe(opts.recipe, c);
  if (opts.data.length === 0) throw new EngineError('the dataset has no examples; a job needs at least one');
  if (c.eosIds.length === 0) throw new EngineError(`${opts.modelDir}: config.json names no eos_token_id; training needs one to end responses`);
  if (fs.existsSync(opts.outDir) && (!fs.statSync(opts.outDir).isDirectory() || fs.readdirSync(opts.outDir).length > 0)) {
    throw new EngineError(`${opts.outDir} already exists and is not an empty folder; choose a new job folder`);
  }
  const tokenizer = await loadTokenizer(opts.modelDir, { bosId: c.bosId, eosIds: c.eosIds });

  const n = opts.data.length;
  const microBatchesPerEpoch = Math.ceil(n / recipe.batchSize);
  const stepsPerEpoch = Math.ceil(microBatchesPerEpoch / recipe.accumSteps);
  const planned = Math.ceil(stepsPerEpoch * recipe.epochs);
  const totalSteps = recipe.maxSteps === null ? planned : Math.min(planned, recipe.maxSteps);
  const epochsNeeded = Math.ceil(totalSteps / stepsPerEpoch);
  const layers = topLayers(c.nLayers, recipe.adapterLayers);
  const gateNote =
    recipe.gateMode === 'per-layer'
      ? null
      : `The recipe uses ${recipe.gateMode} gates; PEFT's adaption prompt has only one raw gate per layer, so this job trains per-layer gates (the per-head tanh gate of the paper's code is not available in PEFT).`;

  const job: JobFile = {
    format: JOB_FORMAT,
    formatVersion: JOB_FORMAT_VERSION,
    jobId: randomUUID(),
    createdAt: new Date().toISOString(),
    recipe,
    peft: { peftType: 'ADAPTION_PROMPT', adapterLen: recipe.adapterLen, adapterLayers: recipe.adapterLayers, layers, gate: 'per-layer', gateNote },
    schedule: { examples: n, microBatchesPerEpoch, stepsPerEpoch, totalSteps, peakLr: peakLearningRate(recipe), effectiveBatch: effectiveBatch(recipe) },
    baseModel: {
      loadFrom: opts.baseModel ?? path.resolve(opts.modelDir),
      localPath: path.resolve(opts.modelDir),
      fingerprint: opts.baseFingerprint ?? null,
      bosId: c.bosId,
      eosIds: c.eosIds,
      config: { layers: c.nLayers, dim: c.dim, heads: c.nHeads, kvHeads: c.nKvHeads, vocab: c.vocabSize, tiedEmbeddings: c.tieEmbeddings },
    },
    dataset: { name: opts.dataset?.name ?? null, version: opts.dataset?.version ?? null, source: opts.dataset?.source ?? null, sha256: datasetHash(opts.data), examples: n },
    origin: opts.origin ?? null,
  };

  const parent = path.dirname(path.resolve(opts.outDir));
  fs.mkdirSync(parent, { recursive: true });
  const staging = fs.mkdtempSync(path.join(parent, `.${path.basename(opts.outDir)}.partial-`));
  let initial: Adapter | null = null;
  try {
    const write = (rel: string, text: string, mode?: number) => {
      fs.mkdirSync(path.dirname(path.join(staging, rel)), { recursive: true });
      fs.writeFileSync(path.join(staging, rel), text, mode === undefined ? undefined : { mode });
    };
    write('job.json', JSON.stringify(job, null, 2) + '\n');
    write('templates.json', JSON.stringify(ALPACA_TEMPLATES, null, 2) + '\n');
    write('data/train.jsonl', opts.data.map((ex) => JSON.stringify({ instruction: ex.instruction, input: ex.input, output: ex.output })).join('\n') + '\n');
    write('data/order.json', JSON.stringify({ seed: recipe.seed, epochs: Array.from({ length: epochsNeeded }, (_, e) => epochOrder(n, recipe.seed, e)) }) + '\n');
    const checks = opts.data.slice(0, opts.checkExamples ?? 8).map((ex, index) => ({ index, ...tokenizeExample(tokenizer, ex, recipe.maxSeqLen) }));
    write('data/check_ids.json', JSON.stringify({ tokenizerSha256: tokenizer.hash, examples: checks }) + '\n');
    // The same draw as engine/train.ts: Rng(seed) -> initAdapter. Gates start at 0 in every mode,
    // so the per-layer form PEFT needs holds exactly our initial state.
    initial = initAdapter(c, { adapterLen: recipe.adapterLen, layers, gateMode: 'per-layer' }, new Rng(recipe.seed));
    await exportPeftAdapter(path.join(staging, 'init_adapter'), initial, c, job.baseModel.loadFrom);
    write('train.py', TRAIN_SCRIPT, 0o755);
    write('launch.sh', launchScript(), 0o755);
    write('accelerate_config.yaml', accelerateConfig());
    write('requirements.txt', 'torch>=2.1\ntransformers>=4.45\npeft>=0.13\nsafetensors\ntokenizers\naccelerate  # only for `accelerate launch`\n');
    write('README.md', jobReadme(job, c));
    if (fs.existsSync(opts.outDir)) fs.rmdirSync(opts.outDir); // empty, checked above
    fs.renameSync(staging, opts.outDir);
  } catch (e) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw e;
  } finally {
    if (initial) disposeAdapter(initial);
  }
  return { outDir: opts.outDir, job, files: listFiles(opts.outDir) };
}

function listFiles(dir: string, prefix = ''): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  ).sort();
}

function launchScript(): string {
  return `#!/usr/bin/env bash
# One machine, every visible GPU (override: NPROC=4 ./launch.sh). Extra flags go to train.py.
# Several machines: torchrun --nnodes N --node_rank R --rdzv_endpoint HOST:PORT --nproc_per_node G train.py
set -euo pipefail
cd "$(dirname "$0")"
NPROC="\${NPROC:-$(python3 -c 'import torch; print(max(torch.cuda.device_count(), 1))')}"
exec torchrun --standalone --nproc_per_node "$NPROC" train.py "$@"
`;
}

function accelerateConfig(): string {
  return `# accelerate launch --config_file accelerate_config.yaml train.py
# train.py handles precision (--dtype) and gradient synchronisation itself; accelerate only starts
# one process per GPU, as torchrun does. Set num_processes to your GPU count.
compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
num_machines: 1
machine_rank: 0
num_processes: 8
gpu_ids: all
mixed_precision: 'no'
use_cpu: false
`;
}

function jobReadme(job: JobFile, c: LlamaConfig): string {
  const r = job.recipe;
  const s = job.schedule;
  const rows: [string, string, string][] = [
    ['adapter length K', String(r.adapterLen), `AdaptionPromptConfig(adapter_len=${r.adapterLen})`],
    ['adapted layers L', `${r.adapterLayers} (layers ${job.peft.layers[0]}-${job.peft.layers.at(-1)})`, `AdaptionPromptConfig(adapter_layers=${r.adapterLayers})`],
    ['gate', r.gateMode, 'one raw scalar per layer (PEFT\'s only form)'],
    ['epochs (warmup)', `${r.epochs} (${r.warmupEpochs})`, 'same; per-step linear warmup, then half-cycle cosine'],
    ['peak learning rate', `${s.peakLr} (${r.lr === null ? `blr ${r.blr} x ${s.effectiveBatch} / 256` : 'lr'})`, 'same'],
    ['min lr', String(r.minLr), 'same'],
    ['AdamW betas, eps, weight decay', `${r.betas.join(', ')}, ${r.eps}, ${r.weightDecay}`, 'torch.optim.AdamW, decay on every adapter tensor'],
    ['batch x accumulation', `${r.batchSize} x ${r.accumSteps} = ${s.effectiveBatch}`, 'same; the micro-batches of a step are spread over the GPUs'],
    ['max sequence length', String(r.maxSeqLen), 'same truncation'],
    ['seed', String(r.seed), 'data order in data/order.json; initial prompts in init_adapter/'],
    ['gradient clipping', 'none', 'none'],
  ];
  return `# LLaMA-Adapter job (PEFT adaption prompt)

Exported by Adapter Studio on ${job.createdAt} (job ${job.jobId}).

- Base model: \`${job.baseModel.loadFrom}\` (${c.nLayers} layers, hidden ${c.dim}, ${c.nHeads} heads${c.nKvHeads !== c.nHeads ? `, ${c.nKvHeads} KV heads` : ''})
- Dataset: ${job.dataset.name ?? 'unnamed'}${job.dataset.version !== null ? ` v${job.dataset.version}` : ''}, ${s.examples} examples (sha256 ${job.dataset.sha256.slice(0, 16)}...)
- Schedule: ${s.stepsPerEpoch} optimizer steps per epoch, ${s.totalSteps} steps in all
${job.peft.gateNote ? `\n> **Gate form.** ${job.peft.gateNote}\n` : ''}
## Run

    pip install -r requirements.txt
    python train.py                          # one process: CPU, or one GPU
    ./launch.sh                              # every GPU of this machine (torchrun)
    accelerate launch --config_file accelerate_config.yaml train.py

If the base model lives elsewhere on the cluster, add \`--base-model PATH_OR_HUB_ID\` (it must be the same
weights and tokenizer: train.py checks the token ids of the first examples against data/check_ids.json).
On a GPU the base model is loaded in bfloat16 (\`--dtype\` to change); the adapter is trained in float32.
Each GPU holds a full copy of the base model (about 2 bytes per parameter in bfloat16: 13.5 GB at 7B), so
a model larger than one GPU's memory needs a sharded setup this script does not provide.
\`--max-steps N\` runs a short trial; \`--resume\` continues from the newest \`output/checkpoint-N\`.

## Equivalent hyper-parameters

| setting | Adapter Studio recipe | this job |
|---|---|---|
${rows.map(([a, b, c2]) => `| ${a} | ${b} | ${c2} |`).join('\n')}

The loop is Adapter Studio's own: the same examples (Alpaca template, BOS + prompt + response + EOS, prompt
tokens masked from the loss), the same epoch orders and micro-batches, the loss of a step as the mean of its
micro-batch means. With N processes, each computes its share of a step's micro-batches and the adapter
gradients are summed across processes, so the steps are the same as on one process.

## Output and import

\`output/\` receives the PEFT adapter (\`adapter_config.json\`, \`adapter_model.safetensors\`) and
\`trainer_state.json\` (loss and learning rate per step in \`log_history\`). Bring it back with

    adapter-studio import-job --job THIS_FOLDER --model LOCAL_MODEL_FOLDER --out ADAPTER_FOLDER

or record it as a completed run of a workspace (adapter, loss per step), ready for chat and compare:

    adapter-studio import-job --job THIS_FOLDER --workspace WORKSPACE_FOLDER
`;
}

// ---------------------------------------------------------------------------------------------
// Import

/** One optimizer step of the job, in the store's MetricPoint field names. */
export interface JobMetricPoint {
  step: number;
  loss: number | null;
  valLoss: number | null;
  lr: number | null;
  tokensPerSec: number | null;
  elapsedMs: number | null;
}

export interface JobResult {
  job: JobFile;
  outputDir: string;
  metrics: JobMetricPoint[];
  completed: boolean;
  worldSize: number | null;
  device: string | null;
}

export function readJobFile(jobDir: string): JobFile {
  const file = path.join(jobDir, 'job.json');
  if (!fs.existsSync(jobDir)) throw new EngineError(`${jobDir}: no such folder`);
  if (!fs.statSync(jobDir).isDirectory()) throw new EngineError(`${jobDir}: not a folder (a job folder holds job.json, train.py and output/)`);
  if (!fs.existsSync(file)) throw new EngineError(`${jobDir}: not a job folder (no job.json)`);
  let job: Record<string, unknown>;
  try {
    job = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EngineError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (job.format !== JOB_FORMAT) throw new EngineError(`${file}: field "format" is ${JSON.stringify(job.format)}; expected "${JOB_FORMAT}"`);
  if (job.formatVersion !== JOB_FORMAT_VERSION) throw new EngineError(`${file}: field "formatVersion" is ${JSON.stringify(job.formatVersion)}; this version reads ${JOB_FORMAT_VERSION}`);
  return job as unknown as JobFile;
}

/**
 * Metrics per optimizer step from a trainer_state.json (ours or the HF Trainer's): entries with a
 * "loss" are training steps, "eval_loss" validation; the final summary entry is skipped.
 */
export function readTrainerState(file: string): { metrics: JobMetricPoint[]; raw: Record<string, unknown> } {
  if (!fs.existsSync(file)) throw new EngineError(`${file}: not found (did the job finish? train.py writes it at the end)`);
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EngineError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  const history = state.log_history;
  if (!Array.isArray(history)) throw new EngineError(`${file}: field "log_history" must be a list`);
  const byStep = new Map<number, JobMetricPoint>();
  const num = (entry: Record<string, unknown>, key: string, i: number): number | null => {
    const v = entry[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new EngineError(`${file}: log_history[${i}].${key} must be a finite number, got ${JSON.stringify(v)}`);
    return v;
  };
  history.forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null) throw new EngineError(`${file}: log_history[${i}] is not an object`);
    const e = entry as Record<string, unknown>;
    if (!('loss' in e) && !('eval_loss' in e)) return; // the run summary (train_runtime, train_loss, ...)
    const step = e.step;
    if (!Number.isInteger(step) || (step as number) < 0) throw new EngineError(`${file}: log_history[${i}].step must be a whole number, got ${JSON.stringify(step)}`);
    const point = byStep.get(step as number) ?? { step: step as number, loss: null, valLoss: null, lr: null, tokensPerSec: null, elapsedMs: null };
    point.loss = num(e, 'loss', i) ?? point.loss;
    point.valLoss = num(e, 'eval_loss', i) ?? point.valLoss;
    point.lr = num(e, 'learning_rate', i) ?? point.lr;
    point.tokensPerSec = num(e, 'tokens_per_sec', i) ?? point.tokensPerSec;
    const elapsed = num(e, 'elapsed_s', i);
    if (elapsed !== null) point.elapsedMs = elapsed * 1000;
    byStep.set(step as number, point);
  });
  return { metrics: [...byStep.values()].sort((a, b) => a.step - b.step), raw: state };
}

/** The job's output: metrics and where the PEFT adapter is. Loads nothing into tfjs. */
export function readJobResult(jobDir: string, outputDir = path.join(jobDir, 'output')): JobResult {
  const job = readJobFile(jobDir);
  for (const f of ['adapter_config.json', 'adapter_model.safetensors']) {
    if (!fs.existsSync(path.join(outputDir, f))) throw new EngineError(`${outputDir}: ${f} is missing (did the job finish? it writes the adapter at the end)`);
  }
  const { metrics, raw } = readTrainerState(path.join(outputDir, 'trainer_state.json'));
  const info = (raw.adapter_studio ?? {}) as Record<string, unknown>;
  if (info.job !== undefined && info.job !== job.jobId) {
    throw new EngineError(`${outputDir}: this output belongs to job ${info.job}, not to ${jobDir} (job ${job.jobId})`);
  }
  return {
    job,
    outputDir,
    metrics,
    completed: info.completed !== false,
    worldSize: typeof info.world_size === 'number' ? info.world_size : null,
    device: typeof info.device === 'string' ? info.device : null,
  };
}

export interface ImportJobResult extends JobResult {
  adapterDir: string;
  adapter: Adapter; // on `model`; the caller disposes it
}

/**
 * Load the job's PEFT adapter onto `model`, check it against the job, and save it in our format
 * in `adapterDir` (with the job's recipe, per-layer gates) plus metrics.json.
 */
export async function importJobResult(jobDir: string, model: LoadedModel, adapterDir: string, opts: { outputDir?: string } = {}): Promise<ImportJobResult> {
  const result = readJobResult(jobDir, opts.outputDir);
  const { job } = result;
  if (job.baseModel.fingerprint !== null && job.baseModel.fingerprint !== model.fingerprint) {
    throw new EngineError(`${jobDir}: the job was exported for the base model with fingerprint ${job.baseModel.fingerprint} (${job.baseModel.localPath}), not ${model.dir} (${model.fingerprint})`);
  }
  const adapter = loadAdapter(result.outputDir, model);
  try {
    if (adapter.spec.adapterLen !== job.peft.adapterLen || adapter.spec.layers.join() !== job.peft.layers.join()) {
      throw new EngineError(`${result.outputDir}: the adapter has K=${adapter.spec.adapterLen} on layers ${adapter.spec.layers.join(', ')}, but the job trained K=${job.peft.adapterLen} on layers ${job.peft.layers.join(', ')}`);
    }
    const tokenizerHash = (JSON.parse(fs.readFileSync(path.join(jobDir, 'data', 'check_ids.json'), 'utf8')) as { tokenizerSha256?: string }).tokenizerSha256 ?? null;
    const meta = {
      baseFingerprint: model.fingerprint,
      baseModelPath: model.dir,
      tokenizerHash,
      recipe: { ...job.recipe, gateMode: 'per-layer' as const },
      source: { kind: 'peft-job', jobId: job.jobId, jobDir: path.resolve(jobDir), worldSize: result.worldSize, device: result.device },
    };
    await saveAdapter(adapterDir, adapter, model.config, meta);
    fs.writeFileSync(path.join(adapterDir, 'metrics.json'), JSON.stringify({ jobId: job.jobId, metrics: result.metrics }, null, 2) + '\n');
    return { ...result, adapterDir, adapter };
  } catch (e) {
    disposeAdapter(adapter);
    throw e;
  }
}
