// CLI commands that drive the engine directly: info, train, generate, forward.

import * as tf from '@tensorflow/tfjs-core';
import { namedAdapterVariables } from '../engine/adapter.js';
import { loadFineTune } from '../engine/adapter-io.js';
import { type BackendReport, describeBackend, initBackend } from '../engine/backend.js';
import { describeFamily, parameterCount } from '../engine/config.js';
import { formatAlpacaPrompt, type Instruction } from '../engine/data.js';
import { formatIssue, readDatasetFile } from '../datasets/index.js';
import { EngineError } from '../engine/errors.js';
import { loadModel, memoryEstimate, readCheckedModelConfig } from '../engine/load.js';
import { fusedKernels } from '../engine/kernels.js';
import { crossEntropy, shiftedTargets } from '../engine/loss.js';
import { compositeSteps, forward } from '../engine/model.js';
import { METHODS, type Method, paperRecipe, peakLearningRate, PRESETS, type PresetName, presetFor, type Recipe } from '../engine/recipe.js';
import type { LoraTarget } from '../engine/lora.js';
import { Rng } from '../engine/rng.js';
import { generate, type SamplingOptions } from '../engine/sample.js';
import { SAMPLING_DEFAULTS, SAMPLING_PRESETS, type SamplingPreset } from '../../src-shared/api.js';
import { loadTokenizer } from '../engine/tokenizer.js';
import { train, type TrainEvent } from '../engine/train.js';
import { type Flags, flag, type IO, numberFlag, parseFlags, requireFlag } from './flags.js';
import { applyRecipeFlags, recipeFlagSpec } from './recipe-flags.js';

export async function startBackend(flags: Flags, io: IO): Promise<BackendReport> {
  const report = await initBackend((flag(flags, 'backend') ?? 'auto') as never);
  if (!flags.json) io.stderr(describeBackend(report) + '\n');
  return report;
}

export async function infoCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { model: 'string', json: 'boolean', backend: 'string' });
  const dir = requireFlag(flags, 'model');
  // The weight files' headers are read too: the figures below are what the files hold, not what config.json claims.
  const config = readCheckedModelConfig(dir);
  const backend = await startBackend(flags, io);
  const params = parameterCount(config);
  const memory = memoryEstimate(config, 1, Math.min(512, config.maxPositions));
  const paper = paperRecipe(config);
  const adapterParams = paper.adapterLayers * (paper.adapterLen * config.dim + config.nHeads);
  // Where the backend has fused kernels, the steps of this family that still run as composite ops.
  const composite = fusedKernels() ? compositeSteps(config) : [];
  const info = { model: dir, config, parameters: params, memory, paperAdapterParameters: adapterParams, backend: backend.name, compositeSteps: composite };
  if (flags.json) io.stdout(JSON.stringify(info) + '\n');
  else {
    io.stdout(
      [
        `model: ${dir}`,
        `family: ${describeFamily(config)}${composite.length ? `; on ${backend.name} these run as composite ops, not fused kernels: ${composite.join(', ')}` : ''}`,
        `layers ${config.nLayers}, dim ${config.dim}, heads ${config.nHeads} (kv ${config.nKvHeads}), ffn ${config.ffnDim}, vocab ${config.vocabSize}`,
        `parameters: ${(params / 1e6).toFixed(2)}M (${(memory.weightsBytes / 2 ** 20).toFixed(1)} MiB as float32)`,
        `training activations at batch 1 x ${Math.min(512, config.maxPositions)} tokens: ~${(memory.activationBytes / 2 ** 20).toFixed(1)} MiB`,
        `paper adapter (K=${paper.adapterLen}, L=${paper.adapterLayers}): ${adapterParams} trainable parameters`,
      ].join('\n') + '\n',
    );
  }
  return 0;
}


/**
 * A dataset file as the importer reads it (JSON, JSONL, CSV, TSV, parquet; Alpaca, chat and ScienceQA records),
 * so a bad record is reported by file, line or record, and field, as `dataset import` reports it.
 */
export async function readTrainingData(file: string): Promise<Instruction[]> {
  const { report, examples } = await readDatasetFile(file);
  const problems = report.fatal ? [report.fatal] : report.issues;
  if (problems.length > 0) {
    throw new EngineError(`${formatIssue(problems[0]!)}${problems.length > 1 ? ` (and ${problems.length - 1} more invalid records; \`adapter-studio dataset import\` lists them all)` : ''}`);
  }
  if (examples.length === 0) throw new EngineError(`${file}: no examples`);
  return examples.map(({ instruction, input, output }) => ({ instruction, input, output }));
}

export async function trainCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { model: 'string', data: 'string', out: 'string', method: 'string', preset: 'string', 'lora-targets': 'string', resume: 'boolean', json: 'boolean', backend: 'string', ...recipeFlagSpec() });
  const modelDir = requireFlag(flags, 'model');
  const dataFile = requireFlag(flags, 'data');
  const outDir = requireFlag(flags, 'out');
  const method = flag(flags, 'method') as Method | undefined;
  if (method !== undefined && !METHODS.includes(method)) throw new EngineError(`--method must be one of ${METHODS.join(', ')}, got "${method}"`);
  const preset = flag(flags, 'preset') as PresetName | undefined;
  if (preset !== undefined && !(preset in PRESETS)) throw new EngineError(`unknown --preset "${preset}"; available: ${Object.keys(PRESETS).join(', ')}`);
  const data = await readTrainingData(dataFile); // fail on bad data before the slow model load
  await startBackend(flags, io);
  const model = loadModel(modelDir);
  const tokenizer = await loadTokenizer(modelDir, { bosId: model.config.bosId, eosIds: model.config.eosIds });
  // A preset names the whole recipe; --method alone starts from that method's own preset.
  const recipe: Recipe = preset ? PRESETS[preset](model.config) : presetFor(method ?? 'adapter', model.config);
  if (method) recipe.method = method;
  const targets = flag(flags, 'lora-targets');
  if (targets !== undefined) recipe.loraTargets = targets.split(',').map((t) => t.trim().replace(/_proj$/, '')) as LoraTarget[];
  applyRecipeFlags(flags, recipe);

  const controller = new AbortController();
  const onSignal = () => {
    if (!flags.json) io.stderr('\nstopping: writing a checkpoint to resume from (Ctrl-C again to quit now)\n');
    process.off('SIGINT', onSignal);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  try {
    const result = await train({
      model,
      tokenizer,
      data,
      recipe,
      outDir,
      resume: Boolean(flags.resume),
      signal: controller.signal,
      onAbort: 'pause',
      onEvent: (e) => io.stdout(flags.json ? JSON.stringify(e) + '\n' : formatEvent(e, recipe)),
    });
    return result.status === 'completed' ? 0 : 130;
  } finally {
    process.off('SIGINT', onSignal);
  }
}

function formatEvent(e: TrainEvent, recipe: Recipe): string {
  switch (e.type) {
    case 'start':
      return `${(e.notes ?? []).map((n) => `warning: ${n}\n`).join('')}${recipe.method}: training ${e.trainableParams} parameters on ${e.examples} examples: ${e.totalSteps} steps (${e.stepsPerEpoch}/epoch), peak lr ${peakLearningRate(recipe).toExponential(3)}${e.resumedFrom !== null ? `, resumed at step ${e.resumedFrom}` : ''}\n`;
    case 'step':
      return `step ${e.step}/${e.totalSteps}  epoch ${e.epoch.toFixed(2)}  loss ${e.loss.toFixed(4)}  lr ${e.lr.toExponential(2)}  ${e.tokensPerSec.toFixed(0)} tok/s  eta ${Math.round(e.etaSec)}s  rss ${(e.rssBytes / 2 ** 20).toFixed(0)} MiB\n`;
    case 'checkpoint':
      return `checkpoint: ${e.path}\n`;
    case 'eval':
      return `step ${e.step}: validation loss ${e.valLoss.toFixed(4)}${e.best ? ' (best so far: these weights are kept)' : ''}\n`;
    case 'done':
      return e.status === 'completed' ? `done: adapter saved to ${e.adapterDir}\n` : `${e.status} at step ${e.step}; continue with --resume\n`;
  }
}

export function samplingFromFlags(flags: Flags): SamplingOptions {
  const stop = flags.stop;
  // The app's presets (src-shared/api.ts), so the CLI answers as Chat does; single flags override the preset.
  const name = flag(flags, 'sampling') ?? 'default';
  if (!Object.hasOwn(SAMPLING_PRESETS, name)) throw new EngineError(`--sampling must be one of ${Object.keys(SAMPLING_PRESETS).join(', ')}, got "${name}"`);
  const preset = SAMPLING_PRESETS[name as SamplingPreset];
  return {
    temperature: numberFlag(flags, 'temperature', 'number') ?? preset.temperature,
    topK: numberFlag(flags, 'top-k', 'int') ?? preset.topK,
    topP: numberFlag(flags, 'top-p', 'number') ?? preset.topP,
    repetitionPenalty: numberFlag(flags, 'repetition-penalty', 'number') ?? preset.repetitionPenalty,
    maxNewTokens: numberFlag(flags, 'max-new-tokens', 'int') ?? SAMPLING_DEFAULTS.maxNewTokens,
    stop: Array.isArray(stop) ? (stop as string[]) : typeof stop === 'string' ? [stop] : [],
  };
}

export async function generateCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(
    args,
    { model: 'string', adapter: 'string', prompt: 'string', input: 'string', template: 'string', sampling: 'string', temperature: 'string', 'top-k': 'string', 'top-p': 'string', 'repetition-penalty': 'string', 'max-new-tokens': 'string', stop: 'string', seed: 'string', backend: 'string', json: 'boolean', 'gate-mode': 'string' },
    ['stop'],
  );
  const modelDir = requireFlag(flags, 'model');
  const prompt = requireFlag(flags, 'prompt');
  const adapterDir = flag(flags, 'adapter');
  const template = flag(flags, 'template') ?? (adapterDir ? 'alpaca' : 'none');
  if (template !== 'alpaca' && template !== 'none') throw new EngineError(`--template must be "alpaca" or "none", got "${template}"`);
  const sampling = samplingFromFlags(flags);
  await startBackend(flags, io);
  const model = loadModel(modelDir);
  const tokenizer = await loadTokenizer(modelDir, { bosId: model.config.bosId, eosIds: model.config.eosIds });
  const fineTune = adapterDir ? loadFineTune(adapterDir, model, { gateMode: flag(flags, 'gate-mode') as never }) : null;
  const text = template === 'alpaca' ? formatAlpacaPrompt(prompt, flag(flags, 'input') ?? '') : prompt;
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  try {
    const result = await generate({
      model,
      adapter: fineTune?.kind === 'adapter' ? fineTune.adapter : null,
      lora: fineTune?.kind === 'lora' ? fineTune.lora : null,
      promptIds: tokenizer.encode(text, { bos: true }),
      sampling,
      rng: new Rng(numberFlag(flags, 'seed', 'int') ?? 0),
      eosIds: model.config.eosIds,
      tokenizer,
      signal: controller.signal,
      onText: flags.json ? undefined : (delta) => io.stdout(delta),
    });
    // tokens_per_s: the decode's speed (after the prompt's prefill), the figure runs are compared by.
    if (flags.json) io.stdout(JSON.stringify({ ...result, tokens_per_s: result.decodeTokensPerSec }) + '\n');
    else io.stdout(`\n`), io.stderr(`[${result.ids.length} tokens, ${result.tokensPerSec.toFixed(1)} tok/s overall, ${result.decodeTokensPerSec?.toFixed(1) ?? '—'} tok/s decoding, ${result.finishReason}]\n`);
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
  }
}

function parseIdRows(text: string, what: string): number[][] {
  const rows = text.split(';').map((row, r) =>
    row.split(',').map((s, i) => {
      const v = Number(s.trim());
      if (s.trim() === '' || !Number.isInteger(v)) throw new EngineError(`--${what}: row ${r + 1}, item ${i + 1} ("${s}") is not an integer`);
      return v;
    }),
  );
  if (rows.some((r) => r.length !== rows[0].length)) throw new EngineError(`--${what}: every row (separated by ";") must have the same length`);
  return rows;
}

/** Logits (and, with labels, loss and adapter gradients) for checking against a reference. */
export async function forwardCommand(args: string[], io: IO): Promise<number> {
  const flags = parseFlags(args, { model: 'string', adapter: 'string', 'input-ids': 'string', labels: 'string', json: 'boolean', backend: 'string', 'gate-mode': 'string' });
  const modelDir = requireFlag(flags, 'model');
  const ids = parseIdRows(requireFlag(flags, 'input-ids'), 'input-ids');
  const labels = flag(flags, 'labels') ? parseIdRows(flag(flags, 'labels')!, 'labels') : null;
  if (labels && (labels.length !== ids.length || labels[0].length !== ids[0].length)) {
    throw new EngineError('--labels must have the same shape as --input-ids');
  }
  const backend = await startBackend({ ...flags, json: true }, io);
  const model = loadModel(modelDir);
  for (const id of ids.flat()) {
    if (id < 0 || id >= model.config.vocabSize) throw new EngineError(`--input-ids: token ${id} is outside the vocabulary (0..${model.config.vocabSize - 1})`);
  }
  const adapterDir = flag(flags, 'adapter');
  const fineTune = adapterDir ? loadFineTune(adapterDir, model, { gateMode: flag(flags, 'gate-mode') as never }) : null;
  const adapter = fineTune?.kind === 'adapter' ? fineTune.adapter : null;
  if (fineTune?.kind === 'lora') throw new EngineError('forward checks LLaMA-Adapter folders; this folder holds a LoRA');
  const [B, T] = [ids.length, ids[0].length];
  const input = tf.tensor2d(ids, [B, T], 'int32');
  const out: Record<string, unknown> = { backend: backend.name, shape: [B, T, model.config.vocabSize] };
  const logits = forward(model, input, { adapter });
  out.logits = (await logits.array()) as number[][][];
  if (labels) {
    const targets = shiftedTargets(Int32Array.from(labels.flat()), B, T);
    if (adapter) {
      const named = namedAdapterVariables(adapter);
      const { value, grads } = tf.variableGrads(() => crossEntropy(forward(model, input, { adapter }), targets), named.map(([, v]) => v));
      out.loss = (await value.data())[0];
      out.grads = Object.fromEntries(await Promise.all(named.map(async ([key, v]) => [key, await grads[v.name].array()])));
    } else {
      out.loss = (await crossEntropy(logits, targets).data())[0];
    }
  }
  io.stdout(JSON.stringify(out) + '\n');
  return 0;
}
