// A scale-out job's result as a run of a workspace: `import-job --workspace` records what the PEFT job
// trained in the run history (method adapter, status completed, the job's recipe, model and dataset
// version, loss per step), with the converted adapter in the run's folder, where chat, compare and the
// OpenAI API look for a completed run's adapter.
//
// The run is created, started, given its metrics and completed in one transaction, so no other process
// sharing the workspace ever sees it queued (a run queue would try to train it). Its files are written to
// a staging folder first and moved into the run's folder after the commit.
//
// Three steps, so that the app's main process never reads model weights: plan (job.json, the output's
// files, the workspace's model and dataset: cheap), convert (job-convert.ts: the weights; in an engine
// process in the app), record (one transaction, then the move).

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Instruction } from '../engine/data.js';
import { EngineError } from '../engine/errors.js';
import type { DatasetId, Model, ModelId, Run, Workspace } from '../store/index.js';
import { type ConvertJob, convertInProcess } from './job-convert.js';
import { datasetHash, type JobFile, type JobOrigin, type JobResult, readJobResult } from './scaleout.js';

/** What the run's recipe column records about where the run came from (besides the recipe itself). */
export interface ImportedJobSource {
  kind: 'peft-job';
  jobId: string;
  jobDir: string;
  worldSize: number | null;
  device: string | null;
  completed: boolean;
}

export interface ImportJobRunOptions {
  jobDir: string;
  /** Where train.py wrote its result; default <jobDir>/output. */
  outputDir?: string;
  /** The base model: a workspace model id, name or folder. Default: the job's origin, else by fingerprint or folder. */
  model?: string;
  /** Default: "<dataset name> (PEFT job <first 8 of the job id>)". */
  name?: string;
}

export interface ImportedJobRun {
  run: Run;
  result: JobResult;
  /** Why the run has no dataset, when it has none. */
  datasetNote: string | null;
}

/** A model of the workspace by id, exact name or folder. */
export function findWorkspaceModel(ws: Workspace, ref: string): Model | null {
  const models = ws.models.list();
  const folder = path.resolve(ref);
  return models.find((m) => m.id === ref) ?? models.find((m) => m.name === ref) ?? models.find((m) => path.resolve(m.path) === folder) ?? null;
}

/** The workspace's copy of the job's base model: named, recorded at export, or found by fingerprint or folder. */
function baseModelOf(ws: Workspace, job: JobFile, jobDir: string, ref: string | undefined): Model {
  if (ref !== undefined) {
    const named = findWorkspaceModel(ws, ref);
    if (!named) throw new EngineError(`--model ${ref}: no model of the workspace ${ws.dir} has this id, name or folder`);
    return named;
  }
  const models = ws.models.list();
  const found =
    // Store ids are random: one found here is the exporting workspace's model, even if the folder moved.
    (job.origin?.modelId ? models.find((m) => m.id === job.origin?.modelId) : undefined) ??
    (job.baseModel.fingerprint ? models.find((m) => m.fingerprint === job.baseModel.fingerprint) : undefined) ??
    models.find((m) => path.resolve(m.path) === path.resolve(job.baseModel.localPath));
  if (!found) {
    throw new EngineError(
      `${jobDir}: the job's base model (${job.baseModel.localPath}${job.baseModel.fingerprint ? `, fingerprint ${job.baseModel.fingerprint}` : ''}) is not in the workspace ${ws.dir}; add it there first, or name a workspace model with --model`,
    );
  }
  return found;
}

/**
 * The dataset version the job trained on, when it came from this workspace and that version still holds
 * exactly the job's examples (same hash); otherwise the run records no dataset and the note says why.
 */
function datasetOf(ws: Workspace, job: JobFile): { datasetId: DatasetId | null; version: number | null; split: JobOrigin['split']; note: string | null } {
  const origin = job.origin;
  if (!origin) return { datasetId: null, version: null, split: 'all', note: `the job was exported from ${job.dataset.source ?? 'a file'}, not from a workspace dataset` };
  const none = (note: string) => ({ datasetId: null, version: null, split: origin.split, note });
  let examples: Instruction[];
  try {
    const dataset = ws.datasets.get(origin.datasetId as DatasetId);
    examples = ws.datasets.examplesAt(dataset.id, origin.datasetVersion).filter((e) => origin.split === 'all' || e.split === origin.split);
  } catch {
    return none(`dataset ${origin.datasetId} version ${origin.datasetVersion} (from ${origin.workspace}) is not in this workspace`);
  }
  if (datasetHash(examples) !== job.dataset.sha256) return none(`dataset ${origin.datasetId} version ${origin.datasetVersion} here holds other examples than the job trained on`);
  return { datasetId: origin.datasetId as DatasetId, version: origin.datasetVersion, split: origin.split, note: null };
}

function backendNote(r: JobResult): string {
  const where = r.worldSize ? `${r.worldSize} process${r.worldSize > 1 ? 'es' : ''}${r.device ? ` on ${r.device}` : ''}` : 'torchrun / accelerate';
  const last = r.metrics.at(-1)?.step ?? 0;
  return `imported from PEFT job (${where})${r.completed ? '' : `, unfinished: stopped at step ${last} of ${r.job.schedule.totalSteps}`}`;
}

/** What the main process works out before any weights are read: refusals come here, cheaply. */
interface JobImportPlan {
  jobDir: string;
  outputDir: string;
  job: JobFile;
  model: Model;
  dataset: ReturnType<typeof datasetOf>;
}

/** The run of `ws` that already holds this job, if any. */
function runOfJob(ws: Workspace, jobId: string): Run | undefined {
  return ws.runs.list().find((r) => (r.recipe.source as Partial<ImportedJobSource> | undefined)?.jobId === jobId);
}

function alreadyImported(jobDir: string, jobId: string, run: Run): EngineError {
  return new EngineError(`${jobDir}: job ${jobId} is already in the run history as run "${run.name}" (${run.id})`);
}

function planJobImport(ws: Workspace, opts: ImportJobRunOptions): JobImportPlan {
  const jobDir = path.resolve(opts.jobDir);
  const outputDir = path.resolve(opts.outputDir ?? path.join(jobDir, 'output'));
  const { job } = readJobResult(jobDir, outputDir); // refuses an unfinished or foreign output before any loading
  const earlier = runOfJob(ws, job.jobId);
  if (earlier) throw alreadyImported(jobDir, job.jobId, earlier);
  return { jobDir, outputDir, job, model: baseModelOf(ws, job, jobDir, opts.model), dataset: datasetOf(ws, job) };
}

/**
 * Record a finished scale-out job as a completed adapter run of `ws`. `convert` does the part that reads
 * the base model's weights (check the fingerprint, convert the adapter into the staging folder): in this
 * process by default (the CLI; needs a tfjs backend), in an engine process in the app (service/job-import.ts).
 * A failure anywhere leaves no run and no files behind.
 */
export async function importJobAsRun(ws: Workspace, opts: ImportJobRunOptions, convert: ConvertJob = convertInProcess): Promise<ImportedJobRun> {
  const plan = planJobImport(ws, opts);
  const { job, jobDir, model, dataset } = plan;
  const runsDir = path.join(ws.dir, 'runs');
  fs.mkdirSync(runsDir, { recursive: true });
  // Hidden, in the runs folder: the final move is a rename on the same disk.
  const staging = path.join(runsDir, `.import-${randomBytes(6).toString('hex')}`);
  let run: Run | null = null;
  try {
    const converted = await convert({ jobDir, outputDir: plan.outputDir, modelDir: model.path, adapterDir: staging });
    if (converted.jobId !== job.jobId) throw new EngineError(`${jobDir}: job.json changed during the import (job ${converted.jobId}, was ${job.jobId}); import it again`);
    const result: JobResult = { job, outputDir: plan.outputDir, metrics: converted.metrics, completed: converted.completed, worldSize: converted.worldSize, device: converted.device };
    const source: ImportedJobSource = { kind: 'peft-job', jobId: job.jobId, jobDir, worldSize: result.worldSize, device: result.device, completed: result.completed };
    run = ws.transaction(() => {
      // Checked again here: another import of the same job may have finished while this one converted.
      const earlier = runOfJob(ws, job.jobId);
      if (earlier) throw alreadyImported(jobDir, job.jobId, earlier);
      const created = ws.runs.create({
        name: opts.name?.trim() || `${job.dataset.name ?? 'job'} (PEFT job ${job.jobId.slice(0, 8)})`,
        method: 'adapter',
        // PEFT trains per-layer gates whatever the recipe asked for (see scaleout.ts); `split` as runs.start stores it.
        recipe: { ...job.recipe, gateMode: 'per-layer', split: dataset.split, source },
        datasetId: dataset.datasetId,
        datasetVersion: dataset.version,
        modelId: model.id as ModelId,
        backend: backendNote(result),
      });
      ws.runs.start(created.id);
      ws.runs.appendMetrics(created.id, result.metrics);
      return ws.runs.setStatus(created.id, 'completed');
    });
    fs.rmSync(ws.runDir(run.id), { recursive: true, force: true });
    fs.renameSync(staging, ws.runDir(run.id));
    return { run, result, datasetNote: dataset.note };
  } catch (e) {
    if (run) ws.runs.delete(run.id);
    fs.rmSync(staging, { recursive: true, force: true });
    throw e;
  }
}
