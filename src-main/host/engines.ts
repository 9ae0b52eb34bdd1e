// The engine processes the main process runs: one long-lived inference host (models stay loaded between
// chats and comparisons) and one short-lived training host per run. Training in a process of its own means a
// crash or out-of-memory ends that run only, and chat keeps working while a run trains. Dataset jobs (imports,
// validation, duplicate search) get a short-lived process each too, so the main process stays responsive.

import type { BackendChoice, BackendInfo } from '../../src-shared/api.js';
import { EngineProcess, type HostSpawner } from './engine-process.js';
import type { EvalAnswer, EvalItem, GenerateResultMessage, ModelFacts, PromptSpec, ResultOf, ToHost, VisionFacts, VisionInput } from './protocol.js';
import { CancelledError } from '../engine/errors.js';
import type { SamplingOptions } from '../engine/sample.js';
import type { Instruction } from '../engine/data.js';
import type { JobConversion, JobConversionRequest } from '../interop/job-convert.js';

export interface EngineSettings {
  backend: BackendChoice;
  threads: number;
}

export type InferenceState = 'stopped' | 'starting' | 'ready' | 'busy';

export class Engines {
  private inference: EngineProcess | null = null;
  private inferenceSettings: EngineSettings | null = null;
  private lastBackend: { name: string; skipped: { name: string; reason: string }[] } | null = null;
  private readonly stateListeners: (() => void)[] = [];

  constructor(
    private readonly spawn: HostSpawner,
    private settings: EngineSettings,
  ) {}

  /** New settings apply to processes started from now on; an idle inference host is restarted. */
  configure(settings: EngineSettings): void {
    this.settings = { ...settings };
    if (this.inference && !this.inference.busy) {
      void this.inference.shutdown();
      this.inference = null;
      this.changed();
    }
  }

  onStateChange(cb: () => void): void {
    this.stateListeners.push(cb);
  }

  private changed(): void {
    for (const cb of this.stateListeners) cb();
  }

  backendInfo(): BackendInfo {
    return { name: this.lastBackend?.name ?? null, requested: this.settings.backend, skipped: this.lastBackend?.skipped ?? [] };
  }

  inferenceState(): InferenceState {
    if (!this.inference || this.inference.state === 'exited') return 'stopped';
    if (this.inference.state === 'starting') return 'starting';
    return this.inference.busy ? 'busy' : 'ready';
  }

  /** The inference host, started (or restarted after a crash) on demand. */
  private async inferenceHost(): Promise<EngineProcess> {
    const current = this.inference;
    if (current && current.state !== 'exited' && this.inferenceSettings === this.settings) {
      await current.ready();
      return current;
    }
    const proc = new EngineProcess(this.spawn, 'inference', this.settings);
    this.inference = proc;
    this.inferenceSettings = this.settings;
    proc.onExit(() => {
      if (this.inference === proc) this.inference = null;
      this.changed();
    });
    this.changed();
    this.lastBackend = await proc.ready();
    this.changed();
    return proc;
  }

  /** Starts a process for one training run. */
  async startTrainingHost(): Promise<EngineProcess> {
    const proc = new EngineProcess(this.spawn, 'train', this.settings);
    this.lastBackend = await proc.ready();
    this.changed();
    return proc;
  }

  async inspect(modelDir: string): Promise<ModelFacts> {
    const host = await this.inferenceHost();
    return this.tracked(host.request('inspect', { modelDir }).result);
  }

  async inspectVision(towerDir: string): Promise<VisionFacts> {
    const host = await this.inferenceHost();
    return this.tracked(host.request('inspectVision', { towerDir }).result);
  }

  async tokenLengths(modelDir: string, examples: Instruction[]): Promise<number[]> {
    const host = await this.inferenceHost();
    return this.tracked(host.request('tokenLengths', { modelDir, examples }).result);
  }

  /** Tokens of a `template: 'none'` prompt as generate encodes it (BOS included). */
  async countTokens(modelDir: string, text: string): Promise<number> {
    const host = await this.inferenceHost();
    return this.tracked(host.request('countTokens', { modelDir, text }).result);
  }

  /** Converts a scale-out job's adapter onto its base model, in the inference process (see interop/job-run.ts). */
  async importJob(req: JobConversionRequest): Promise<JobConversion> {
    const host = await this.inferenceHost();
    return this.tracked(host.request('importJob', req).result);
  }

  /** Starts a generation; `cancel` stops it early (the result then has finishReason 'cancelled'). */
  async generate(
    req: { modelDir: string; adapterDir: string | null; prompt: PromptSpec; sampling: SamplingOptions; seed: number; image?: { file: string; vision: VisionInput } | null },
    onDelta: (text: string) => void,
  ): Promise<{ result: Promise<GenerateResultMessage>; cancel: () => void }> {
    const host = await this.inferenceHost();
    const { job, result } = host.request('generate', req, { onDelta });
    return { result: this.tracked(result), cancel: () => host.abort(job, 'cancel') };
  }

  /** Answers and scores one batch of an evaluation; `cancel` makes the result reject with a CancelledError's message. */
  async evaluate(req: { modelDir: string; adapterDir: string | null; items: EvalItem[]; maxNewTokens: number; vision?: VisionInput }): Promise<{ result: Promise<EvalAnswer[]>; cancel: () => void }> {
    const host = await this.inferenceHost();
    const { job, result } = host.request('evaluate', req);
    return { result: this.tracked(result), cancel: () => host.abort(job, 'cancel') };
  }

  /**
   * Runs one dataset job in a process of its own, which exits when it is done. `signal` cancels it: the job is
   * asked to stop (it cleans up what it staged), and killed if it has not within `graceMs` (a transaction in
   * flight then rolls back with the process).
   */
  async datasetJob<K extends 'datasetValidate' | 'datasetImport' | 'datasetDuplicates'>(
    kind: K,
    body: Omit<Extract<ToHost, { kind: K }>, 'job' | 'kind'>,
    opts: { onProgress?: (done: number, total: number) => void; signal?: AbortSignal; graceMs?: number } = {},
  ): Promise<ResultOf[K]> {
    const proc = new EngineProcess(this.spawn, 'datasets', this.settings);
    const { job, result } = proc.request(kind, body, { onProgress: opts.onProgress });
    const cancel = () => {
      proc.abort(job, 'cancel');
      setTimeout(() => proc.kill(), opts.graceMs ?? 5000).unref();
    };
    if (opts.signal?.aborted) cancel();
    else opts.signal?.addEventListener('abort', cancel, { once: true });
    try {
      return await result;
    } catch (e) {
      if (opts.signal?.aborted) throw new CancelledError({ datasetValidate: 'validation', datasetImport: 'import', datasetDuplicates: 'duplicate search' }[kind]);
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', cancel);
      void proc.shutdown();
    }
  }

  private tracked<T>(p: Promise<T>): Promise<T> {
    this.changed();
    p.then(
      () => this.changed(),
      () => this.changed(),
    );
    return p;
  }

  async close(): Promise<void> {
    const proc = this.inference;
    this.inference = null;
    if (proc) await proc.shutdown();
  }
}
