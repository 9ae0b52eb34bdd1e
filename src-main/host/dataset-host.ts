// The dataset side of the engine host (`--role=datasets`): one process per dataset job reads a file, checks
// its images and writes the workspace's database itself, or looks for duplicates. Reading a 200 MB file takes
// a minute and gigabytes; done in the main process it would stall every request (in Electron, the window's)
// and keep that memory. Here the memory goes with the process, and the main process only relays progress.
//
// The process opens the workspace as a non-owner (it never trains or recovers runs), like a CLI command.

import { type DuplicateGroup, findExactDuplicates, findNearDuplicates, importDataset, readDatasetFile } from '../datasets/index.js';
import { CancelledError, EngineError } from '../engine/errors.js';
import { describeFsError, StoreError } from '../store/errors.js';
import { type DatasetId, openWorkspace, type Workspace } from '../store/index.js';
import type { ParentPort } from './channel.js';
import type { FromHost, JobId, ResultOf, ToHost } from './protocol.js';

export class DatasetHost {
  private readonly aborts = new Map<JobId, AbortController>();

  constructor(private readonly port: ParentPort) {}

  handle(msg: ToHost): void {
    switch (msg.kind) {
      case 'datasetValidate':
        this.run(msg.job, async (signal) => (await readDatasetFile(msg.file, { ...msg.options, signal })).report);
        return;
      case 'datasetImport':
        this.run(msg.job, (signal) =>
          withWorkspace(msg.workspaceDir, async (ws): Promise<ResultOf['datasetImport']> => {
            const onProgress = (done: number, total: number) => this.send({ kind: 'progress', job: msg.job, done, total });
            const result = await importDataset(ws, msg.file, { ...msg.options, signal, onProgress });
            return { datasetId: result.dataset.id, imported: result.imported, report: result.report };
          }),
        );
        return;
      case 'datasetDuplicates':
        this.run(msg.job, () =>
          withWorkspace(msg.workspaceDir, async (ws): Promise<DuplicateGroup[]> => {
            const id = msg.datasetId as DatasetId;
            const exact = findExactDuplicates(ws, id);
            return msg.near ? [...exact, ...findNearDuplicates(ws, id, { threshold: msg.threshold })] : exact;
          }),
        );
        return;
      case 'abort':
        this.aborts.get(msg.job)?.abort();
        return;
      case 'shutdown':
        this.port.close();
        setTimeout(() => process.exit(0), 50);
        return;
      default:
        this.send({ kind: 'log', level: 'error', message: `a dataset process got a ${msg.kind} request` });
    }
  }

  private send(msg: FromHost): void {
    this.port.send(msg);
  }

  /** Answers the job with exactly one result or error; input errors (a bad file, a name taken) are `user`. */
  private run<T>(job: JobId, work: (signal: AbortSignal) => Promise<T>): void {
    const controller = new AbortController();
    this.aborts.set(job, controller);
    work(controller.signal)
      .then(
        (value) => this.send({ kind: 'result', job, value }),
        (e: unknown) => {
          const err = e as Error;
          const fs = describeFsError(err);
          if (fs) return this.send({ kind: 'error', job, message: fs, user: true });
          const user = err instanceof StoreError || err instanceof EngineError || err instanceof CancelledError;
          this.send({ kind: 'error', job, message: user ? err.message : `${err.message}\n${err.stack ?? ''}`, user });
        },
      )
      .finally(() => this.aborts.delete(job));
  }
}

async function withWorkspace<T>(dir: string, fn: (ws: Workspace) => Promise<T>): Promise<T> {
  const ws = openWorkspace(dir, { claimOwnership: false });
  try {
    return await fn(ws);
  } finally {
    ws.close();
  }
}
