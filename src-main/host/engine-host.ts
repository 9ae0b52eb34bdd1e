// The engine host: a process of its own that runs training and generation, so the UI's process (the
// Electron main process or the serve-mode HTTP server) never blocks on tensor work and survives an engine
// crash or out-of-memory. Started with child_process.fork (serve mode) or Electron's utilityProcess.fork
// (desktop app); `connectToParent` hides the difference. Bundled to dist/engine-host.mjs.
//
// One process either trains one run (then exits), serves inference requests, keeping recently used
// models and adapters loaded, or (`--role=datasets`) does one dataset job (dataset-host.ts).

import { disposeAdapter } from '../engine/adapter.js';
import { type FineTune, loadFineTune } from '../engine/adapter-io.js';
import { disposeLora } from '../engine/lora.js';
import { type BackendChoice, initBackend } from '../engine/backend.js';
import { parameterCount } from '../engine/config.js';
import { type Instruction, tokenizeExample } from '../engine/data.js';
import { CancelledError, EngineError } from '../engine/errors.js';
import { type LoadedModel, loadModel, memoryEstimate, readModelConfig } from '../engine/load.js';
import { disposeModel } from '../engine/model.js';
import { Rng } from '../engine/rng.js';
import { referenceNll } from '../engine/eval.js';
import { DEFAULT_SAMPLING, generate } from '../engine/sample.js';
import { loadTokenizer, type TextTokenizer } from '../engine/tokenizer.js';
import { throwIfAborted } from '../engine/cancel.js';
import { latestCheckpoint, train } from '../engine/train.js';
import { convertJobOutput } from '../interop/job-convert.js';
import { connectToParent, type ParentPort } from './channel.js';
import { DatasetHost } from './dataset-host.js';
import { renderPrompt, TURN_STOPS } from './prompt.js';
import { checkVisionTower, type ImagePromptSpec } from '../engine/image-prompt.js';
import { DEFAULT_VISION_RECIPE } from '../engine/recipe.js';
import { imageFeatures } from '../engine/vision-features.js';
import { type ClipImageEncoder, loadImageEncoder } from '../engine/vision/encoder.js';
import { visionTowerFacts } from '../engine/vision/clip-vision.js';
import type { EvalAnswer, FromHost, GenerateResultMessage, JobId, ModelFacts, ResultOf, ToHost, VisionInput } from './protocol.js';

interface Loaded {
  model: LoadedModel;
  tokenizer: TextTokenizer;
}

/** Models kept loaded for inference; a 7B model is ~27 GB as float32, so few. */
const MAX_LOADED_MODELS = 2;
const MAX_LOADED_ADAPTERS = 6;

class EngineHost {
  private ready: Promise<void> | null = null;
  private readonly models = new Map<string, Promise<Loaded>>();
  /** Adapters and LoRAs loaded onto a model, by (model folder, fine-tune folder). */
  private readonly adapters = new Map<string, { modelDir: string; fineTune: FineTune }>();
  private readonly aborts = new Map<JobId, { controller: AbortController; mode: 'pause' | 'cancel' }>();
  /** Jobs that use a model right now: it is not evicted under them. */
  private readonly inUse = new Map<string, number>();
  /** Vision towers, by folder: small next to the language model (ViT-L/14 is 1.2 GB), kept while the host lives. */
  private readonly towers = new Map<string, ClipImageEncoder>();

  constructor(private readonly port: ParentPort) {}

  handle(msg: ToHost): void {
    switch (msg.kind) {
      case 'init':
        this.ready = this.init(msg.backend, msg.threads);
        return;
      case 'abort': {
        const job = this.aborts.get(msg.job);
        if (job) {
          job.mode = msg.mode;
          job.controller.abort();
        }
        return;
      }
      case 'shutdown':
        this.shutdown();
        return;
      case 'inspect':
        this.run(msg.job, () => this.inspect(msg.modelDir));
        return;
      case 'inspectVision':
        this.run(msg.job, async () => visionTowerFacts(this.tower(msg.towerDir).tower));
        return;
      case 'train':
        this.run(msg.job, () => this.train(msg, this.abortable(msg.job, 'pause')));
        return;
      case 'generate':
        this.run(msg.job, () => this.generate(msg, this.abortable(msg.job, 'cancel')));
        return;
      case 'evaluate':
        this.run(msg.job, () => this.evaluate(msg, this.abortable(msg.job, 'cancel')));
        return;
      case 'tokenLengths':
        this.run(msg.job, () => this.tokenLengths(msg.modelDir, msg.examples));
        return;
      case 'countTokens':
        this.run(msg.job, async () => (await loadTokenizerOnly(msg.modelDir)).encode(msg.text, { bos: true }).length);
        return;
      case 'importJob': {
        const { modelDir, jobDir, outputDir, adapterDir } = msg;
        // Through the model cache: the base model is likely the one chat uses next, with this adapter.
        this.run(msg.job, () => this.withModel(modelDir, ({ model }) => convertJobOutput(model, { modelDir, jobDir, outputDir, adapterDir })));
        return;
      }
    }
  }

  /** Registered when the request arrives, so that an abort sent right after it (before start-up ends) is not lost. */
  private abortable(job: JobId, mode: 'pause' | 'cancel'): { controller: AbortController; mode: 'pause' | 'cancel' } {
    const entry = { controller: new AbortController(), mode };
    this.aborts.set(job, entry);
    return entry;
  }

  private send(msg: FromHost): void {
    this.port.send(msg);
  }

  private async init(backend: BackendChoice, threads: number): Promise<void> {
    try {
      const report = await initBackend(backend);
      if (report.name === 'native' && threads > 0) {
        const { loadNativeAddon } = await import('../engine/backends/native.js');
        loadNativeAddon().setThreads(threads);
      }
      this.send({ kind: 'ready', backend: { name: report.name, skipped: report.skipped } });
    } catch (e) {
      this.send({ kind: 'initFailed', message: (e as Error).message });
      throw e;
    }
  }

  /** Runs one job after start-up and answers it with exactly one result or error. */
  private run<T>(job: JobId, work: () => Promise<T>): void {
    const started = this.ready ?? Promise.reject(new Error('the engine host got a request before init'));
    started
      .then(work)
      .then(
        (value) => this.send({ kind: 'result', job, value }),
        (e: unknown) => {
          const err = e as Error;
          const user = err instanceof EngineError || err instanceof CancelledError;
          this.send({ kind: 'error', job, message: user ? err.message : `${err.message}\n${err.stack ?? ''}`, user });
        },
      );
  }

  private async load(modelDir: string): Promise<Loaded> {
    let entry = this.models.get(modelDir);
    if (!entry) {
      this.evictModels();
      entry = (async () => {
        const model = loadModel(modelDir);
        const tokenizer = await loadTokenizer(modelDir, { bosId: model.config.bosId, eosIds: model.config.eosIds });
        return { model, tokenizer };
      })();
      this.models.set(modelDir, entry);
      entry.catch(() => this.models.delete(modelDir));
    } else {
      // Most recently used last.
      this.models.delete(modelDir);
      this.models.set(modelDir, entry);
    }
    return entry;
  }

  private evictModels(): void {
    for (const [dir, entry] of this.models) {
      if (this.models.size < MAX_LOADED_MODELS) return;
      if ((this.inUse.get(dir) ?? 0) > 0) continue;
      this.models.delete(dir);
      for (const [key, a] of this.adapters) {
        if (a.modelDir === dir) {
          disposeFineTune(a.fineTune);
          this.adapters.delete(key);
        }
      }
      void entry.then((l) => disposeModel(l.model), () => undefined);
    }
  }

  private async withModel<T>(modelDir: string, fn: (l: Loaded) => Promise<T>): Promise<T> {
    this.inUse.set(modelDir, (this.inUse.get(modelDir) ?? 0) + 1);
    try {
      return await fn(await this.load(modelDir));
    } finally {
      this.inUse.set(modelDir, (this.inUse.get(modelDir) ?? 1) - 1);
    }
  }

  private async inspect(modelDir: string): Promise<ResultOf['inspect']> {
    return this.withModel(modelDir, async ({ model }) => {
      const c = model.config;
      const facts: ModelFacts = {
        fingerprint: model.fingerprint,
        config: { ...c },
        parameters: parameterCount(c),
        memory: memoryEstimate(c, 1, Math.min(512, c.maxPositions)),
      };
      return facts;
    });
  }

  private fineTuneFor(modelDir: string, adapterDir: string, model: LoadedModel): FineTune {
    const key = `${modelDir}\u0000${adapterDir}`;
    const hit = this.adapters.get(key);
    if (hit) return hit.fineTune;
    if (this.adapters.size >= MAX_LOADED_ADAPTERS) {
      const [oldest, entry] = this.adapters.entries().next().value!;
      disposeFineTune(entry.fineTune);
      this.adapters.delete(oldest);
    }
    const fineTune = loadFineTune(adapterDir, model);
    this.adapters.set(key, { modelDir, fineTune });
    return fineTune;
  }

  private tower(towerDir: string): ClipImageEncoder {
    let encoder = this.towers.get(towerDir);
    if (!encoder) {
      encoder = loadImageEncoder(towerDir);
      this.towers.set(towerDir, encoder);
    }
    return encoder;
  }

  /**
   * The image feature a multi-modal adapter reads for each file (null stays null), from the tower it was trained
   * with; refuses images for an adapter without a projection, and a different tower.
   */
  private async adapterImageFeatures(fineTune: FineTune | null, files: (string | null)[], vision: VisionInput | undefined, signal: AbortSignal): Promise<(Float32Array | null)[]> {
    if (files.every((f) => f === null)) return files.map(() => null);
    const projection = fineTune?.kind === 'adapter' ? fineTune.adapter.image : null;
    if (!projection) {
      // Evaluations of a text-only model on an image dataset answer from the text, as the text-only baseline does.
      return files.map(() => null);
    }
    if (!vision) throw new EngineError(`this adapter reads images with the vision tower ${projection.spec.tower.name}; no vision tower was given`);
    const encoder = this.tower(vision.towerDir);
    checkVisionTower(fineTune!.kind === 'adapter' ? fineTune!.adapter : { image: null }, encoder.record);
    return imageFeatures(encoder, files, projection.spec.feature, { cacheDir: vision.cacheDir, signal });
  }

  private async generate(msg: Extract<ToHost, { kind: 'generate' }>, abort: { controller: AbortController }): Promise<GenerateResultMessage> {
    const { controller } = abort;
    try {
      return await this.withModel(msg.modelDir, async ({ model, tokenizer }) => {
        const fineTune = msg.adapterDir ? this.fineTuneFor(msg.modelDir, msg.adapterDir, model) : null;
        let image: Float32Array | null = null;
        if (msg.image) {
          // A chat picture is refused by a model that cannot see it, rather than silently ignored.
          if (fineTune?.kind !== 'adapter' || !fineTune.adapter.image) throw new EngineError('this model takes no images: attach a picture to a multi-modal adapter (trained with a vision tower)');
          [image] = await this.adapterImageFeatures(fineTune, [msg.image.file], msg.image.vision, controller.signal);
        }
        const promptIds = tokenizer.encode(renderPrompt(msg.prompt, fineTune?.promptTemplate), { bos: true });
        const stop = msg.prompt.template === 'none' ? msg.sampling.stop : [...new Set([...msg.sampling.stop, ...TURN_STOPS])];
        let streamed = '';
        try {
          const result = await generate({
            model,
            adapter: fineTune?.kind === 'adapter' ? fineTune.adapter : null,
            lora: fineTune?.kind === 'lora' ? fineTune.lora : null,
            promptIds,
            image,
            sampling: { ...msg.sampling, stop },
            rng: new Rng(msg.seed),
            eosIds: tokenizer.eosIds,
            tokenizer,
            signal: controller.signal,
            onText: (delta) => {
              streamed += delta;
              this.send({ kind: 'delta', job: msg.job, text: delta });
            },
          });
          return {
            text: result.text.trim(),
            finishReason: result.finishReason,
            promptTokens: result.promptTokens,
            newTokens: result.ids.length,
            tokensPerSec: result.tokensPerSec,
          };
        } catch (e) {
          if (!(e instanceof CancelledError)) throw e;
          return { text: streamed.trim(), finishReason: 'cancelled', promptTokens: promptIds.length, newTokens: 0, tokensPerSec: 0 };
        }
      });
    } finally {
      this.aborts.delete(msg.job);
    }
  }

  private async evaluate(msg: Extract<ToHost, { kind: 'evaluate' }>, abort: { controller: AbortController }): Promise<EvalAnswer[]> {
    const { signal } = abort.controller;
    try {
      return await this.withModel(msg.modelDir, async ({ model, tokenizer }) => {
        const fineTune = msg.adapterDir ? this.fineTuneFor(msg.modelDir, msg.adapterDir, model) : null;
        const parts = { adapter: fineTune?.kind === 'adapter' ? fineTune.adapter : null, lora: fineTune?.kind === 'lora' ? fineTune.lora : null };
        const images = await this.adapterImageFeatures(fineTune, msg.items.map((item) => item.image ?? null), msg.vision, signal);
        const answers: EvalAnswer[] = [];
        for (const [i, item] of msg.items.entries()) {
          throwIfAborted(signal, 'evaluation');
          const started = performance.now();
          const result = await generate({
            model,
            ...parts,
            promptIds: tokenizer.encode(renderPrompt({ template: 'alpaca', instruction: item.instruction, input: item.input }, fineTune?.promptTemplate), { bos: true }),
            image: images[i],
            sampling: { ...DEFAULT_SAMPLING, temperature: 0, maxNewTokens: msg.maxNewTokens, stop: TURN_STOPS },
            rng: new Rng(0), // unused at temperature 0
            eosIds: tokenizer.eosIds,
            tokenizer,
            signal,
          });
          const ref = item.reference === null ? null : referenceNll(model, tokenizer, { instruction: item.instruction, input: item.input, output: item.reference }, { ...parts, image: images[i], template: fineTune?.promptTemplate });
          answers.push({
            output: result.text.trim(),
            finishReason: result.finishReason,
            newTokens: result.ids.length,
            referenceNll: ref?.nll ?? null,
            referenceTokens: ref?.tokens ?? null,
            seconds: (performance.now() - started) / 1000,
          });
        }
        return answers;
      });
    } finally {
      this.aborts.delete(msg.job);
    }
  }

  private async train(msg: Extract<ToHost, { kind: 'train' }>, abort: { controller: AbortController; mode: 'pause' | 'cancel' }): Promise<ResultOf['train']> {
    const { controller } = abort;
    try {
      const { model, tokenizer } = await this.load(msg.modelDir);
      const resume = msg.resume && latestCheckpoint(msg.outDir) !== null;
      let vision: { spec: ImagePromptSpec; features: (Float32Array | null)[] } | undefined;
      if (msg.recipe.vision) {
        if (!msg.vision) throw new EngineError('a multi-modal recipe (recipe.vision) needs a vision tower');
        if (!msg.images || msg.images.length !== msg.data.length) throw new EngineError(`a multi-modal run needs one image entry per example (${msg.data.length}), got ${msg.images?.length ?? 0}`);
        const encoder = this.tower(msg.vision.towerDir);
        const feature = msg.recipe.vision.feature ?? DEFAULT_VISION_RECIPE.feature;
        const spec: ImagePromptSpec = { tower: encoder.record, feature, featureDim: encoder.featureDim(feature), hidden: msg.recipe.vision.projectionHidden };
        const features = await imageFeatures(encoder, msg.images, feature, { cacheDir: msg.vision.cacheDir, signal: controller.signal });
        vision = { spec, features };
      }
      const result = await train({
        model,
        tokenizer,
        data: msg.data,
        vision,
        recipe: msg.recipe,
        outDir: msg.outDir,
        resume,
        signal: controller.signal,
        // Read when training stops, so a cancel sent after a pause request still wins.
        get onAbort() {
          return abort.mode;
        },
        onEvent: (event) => this.send({ kind: 'train', job: msg.job, event }),
      });
      return { status: result.status, steps: result.steps, adapterDir: result.adapterDir };
    } finally {
      this.aborts.delete(msg.job);
    }
  }

  private async tokenLengths(modelDir: string, examples: Instruction[]): Promise<number[]> {
    const tokenizer = await loadTokenizerOnly(modelDir);
    return examples.map((ex) => tokenizeExample(tokenizer, ex, Number.MAX_SAFE_INTEGER).ids.length);
  }

  private shutdown(): void {
    for (const { controller } of this.aborts.values()) controller.abort();
    for (const { fineTune } of this.adapters.values()) disposeFineTune(fineTune);
    this.adapters.clear();
    for (const encoder of this.towers.values()) encoder.dispose();
    this.towers.clear();
    for (const entry of this.models.values()) void entry.then((l) => disposeModel(l.model), () => undefined);
    this.models.clear();
    this.port.close();
    // Let pending messages flush, then go.
    setTimeout(() => process.exit(0), 50);
  }
}

function disposeFineTune(f: FineTune): void {
  if (f.kind === 'adapter') disposeAdapter(f.adapter);
  else disposeLora(f.lora);
}

/** Token counts need only the tokenizer, not the weights. */
const tokenizers = new Map<string, Promise<TextTokenizer>>();
async function loadTokenizerOnly(modelDir: string): Promise<TextTokenizer> {
  let t = tokenizers.get(modelDir);
  if (!t) {
    const config = readModelConfig(modelDir);
    t = loadTokenizer(modelDir, { bosId: config.bosId, eosIds: config.eosIds });
    tokenizers.set(modelDir, t);
    t.catch(() => tokenizers.delete(modelDir));
  }
  return t;
}

const port = connectToParent();
const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
const host = role === 'datasets' ? new DatasetHost(port) : new EngineHost(port);
port.onMessage((msg) => host.handle(msg as ToHost));
// Nothing left to do once the parent is gone: exit instead of running on as an orphan.
port.onDisconnect(() => process.exit(0));
process.on('uncaughtException', (e) => {
  port.send({ kind: 'log', level: 'error', message: `engine host crashed: ${e.stack ?? e.message}` } satisfies FromHost);
  setTimeout(() => process.exit(70), 50);
});
