// runs.importJob: a PEFT scale-out job's result (export-job, train.py on a cluster) into the run history.
// The main process plans and records (interop/job-run.ts); the conversion, which reads the base model's
// weights, runs in the inference engine process, so a 7B import never blocks or bloats this process.

import { resolve } from 'node:path';
import type { ApiHandlers } from '../../src-shared/api.js';
import { importJobAsRun } from '../interop/job-run.js';
import type { ModelId } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { userError } from './errors.js';
import type { RunViews } from './runs.js';

export function jobImportHandlers(ctx: ServiceContext, views: RunViews): Pick<ApiHandlers, 'runs.importJob'> {
  return {
    'runs.importJob': async ({ jobDir, outputDir, modelId, name }) => {
      const ws = ctx.ws();
      // An unknown id is a not_found answer naming it, before anything is read.
      const model = modelId === undefined ? undefined : ws.models.get(modelId as ModelId);
      const imported = await importJobAsRun(
        ws,
        { jobDir: resolve(jobDir), outputDir: outputDir === undefined ? undefined : resolve(outputDir), model: model?.id, name },
        async (req) => {
          const converted = await ctx.engines.importJob(req);
          // The conversion takes a while; a workspace switched meanwhile is closed: record nothing (the staging folder goes).
          if (ctx.ws() !== ws) throw userError(`the workspace changed while ${req.jobDir} was converted; nothing was recorded, import it again`);
          return converted;
        },
      );
      const run = views.summary(ws.runs.get(imported.run.id));
      ctx.events.emit({ type: 'run.updated', run });
      return { run, jobId: imported.result.job.jobId, steps: imported.result.metrics.length, completed: imported.result.completed, datasetNote: imported.datasetNote };
    },
  };
}
