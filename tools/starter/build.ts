// Builds the starter workspace in assets/starter/ from Debian's WordNet package, with nothing
// downloaded: the text (corpus, held-out text, demo instructions), a byte-level BPE tokenizer, a
// small LLaMA pre-trained from scratch by the engine, the before/after adapter demo, and the model
// card. Run through tools/build-starter.mjs (`npm run build:starter`), which bundles this file.
//
//   node tools/build-starter.mjs [--stage all|data|tokenizer|pretrain|demo|card] [--steps N]
//                                [--backend native|wasm|cpu] [--wordnet DIR] [--out DIR] [--work DIR]
//
// Stages read what the earlier ones wrote (scratch files under dist/starter-build/), so a stage can
// be rerun alone. Everything is seeded: the same WordNet and settings give the same files (up to
// floating-point differences between BLAS builds in the trained weights).

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, initBackend, type BackendChoice } from '../../src-main/engine/backend.js';
import { parameterCount, PLAIN_LLAMA, type LlamaConfig } from '../../src-main/engine/config.js';
import { formatAlpacaPrompt, readInstructionFile } from '../../src-main/engine/data.js';
import { formatDemoTable, runDemo } from '../../src-main/engine/demo.js';
import { starterRecipe } from '../../src-main/engine/recipe.js';
import {
  DEFAULT_PRETRAIN,
  evaluateLoss,
  packDocuments,
  pretrain,
  tokenizeDocuments,
  writeModelFolder,
  type PretrainSettings,
} from '../../src-main/engine/full-train.js';
import { loadModel } from '../../src-main/engine/load.js';
import { disposeModel } from '../../src-main/engine/model.js';
import { writeAtomically } from '../../src-main/engine/safetensors.js';
import { heldOutLoss, STARTER } from '../../src-main/engine/starter.js';
import { loadTokenizer } from '../../src-main/engine/tokenizer.js';
import { buildStarterText, DEMO_TASKS, type DemoExample } from './corpus.js';
import { readWordNet } from './wordnet.js';
import { renderModelCard } from './model-card.js';

const ROOT = process.cwd();
// Set from --out / --work in main(): where the starter files go (assets/starter by default; a
// scratch folder lets a rebuild run without touching the committed files until it is done).
let WORK = path.join(ROOT, 'dist', 'starter-build');
let OUT = path.join(ROOT, STARTER.dir);

/** Where a starter file (a STARTER path, relative to the package root) is written in this build. */
function outPath(starterFile: string): string {
  return path.join(OUT, path.relative(STARTER.dir, starterFile));
}
const modelDir = () => outPath(STARTER.modelDir);
const reportFile = () => outPath(STARTER.report);

const SEED = 20240601;
const VOCAB_SIZE = 4096;

/**
 * The starter model, sized from step times measured on a shared 2-core EPYC (native backend, one
 * BLAS thread, 16 x 128 tokens per step): dim 256 with 6 layers took ~3 s a step, with 4 layers
 * ~1.3-2 s, and with the fused native kernels ~0.45-1.3 s: 4 layers reach ~3500 steps within the hour.
 * Multi-head attention (no GQA): tfjs's Tile gradient, which GQA's key/value repetition needs,
 * cost a third of the step. Tied embeddings save 1M parameters; 128 positions hold an Alpaca
 * prompt and its answer.
 */
function starterConfig(vocabSize: number): LlamaConfig {
  return {
    ...PLAIN_LLAMA,
    vocabSize,
    dim: 256,
    ffnDim: 688, // ~8/3 * dim, rounded to a multiple of 16 (LLaMA's SwiGLU sizing)
    nLayers: 4,
    nHeads: 8,
    nKvHeads: 8,
    headDim: 32,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositions: 128,
    tieEmbeddings: true,
    bosId: 1, // <s>
    eosIds: [2], // </s>
  };
}

const PRETRAIN: PretrainSettings = {
  ...DEFAULT_PRETRAIN,
  seqLen: 128,
  batchSize: 16,
  epochs: 1.6,
  lr: 2e-3,
  minLr: 2e-4,
  warmupSteps: 100,
  seed: SEED,
};

const TEXT_OPTIONS = {
  seed: SEED,
  minTagCount: 1,
  coreSize: 2000,
  coreCopies: 25,
  heldOutDocuments: 250,
  testPerTask: 30,
  trainPerTask: { define: 800, synonym: 700, hypernym: 500, antonym: 200, sentence: 500 },
};

// ---------------------------------------------------------------------------------------------

type Report = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function readReport(): Report {
  return fs.existsSync(reportFile()) ? JSON.parse(fs.readFileSync(reportFile(), 'utf8')) : {};
}

function updateReport(section: string, value: unknown): void {
  const report = readReport();
  report[section] = value;
  writeText(reportFile(), JSON.stringify(report, null, 2) + '\n');
}

function writeText(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const bytes = Buffer.from(text, 'utf8');
  writeAtomically(file, (fd) => {
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
  });
}

function log(message: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

function debianPackageVersion(pkg: string): string | null {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Stages

function stageData(wordnetDir: string): void {
  log(`reading WordNet from ${wordnetDir}`);
  const wn = readWordNet(wordnetDir);
  const text = buildStarterText(wn, TEXT_OPTIONS);
  fs.mkdirSync(WORK, { recursive: true });
  writeText(path.join(WORK, 'corpus.txt'), text.documents.join('\n') + '\n');
  writeText(outPath(STARTER.heldOut), text.heldOut.join('\n') + '\n');
  writeText(outPath(STARTER.demoTrain), JSON.stringify(text.train, null, 1) + '\n');
  writeText(outPath(STARTER.demoTest), JSON.stringify(text.test, null, 1) + '\n');
  const licence = path.join(wordnetDir, '..', 'doc', 'wordnet-base', 'copyright');
  const perTask = (list: DemoExample[]) => Object.fromEntries(DEMO_TASKS.map((t) => [t, list.filter((e) => e.task === t).length]));
  updateReport('data', {
    source: 'Princeton WordNet 3.0 (Debian package wordnet-base)',
    debianVersion: debianPackageVersion('wordnet-base'),
    licence: 'WordNet 3.0 licence (permissive, BSD-like); text in LICENSE-WordNet.txt',
    synsets: wn.synsets.size,
    minTagCount: TEXT_OPTIONS.minTagCount,
    keptSynsets: text.keptSynsets,
    coreSize: TEXT_OPTIONS.coreSize,
    coreCopies: TEXT_OPTIONS.coreCopies,
    corpusDocuments: text.documents.length,
    corpusCharacters: text.documents.reduce((n, d) => n + d.length + 1, 0),
    heldOutDocuments: text.heldOut.length,
    demoTrain: perTask(text.train),
    demoTest: perTask(text.test),
  });
  // The WordNet licence asks for its notice on every copy: beside the data and inside the model folder.
  if (!fs.existsSync(licence)) throw new Error(`${licence} not found: the WordNet licence text must ship with the starter`);
  fs.copyFileSync(licence, outPath(STARTER.licence));
  fs.mkdirSync(modelDir(), { recursive: true });
  fs.copyFileSync(licence, path.join(modelDir(), 'LICENSE-WordNet.txt'));
  log(`corpus: ${text.documents.length} documents; held out ${text.heldOut.length}; demo ${text.train.length} train / ${text.test.length} test`);
}

async function stageTokenizer(): Promise<void> {
  const corpus = path.join(WORK, 'corpus.txt');
  // The app's prompts are Alpaca templates: repeating them in the tokenizer's training text gives
  // their words single tokens (a 57-token prompt becomes ~35).
  const template = [formatAlpacaPrompt('{instruction}'), formatAlpacaPrompt('{instruction}', '{input}')].join('\n');
  const templates = path.join(WORK, 'templates.txt');
  writeText(templates, Array(100).fill(template).join('\n') + '\n');
  log('training the byte-level BPE tokenizer (Python tokenizers)');
  execFileSync('python3', [path.join(ROOT, 'tools', 'starter', 'train_tokenizer.py'), 'train', corpus, modelDir(), String(VOCAB_SIZE), templates], { stdio: 'inherit' });

  // Parity: the engine's JS tokenizer must give the Python library's ids.
  const heldOut = fs.readFileSync(outPath(STARTER.heldOut), 'utf8').split('\n').filter(Boolean);
  const test = readInstructionFile(outPath(STARTER.demoTest));
  const texts = [
    ...heldOut.slice(0, 40),
    ...test.slice(0, 40).map((e) => formatAlpacaPrompt(e.instruction, e.input) + e.output),
    'Naïve café, Zürich — 10 € (approx.) 🦙\n\ttabs  and  spaces ',
    '',
  ];
  const textsFile = path.join(WORK, 'parity-texts.json');
  writeText(textsFile, JSON.stringify(texts));
  const pythonIds = JSON.parse(
    execFileSync('python3', [path.join(ROOT, 'tools', 'starter', 'train_tokenizer.py'), 'encode', path.join(modelDir(), 'tokenizer.json'), textsFile], { encoding: 'utf8', maxBuffer: 1 << 26 }),
  ).ids as number[][];
  const tok = await loadTokenizer(modelDir());
  texts.forEach((t, i) => {
    const js = tok.encode(t, { bos: false });
    if (JSON.stringify(js) !== JSON.stringify(pythonIds[i])) {
      throw new Error(`tokenizer parity failed on text ${i} (${JSON.stringify(t.slice(0, 60))}): JS ${JSON.stringify(js.slice(0, 20))} vs Python ${JSON.stringify(pythonIds[i].slice(0, 20))}`);
    }
    if (tok.decode(js) !== t) throw new Error(`tokenizer round trip failed on text ${i}`);
  });
  writeText(outPath(STARTER.tokenizerCheck), JSON.stringify({ texts, ids: pythonIds }) + '\n');
  const version = execFileSync('python3', ['-c', 'import tokenizers; print(tokenizers.__version__)'], { encoding: 'utf8' }).trim();
  const corpusTokens = tokenizeDocuments(tok, fs.readFileSync(corpus, 'utf8').split('\n').filter(Boolean)).reduce((n, d) => n + d.length, 0);
  updateReport('tokenizer', { kind: 'byte-level BPE', vocabSize: tok.vocabSize, trainedWith: `tokenizers ${version} (Python)`, parityTexts: texts.length, corpusTokens });
  log(`tokenizer: ${tok.vocabSize} tokens; ids match Python on ${texts.length} texts; corpus = ${corpusTokens} tokens`);
}

async function stagePretrain(backend: BackendChoice, steps: number | undefined): Promise<void> {
  const report = describeBackend(await initBackend(backend));
  log(report);
  const tok = await loadTokenizer(modelDir(), { bosId: 1, eosIds: [2] });
  const config = starterConfig(tok.vocabSize);
  const docs = tokenizeDocuments(tok, fs.readFileSync(path.join(WORK, 'corpus.txt'), 'utf8').split('\n').filter(Boolean));
  const { windows, count } = packDocuments(docs, PRETRAIN.seqLen);
  log(`${count} windows of ${PRETRAIN.seqLen} tokens; model ${parameterCount(config)} parameters`);
  const started = Date.now();
  const cpuBefore = process.cpuUsage(); // the machine is shared: CPU time says more than wall time
  const result = await pretrain({
    config,
    windows,
    settings: PRETRAIN,
    maxSteps: steps,
    onEvent: (e) => {
      if (e.type === 'start') log(`pre-training: ${e.totalSteps} steps (${e.stepsPerEpoch} per epoch)`);
      else if (e.step % 10 === 0 || e.step === e.totalSteps) {
        log(`step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} |g| ${e.gradNorm.toFixed(2)} ${e.stepSeconds.toFixed(2)} s/step eta ${(e.etaSec / 60).toFixed(1)} min`);
      }
    },
  });
  const seconds = (Date.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  await writeModelFolder(modelDir(), result.model, {
    dtype: 'F16',
    generation: { max_new_tokens: 48, do_sample: false },
    metadata: { source: 'adapter-studio starter model, trained from scratch on WordNet 3.0 text' },
  });
  disposeModel(result.model);
  writeText(path.join(WORK, 'pretrain-losses.json'), JSON.stringify(result.losses) + '\n');

  // The held-out loss of the folder as written (float16 weights), read back through load.ts.
  const loaded = loadModel(modelDir());
  const heldOut = await heldOutLoss(loaded, tok, fs.readFileSync(outPath(STARTER.heldOut), 'utf8'));
  const trainSample = await evaluateLoss(loaded, windows.subarray(0, Math.min(count, 64) * PRETRAIN.seqLen), PRETRAIN.seqLen);
  disposeModel(loaded);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
  updateReport('pretraining', {
    backend: report,
    config: { dim: config.dim, layers: config.nLayers, heads: config.nHeads, kvHeads: config.nKvHeads, ffn: config.ffnDim, vocab: config.vocabSize, positions: config.maxPositions, tiedEmbeddings: config.tieEmbeddings },
    parameters: parameterCount(config),
    settings: PRETRAIN,
    windows: count,
    steps: result.steps,
    tokensSeen: result.steps * PRETRAIN.batchSize * PRETRAIN.seqLen,
    seconds: Math.round(seconds),
    cpuSeconds: Math.round(cpuSeconds),
    blasThreads: process.env.OPENBLAS_NUM_THREADS ?? 'default',
    firstLoss: result.losses[0],
    finalLossMean50: mean(result.losses.slice(-50)),
    trainSampleLoss: trainSample,
    heldOutLoss: heldOut.loss,
    heldOutTokens: heldOut.tokens,
    modelBytes: fs.statSync(path.join(modelDir(), 'model.safetensors')).size,
  });
  log(`pre-training done in ${(seconds / 60).toFixed(1)} min; held-out loss ${heldOut.loss.toFixed(4)} over ${heldOut.tokens} tokens`);
}

async function stageDemo(backend: BackendChoice): Promise<void> {
  log(describeBackend(await initBackend(backend)));
  const model = loadModel(modelDir());
  const tok = await loadTokenizer(modelDir(), { bosId: model.config.bosId, eosIds: model.config.eosIds });
  const trainSet = readInstructionFile(outPath(STARTER.demoTrain));
  const test = JSON.parse(fs.readFileSync(outPath(STARTER.demoTest), 'utf8')) as DemoExample[];
  const outDir = path.join(WORK, 'demo-adapter');
  fs.rmSync(outDir, { recursive: true, force: true });
  const result = await runDemo({
    model,
    tokenizer: tok,
    train: trainSet,
    test,
    outDir,
    onTrainEvent: (e) => {
      if (e.type === 'start') log(`adapter training: ${e.totalSteps} steps, ${e.trainableParams} trainable parameters, lr ${e.lr}`);
      if (e.type === 'step' && (e.step % 20 === 0 || e.step === e.totalSteps)) {
        log(`adapter step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} ${Math.round(e.tokensPerSec)} tok/s eta ${(e.etaSec / 60).toFixed(1)} min`);
      }
    },
  });
  console.log(formatDemoTable(result, 12));
  writeText(outPath(STARTER.demoResults), JSON.stringify(result.rows, null, 1) + '\n');
  const summary = (r: typeof result.base) => ({ exactMatch: r.exactMatch, rougeL: r.rougeL, byTask: r.byTask, seconds: Math.round(r.seconds) });
  updateReport('demo', {
    recipe: result.recipe,
    trainExamples: trainSet.length,
    testExamples: test.length,
    trainSteps: result.training.steps,
    trainSeconds: Math.round(result.trainSeconds),
    firstLoss: result.training.losses[0],
    finalLossMean20: result.training.losses.slice(-20).reduce((a, b) => a + b, 0) / Math.min(20, result.training.losses.length),
    base: summary(result.base),
    adapter: summary(result.adapted),
  });
  disposeModel(model);
  if (tf.memory().numTensors > 0) log(`note: ${tf.memory().numTensors} tensors still allocated at exit`);
}

const FILE_ROLES: Record<string, string> = {
  'model/config.json': 'HF LLaMA config (transformers loads the folder as is)',
  'model/model.safetensors': 'weights, float16, HF names and [out, in] layout',
  'model/tokenizer.json': 'byte-level BPE tokenizer',
  'model/tokenizer_config.json': 'special tokens for transformers',
  'model/special_tokens_map.json': 'special tokens for transformers',
  'model/generation_config.json': 'BOS/EOS ids, greedy decoding',
  'model/LICENSE-WordNet.txt': 'WordNet 3.0 licence',
  'demo-train.json': 'demo instructions to train the adapter on',
  'demo-test.json': 'held-out demo questions with known answers',
  'demo-results.json': "the build's answers to demo-test.json, before and after the adapter",
  'heldout.txt': 'held-out text for the loss check, one document per line',
  'tokenizer-check.json': "texts with the Python library's token ids (parity check)",
  'build-report.json': 'every number the build measured',
  'LICENSE-WordNet.txt': 'WordNet 3.0 licence',
};

function stageCard(): void {
  const files = Object.entries(FILE_ROLES)
    .filter(([file]) => fs.existsSync(path.join(OUT, file)))
    .map(([file, what]) => ({ path: file, bytes: fs.statSync(path.join(OUT, file)).size, what }));
  const resultsFile = outPath(STARTER.demoResults);
  const rows = fs.existsSync(resultsFile) ? (JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as { task: string }[]) : [];
  const samples = DEMO_TASKS.flatMap((task) => rows.filter((row) => row.task === task).slice(0, 2));
  const cpus = os.cpus();
  const machine = `${cpus.length} x ${cpus[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.versions.node}`;
  writeText(outPath(STARTER.modelCard), renderModelCard(readReport(), files, samples, machine));
  log(`wrote ${path.relative(ROOT, outPath(STARTER.modelCard))}`);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      stage: { type: 'string', default: 'all' },
      steps: { type: 'string' },
      backend: { type: 'string', default: 'native' },
      wordnet: { type: 'string', default: '/usr/share/wordnet' },
      out: { type: 'string', default: STARTER.dir },
      work: { type: 'string', default: path.join('dist', 'starter-build') },
    },
  });
  OUT = path.resolve(ROOT, values.out!);
  WORK = path.resolve(ROOT, values.work!);
  const stages = values.stage === 'all' ? ['data', 'tokenizer', 'pretrain', 'demo', 'card'] : values.stage!.split(',');
  const backend = values.backend as BackendChoice;
  const steps = values.steps === undefined ? undefined : Number(values.steps);
  if (steps !== undefined && !(Number.isInteger(steps) && steps > 0)) throw new Error(`--steps must be a positive integer, got ${values.steps}`);
  fs.mkdirSync(OUT, { recursive: true });
  for (const stage of stages) {
    const t0 = Date.now();
    if (stage === 'data') stageData(values.wordnet!);
    else if (stage === 'tokenizer') await stageTokenizer();
    else if (stage === 'pretrain') await stagePretrain(backend, steps);
    else if (stage === 'demo') await stageDemo(backend);
    else if (stage === 'card') stageCard();
    else throw new Error(`unknown stage "${stage}"; stages: data, tokenizer, pretrain, demo, card (comma-separated) or all`);
    log(`stage ${stage} took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? `build-starter failed: ${e.message}` : e);
  process.exit(1);
});
