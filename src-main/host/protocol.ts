// Messages between the main process and an engine host process (src-main/host/engine-host.ts).
//
// The same messages travel over Node's child_process IPC (serve mode) and Electron's utilityProcess
// MessagePort (desktop app); both carry structured-cloneable values. Every request has a job id; the host
// answers each with exactly one `result` or `error` and, before that, any number of `train` / `delta`
// messages for the same job.
//
// A `datasets` process (one per dataset job, see dataset-host.ts) takes only the dataset* requests: it reads
// files and writes the workspace's database itself, so a big import never blocks the main process.

import type { DuplicateGroup, ImportOptions, ImportReport, ReadOptions } from '../datasets/index.js';
import type { BackendChoice, BackendName, BackendReport } from '../engine/backend.js';
import type { Instruction } from '../engine/data.js';
import type { JobConversion } from '../interop/job-convert.js';
import type { Recipe } from '../engine/recipe.js';
import type { SamplingOptions } from '../engine/sample.js';
import type { TrainEvent } from '../engine/train.js';

export type JobId = string;

/** What to put around the user's text before generation. */
export type PromptSpec =
  | { template: 'alpaca'; instruction: string; input: string }
  | { template: 'none'; text: string }
  /** A conversation rendered as consecutive Alpaca turns (see prompt.ts). */
  | { template: 'chat'; system: string; turns: { role: 'user' | 'assistant'; content: string }[] };

export interface ModelFacts {
  fingerprint: string;
  /** The engine's LlamaConfig (plain JSON). */
  config: Record<string, unknown>;
  parameters: number;
  memory: { weightsBytes: number; activationBytes: number };
}

/** What a vision tower reports about itself (the Models page). */
export interface VisionFacts {
  fingerprint: string;
  /** The engine's ClipVisionConfig and ClipPreprocess (plain JSON). */
  config: Record<string, unknown>;
  preprocess: Record<string, unknown>;
  parameters: number;
  memory: { weightsBytes: number; activationBytes: number };
}

/** The frozen vision tower a multi-modal request reads image features with, and where features are cached. */
export interface VisionInput {
  towerDir: string;
  /** Features are cached by image content under this folder (vision-features.ts); null: no cache. */
  cacheDir: string | null;
}

export type ToHost =
  | { kind: 'init'; backend: BackendChoice; threads: number }
  | { kind: 'inspect'; job: JobId; modelDir: string }
  | { kind: 'inspectVision'; job: JobId; towerDir: string }
  | {
      kind: 'train';
      job: JobId;
      modelDir: string;
      data: Instruction[];
      /** Each example's image file (null: none), aligned with `data`; read when recipe.vision is set. */
      images?: (string | null)[];
      /** Required when recipe.vision is set. */
      vision?: VisionInput;
      recipe: Recipe;
      outDir: string;
      /** Continue from the newest checkpoint in outDir when there is one. */
      resume: boolean;
    }
  | { kind: 'abort'; job: JobId; mode: 'pause' | 'cancel' }
  | {
      kind: 'generate';
      job: JobId;
      modelDir: string;
      adapterDir: string | null;
      prompt: PromptSpec;
      sampling: SamplingOptions;
      seed: number;
      /** A picture for a multi-modal adapter, read by the tower it was trained with. */
      image?: { file: string; vision: VisionInput } | null;
    }
  /**
   * Answer each example greedily from its Alpaca prompt and, where it has a reference, score the
   * reference's likelihood (for perplexity). One batch of an evaluation; the service stores each batch.
   */
  | { kind: 'evaluate'; job: JobId; modelDir: string; adapterDir: string | null; items: EvalItem[]; maxNewTokens: number; vision?: VisionInput }
  /** Tokens per example as training sees them: BOS + Alpaca prompt + response + EOS. */
  | { kind: 'tokenLengths'; job: JobId; modelDir: string; examples: Instruction[] }
  /** Tokens of a prompt as `generate` encodes it (BOS included), to check it against the context first. */
  | { kind: 'countTokens'; job: JobId; modelDir: string; text: string }
  /**
   * A scale-out job's PEFT adapter onto the base model, saved in our format in `adapterDir` (a staging
   * folder the main process owns); the main process then records the run (interop/job-run.ts).
   */
  | { kind: 'importJob'; job: JobId; modelDir: string; jobDir: string; outputDir: string; adapterDir: string }
  /** The report of reading `file` as a dataset; nothing is written. */
  | { kind: 'datasetValidate'; job: JobId; file: string; options: DatasetReadOptions }
  /** importDataset into the workspace at `workspaceDir`, in one transaction; `progress` messages while writing. */
  | { kind: 'datasetImport'; job: JobId; workspaceDir: string; file: string; options: DatasetImportOptions }
  /** Exact (and, with `near`, near) duplicate groups of a dataset. */
  | { kind: 'datasetDuplicates'; job: JobId; workspaceDir: string; datasetId: string; near: boolean; threshold?: number }
  | { kind: 'shutdown' };

/** What crosses the process boundary: plain values only (no signal, no callbacks). */
export type DatasetReadOptions = Omit<ReadOptions, 'signal'>;
export type DatasetImportOptions = Omit<ImportOptions, 'signal' | 'onProgress'>;

export interface EvalItem {
  instruction: string;
  input: string;
  reference: string | null;
  /** The example's image file; given to a multi-modal adapter (with the request's `vision`), else unused. */
  image?: string | null;
}

export interface EvalAnswer {
  output: string;
  finishReason: 'eos' | 'stop' | 'length';
  newTokens: number;
  /** Summed negative log-likelihood of the reference's tokens (response + EOS); null without a reference. */
  referenceNll: number | null;
  referenceTokens: number | null;
  seconds: number;
}

export type GenerateResultMessage = {
  text: string;
  finishReason: 'eos' | 'stop' | 'length' | 'cancelled';
  promptTokens: number;
  newTokens: number;
  tokensPerSec: number;
};

export type FromHost =
  | { kind: 'ready'; backend: { name: BackendName; skipped: BackendReport['skipped'] } }
  | { kind: 'initFailed'; message: string }
  | { kind: 'train'; job: JobId; event: TrainEvent }
  | { kind: 'delta'; job: JobId; text: string }
  /** A dataset job's progress: records written of the total. */
  | { kind: 'progress'; job: JobId; done: number; total: number }
  | { kind: 'result'; job: JobId; value: unknown }
  /** `user`: caused by the input (bad folder, diverged loss) rather than a bug. */
  | { kind: 'error'; job: JobId; message: string; user: boolean }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; message: string };

/** The result value of each request kind. */
export interface ResultOf {
  inspect: ModelFacts;
  inspectVision: VisionFacts;
  train: { status: 'completed' | 'paused' | 'cancelled'; steps: number; adapterDir: string | null };
  generate: GenerateResultMessage;
  evaluate: EvalAnswer[];
  tokenLengths: number[];
  countTokens: number;
  importJob: JobConversion;
  datasetValidate: ImportReport;
  datasetImport: { datasetId: string; imported: number; report: ImportReport };
  datasetDuplicates: DuplicateGroup[];
}
