// The Train page's form: model, dataset, method and recipe. Each field is checked as it is typed (the
// contract's schema) and the whole run is planned by the main process (the engine's own validation, sizes,
// steps), so problems show beside the field that causes them before anything starts.

import { type Method, Recipe, type RunPlan } from '../../../../src-shared/api';
import { api, errorText, placeError } from '../../lib/api';
import { catalog } from '../../lib/catalog.svelte';
import { toasts } from '../../lib/toasts.svelte';

type RecipeValues = Recipe;
type Field = keyof RecipeValues;
/** The form's fields outside the recipe that a refusal can be shown beside. */
type FormField = 'split' | 'vision' | 'visionFeature' | 'projectionHidden' | 'name';

/** A runs.plan / runs.start request path -> the form field that shows it ("recipe.lr" -> "lr"). */
function trainFieldOf(path: string): Field | FormField | null {
  const [head, key] = path.split('.');
  if (head === 'recipe' && key && key in Recipe.shape) return key as Field;
  if (head === 'vision') return key === 'feature' ? 'visionFeature' : key === 'projectionHidden' ? 'projectionHidden' : 'vision';
  if (head === 'split' || head === 'name') return head;
  return null;
}

export class TrainForm {
  modelId = $state('');
  /** A vision tower's model id for a multi-modal adapter, or '' for text only. */
  visionModelId = $state('');
  /** "projected" (CLIP's image_embeds) or "class-tokens:L1,L2" (the paper's multi-scale class tokens). */
  visionFeature = $state('projected');
  /** H of the projection fc1 [F -> H] -> GELU -> fc2 [H -> dim]. */
  projectionHidden = $state(128);
  datasetId = $state('');
  split = $state<'all' | 'train'>('all');
  name = $state('');
  recipe = $state<RecipeValues | null>(null);
  plan = $state<RunPlan | null>(null);
  planError = $state<string | null>(null);
  startError = $state<string | null>(null);
  /** The server's refusals of the last plan or start, by form field (see trainFieldOf). */
  serverErrors = $state<Record<string, string>>({});
  starting = $state(false);
  private planTimer: ReturnType<typeof setTimeout> | undefined;

  /** Per-field messages: the schema's (types and ranges) first, then the engine's (relations between fields). */
  readonly fieldErrors = $derived.by(() => {
    const errors: Partial<Record<Field | FormField, string>> = {};
    if (!this.recipe) return errors;
    for (const key of Object.keys(Recipe.shape) as Field[]) {
      const r = Recipe.shape[key].safeParse(this.recipe[key]);
      if (!r.success) errors[key] = r.error.issues[0]?.message ?? 'invalid';
    }
    for (const p of this.plan?.problems ?? []) if (p.field && !errors[p.field as Field]) errors[p.field as Field] = p.message;
    for (const [field, message] of Object.entries(this.serverErrors)) errors[field as Field] ??= message;
    return errors;
  });

  /** A field's message (recipe fields and the form's own: split, vision, visionFeature, projectionHidden, name). */
  errorFor(field: Field | FormField): string | null {
    return this.fieldErrors[field] ?? null;
  }
  readonly canStart = $derived(!!this.modelId && !!this.datasetId && !!this.recipe && Object.keys(this.fieldErrors).length === 0 && !!this.plan && !this.starting);

  /** Fills the recipe with the method's preset for the chosen model. */
  async loadPreset(method: Method = this.recipe?.method ?? 'adapter'): Promise<void> {
    if (!this.modelId) return;
    try {
      this.recipe = await api.runs.defaults({ modelId: this.modelId, method });
      this.schedulePlan();
    } catch (e) {
      this.planError = errorText(e);
    }
  }

  pickDefaults(): void {
    if (!this.modelId && catalog.models.length) {
      this.modelId = catalog.models[0].id;
      void this.loadPreset();
    }
    if (!this.datasetId && catalog.datasets.length) this.chooseDataset(catalog.datasets[0].id);
  }

  /** A dataset with a train split trains on it by default, so that its test split stays unseen for Evaluate. */
  chooseDataset(datasetId: string): void {
    this.datasetId = datasetId;
    const dataset = catalog.datasets.find((d) => d.id === datasetId);
    this.split = dataset && dataset.splits.train > 0 ? 'train' : 'all';
    this.schedulePlan();
  }

  schedulePlan(): void {
    clearTimeout(this.planTimer);
    this.planTimer = setTimeout(() => void this.replan(), 250);
  }

  private request() {
    // Only fields that pass the schema go to the server; the others are already reported beside the field.
    const recipe: Partial<RecipeValues> = {};
    for (const key of Object.keys(Recipe.shape) as Field[]) {
      if (this.recipe && Recipe.shape[key].safeParse(this.recipe[key]).success) (recipe as Record<string, unknown>)[key] = this.recipe[key];
    }
    return {
      modelId: this.modelId,
      datasetId: this.datasetId,
      split: this.split,
      name: this.name.trim() || undefined,
      recipe,
      vision:
        this.visionModelId && recipe.method === 'adapter'
          ? { modelId: this.visionModelId, feature: this.visionFeature.trim() || 'projected', projectionHidden: this.projectionHidden }
          : undefined,
    };
  }

  async replan(): Promise<void> {
    if (!this.modelId || !this.datasetId || !this.recipe) return;
    try {
      this.plan = await api.runs.plan(this.request());
      this.planError = null;
      this.serverErrors = {};
    } catch (e) {
      this.plan = null;
      const placed = placeError(e, trainFieldOf);
      this.serverErrors = placed.fields;
      this.planError = placed.rest;
    }
  }

  async start(): Promise<string | null> {
    if (!this.canStart) return null;
    this.starting = true;
    this.startError = null;
    try {
      const run = await api.runs.start(this.request());
      toasts.show(run.status === 'queued' && run.queuePosition && run.queuePosition > 1 ? `Queued “${run.name}” (#${run.queuePosition})` : `Started “${run.name}”`);
      this.name = '';
      return run.id;
    } catch (e) {
      const placed = placeError(e, trainFieldOf);
      this.serverErrors = placed.fields;
      this.startError = placed.rest;
      return null;
    } finally {
      this.starting = false;
    }
  }
}
