// The weight-dependent step of importing a scale-out job's result (job-run.ts): put the job's PEFT adapter
// onto the base model, check it, and save it in our format. It needs the base model's weights, so the app
// runs it in its inference engine process (host/engine-host.ts, with that process's model cache), and the
// CLI in its own process; either way the answer is plain data that crosses a process boundary.

import { disposeAdapter } from '../engine/adapter.js';
import { type LoadedModel, loadModel } from '../engine/load.js';
import { disposeModel } from '../engine/model.js';
import { importJobResult, type JobMetricPoint } from './scaleout.js';

export interface JobConversionRequest {
  jobDir: string;
  /** Where train.py wrote its result. */
  outputDir: string;
  /** The base model folder the adapter goes onto. */
  modelDir: string;
  /** A folder that does not exist yet; receives our adapter files and metrics.json. */
  adapterDir: string;
}

/** What the main process needs to record the run: read from the job's output as the conversion saw it. */
export interface JobConversion {
  jobId: string;
  metrics: JobMetricPoint[];
  completed: boolean;
  worldSize: number | null;
  device: string | null;
}

/** Converts a job's output; where it runs is the caller's choice (engine process or this process). */
export type ConvertJob = (req: JobConversionRequest) => Promise<JobConversion>;

/** The conversion onto a model already loaded (the engine host's cached one). */
export async function convertJobOutput(model: LoadedModel, req: JobConversionRequest): Promise<JobConversion> {
  const imported = await importJobResult(req.jobDir, model, req.adapterDir, { outputDir: req.outputDir });
  disposeAdapter(imported.adapter);
  return { jobId: imported.job.jobId, metrics: imported.metrics, completed: imported.completed, worldSize: imported.worldSize, device: imported.device };
}

/** The CLI's way: load the weights here, convert, let them go. Needs a tfjs backend. */
export const convertInProcess: ConvertJob = async (req) => {
  const model = loadModel(req.modelDir);
  try {
    return await convertJobOutput(model, req);
  } finally {
    disposeModel(model);
  }
};
