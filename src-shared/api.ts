// The one API between the UI and the main process. Both transports carry exactly these methods and events:
// Electron IPC (a preload exposes one function per method) and HTTP + server-sent events (serve mode).
//
// Every method is a request/response pair of zod schemas. The main process parses each request with its
// schema before any handler runs, so handlers only ever see valid input; a bad request is answered with an
// `invalid_input` error naming the method, the field path and what was expected (see `describeIssues`).
// Long work (training, generation, imports) answers at once with an id and reports through `ApiEvent`s.
//
// This module runs in the renderer, the preload and Node: it imports nothing but zod.

import { z } from 'zod';
import { API_METHOD_NAMES, type ApiMethodName } from './api-methods.js';

// --- common --------------------------------------------------------------------------------------------------------

const id = z.string().min(1, 'must not be empty').max(200);
const text = z.string().max(1_000_000);
const name = z.string().trim().min(1, 'must not be empty').max(200);
/** A path on the server's disk, as typed or picked. NUL cannot be in a file name on any platform. */
const diskPath = z.string().min(1, 'must not be empty').max(4096).refine((p) => !p.includes('\0'), 'must not contain a NUL character');
/** A file's name (no folders), as uploaded. */
/** The largest picture accepted for a chat, a comparison or an example (bytes of the file). */
export const MAX_PICTURE_BYTES = 64 * 1024 * 1024;
/** That picture as base64 (4 characters per 3 bytes). */
export const MAX_PICTURE_BASE64 = Math.ceil(MAX_PICTURE_BYTES / 3) * 4;

/** What a too-large picture is told, the same in the page and the server. */
export function pictureTooLarge(name: string, bytes: number): string {
  return `${name} is ${(bytes / 1048576).toFixed(1)} MiB; pictures of up to ${MAX_PICTURE_BYTES / 1048576} MiB are accepted`;
}

const uploadName = z.string().min(1).max(255).refine((n) => !n.includes('\0'), 'must not contain a NUL character');
const count = z.number().int().min(0);
const timestamp = z.number(); // milliseconds since the epoch

export const SPLITS = ['train', 'val', 'test'] as const;
export const Split = z.enum(SPLITS);
export type Split = z.infer<typeof Split>;

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'native', 'wasm', 'cpu'] as const;
export const BackendChoice = z.enum(BACKEND_CHOICES);
export type BackendChoice = z.infer<typeof BackendChoice>;

export const RUN_STATUSES = ['queued', 'running', 'paused', 'completed', 'failed', 'interrupted', 'cancelled'] as const;
export const RunStatus = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatus>;
/** A run in one of these states will not change again by itself. */
export const FINISHED_STATUSES: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];

export const GATE_MODES = ['per-head-tanh', 'per-head', 'per-layer'] as const;
/** adapter: LLaMA-Adapter (the paper); lora: Alpaca-LoRA; full: Stanford Alpaca's full fine-tune. */
export const METHODS = ['adapter', 'lora', 'full'] as const;
export const Method = z.enum(METHODS);
export type Method = z.infer<typeof Method>;
export const LORA_TARGETS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

// --- settings -------------------------------------------------------------------------------------------------------

export const Settings = z.object({
  /** The workspace folder (database, adapters, checkpoints). Changed with `settings.switchWorkspace`. */
  workspace: z.string(),
  /** tfjs backend for new engine processes; 'auto' picks the fastest that starts. */
  backend: BackendChoice,
  /** BLAS threads per engine process; 0 lets the library decide. */
  threads: z.number().int().min(0).max(256),
  theme: z.enum(['system', 'light', 'dark']),
  /** An OpenAI-compatible endpoint for self-instruct generation (optional). */
  openai: z.object({ url: z.string().max(2000), model: z.string().max(200), apiKey: z.string().max(500) }),
});
export type Settings = z.infer<typeof Settings>;
export const SettingsPatch = Settings.omit({ workspace: true }).partial().strict();

// --- models ---------------------------------------------------------------------------------------------------------

export const ModelConfigSummary = z.object({
  vocabSize: count,
  dim: count,
  ffnDim: count,
  nLayers: count,
  nHeads: count,
  nKvHeads: count,
  headDim: count,
  maxPositions: count,
  ropeTheta: z.number(),
  tieEmbeddings: z.boolean(),
});
export type ModelConfigSummary = z.infer<typeof ModelConfigSummary>;

/** llama: a language model to fine-tune; vision: a CLIP vision tower for multi-modal adapters. */
export const MODEL_KINDS = ['llama', 'vision'] as const;
export const ModelKind = z.enum(MODEL_KINDS);
export type ModelKind = z.infer<typeof ModelKind>;

export const VisionConfigSummary = z.object({
  modelType: z.string(),
  hiddenSize: count,
  intermediateSize: count,
  numLayers: count,
  numHeads: count,
  imageSize: count,
  patchSize: count,
  activation: z.string(),
  /** image_embeds' width, or null for a CLIPVisionModel without visual_projection. */
  projectionDim: count.nullable(),
  /** Preprocessing: the shortest edge images are resized to, and the crop. */
  shortestEdge: z.number(),
  crop: z.tuple([count, count]),
});
export type VisionConfigSummary = z.infer<typeof VisionConfigSummary>;

export const ModelSummary = z.object({
  id,
  kind: ModelKind,
  name: z.string(),
  path: z.string(),
  fingerprint: z.string(),
  parameters: count,
  addedAt: timestamp,
  /** False when the folder has gone missing or stopped loading since it was added. */
  available: z.boolean(),
  problem: z.string().nullable(),
});
export type ModelSummary = z.infer<typeof ModelSummary>;

export const AdapterSummary = z.object({
  runId: id,
  runName: z.string(),
  path: z.string(),
  method: z.string(),
  trainableParameters: count.nullable(),
  finishedAt: timestamp.nullable(),
});
export type AdapterSummary = z.infer<typeof AdapterSummary>;

export const BackendInfo = z.object({
  /** The backend the engine runs on now, or null before an engine process has started. */
  name: z.string().nullable(),
  requested: BackendChoice,
  skipped: z.array(z.object({ name: z.string(), reason: z.string() })),
});
export type BackendInfo = z.infer<typeof BackendInfo>;

export const ModelInfo = ModelSummary.extend({
  /** A language model's config (kind llama), else null. */
  config: ModelConfigSummary.nullable(),
  /** A vision tower's config (kind vision), else null. */
  vision: VisionConfigSummary.nullable(),
  /** float32 weights plus a rough training-activation estimate at batch 1 and the model's context (a tower: one image). */
  memory: z.object({ weightsBytes: count, activationBytes: count }),
  backend: BackendInfo,
  adapters: z.array(AdapterSummary),
});
export type ModelInfo = z.infer<typeof ModelInfo>;

// --- datasets -------------------------------------------------------------------------------------------------------

/** parquet: a file or a folder of shards; scienceqa: ScienceQA's folder (problems.json, pid_splits.json, images/). */
export const DATASET_FORMATS = ['auto', 'json', 'jsonl', 'csv', 'tsv', 'parquet', 'scienceqa'] as const;
export const DatasetFormat = z.enum(DATASET_FORMATS);

/** An upload's id: what the upload transport (HTTP PUT /api/upload, or IPC) answered for a file it received. */
export const UPLOAD_ID_PATTERN = /^[0-9a-f]{12}$/;
export interface UploadResult {
  uploadId: string;
  fileName: string;
  bytes: number;
}

/**
 * Where imported records come from: a file on the main process's disk, a file the UI uploaded (streamed to
 * disk, the way for big files), or text (small files, scripts).
 */
export const ImportSource = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('path'), path: diskPath }),
  z.object({ kind: z.literal('upload'), uploadId: z.string().regex(UPLOAD_ID_PATTERN, 'must be the id an upload answered') }),
  z.object({
    kind: z.literal('text'),
    fileName: name.refine((n) => !/[\\/\0]/.test(n) && n !== '.' && n !== '..', 'must be a file name without folders or NUL characters'),
    text: z.string().max(64 * 1024 * 1024, 'is over 64 MiB: upload the file instead'),
  }),
]);
export type ImportSource = z.infer<typeof ImportSource>;

/** The text around a multiple-choice question (src-main/datasets/multiple-choice.ts); fields left out keep the default. */
export const MultipleChoiceTemplate = z
  .object({ prompt: z.string().max(2000), option: z.string().max(200), optionSeparator: z.string().max(20), emptyContext: z.string().max(200), answer: z.string().max(200), answerCue: z.string().max(200) })
  .partial()
  .strict();

/** How records are read: container format, record shape, and which key/column holds each field. */
export const ImportOptions = z
  .object({
    format: DatasetFormat.default('auto'),
    /** 'auto' reads records with "conversations"/"messages" as chats (ShareGPT, LLaVA), records with question +
     * choices + answer as multiple-choice questions (ScienceQA), the rest as Alpaca. */
    shape: z.enum(['auto', 'alpaca', 'conversation', 'scienceqa']).default('auto'),
    /** Our field -> the key or CSV column holding it, when the usual names do not match. */
    fieldMap: z.object({ instruction: z.string(), input: z.string(), output: z.string(), tags: z.string(), split: z.string(), image: z.string() }).partial().default({}),
    /** A conversation gives one example from its last reply, or one per reply. */
    conversation: z.enum(['last-turn', 'each-turn']).default('last-turn'),
    /** The folder image paths are relative to (default: the dataset file's folder). */
    imageRoot: diskPath.optional(),
    /** Largest image accepted, in pixels (default 89 478 485, as PIL). */
    maxImagePixels: z.number().int().min(1).optional(),
    multipleChoice: MultipleChoiceTemplate.optional(),
  })
  .strict();

export const ImportProblem = z.object({
  file: z.string(),
  /** 1-based line where the record starts, when the format has lines. */
  line: z.number().int().nullable(),
  /** 0-based position of the record in the file. */
  index: z.number().int().nullable(),
  /** The field at fault (`output`, `conversations[2].value`), or null for the record or file as a whole. */
  field: z.string().nullable(),
  message: z.string(),
  /** Parquet: the row group and the row within it (`index` is the row in the file). */
  rowGroup: z.number().int().optional(),
  row: z.number().int().optional(),
});
export type ImportProblem = z.infer<typeof ImportProblem>;

export const ImportReport = z.object({
  file: z.string(),
  format: z.string(),
  /** Records read, valid or not. */
  records: count,
  /** Examples the valid records give (a conversation may give several). */
  examples: count,
  /** Of those, the examples with an image. */
  images: count,
  invalidRecords: count,
  /** The first problems with single records (the rest are counted in issuesOmitted). */
  issues: z.array(ImportProblem),
  issuesOmitted: count,
  /** A problem with the whole file (not UTF-8, truncated, not a list): nothing in it can be imported. */
  fatal: ImportProblem.nullable(),
});
export type ImportReport = z.infer<typeof ImportReport>;

export const DatasetSummary = z.object({
  id,
  name: z.string(),
  description: z.string(),
  version: count,
  examples: count,
  /** Examples that carry an image. */
  images: count,
  splits: z.object({ train: count, val: count, test: count, unassigned: count }),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type DatasetSummary = z.infer<typeof DatasetSummary>;

export const Example = z.object({
  id: z.number().int(),
  instruction: z.string(),
  input: z.string(),
  output: z.string(),
  tags: z.array(z.string()),
  split: Split.nullable(),
  source: z.string(),
  sourceLine: z.number().int().nullable(),
  /** sha256 of the example's image (fetch it with datasets.image), or null. */
  image: z.string().nullable(),
  /** What the source record held beyond the text fields (ScienceQA: pid, choices, answer, subject, grade, ...). */
  meta: z.record(z.string(), z.unknown()),
});
export type Example = z.infer<typeof Example>;

/** An example's image: its bytes (base64) as stored, never re-encoded. */
/** A picture's content address in the workspace's image store. */
export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256 (64 lowercase hex digits)');

export const ExampleImage = z.object({
  sha256: z.string(),
  format: z.enum(['png', 'jpeg', 'webp', 'gif']),
  mimeType: z.string(),
  width: count,
  height: count,
  bytes: count,
  base64: z.string(),
});
export type ExampleImage = z.infer<typeof ExampleImage>;

export const ExampleQuery = z.object({
  datasetId: id,
  search: z.string().max(500).optional(),
  split: z.union([Split, z.literal('none')]).optional(),
  tags: z.array(z.string()).max(20).optional(),
  minChars: count.optional(),
  maxChars: count.optional(),
  hasInput: z.boolean().optional(),
  hasImage: z.boolean().optional(),
  offset: count.default(0),
  limit: z.number().int().min(1).max(500).default(100),
});

export const ExamplePatch = z
  .object({
    instruction: text.refine((s) => s.trim() !== '', 'must not be empty'),
    input: text,
    output: text.refine((s) => s.trim() !== '', 'must not be empty'),
    tags: z.array(z.string().trim().min(1)).max(100),
    split: Split.nullable(),
    /** A picture from images.upload, or null to take the example's picture off. */
    image: Sha256.nullable(),
  })
  .partial()
  .strict();

export const DatasetVersion = z.object({
  version: count,
  kind: z.string(),
  summary: z.string(),
  reverts: z.number().int().nullable(),
  revertedBy: z.number().int().nullable(),
  createdAt: timestamp,
  changes: count,
});
export type DatasetVersion = z.infer<typeof DatasetVersion>;

export const DuplicateGroup = z.object({
  kind: z.enum(['exact', 'near']),
  /** The member a clean-up keeps (the earliest). */
  keep: z.number().int(),
  /** All members, `keep` first, with each one's similarity to `keep` (1 for exact duplicates). */
  examples: z.array(Example.extend({ similarity: z.number() })),
});
export type DuplicateGroup = z.infer<typeof DuplicateGroup>;

export const DatasetStats = z.object({
  /** Token counts of what training reads (BOS + Alpaca prompt + output + EOS) with the model's tokenizer. */
  tokenizer: z.string(),
  count,
  min: count,
  max: count,
  mean: z.number(),
  p50: count,
  p90: count,
  p99: count,
  maxSeqLen: count,
  /** Examples longer than maxSeqLen, which training would cut. */
  overMaxSeqLen: count,
  histogram: z.array(z.object({ start: count, end: count, count })),
});
export type DatasetStats = z.infer<typeof DatasetStats>;

// --- runs -----------------------------------------------------------------------------------------------------------

/** Every hyper-parameter of a run (the engine's Recipe); fields of other methods are kept but unused. */
export const Recipe = z.object({
  method: Method,
  // adapter
  adapterLen: z.number().int().min(1).max(1024),
  adapterLayers: z.number().int().min(1).max(1024),
  gateMode: z.enum(GATE_MODES),
  // lora
  loraRank: z.number().int().min(1).max(4096),
  loraAlpha: z.number().positive().max(1e6),
  loraDropout: z.number().min(0).lt(1),
  loraTargets: z.array(z.enum(LORA_TARGETS)).min(1),
  // every method
  epochs: z.number().positive().max(100_000),
  warmupEpochs: z.number().min(0).max(100_000),
  blr: z.number().min(0).max(10),
  lr: z.number().positive().max(10).nullable(),
  minLr: z.number().min(0).max(10),
  weightDecay: z.number().min(0).max(10),
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]),
  eps: z.number().min(0).max(1),
  batchSize: z.number().int().min(1).max(4096),
  accumSteps: z.number().int().min(1).max(4096),
  maxSeqLen: z.number().int().min(2).max(1_000_000),
  seed: z.number().int().min(0),
  checkpointEvery: z.number().int().min(0),
  maxSteps: z.number().int().min(1).nullable(),
  // How each reference trains; absent in recipes stored before these fields existed (the engine fills what they
  // trained with: cosine, warmupEpochs, no clipping, response-only loss, no batch dropped).
  /** After warm-up: cosine (official adapter, Alpaca) or linear decay (HF Trainer's default, Alpaca-LoRA). */
  schedule: z.enum(['cosine', 'linear']).optional(),
  /** Warm-up in optimizer steps (Alpaca-LoRA: 100); null: warmupEpochs. */
  warmupSteps: z.number().int().min(0).max(10_000_000).nullable().optional(),
  /** Clip the gradients' global L2 norm (HF Trainer: 1.0); null: no clipping (the official adapter). */
  maxGradNorm: z.number().positive().max(1e6).nullable().optional(),
  /** Loss on the prompt tokens too (Alpaca-LoRA's train_on_inputs=True). */
  trainOnInputs: z.boolean().optional(),
  /** Drop each epoch's last partial batch (the official adapter's DataLoader drop_last=True). */
  dropLast: z.boolean().optional(),
  /** alpaca: Stanford Alpaca's prompt; alpaca-lora: Alpaca-LoRA's, with a newline after "### Response:". */
  promptTemplate: z.enum(['alpaca', 'alpaca-lora']).optional(),
  /** The adapter's gates: zero (the paper's zero-init attention) or random, N(0, 1) (the paper's ablation). */
  init: z.enum(['zero', 'random']).optional(),
  /** Examples held out for validation (Alpaca-LoRA's val_set_size: 2000); 0: none. */
  valSetSize: z.number().int().min(0).max(10_000_000).optional(),
  /** With a validation set: its loss every N optimizer steps, the best weights kept (load_best_model_at_end). */
  evalSteps: z.number().int().min(1).max(10_000_000).optional(),
});
export type Recipe = z.infer<typeof Recipe>;

export const RunProgress = z.object({
  step: count,
  totalSteps: count,
  epoch: z.number(),
  loss: z.number().nullable(),
  lr: z.number().nullable(),
  tokensPerSec: z.number().nullable(),
  etaSec: z.number().nullable(),
});
export type RunProgress = z.infer<typeof RunProgress>;

export const RunSummary = z.object({
  id,
  name: z.string(),
  method: z.string(),
  status: RunStatus,
  modelId: z.string().nullable(),
  modelName: z.string().nullable(),
  datasetId: z.string().nullable(),
  datasetName: z.string().nullable(),
  datasetVersion: z.number().int().nullable(),
  split: z.union([Split, z.literal('all')]),
  backend: z.string(),
  error: z.string().nullable(),
  createdAt: timestamp,
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
  /** 1 for the next run to start, null when not queued. */
  queuePosition: z.number().int().nullable(),
  progress: RunProgress.nullable(),
  /** The trained adapter folder, once the run completed. */
  adapterPath: z.string().nullable(),
  /** A multi-modal run's vision tower (it reads pictures), or null for a text-only run. */
  visionModelId: z.string().nullable(),
});
export type RunSummary = z.infer<typeof RunSummary>;

export const MetricPoint = z.object({
  step: count,
  loss: z.number().nullable(),
  lr: z.number().nullable(),
  tokensPerSec: z.number().nullable(),
  memoryBytes: z.number().nullable(),
  elapsedMs: z.number().nullable(),
});
export type MetricPoint = z.infer<typeof MetricPoint>;

export const RunDetail = RunSummary.extend({
  recipe: Recipe,
  trainableParameters: count.nullable(),
  examples: count.nullable(),
  checkpoints: z.array(z.object({ step: count, path: z.string(), createdAt: timestamp })),
  /** Seconds spent training (over all sessions of a paused and resumed run). */
  trainingSeconds: z.number().nullable(),
});
export type RunDetail = z.infer<typeof RunDetail>;

export const RunPlan = z.object({
  recipe: Recipe,
  trainableParameters: count,
  peakLr: z.number(),
  examples: count,
  stepsPerEpoch: count,
  totalSteps: count,
  memory: z.object({ weightsBytes: count, activationBytes: count, adapterBytes: count }),
  /** Field-level problems; the run can start only when this is empty. */
  problems: z.array(z.object({ field: z.string(), message: z.string() })),
  /** What the run may start with but should know: stored evaluations that ask about examples it would train on. */
  warnings: z.array(z.string()),
});
export type RunPlan = z.infer<typeof RunPlan>;

/** A scale-out job recorded in the run history (runs.importJob). */
export const ImportedJob = z.object({
  run: RunSummary,
  jobId: z.string(),
  /** Optimizer steps the job logged (the run's metrics). */
  steps: count,
  /** False when the job stopped early (its output is from the step it reached). */
  completed: z.boolean(),
  /** Why the run records no dataset (the job was made from a file, or the dataset version changed), or null. */
  datasetNote: z.string().nullable(),
});
export type ImportedJob = z.infer<typeof ImportedJob>;

const RunRequest = z.object({
  name: z.string().trim().max(200).optional(),
  modelId: id,
  datasetId: id,
  /** Which examples to train on: one split, or all of them. */
  split: z.union([Split, z.literal('all')]).default('all'),
  /** Fields to change from the preset of `recipe.method` (default adapter: the paper's) for this model. */
  recipe: Recipe.partial().default({}),
  /**
   * A multi-modal LLaMA-Adapter: the vision tower (a model of kind "vision") whose image feature is projected and
   * added to every adaption prompt. Examples without an image train as text. Adapter method only.
   */
  vision: z
    .object({
      modelId: id,
      /** "projected" (CLIP's image_embeds) or "class-tokens:L1,L2,..." (class tokens of those tower layers). */
      feature: z.string().max(200).default('projected'),
      projectionHidden: z.number().int().min(1).max(65536).default(128),
    })
    .strict()
    .optional(),
});

// --- generation: chat and compare ------------------------------------------------------------------------------------

/**
 * The one set of sampling defaults: Chat, Compare, generate and the CLI's `generate` start from these, so the same
 * model at temperature 0 gives the same answer on every page, and the same as Evaluate (greedy, no penalty).
 */
export const SAMPLING_DEFAULTS = { temperature: 0.7, topK: 40, topP: 0.95, repetitionPenalty: 1, maxNewTokens: 128 } as const;

/**
 * Named sampling settings (the length is left as set): the app's default; greedy (what Evaluate scores); and the
 * paper's, as the official LLaMA-Adapter example.py generates (temperature 0.1, top-p 0.75, no top-k).
 */
export const SAMPLING_PRESETS = {
  default: { temperature: SAMPLING_DEFAULTS.temperature, topK: SAMPLING_DEFAULTS.topK, topP: SAMPLING_DEFAULTS.topP, repetitionPenalty: SAMPLING_DEFAULTS.repetitionPenalty },
  greedy: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
  paper: { temperature: 0.1, topK: 0, topP: 0.75, repetitionPenalty: 1 },
} as const;
export type SamplingPreset = keyof typeof SAMPLING_PRESETS;

export const Sampling = z.object({
  temperature: z.number().min(0).max(10).default(SAMPLING_DEFAULTS.temperature),
  topK: z.number().int().min(0).max(100_000).default(SAMPLING_DEFAULTS.topK),
  topP: z.number().gt(0).max(1).default(SAMPLING_DEFAULTS.topP),
  repetitionPenalty: z.number().positive().max(10).default(SAMPLING_DEFAULTS.repetitionPenalty),
  maxNewTokens: z.number().int().min(1).max(8192).default(SAMPLING_DEFAULTS.maxNewTokens),
  seed: z.number().int().min(0).optional(),
});
export type Sampling = z.infer<typeof Sampling>;

/** A model to generate with: a base model, optionally with an adapter from a completed run. */
export const ModelRef = z.object({ modelId: id, adapterRunId: id.nullable().default(null) });
export type ModelRef = z.infer<typeof ModelRef>;

export const GenerationResult = z.object({
  text: z.string(),
  finishReason: z.enum(['eos', 'stop', 'length', 'cancelled']),
  promptTokens: count,
  newTokens: count,
  tokensPerSec: z.number(),
});
export type GenerationResult = z.infer<typeof GenerationResult>;

export const ChatMessage = z.object({
  id: z.number().int(),
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string(),
  createdAt: timestamp,
  meta: z.record(z.string(), z.unknown()),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

export const ChatSummary = z.object({
  id,
  title: z.string(),
  model: ModelRef.nullable(),
  systemPrompt: z.string(),
  sampling: Sampling,
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type ChatSummary = z.infer<typeof ChatSummary>;

/** One column of a side-by-side comparison. Issue 7 adds other kinds (full fine-tunes, imported references). */
export const CompareSide = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('model'), label: z.string().max(100).optional(), model: ModelRef }),
]);
export type CompareSide = z.infer<typeof CompareSide>;

export const ComparisonCell = z.object({
  prompt: z.number().int(),
  side: z.number().int(),
  text: z.string(),
  done: z.boolean(),
  error: z.string().nullable(),
});

export const Comparison = z.object({
  id,
  name: z.string(),
  sides: z.array(z.object({ label: z.string() })),
  prompts: z.array(z.string()),
  /** Per prompt: the picture (sha256, fetch it with images.get) multi-modal columns answered with, or null. */
  images: z.array(z.string().nullable()),
  cells: z.array(ComparisonCell),
  createdAt: timestamp,
});
export type Comparison = z.infer<typeof Comparison>;

/**
 * A blind A/B item: two outputs for one prompt with the sides hidden and the order randomised. The side
 * indices are revealed only in the rating's answer.
 */
export const BlindPair = z.object({
  itemId: z.number().int(),
  prompt: z.string(),
  /** The picture shown with the prompt (sha256), or null. */
  image: z.string().nullable(),
  a: z.string(),
  b: z.string(),
});
export type BlindPair = z.infer<typeof BlindPair>;

export const RATINGS = ['a', 'b', 'tie', 'both_bad'] as const;

export const Tally = z.object({
  sides: z.array(z.string()),
  /** wins[i] counts ratings where side i won; ties and both-bad are counted apart. */
  wins: z.array(count),
  ties: count,
  bothBad: count,
  rated: count,
  unrated: count,
});
export type Tally = z.infer<typeof Tally>;

// --- evaluations (issue 7: LLaMA-Adapter against LoRA and a full fine-tune) ----------------------------------------

/** What an evaluation answers: a dataset's held-out split (with references) or a plain list of prompts. */
export const EvalSet = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('split'),
    datasetId: id,
    split: z.union([Split, z.literal('all')]).default('test'),
    /** The first N examples of the split (in the dataset's order). */
    limit: z.number().int().min(1).max(100_000).nullable().default(null),
  }),
  z.object({ kind: z.literal('prompts'), prompts: z.array(text.refine((s) => s.trim() !== '', 'must not be empty')).min(1).max(10_000) }),
]);
export type EvalSet = z.infer<typeof EvalSet>;

/**
 * One column of an evaluation: a model (base, base + adapter/LoRA run, a full fine-tune run, or any model
 * folder added to the workspace, such as a downloaded Alpaca), or reference outputs made elsewhere and
 * imported as JSON: a list of {instruction, input?, output} (Alpaca's format), a list of {prompt, response},
 * or an object {prompt: response}.
 */
export const EvalSystem = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('model'), label: z.string().trim().max(100).optional(), model: ModelRef }),
  z.object({ kind: z.literal('references'), label: z.string().trim().min(1, 'must not be empty').max(100), fileName: uploadName.default('references.json'), content: text }),
]);
export type EvalSystem = z.infer<typeof EvalSystem>;

export const EVAL_STATUSES = ['running', 'completed', 'failed', 'cancelled', 'interrupted'] as const;
export const EvalStatus = z.enum(EVAL_STATUSES);
export type EvalStatus = z.infer<typeof EvalStatus>;

/** Mean scores over the answered examples; null where the column has no references or no model. */
export const EvalMetrics = z.object({
  count: count,
  exactMatch: z.number().nullable(),
  rougeL: z.number().nullable(),
  tokenF1: z.number().nullable(),
  /** exp(total reference NLL / total reference tokens) under the column's model. */
  perplexity: z.number().nullable(),
});
export type EvalMetrics = z.infer<typeof EvalMetrics>;

export const EvalColumn = z.object({
  evaluationId: id,
  label: z.string(),
  kind: z.enum(['base', 'adapter', 'multimodal', 'lora', 'full', 'model', 'references']),
  runId: id.nullable(),
  status: EvalStatus,
  error: z.string().nullable(),
  done: count,
  metrics: EvalMetrics,
});
export type EvalColumn = z.infer<typeof EvalColumn>;

export const EvalSuiteSummary = z.object({
  id,
  name: z.string(),
  /** "demo v3, test split (22)" or "12 prompts". */
  setLabel: z.string(),
  examples: count,
  status: EvalStatus,
  columns: z.array(EvalColumn),
  createdAt: timestamp,
  /** The running task's id (for task events and tasks.cancel), while it runs. */
  taskId: id.nullable(),
});
export type EvalSuiteSummary = z.infer<typeof EvalSuiteSummary>;

export const EvalRow = z.object({
  position: count,
  instruction: z.string(),
  input: z.string(),
  reference: z.string().nullable(),
  /** The example's picture (sha256, fetch it with images.get), or null. */
  image: z.string().nullable(),
  /** One per column, in column order; null where that column has not answered yet. */
  outputs: z.array(z.object({ text: z.string(), scores: z.record(z.string(), z.number()) }).nullable()),
});
export type EvalRow = z.infer<typeof EvalRow>;

/** One row of the paper's Table 3, measured on the user's own runs. */
export const MethodRow = z.object({
  label: z.string(),
  kind: EvalColumn.shape.kind,
  trainableParameters: count.nullable(),
  /** Bytes of what the method saves (adapter or LoRA files, or the whole model folder). */
  storageBytes: count.nullable(),
  trainingSeconds: z.number().nullable(),
  /** Largest resident memory of the training process (RSS). */
  peakMemoryBytes: count.nullable(),
  /** Mean training throughput. */
  tokensPerSec: z.number().nullable(),
  metrics: EvalMetrics,
  /** Share of LLM-judge verdicts won against the table's first column, when a judge session exists. */
  judgeWinRate: z.number().nullable(),
  /**
   * Of the evaluated items, how many the column's run trained on (the same question in its training data, as
   * the dataset is now): more than 0 means the scores are on seen items. Null without a run.
   */
  seenItems: count.nullable(),
});
export type MethodRow = z.infer<typeof MethodRow>;

export const Judge = z.discriminatedUnion('kind', [
  /** The OpenAI-compatible endpoint in settings (any such server: OpenAI, vLLM, llama.cpp, this app's own /v1). */
  z.object({ kind: z.literal('openai') }),
  /** A model in this workspace. */
  z.object({ kind: z.literal('local'), model: ModelRef }),
]);
export type Judge = z.infer<typeof Judge>;

// --- sweeps (issue 18: the paper's ablations on the user's own model and data) -----------------------------------

/**
 * Settings a sweep can vary besides the recipe's own fields: how much and which of the split trains. A fraction
 * or count takes a seeded subset (smaller subsets inside larger ones); tag and source keep only examples with
 * that tag or source ("!x": only those without).
 */
export const SWEEP_DATA_FIELDS = ['data.fraction', 'data.count', 'data.tag', 'data.source'] as const;

/** One setting's value at a point; strings from the CLI are read as the field's type ("4" for adapterLayers). */
export const SweepValue = z.union([z.string().trim().min(1).max(200), z.number(), z.boolean(), z.null()]);
export const SweepSettings = z.record(z.string(), SweepValue);
export type SweepSettings = z.infer<typeof SweepSettings>;

export const SweepAxis = z.object({ field: z.string().trim().min(1).max(100), values: z.array(SweepValue).min(1).max(32) }).strict();
export type SweepAxis = z.infer<typeof SweepAxis>;

export const SweepRequest = RunRequest.extend({
  /** Default: the varied fields ("adapterLayers × init"). */
  name: z.string().trim().max(200).optional(),
  split: z.union([Split, z.literal('all')]).default('train'),
  /** One or two settings; the sweep trains every combination (the first axis outermost). */
  vary: z.array(SweepAxis).min(1).max(2),
  /** The held-out set every run is evaluated on, pinned to the dataset's version when the sweep starts. */
  evalSplit: z.union([Split, z.literal('all')]).default('test'),
  evalLimit: z.number().int().min(1).max(100_000).nullable().default(null),
  maxNewTokens: z.number().int().min(1).max(2048).default(64),
  /** Seed of the data subsets (data.fraction, data.count). */
  dataSeed: z.number().int().min(0).default(0),
}).strict();
export type SweepRequest = z.input<typeof SweepRequest>;

export const SweepPlan = z.object({
  name: z.string(),
  fields: z.array(z.string()),
  points: z.array(z.object({ settings: SweepSettings, examples: count, totalSteps: count, trainableParameters: count })),
  /** Examples of the held-out set each run answers. */
  evalExamples: count,
  /** Training and evaluation of every point, from this workspace's earlier runs; null without any to go by. */
  estimatedSeconds: z.number().nullable(),
  estimateBasis: z.string(),
  /** Problems, each naming its point; the sweep can start only when this is empty. */
  problems: z.array(z.object({ field: z.string(), message: z.string() })),
  warnings: z.array(z.string()),
});
export type SweepPlan = z.infer<typeof SweepPlan>;

export const SWEEP_STATUSES = ['running', 'completed', 'cancelled'] as const;
export const SweepPointState = z.enum(['queued', 'training', 'paused', 'evaluating', 'done', 'failed', 'cancelled', 'missing']);
export type SweepPointState = z.infer<typeof SweepPointState>;

export const SweepPointSummary = z.object({
  position: count,
  settings: SweepSettings,
  runId: id.nullable(),
  runName: z.string().nullable(),
  runStatus: RunStatus.nullable(),
  progress: RunProgress.nullable(),
  suiteId: id.nullable(),
  evalDone: count,
  evalTotal: count,
  state: SweepPointState,
  error: z.string().nullable(),
});
export type SweepPointSummary = z.infer<typeof SweepPointSummary>;

export const SweepSummary = z.object({
  id,
  name: z.string(),
  status: z.enum(SWEEP_STATUSES),
  modelName: z.string().nullable(),
  datasetName: z.string().nullable(),
  datasetVersion: count,
  fields: z.array(z.string()),
  /** Points whose run trained and was evaluated (or ended otherwise). */
  finished: count,
  points: z.array(SweepPointSummary),
  createdAt: timestamp,
  finishedAt: timestamp.nullable(),
});
export type SweepSummary = z.infer<typeof SweepSummary>;

/** One row of a sweep's table; null where the point has not got that far or the metric does not apply. */
export const SweepMetrics = z.object({
  examples: count.nullable(),
  exactMatch: z.number().nullable(),
  rougeL: z.number().nullable(),
  tokenF1: z.number().nullable(),
  perplexity: z.number().nullable(),
  /** ScienceQA's acc_average (percent) where the held-out set is imported ScienceQA questions. */
  scienceqaAccuracy: z.number().nullable(),
  trainableParameters: count.nullable(),
  trainingSeconds: z.number().nullable(),
  peakMemoryBytes: count.nullable(),
  tokensPerSec: z.number().nullable(),
  finalLoss: z.number().nullable(),
});
export type SweepMetrics = z.infer<typeof SweepMetrics>;

export const SweepResults = z.object({
  sweep: SweepSummary,
  rows: z.array(z.object({ position: count, settings: SweepSettings, state: SweepPointState, metrics: SweepMetrics })),
  /** Each point's training loss (at most 200 points per curve). */
  curves: z.array(z.object({ position: count, points: z.array(z.object({ step: count, loss: z.number() })) })),
});
export type SweepResults = z.infer<typeof SweepResults>;

// --- system ---------------------------------------------------------------------------------------------------------

export const SystemInfo = z.object({
  version: z.string(),
  transport: z.enum(['ipc', 'http', 'cli']),
  workspace: z.string(),
  backend: BackendInfo,
  /** What an engine process is doing: idle, training a run, loading a model. */
  engine: z.object({ training: z.string().nullable(), inference: z.enum(['stopped', 'starting', 'ready', 'busy']) }),
  recovered: z.object({ interruptedRuns: z.array(z.string()) }),
  /**
   * The process that owns the workspace and trains its runs (this one when `self`), null when none does. A
   * process that is not the owner reads and queues runs; the owner trains them.
   */
  owner: z
    .object({ self: z.boolean(), pid: z.number().int(), hostname: z.string(), startedAt: timestamp, description: z.string() })
    .nullable(),
});
export type SystemInfo = z.infer<typeof SystemInfo>;

// --- the method table -----------------------------------------------------------------------------------------------

function method<I extends z.ZodType, O extends z.ZodType>(input: I, output: O, summary: string) {
  return { input, output, summary };
}

const none = z.object({}).strict();
const ok = z.object({ ok: z.literal(true) });
const byDataset = z.object({ datasetId: id }).strict();
const byRun = z.object({ runId: id }).strict();
const streamStarted = z.object({ streamId: id });

export const API = {
  'system.info': method(none, SystemInfo, 'version, workspace, engine state and backend'),

  'settings.get': method(none, Settings, 'current settings'),
  'settings.update': method(SettingsPatch, Settings, 'change settings; backend and threads apply to new engine processes'),
  'settings.switchWorkspace': method(z.object({ path: diskPath }).strict(), Settings, 'open (or create) another workspace folder; refused while a run trains'),

  'models.add': method(z.object({ path: diskPath, name: z.string().trim().max(200).optional() }).strict(), ModelInfo, 'check a Hugging Face LLaMA folder (or a CLIP vision tower folder) and add it'),
  'models.list': method(none, z.array(ModelSummary), 'added models'),
  'models.info': method(z.object({ modelId: id }).strict(), ModelInfo, 'config, parameters, memory estimate, backend, adapters trained on it'),
  'models.remove': method(z.object({ modelId: id }).strict(), ok, 'forget a model (its folder is left alone)'),

  'datasets.validate': method(
    z.object({ source: ImportSource, options: ImportOptions.default(ImportOptions.parse({})) }).strict(),
    ImportReport,
    'read a file and report every bad record without importing anything',
  ),
  'datasets.import': method(
    z
      .object({
        source: ImportSource,
        options: ImportOptions.default(ImportOptions.parse({})),
        /** A new dataset's name; or add to an existing dataset as a new version with `into`. */
        name: name.optional(),
        into: id.optional(),
        /** 'skip': import the valid records and skip the invalid; 'reject': import nothing unless every record is valid. */
        onInvalid: z.enum(['skip', 'reject']).default('reject'),
      })
      .strict(),
    z.object({ dataset: DatasetSummary, report: ImportReport, imported: count }),
    'import a file as a new dataset (or a new version of one) in one transaction',
  ),
  'datasets.list': method(none, z.array(DatasetSummary), 'datasets with example and split counts'),
  'datasets.get': method(byDataset, DatasetSummary, 'one dataset'),
  'datasets.remove': method(byDataset, ok, 'delete a dataset no run uses'),
  'datasets.query': method(
    ExampleQuery.strict(),
    // position: the example's number within its dataset (1 for the oldest; ids are the workspace's, not the dataset's).
    z.object({ total: count, items: z.array(Example.extend({ position: count })) }),
    'one page of examples matching a search and filters',
  ),
  'datasets.tags': method(byDataset, z.array(z.object({ tag: z.string(), count })), 'tags in use, most used first'),
  'datasets.addExample': method(
    z.object({ datasetId: id, example: z.object({ instruction: ExamplePatch.shape.instruction.unwrap(), input: text.default(''), output: ExamplePatch.shape.output.unwrap(), tags: z.array(z.string()).default([]), split: Split.nullable().default(null), image: Sha256.nullable().default(null) }) }).strict(),
    DatasetVersion,
    'add one example by hand',
  ),
  'datasets.editExample': method(z.object({ datasetId: id, exampleId: z.number().int(), patch: ExamplePatch }).strict(), DatasetVersion.nullable(), 'edit one example (a new version; null when nothing changed)'),
  'datasets.deleteExamples': method(z.object({ datasetId: id, exampleIds: z.array(z.number().int()).min(1).max(100_000) }).strict(), DatasetVersion.nullable(), 'delete examples (a new version)'),
  'datasets.tag': method(
    z.object({ datasetId: id, exampleIds: z.array(z.number().int()).min(1), add: z.array(z.string().trim().min(1)).default([]), remove: z.array(z.string().trim().min(1)).default([]) }).strict(),
    DatasetVersion.nullable(),
    'add or remove tags on examples',
  ),
  'datasets.undo': method(byDataset, DatasetVersion, 'undo the latest change that has not been undone'),
  'datasets.history': method(byDataset, z.array(DatasetVersion), 'every version, newest first'),
  'datasets.duplicates': method(
    z.object({ datasetId: id, near: z.boolean().default(true), threshold: z.number().min(0.3).max(1).default(0.8) }).strict(),
    z.array(DuplicateGroup),
    'exact duplicates, and near duplicates alike in instruction, input and output and showing the same image (MinHash, every member at Jaccard >= threshold against the kept one), in groups for review',
  ),
  'datasets.removeDuplicates': method(
    z.object({ datasetId: id, groups: z.array(z.object({ ids: z.array(z.number().int()).min(2), keep: z.number().int() })).min(1) }).strict(),
    DatasetVersion.nullable(),
    'delete every member of each group but the one kept, as one undoable version',
  ),
  'datasets.split': method(
    z
      .object({ datasetId: id, val: z.number().min(0).max(0.9), test: z.number().min(0).max(0.9), seed: z.number().int().min(0).default(0) })
      .strict()
      .refine((s) => s.val + s.test < 1, { message: 'val + test must leave some examples for train', path: ['val'] }),
    z.object({ dataset: DatasetSummary, counts: z.object({ train: count, val: count, test: count }), version: DatasetVersion.nullable() }),
    'assign seeded train/val/test splits (one version; the same seed gives the same split)',
  ),
  'datasets.stats': method(
    z.object({ datasetId: id, modelId: id.nullable().default(null), maxSeqLen: z.number().int().min(2).default(512), bins: z.number().int().min(2).max(100).default(20) }).strict(),
    DatasetStats,
    "token-length statistics and histogram with a model's tokenizer (characters / 4 without one)",
  ),
  'datasets.export': method(
    z
      .object({
        datasetId: id,
        format: z.enum(['json', 'jsonl']),
        split: z.union([Split, z.literal('all')]).default('all'),
        includeMeta: z.boolean().default(false),
        /** A .zip holding the data file and images/<sha256>.<ext> beside it, as `adapter-studio dataset export` writes them. */
        withImages: z.boolean().default(false),
      })
      .strict(),
    /** `images`: distinct images the records point at as images/<sha256>.<ext>. `encoding` says how `content`
     * is carried: the data file's text (utf8), or the zip's bytes (base64) when `withImages` was asked. */
    z.object({ fileName: z.string(), mimeType: z.string(), encoding: z.enum(['utf8', 'base64']), content: z.string(), examples: count, images: count }),
    'the dataset as Alpaca JSON or JSONL text, or a zip with its images',
  ),
  'datasets.image': method(
    z.object({ datasetId: id, exampleId: z.number().int() }).strict(),
    ExampleImage,
    "an example's image (bytes as base64, format, size)",
  ),
  'datasets.selfInstruct': method(
    z
      .object({
        datasetId: id,
        count: z.number().int().min(1).max(10_000),
        /** A local model (optionally with an adapter), or the OpenAI-compatible endpoint in settings. */
        generator: z.discriminatedUnion('kind', [z.object({ kind: z.literal('local'), model: ModelRef }), z.object({ kind: z.literal('openai') })]),
        /** The bundled seed tasks, or this dataset's own examples. */
        seedTasks: z.enum(['bundled', 'dataset']).default('bundled'),
        seed: z.number().int().min(0).default(0),
      })
      .strict(),
    z.object({ taskId: id }),
    'generate new examples in the Self-Instruct style; progress and the result arrive as task events',
  ),
  'tasks.cancel': method(z.object({ taskId: id }).strict(), ok, 'stop a long dataset task (self-instruct)'),

  'runs.defaults': method(
    z.object({ modelId: id, method: Method.default('adapter') }).strict(),
    Recipe,
    "the method's preset for this model: the LLaMA-Adapter paper's, Alpaca-LoRA's or Stanford Alpaca's",
  ),
  'runs.plan': method(RunRequest.strict(), RunPlan, 'validate a run and estimate its size before launching'),
  'runs.start': method(RunRequest.strict(), RunSummary, 'queue a training run; it starts when no other run trains'),
  'runs.list': method(z.object({ search: z.string().max(200).optional(), status: RunStatus.optional() }).strict(), z.array(RunSummary), 'run history, newest first'),
  'runs.get': method(byRun, RunDetail, 'one run with recipe, checkpoints and timings'),
  'runs.metrics': method(z.object({ runId: id, afterStep: count.optional() }).strict(), z.array(MetricPoint), 'per-step metrics recorded so far'),
  'runs.pause': method(byRun, RunSummary, 'checkpoint and stop (a queued run leaves the queue)'),
  'runs.resume': method(byRun, RunSummary, 'queue a paused or interrupted run again; it continues from its checkpoint'),
  'runs.cancel': method(byRun, RunSummary, 'stop a run for good'),
  'runs.remove': method(byRun, ok, 'delete a finished run and its files'),
  'runs.rename': method(z.object({ runId: id, name: z.string().trim().min(1, 'must not be empty').max(200) }).strict(), RunSummary, 'give a run another name'),
  'runs.importJob': method(
    z
      .object({
        /** A job folder written by `adapter-studio export-job` (job.json), after train.py ran. */
        jobDir: z.string().trim().pipe(diskPath),
        /** Where train.py wrote its result; default <jobDir>/output. */
        outputDir: z.string().trim().pipe(diskPath).optional(),
        /** The base model; default the job's origin model, else the workspace model with the job's fingerprint or folder. */
        modelId: id.optional(),
        name: z.string().trim().max(200).optional(),
      })
      .strict(),
    ImportedJob,
    "record a PEFT scale-out job's result (export-job, then train.py on a cluster) as a completed adapter run, with its loss per step",
  ),

  'images.upload': method(
    z.object({ fileName: uploadName, base64: z.string().min(1).max(MAX_PICTURE_BASE64, `a picture of up to ${MAX_PICTURE_BYTES / 1048576} MiB`) }).strict(),
    ExampleImage.omit({ base64: true }),
    'keep a picture in the workspace (PNG, JPEG, WebP, GIF; checked whole) to attach to a chat or a generation',
  ),
  'images.get': method(z.object({ sha256: Sha256 }).strict(), ExampleImage, "a stored picture's bytes (base64), format and size"),
  'generate.start': method(
    z.object({ model: ModelRef, prompt: text.refine((s) => s.trim() !== '', 'must not be empty'), input: text.default(''), template: z.enum(['alpaca', 'none']).default('alpaca'), sampling: Sampling.default(Sampling.parse({})), image: Sha256.optional() }).strict(),
    streamStarted,
    'generate one response; text arrives as stream events',
  ),
  'streams.cancel': method(z.object({ streamId: id }).strict(), ok, 'stop a generation or comparison'),

  'chats.list': method(none, z.array(ChatSummary), 'saved conversations, newest first'),
  'chats.create': method(
    z.object({ title: z.string().trim().max(200).default('New chat'), model: ModelRef.nullable().default(null), systemPrompt: z.string().max(20_000).default(''), sampling: Sampling.default(Sampling.parse({})) }).strict(),
    ChatSummary,
    'start a conversation',
  ),
  'chats.get': method(z.object({ chatId: id }).strict(), z.object({ chat: ChatSummary, messages: z.array(ChatMessage) }), 'a conversation with its messages'),
  'chats.update': method(
    z.object({ chatId: id, title: z.string().trim().min(1).max(200).optional(), model: ModelRef.nullable().optional(), systemPrompt: z.string().max(20_000).optional(), sampling: Sampling.optional() }).strict(),
    ChatSummary,
    'rename or change model, system prompt and sampling',
  ),
  'chats.remove': method(z.object({ chatId: id }).strict(), ok, 'delete a conversation'),
  'chats.send': method(
    z.object({ chatId: id, content: text.refine((s) => s.trim() !== '', 'must not be empty'), image: Sha256.optional() }).strict(),
    z.object({ streamId: id, userMessage: ChatMessage }),
    'add a user message and stream the reply (saved when it ends)',
  ),

  'compare.start': method(
    z
      .object({
        name: z.string().trim().max(200).default('Comparison'),
        prompts: z.array(text.refine((s) => s.trim() !== '', 'must not be empty')).min(1).max(200),
        sides: z.array(CompareSide).min(2).max(8),
        sampling: Sampling.default(Sampling.parse({ temperature: 0 })),
        /** A picture (from images.upload) every prompt is asked about. Multi-modal columns see it; text-only
         * columns answer the words alone, which is the comparison the paper makes. */
        image: Sha256.optional(),
      })
      .strict(),
    z.object({ comparisonId: id, streamId: id }),
    'run every prompt through every side; cells stream as events keyed "prompt:side"',
  ),
  'compare.list': method(none, z.array(Comparison.omit({ cells: true, prompts: true, images: true }).extend({ prompts: count })), 'saved comparisons'),
  'compare.get': method(z.object({ comparisonId: id }).strict(), Comparison, 'a comparison with all outputs'),
  'compare.blind': method(
    z.object({ comparisonId: id, sides: z.tuple([z.number().int().min(0), z.number().int().min(0)]).default([0, 1]) }).strict(),
    z.array(BlindPair),
    'unrated A/B pairs between two sides, order randomised per item',
  ),
  'compare.rate': method(
    z.object({ comparisonId: id, itemId: z.number().int(), rating: z.enum(RATINGS), note: z.string().max(5000).default('') }).strict(),
    z.object({ itemId: z.number().int(), a: z.string(), b: z.string(), winner: z.string().nullable() }),
    'store a blind rating; answers which side A and B were',
  ),
  'compare.tally': method(z.object({ comparisonId: id }).strict(), Tally, 'win/tie/loss counts of the blind ratings'),

  'evals.start': method(
    z
      .object({
        name: z.string().trim().max(200).default('Evaluation'),
        set: EvalSet,
        systems: z.array(EvalSystem).min(1).max(8),
        maxNewTokens: z.number().int().min(1).max(2048).default(64),
      })
      .strict(),
    z.object({ suiteId: id, taskId: id }),
    'answer the set with every column (greedy), score each answer, store all; progress arrives as task events',
  ),
  'evals.list': method(none, z.array(EvalSuiteSummary), 'evaluations, newest first'),
  'evals.get': method(
    z.object({ suiteId: id, offset: count.default(0), limit: z.number().int().min(1).max(1000).default(200) }).strict(),
    EvalSuiteSummary.extend({ rows: z.array(EvalRow) }),
    'an evaluation with its per-example outputs and scores',
  ),
  'evals.resume': method(z.object({ suiteId: id }).strict(), z.object({ taskId: id }), 'continue an interrupted or cancelled evaluation where it stopped'),
  'evals.remove': method(z.object({ suiteId: id }).strict(), ok, 'delete an evaluation and its outputs'),
  'evals.methodTable': method(z.object({ suiteId: id }).strict(), z.array(MethodRow), "the paper's method table for the evaluation's columns"),
  'evals.scienceqa': method(
    z.object({ suiteId: id }).strict(),
    z.array(
      z.object({
        label: z.string(),
        kind: EvalColumn.shape.kind,
        /** ScienceQA's official keys (acc_average, acc_natural, ...; two decimals), null where no question is of that kind. */
        scores: z.record(z.string(), z.number().nullable()),
        questions: count,
        correct: count,
        /** Answers that name no choice (counted wrong, as ScienceQA's tools count them). */
        unparseable: count,
        /** ScienceQA's results format: pid -> the chosen choice's index (-1: none). */
        results: z.record(z.string(), z.number().int()),
      }),
    ),
    "ScienceQA's accuracy table for an evaluation of imported ScienceQA questions, and each column's results file",
  ),
  'evals.blind': method(
    z.object({ suiteId: id, columns: z.tuple([count, count]) }).strict(),
    z.object({ comparisonId: id }),
    "a blind A/B session over two columns' stored outputs (rated in Compare)",
  ),
  'evals.judge': method(
    z.object({ suiteId: id, columns: z.tuple([count, count]), judge: Judge }).strict(),
    z.object({ taskId: id, comparisonId: id }),
    'LLM-as-judge: a pairwise verdict per example, stored as a labelled comparison session',
  ),

  'sweeps.plan': method(SweepRequest, SweepPlan, 'expand a sweep into its points, check each and estimate the total time'),
  'sweeps.start': method(SweepRequest, SweepSummary, "queue every point's run; each is evaluated on the held-out set when it has trained"),
  'sweeps.list': method(none, z.array(SweepSummary), 'sweeps, newest first'),
  'sweeps.get': method(z.object({ sweepId: id }).strict(), SweepResults, "a sweep's progress, its table (settings x metrics) and loss curves"),
  'sweeps.resume': method(z.object({ sweepId: id }).strict(), SweepSummary, "continue a sweep's paused runs (an app that closed mid-run paused it) and unfinished evaluations"),
  'sweeps.cancel': method(z.object({ sweepId: id }).strict(), SweepSummary, 'stop the sweep: its queued and training runs are cancelled, finished ones kept'),
  'sweeps.remove': method(z.object({ sweepId: id }).strict(), ok, 'forget a finished sweep; its runs and evaluations stay in the history'),
} as const;

export type ApiTable = typeof API;
export type ApiMethod = keyof ApiTable;
export const API_METHODS: readonly ApiMethod[] = API_METHOD_NAMES;

// The name list (api-methods.ts) and the table must agree, both ways; a mismatch fails to compile here.
type SameKeys<A extends PropertyKey, B extends PropertyKey> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const namesMatchTable: SameKeys<ApiMethodName, ApiMethod> = true;
void namesMatchTable;

/** What a caller passes (defaults may be left out). */
export type ApiInput<M extends ApiMethod> = z.input<ApiTable[M]['input']>;
/** What a handler receives: parsed, defaults filled in. */
export type ApiParsedInput<M extends ApiMethod> = z.output<ApiTable[M]['input']>;
export type ApiOutput<M extends ApiMethod> = z.output<ApiTable[M]['output']>;

/** The server side: one async function per method. */
export type ApiHandlers = { [M in ApiMethod]: (input: ApiParsedInput<M>) => Promise<ApiOutput<M>> };

/** The UI side: the same methods, as the client calls them. */
export type ApiClient = { [M in ApiMethod]: (input: ApiInput<M>) => Promise<ApiOutput<M>> };

// --- events ---------------------------------------------------------------------------------------------------------

export const ApiEvent = z.discriminatedUnion('type', [
  /** First event on every connection; a client that reconnects refetches what it shows. */
  z.object({ type: z.literal('hello'), at: timestamp }),
  z.object({ type: z.literal('run.updated'), run: RunSummary }),
  z.object({ type: z.literal('run.metric'), runId: id, point: MetricPoint, progress: RunProgress }),
  z.object({ type: z.literal('run.log'), runId: id, level: z.enum(['info', 'warn', 'error']), message: z.string() }),
  /** Streamed text. `key` tells the parts of one stream apart ("prompt:side" in a comparison, "reply" in chat). */
  z.object({ type: z.literal('stream.delta'), streamId: id, key: z.string(), text: z.string() }),
  z.object({ type: z.literal('stream.end'), streamId: id, key: z.string(), result: GenerationResult }),
  z.object({ type: z.literal('stream.error'), streamId: id, key: z.string(), message: z.string() }),
  /** The whole stream finished (every key ended or failed). */
  z.object({ type: z.literal('stream.closed'), streamId: id }),
  z.object({ type: z.literal('task.progress'), taskId: id, label: z.string(), done: count, total: count, finished: z.boolean(), error: z.string().nullable() }),
  z.object({ type: z.literal('datasets.changed'), datasetId: id.nullable() }),
  z.object({ type: z.literal('models.changed') }),
  z.object({ type: z.literal('sweep.updated'), sweep: SweepSummary }),
  z.object({ type: z.literal('engine.status'), backend: BackendInfo, inference: z.enum(['stopped', 'starting', 'ready', 'busy']), training: z.string().nullable() }),
]);
export type ApiEvent = z.infer<typeof ApiEvent>;
export type ApiEventOf<T extends ApiEvent['type']> = Extract<ApiEvent, { type: T }>;

// --- the wire envelope and errors -----------------------------------------------------------------------------------

/** too_large: a request body or upload over its limit (HTTP 413). */
export const ERROR_CODES = ['invalid_input', 'not_found', 'conflict', 'user', 'too_large', 'unauthorized', 'internal'] as const;
export type ApiErrorCode = (typeof ERROR_CODES)[number];

export interface ApiErrorBody {
  code: ApiErrorCode;
  /** A sentence a user can act on. */
  message: string;
  /** For invalid_input: each bad field. */
  issues?: { path: string; message: string }[];
}

export type ApiResponse<T> = { ok: true; value: T } | { ok: false; error: ApiErrorBody };

/** An error that crossed a transport; `code` says whose fault it was. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly code: ApiErrorCode;
  readonly issues: { path: string; message: string }[];
  constructor(body: ApiErrorBody) {
    super(body.message);
    this.code = body.code;
    this.issues = body.issues ?? [];
  }
  toBody(): ApiErrorBody {
    return { code: this.code, message: this.message, ...(this.issues.length ? { issues: this.issues } : {}) };
  }
}

export function isApiMethod(name: string): name is ApiMethod {
  return Object.prototype.hasOwnProperty.call(API, name);
}

/** zod issues as `field "recipe.lr": expected number, received string`, one per bad field. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): { path: string; message: string }[] {
  return issues.map((issue) => ({ path: issue.path.map(String).join('.') || '(request)', message: issue.message }));
}

/** Parses a request for `method`; throws an invalid_input ApiError naming every bad field. */
export function parseRequest<M extends ApiMethod>(method: M, input: unknown): ApiParsedInput<M> {
  const result = API[method].input.safeParse(input ?? {});
  if (result.success) return result.data as ApiParsedInput<M>;
  const issues = describeIssues(result.error.issues);
  const list = issues.map((i) => (i.path === '(request)' ? i.message : `field "${i.path}": ${i.message}`)).join('; ');
  throw new ApiError({ code: 'invalid_input', message: `${method}: ${list}`, issues });
}

/** Checks a handler's answer against the contract (a failure here is a bug in the main process). */
export function checkResponse<M extends ApiMethod>(method: M, value: unknown): ApiOutput<M> {
  const result = API[method].output.safeParse(value);
  if (result.success) return result.data as ApiOutput<M>;
  const list = describeIssues(result.error.issues)
    .map((i) => `${i.path}: ${i.message}`)
    .join('; ');
  throw new ApiError({ code: 'internal', message: `${method} produced an answer that breaks the API contract (${list})` });
}

/** Validates an event before it is sent (and, in development, when it arrives). */
export function parseEvent(value: unknown): ApiEvent {
  return ApiEvent.parse(value);
}
