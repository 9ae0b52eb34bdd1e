// The Compare page: run prompts through several models side by side (streamed cell by cell), and rate
// pairs blind.

import { type BlindPair, type Comparison, type ModelRef, type Sampling, SAMPLING_DEFAULTS, type Tally } from '../../../../src-shared/api';
import { api, connection, errorText } from '../../lib/api';
import { uploadPicture } from '../../lib/pictures';

export interface SideDraft {
  model: ModelRef | null;
  label: string;
}

export class CompareState {
  prompts = $state('What color is the sky?\nGive three tips for staying healthy.');
  sides = $state<SideDraft[]>([
    { model: null, label: '' },
    { model: null, label: '' },
  ]);
  /** The app's defaults at temperature 0 (greedy, as Evaluate answers), every field editable. */
  sampling = $state<Sampling>({ ...SAMPLING_DEFAULTS, temperature: 0, maxNewTokens: 64 });
  /** A picture every prompt is asked about (multi-modal columns see it). */
  picture = $state<{ sha256: string; name: string; url: string } | null>(null);
  current = $state<Comparison | null>(null);
  running = $state(false);
  streamId = $state<string | null>(null);
  error = $state<string | null>(null);
  history = $state<{ id: string; name: string; sides: { label: string }[]; prompts: number; createdAt: number }[]>([]);

  readonly problems = $derived.by(() => {
    const p: string[] = [];
    if (!this.promptList.length) p.push('Write at least one prompt.');
    if (this.sides.some((s) => !s.model)) p.push('Choose a model for every column.');
    return p;
  });

  get promptList(): string[] {
    return this.prompts
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
  }

  async attach(file: File): Promise<void> {
    this.error = null;
    try {
      const { stored, url } = await uploadPicture(file);
      this.picture = { sha256: stored.sha256, name: file.name, url };
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async loadHistory(): Promise<void> {
    try {
      this.history = await api.compare.list({});
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async open(id: string): Promise<void> {
    try {
      this.current = await api.compare.get({ comparisonId: id });
      this.error = null;
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async run(): Promise<void> {
    if (this.problems.length) return;
    this.error = null;
    this.running = true;
    try {
      const prompts = this.promptList;
      const { comparisonId, streamId } = await api.compare.start({
        prompts,
        sides: this.sides.map((s) => ({ kind: 'model' as const, model: s.model!, label: s.label.trim() || undefined })),
        sampling: { ...this.sampling },
        image: this.picture?.sha256,
      });
      this.streamId = streamId;
      this.current = await api.compare.get({ comparisonId });
      const unsubscribe = connection.stream(streamId, (e) => {
        const cmp = this.current;
        if (!cmp || cmp.id !== comparisonId) return;
        if (e.type === 'stream.closed') {
          this.running = false;
          this.streamId = null;
          unsubscribe();
          void this.open(comparisonId);
          void this.loadHistory();
          return;
        }
        if (!('key' in e)) return;
        const [p, s] = e.key.split(':').map(Number);
        const cell = cmp.cells.find((c) => c.prompt === p && c.side === s);
        if (!cell) return;
        if (e.type === 'stream.delta') cell.text += e.text;
        else if (e.type === 'stream.end') {
          cell.text = e.result.text;
          cell.done = true;
        } else if (e.type === 'stream.error') {
          cell.error = e.message;
          cell.done = true;
        }
      });
    } catch (e) {
      this.error = errorText(e);
      this.running = false;
    }
  }

  async stop(): Promise<void> {
    if (this.streamId) await api.streams.cancel({ streamId: this.streamId });
  }
}

/** Blind A/B: unrated pairs one at a time; the sides are revealed only after each rating. */
export class BlindState {
  pairs = $state<BlindPair[]>([]);
  index = $state(0);
  revealed = $state<{ a: string; b: string; winner: string | null } | null>(null);
  tally = $state<Tally | null>(null);
  error = $state<string | null>(null);
  sideA = $state(0);
  sideB = $state(1);

  constructor(private readonly comparisonId: () => string | null) {}

  readonly pair = $derived(this.pairs[this.index] ?? null);

  async load(): Promise<void> {
    const id = this.comparisonId();
    if (!id) return;
    // The old pairs go at once: what is shown is always the pair of columns chosen.
    this.pairs = [];
    this.revealed = null;
    try {
      this.pairs = await api.compare.blind({ comparisonId: id, sides: [this.sideA, this.sideB] });
      this.index = 0;
      this.revealed = null;
      this.tally = await api.compare.tally({ comparisonId: id });
      this.error = null;
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async rate(rating: 'a' | 'b' | 'tie' | 'both_bad'): Promise<void> {
    const id = this.comparisonId();
    if (!id || !this.pair || this.revealed) return;
    try {
      const answer = await api.compare.rate({ comparisonId: id, itemId: this.pair.itemId, rating });
      this.revealed = { a: answer.a, b: answer.b, winner: answer.winner };
      this.tally = await api.compare.tally({ comparisonId: id });
    } catch (e) {
      this.error = errorText(e);
    }
  }

  next(): void {
    this.index++;
    this.revealed = null;
  }
}
