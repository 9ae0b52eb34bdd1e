// compare.*: the same prompts through N models side by side, streamed, and blind A/B rating.
//
// Storage. The workspace stores a comparison as two sides with rated items (src-main/store/comparisons.ts).
// An N-side session is stored as one such comparison per pair of sides (i < j), all tagged with the session
// id in their side settings; an item is added to every pair once a prompt's outputs are all done. The API's
// comparison id is that session id.
//
// Blind rating. Which of a pair's outputs is shown as "A" is a keyed hash of the item id (the key is a random
// value kept in the workspace settings), so the order looks random, stays the same between requests and
// restarts, and the UI never learns the sides until it has rated.

import { createHmac, randomBytes } from 'node:crypto';
import type { ApiHandlers, BlindPair, Comparison as ApiComparison, Tally } from '../../src-shared/api.js';
import type { Comparison, ComparisonItemId, ComparisonSide, Rating, Workspace } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { userError } from './errors.js';
import { resolveModel, streamGeneration, type ResolvedModel } from './generation.js';

interface SessionTag {
  session: string;
  /** This side's column in the session. */
  index: number;
  sides: number;
}

interface Cell {
  text: string;
  done: boolean;
  error: string | null;
}

/** A session being generated now: the cells stream in before the items are stored. */
interface LiveSession {
  name: string;
  labels: string[];
  prompts: string[];
  image: string | null;
  cells: Cell[][]; // [prompt][side]
  createdAt: number;
}

function tagOf(side: ComparisonSide): SessionTag | null {
  const t = side.settings as Partial<SessionTag> | undefined;
  return t && typeof t.session === 'string' && typeof t.index === 'number' && typeof t.sides === 'number' ? (t as SessionTag) : null;
}

/** Stored pair comparisons by session (comparisons made elsewhere, e.g. by the CLI, are their own 2-side session). */
function sessions(ws: Workspace): Map<string, Comparison[]> {
  const bySession = new Map<string, Comparison[]>();
  for (const c of ws.comparisons.list()) {
    const key = tagOf(c.left)?.session ?? c.id;
    bySession.set(key, [...(bySession.get(key) ?? []), c]);
  }
  return bySession;
}

function sideIndex(c: Comparison, which: 'left' | 'right'): number {
  return tagOf(c[which])?.index ?? (which === 'left' ? 0 : 1);
}

function sessionLabels(pairs: Comparison[]): string[] {
  const labels: string[] = [];
  for (const c of pairs) {
    labels[sideIndex(c, 'left')] = c.left.label;
    labels[sideIndex(c, 'right')] = c.right.label;
  }
  return Array.from({ length: labels.length }, (_, i) => labels[i] ?? `side ${i + 1}`);
}

export function compareHandlers(ctx: ServiceContext): Pick<
  ApiHandlers,
  'compare.start' | 'compare.list' | 'compare.get' | 'compare.blind' | 'compare.rate' | 'compare.tally'
> {
  const live = new Map<string, LiveSession>();

  const blindKey = (): string => {
    const settings = ctx.ws().settings;
    let key = settings.get<string>('compare.blindKey');
    if (!key) {
      key = randomBytes(16).toString('hex');
      settings.set('compare.blindKey', key);
    }
    return key;
  };
  const leftIsA = (itemId: number): boolean => (createHmac('sha256', blindKey()).update(String(itemId)).digest()[0] & 1) === 0;

  const pairsOf = (sessionId: string): Comparison[] => {
    const pairs = sessions(ctx.ws()).get(sessionId);
    if (!pairs) throw userError(`comparison ${JSON.stringify(sessionId)} not found`);
    return pairs;
  };

  const stored = (sessionId: string): ApiComparison => {
    const ws = ctx.ws();
    const pairs = pairsOf(sessionId);
    const labels = sessionLabels(pairs);
    const prompts: string[] = [];
    const images: (string | null)[] = [];
    const cells = new Map<string, ApiComparison['cells'][number]>();
    for (const c of pairs) {
      ws.comparisons.items(c.id).forEach((item, p) => {
        prompts[p] ??= item.prompt;
        images[p] ??= item.image;
        for (const [which, text] of [['left', item.leftOutput], ['right', item.rightOutput]] as const) {
          const side = sideIndex(c, which);
          cells.set(`${p}:${side}`, { prompt: p, side, text, done: true, error: null });
        }
      });
    }
    return { id: sessionId, name: pairs[0].name, sides: labels.map((label) => ({ label })), prompts, images, cells: [...cells.values()], createdAt: pairs[0].createdAt };
  };

  const fromLive = (sessionId: string, s: LiveSession): ApiComparison => ({
    id: sessionId,
    name: s.name,
    sides: s.labels.map((label) => ({ label })),
    prompts: s.prompts,
    images: s.prompts.map(() => s.image),
    cells: s.cells.flatMap((row, p) => row.map((cell, side) => ({ prompt: p, side, ...cell }))),
    createdAt: s.createdAt,
  });

  return {
    'compare.start': async ({ name, prompts, sides, sampling, image }) => {
      const ws = ctx.ws();
      const models: ResolvedModel[] = sides.map((s) => resolveModel(ctx, s.model));
      if (image && !ws.images.find(image)) throw userError(`the picture ${image.slice(0, 12)}… is not in this workspace; upload it first (images.upload)`);
      if (image && !models.some((m) => m.vision)) throw userError('no column reads pictures: add a multi-modal adapter (trained with a vision tower) or leave the picture out');
      const labels = sides.map((s, i) => s.label?.trim() || models[i].label);
      const sessionId = `cmps_${randomBytes(8).toString('hex')}`;
      // One stored comparison per pair of sides, created up front so that the session is listed at once.
      const pairs: { i: number; j: number; comparison: Comparison }[] = [];
      ws.transaction(() => {
        for (let i = 0; i < sides.length; i++) {
          for (let j = i + 1; j < sides.length; j++) {
            const side = (k: number): ComparisonSide => ({
              label: labels[k],
              modelId: sides[k].model.modelId as ComparisonSide['modelId'],
              runId: (sides[k].model.adapterRunId ?? null) as ComparisonSide['runId'],
              adapterPath: models[k].adapterDir,
              settings: { session: sessionId, index: k, sides: sides.length, sampling } satisfies SessionTag & { sampling: unknown },
            });
            pairs.push({ i, j, comparison: ws.comparisons.create(name, side(i), side(j)) });
          }
        }
      });
      const session: LiveSession = {
        name,
        labels,
        prompts,
        image: image ?? null,
        cells: prompts.map(() => sides.map(() => ({ text: '', done: false, error: null }))),
        createdAt: pairs[0].comparison.createdAt,
      };
      live.set(sessionId, session);
      const stream = ctx.streams.open();
      void (async () => {
        try {
          for (let p = 0; p < prompts.length; p++) {
            for (let s = 0; s < sides.length; s++) {
              const key = `${p}:${s}`;
              const cell = session.cells[p][s];
              // Text-only columns answer the words alone (they have no way to read the picture).
              const picture = models[s].vision ? (image ?? null) : null;
              const outcome = await streamGeneration(ctx, stream, key, models[s], { template: 'alpaca', instruction: prompts[p], input: '' }, sampling, (text) => {
                cell.text += text;
              }, picture);
              if ('result' in outcome) cell.text = outcome.result.text;
              else cell.error = outcome.error;
              cell.done = true;
            }
            // Every side answered this prompt: store it in each pair, ready to rate.
            const row = session.cells[p];
            if (row.every((c) => c.error === null)) {
              ctx.ws().transaction(() => {
                for (const { i, j, comparison } of pairs) ctx.ws().comparisons.addItem(comparison.id, { prompt: prompts[p], leftOutput: row[i].text, rightOutput: row[j].text, image: image ?? null });
              });
            }
          }
        } finally {
          live.delete(sessionId);
          stream.close();
        }
      })();
      return { comparisonId: sessionId, streamId: stream.id };
    },

    'compare.list': async () =>
      [...sessions(ctx.ws())].map(([id, pairs]) => {
        const running = live.get(id);
        return {
          id,
          name: pairs[0].name,
          sides: (running?.labels ?? sessionLabels(pairs)).map((label) => ({ label })),
          prompts: running?.prompts.length ?? ctx.ws().comparisons.items(pairs[0].id).length,
          createdAt: pairs[0].createdAt,
        };
      }),

    'compare.get': async ({ comparisonId }) => {
      const running = live.get(comparisonId);
      return running ? fromLive(comparisonId, running) : stored(comparisonId);
    },

    'compare.blind': async ({ comparisonId, sides }) => {
      const [x, y] = sides;
      if (x === y) throw userError('choose two different sides to compare');
      const lo = Math.min(x, y);
      const hi = Math.max(x, y);
      const pair = pairsOf(comparisonId).find((c) => sideIndex(c, 'left') === lo && sideIndex(c, 'right') === hi);
      if (!pair) throw userError(`this comparison has no sides ${x} and ${y}`);
      const items = ctx.ws().comparisons.items(pair.id).filter((it) => it.rating === null);
      return items.map((it): BlindPair => {
        const aIsLeft = leftIsA(it.id);
        return { itemId: it.id, prompt: it.prompt, image: it.image, a: aIsLeft ? it.leftOutput : it.rightOutput, b: aIsLeft ? it.rightOutput : it.leftOutput };
      });
    },

    'compare.rate': async ({ comparisonId, itemId, rating, note }) => {
      const ws = ctx.ws();
      const item = ws.comparisons.item(itemId as ComparisonItemId);
      const pair = pairsOf(comparisonId).find((c) => c.id === item.comparisonId);
      if (!pair) throw userError(`item ${itemId} does not belong to comparison ${comparisonId}`);
      const aIsLeft = leftIsA(item.id);
      const stored: Rating = rating === 'a' ? (aIsLeft ? 'left' : 'right') : rating === 'b' ? (aIsLeft ? 'right' : 'left') : rating;
      ws.comparisons.rate(item.id, stored, note);
      const a = aIsLeft ? pair.left.label : pair.right.label;
      const b = aIsLeft ? pair.right.label : pair.left.label;
      return { itemId: item.id, a, b, winner: rating === 'a' ? a : rating === 'b' ? b : null };
    },

    'compare.tally': async ({ comparisonId }) => {
      const ws = ctx.ws();
      const pairs = pairsOf(comparisonId);
      const labels = sessionLabels(pairs);
      const tally: Tally = { sides: labels, wins: labels.map(() => 0), ties: 0, bothBad: 0, rated: 0, unrated: 0 };
      for (const c of pairs) {
        for (const it of ws.comparisons.items(c.id)) {
          if (it.rating === null) tally.unrated++;
          else {
            tally.rated++;
            if (it.rating === 'left') tally.wins[sideIndex(c, 'left')]++;
            else if (it.rating === 'right') tally.wins[sideIndex(c, 'right')]++;
            else if (it.rating === 'tie') tally.ties++;
            else tally.bothBad++;
          }
        }
      }
      return tally;
    },
  };
}
