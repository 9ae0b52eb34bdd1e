// Runs page state for "Import PEFT job…": a job folder trained elsewhere (export-job, then train.py on a
// cluster) becomes a completed run. Folders are paths on the machine running Adapter Studio, as on the
// Models page; the engine process converts the adapter, so this only waits.

import type { ImportedJob } from '../../../../src-shared/api';
import { api, errorText } from '../../lib/api';
import { router } from '../../lib/router.svelte';
import { runs } from '../../lib/runs.svelte';
import { toasts } from '../../lib/toasts.svelte';

export class ImportJobState {
  jobDir = $state('');
  outputDir = $state('');
  /** '' lets the service find the job's base model (its origin, fingerprint or folder). */
  modelId = $state('');
  name = $state('');
  busy = $state(false);
  error = $state<string | null>(null);
  result = $state<ImportedJob | null>(null);

  async submit(): Promise<void> {
    const jobDir = this.jobDir.trim();
    if (!jobDir) {
      this.error = 'Enter the path of the job folder (the one export-job wrote: job.json, train.py and, after the job ran, output/).';
      return;
    }
    this.busy = true;
    this.error = null;
    this.result = null;
    try {
      const result = await api.runs.importJob({
        jobDir,
        outputDir: this.outputDir.trim() || undefined,
        modelId: this.modelId || undefined,
        name: this.name.trim() || undefined,
      });
      this.result = result;
      // The run.updated event adds it too; this covers an event that arrives after the answer.
      runs.upsert(result.run);
      this.jobDir = '';
      this.outputDir = '';
      this.name = '';
      toasts.show(`Imported "${result.run.name}"`);
      router.go('runs', result.run.id);
    } catch (e) {
      this.error = errorText(e);
    } finally {
      this.busy = false;
    }
  }
}
