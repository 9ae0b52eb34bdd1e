// The Sweeps page's state: the form for a new sweep (base recipe, one or two varied settings, the held-out
// set) with a live preview from sweeps.plan, and the sweeps with their progress and results.

import type { ApiEvent, Method, SweepPlan, SweepRequest, SweepResults, SweepSummary } from '../../../../src-shared/api';
import { api, errorText } from '../../lib/api';
import { toasts } from '../../lib/toasts.svelte';

export type SplitChoice = 'train' | 'val' | 'test' | 'all';

/** Settings offered for an axis (any other recipe field can be typed). */
export const AXIS_FIELDS: { field: string; label: string; example: string }[] = [
  { field: 'adapterLayers', label: 'Adapted layers L', example: '1,2,4' },
  { field: 'adapterLen', label: 'Prompt length K', example: '5,10,20' },
  { field: 'init', label: 'Gate and prompt init', example: 'zero,random' },
  { field: 'gateMode', label: 'Gate form', example: 'head,layer' },
  { field: 'lr', label: 'Learning rate', example: '0.001,0.01' },
  { field: 'epochs', label: 'Epochs', example: '1,3,5' },
  { field: 'method', label: 'Method', example: 'adapter,lora' },
  { field: 'data.fraction', label: 'Share of the training split', example: '0.1,0.3,1' },
  { field: 'data.count', label: 'Training examples', example: '100,1000' },
  { field: 'data.source', label: 'Examples from a source', example: 'self-instruct,!self-instruct' },
  { field: 'data.tag', label: 'Examples with a tag', example: 'human,!human' },
];

export interface AxisDraft {
  key: number;
  field: string;
  values: string;
}

export class SweepForm {
  name = $state('');
  modelId = $state('');
  datasetId = $state('');
  split = $state<SplitChoice>('train');
  method = $state<Method>('adapter');
  /** Empty: the method's preset. */
  maxSteps = $state<number | null | undefined>(null);
  epochs = $state<number | null | undefined>(null);
  batchSize = $state<number | null | undefined>(null);
  axes = $state<AxisDraft[]>([{ key: 1, field: 'adapterLayers', values: '1,2' }]);
  evalSplit = $state<SplitChoice>('test');
  evalLimit = $state<number | null | undefined>(null);
  maxNewTokens = $state<number | null | undefined>(64);
  plan = $state<SweepPlan | null>(null);
  planError = $state<string | null>(null);
  starting = $state(false);
  private nextKey = 2;
  private planSeq = 0;

  addAxis(): void {
    if (this.axes.length < 2) this.axes.push({ key: this.nextKey++, field: 'init', values: 'zero,random' });
  }

  removeAxis(key: number): void {
    this.axes = this.axes.filter((a) => a.key !== key);
  }

  /** The request, or null while something needed is missing. */
  get request(): SweepRequest | null {
    if (!this.modelId || !this.datasetId || this.axes.length === 0) return null;
    const vary = this.axes.map((a) => ({ field: a.field.trim(), values: a.values.split(',').map((v) => v.trim()).filter(Boolean) }));
    if (vary.some((a) => !a.field || a.values.length === 0)) return null;
    const recipe: Record<string, unknown> = { method: this.method };
    if (typeof this.maxSteps === 'number' && this.maxSteps >= 1) recipe.maxSteps = this.maxSteps;
    if (typeof this.epochs === 'number' && this.epochs > 0) recipe.epochs = this.epochs;
    if (typeof this.batchSize === 'number' && this.batchSize >= 1) recipe.batchSize = this.batchSize;
    return {
      name: this.name.trim() || undefined,
      modelId: this.modelId,
      datasetId: this.datasetId,
      split: this.split,
      recipe,
      vary,
      evalSplit: this.evalSplit,
      evalLimit: typeof this.evalLimit === 'number' && this.evalLimit >= 1 ? this.evalLimit : null,
      maxNewTokens: typeof this.maxNewTokens === 'number' ? this.maxNewTokens : 64,
    };
  }

  /** Asks the server what the sweep would train (run count, steps, time); the newest answer wins. */
  async preview(): Promise<void> {
    const req = this.request;
    const seq = ++this.planSeq;
    if (!req) {
      this.plan = null;
      this.planError = null;
      return;
    }
    try {
      const plan = await api.sweeps.plan(req);
      if (seq !== this.planSeq) return;
      this.plan = plan;
      this.planError = null;
    } catch (e) {
      if (seq !== this.planSeq) return;
      this.plan = null;
      this.planError = errorText(e);
    }
  }

  async start(): Promise<SweepSummary | null> {
    const req = this.request;
    if (!req || this.starting) return null;
    this.starting = true;
    try {
      const sweep = await api.sweeps.start(req);
      toasts.show(`Queued ${sweep.points.length} runs of “${sweep.name}”`);
      return sweep;
    } catch (e) {
      this.planError = errorText(e);
      return null;
    } finally {
      this.starting = false;
    }
  }
}

export class SweepsState {
  list = $state<SweepSummary[]>([]);
  loaded = $state(false);
  current = $state<SweepResults | null>(null);
  error = $state<string | null>(null);
  private openId: string | null = null;
  private reloading = false;
  private reloadAgain = false;

  async refreshList(): Promise<void> {
    try {
      this.list = await api.sweeps.list({});
    } catch (e) {
      this.error = errorText(e);
    } finally {
      this.loaded = true;
    }
  }

  async open(id: string | null): Promise<void> {
    this.openId = id;
    if (!id) {
      this.current = null;
      return;
    }
    await this.reload();
  }

  /** Refetches the open sweep's results; calls that arrive meanwhile fold into one more. */
  async reload(): Promise<void> {
    if (!this.openId) return;
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = true;
    try {
      const id = this.openId;
      const results = await api.sweeps.get({ sweepId: id });
      if (id === this.openId) this.current = results;
    } catch (e) {
      this.error = errorText(e);
    } finally {
      this.reloading = false;
      if (this.reloadAgain) {
        this.reloadAgain = false;
        void this.reload();
      }
    }
  }

  onEvent(e: ApiEvent): void {
    if (e.type === 'hello') {
      void this.refreshList();
      void this.reload();
    }
    if (e.type !== 'sweep.updated') return;
    const i = this.list.findIndex((s) => s.id === e.sweep.id);
    if (i >= 0) this.list[i] = e.sweep;
    else this.list = [e.sweep, ...this.list];
    if (e.sweep.id === this.openId) void this.reload();
  }

  async act(what: 'cancel' | 'resume' | 'remove', sweep: SweepSummary): Promise<boolean> {
    try {
      if (what === 'remove') {
        await api.sweeps.remove({ sweepId: sweep.id });
        this.list = this.list.filter((s) => s.id !== sweep.id);
        if (this.openId === sweep.id) this.current = null;
      } else {
        const next = what === 'cancel' ? await api.sweeps.cancel({ sweepId: sweep.id }) : await api.sweeps.resume({ sweepId: sweep.id });
        const i = this.list.findIndex((s) => s.id === sweep.id);
        if (i >= 0) this.list[i] = next;
        void this.reload();
      }
      return true;
    } catch (e) {
      this.error = errorText(e);
      return false;
    }
  }
}

/** Rasterises one of the report's SVGs to PNG in the page (twice the size, for sharp text). */
export async function svgToPng(svg: string): Promise<Blob> {
  const image = new Image();
  const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  try {
    await new Promise<void>((resolve, reject) => {
      image.onload = () => resolve();
      image.onerror = () => reject(new Error('the plot could not be drawn'));
      image.src = url;
    });
    const canvas = document.createElement('canvas');
    canvas.width = image.width * 2;
    canvas.height = image.height * 2;
    const context = canvas.getContext('2d')!;
    context.scale(2, 2);
    context.drawImage(image, 0, 0);
    return await new Promise<Blob>((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error('PNG encoding failed'))), 'image/png'));
  } finally {
    URL.revokeObjectURL(url);
  }
}
