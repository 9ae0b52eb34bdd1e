// chats.* and generate.start: saved conversations with streamed replies, and one-off generations.

import { type ApiHandlers, type ChatMessage, type ChatSummary, ModelRef, Sampling } from '../../src-shared/api.js';
import type { Chat, ChatId, Message, ModelId, RunId } from '../store/index.js';
import type { ServiceContext } from './context.js';
import { userError } from './errors.js';
import { type ResolvedModel, resolveModel, streamGeneration } from './generation.js';
import { languageConfig } from './model-kinds.js';
import { renderPrompt } from '../host/prompt.js';

/** What a chat's settings column holds. The model is kept here too, so that it can change mid-conversation. */
interface ChatSettings {
  model: ModelRef | null;
  systemPrompt: string;
  sampling: Sampling;
}

function chatSettings(chat: Chat): ChatSettings {
  const s = chat.settings as Partial<ChatSettings>;
  const fallbackModel = chat.modelId ? { modelId: chat.modelId, adapterRunId: chat.runId } : null;
  return {
    model: s.model === undefined ? fallbackModel : s.model,
    systemPrompt: typeof s.systemPrompt === 'string' ? s.systemPrompt : '',
    sampling: Sampling.parse(s.sampling ?? {}),
  };
}

function toChatSummary(chat: Chat): ChatSummary {
  const s = chatSettings(chat);
  return { id: chat.id, title: chat.title, model: s.model, systemPrompt: s.systemPrompt, sampling: s.sampling, createdAt: chat.createdAt, updatedAt: chat.updatedAt };
}

function toMessage(m: Message): ChatMessage {
  return { id: m.id, role: m.role, content: m.content, createdAt: m.createdAt, meta: m.meta };
}

type Turn = { role: 'user' | 'assistant'; content: string };

/**
 * The conversation as the model can read it: the whole of it when it fits, else without its oldest turns (the
 * system prompt always stays), as chat apps do; the reply keeps room for min(maxNewTokens, a quarter of the
 * context). A last message that cannot fit even alone is refused, with the numbers.
 */
async function fitToContext(ctx: ServiceContext, model: ResolvedModel, settings: ChatSettings, all: Turn[]): Promise<{ turns: Turn[]; dropped: number; promptTokens: number; contextLength: number }> {
  const contextLength = languageConfig(ctx.ws().models.get(settings.model!.modelId as ModelId)).maxPositions;
  const reserve = Math.max(1, Math.min(settings.sampling.maxNewTokens, Math.floor(contextLength / 4)));
  const count = (turns: Turn[]) => ctx.engines.countTokens(model.modelDir, renderPrompt({ template: 'chat', system: settings.systemPrompt, turns }));
  let turns = all;
  let tokens = await count(turns);
  while (tokens > contextLength - reserve && turns.length > 1) {
    // Drop the oldest exchange: up to the next user turn.
    let cut = 1;
    while (cut < turns.length - 1 && turns[cut]!.role !== 'user') cut++;
    turns = turns.slice(cut);
    tokens = await count(turns);
  }
  if (tokens > contextLength - reserve) {
    throw userError(`this message makes a prompt of ${tokens} tokens; ${model.label} reads ${contextLength} tokens in all and ${reserve} are kept for the reply: shorten it (or the system prompt)`);
  }
  return { turns, dropped: all.length - turns.length, promptTokens: tokens, contextLength };
}

/** A picture is refused, before anything is stored, by a model that cannot see it or when it is not in the store. */
function checkPicture(ctx: ServiceContext, model: ResolvedModel, sha256: string): void {
  if (!model.vision) throw userError(`${model.label} takes no pictures: attach one to a multi-modal adapter (trained with a vision tower)`);
  if (!ctx.ws().images.find(sha256)) throw userError(`the picture ${sha256.slice(0, 12)}… is not in this workspace; upload it first (images.upload)`);
}

export function chatHandlers(ctx: ServiceContext): Pick<
  ApiHandlers,
  'chats.list' | 'chats.create' | 'chats.get' | 'chats.update' | 'chats.remove' | 'chats.send' | 'generate.start' | 'streams.cancel'
> {
  const chats = () => ctx.ws().chats;
  return {
    'chats.list': async () => chats().list().map(toChatSummary),
    'chats.create': async ({ title, model, systemPrompt, sampling }) => {
      if (model) resolveModel(ctx, model); // refuse a model or adapter that cannot be used, now rather than at the first message
      const settings: ChatSettings = { model, systemPrompt, sampling };
      const chat = chats().create({
        title,
        modelId: (model?.modelId ?? null) as ModelId | null,
        runId: (model?.adapterRunId ?? null) as RunId | null,
        settings: settings as unknown as Record<string, unknown>,
      });
      return toChatSummary(chat);
    },
    'chats.get': async ({ chatId }) => {
      const chat = chats().get(chatId as ChatId);
      return { chat: toChatSummary(chat), messages: chats().messages(chat.id).map(toMessage) };
    },
    'chats.update': async ({ chatId, title, model, systemPrompt, sampling }) => {
      const chat = chats().get(chatId as ChatId);
      const current = chatSettings(chat);
      if (model) resolveModel(ctx, model);
      const next: ChatSettings = {
        model: model === undefined ? current.model : model,
        systemPrompt: systemPrompt ?? current.systemPrompt,
        sampling: sampling ?? current.sampling,
      };
      return toChatSummary(chats().update(chat.id, { title, settings: next as unknown as Record<string, unknown> }));
    },
    'chats.remove': async ({ chatId }) => {
      chats().delete(chatId as ChatId);
      return { ok: true as const };
    },
    'chats.send': async ({ chatId, content, image }) => {
      const chat = chats().get(chatId as ChatId);
      const settings = chatSettings(chat);
      if (!settings.model) throw userError('choose a model for this chat first');
      const model = resolveModel(ctx, settings.model);
      if (image) checkPicture(ctx, model, image);
      const history = chats().messages(chat.id);
      const asTurn = (m: { role: string; content: string }) => ({ role: m.role as 'user' | 'assistant', content: m.content });
      // Checked before anything is stored: a message the model cannot read is refused, and the oldest turns give way.
      const fitted = await fitToContext(ctx, model, settings, [...history.filter((m) => m.role !== 'system').map(asTurn), { role: 'user', content }]);
      const userMessage = chats().addMessage(chat.id, { role: 'user', content, meta: image ? { image } : {} });
      // The adapter sees one picture: the one attached last in the conversation (a multi-modal adapter only).
      const picture = model.vision ? ([...history, userMessage].reverse().find((m) => typeof m.meta.image === 'string')?.meta.image as string | undefined) ?? null : null;
      // The first message names a chat that still has the default title.
      if (history.length === 0 && chat.title === 'New chat') chats().update(chat.id, { title: content.trim().slice(0, 60) });
      const turns = fitted.turns;
      const stream = ctx.streams.open();
      void (async () => {
        const outcome = await streamGeneration(ctx, stream, 'reply', model, { template: 'chat', system: settings.systemPrompt, turns }, settings.sampling, undefined, picture);
        if ('result' in outcome && (outcome.result.text !== '' || outcome.result.finishReason !== 'cancelled')) {
          const result = outcome.result;
          chats().addMessage(chat.id, {
            role: 'assistant',
            content: result.text,
            meta: {
              model: model.label,
              finishReason: result.finishReason,
              tokensPerSec: result.tokensPerSec,
              newTokens: result.newTokens,
              promptTokens: fitted.promptTokens,
              contextLength: fitted.contextLength,
              ...(fitted.dropped > 0 ? { droppedTurns: fitted.dropped } : {}),
            },
          });
        }
        stream.close();
      })();
      return { streamId: stream.id, userMessage: toMessage(userMessage) };
    },
    'generate.start': async ({ model: ref, prompt, input, template, sampling, image }) => {
      const model = resolveModel(ctx, ref);
      if (image) checkPicture(ctx, model, image);
      const stream = ctx.streams.open();
      const spec = template === 'alpaca' ? { template, instruction: prompt, input } : { template, text: input ? `${prompt}\n${input}` : prompt };
      void streamGeneration(ctx, stream, 'output', model, spec, sampling, undefined, image ?? null).finally(() => stream.close());
      return { streamId: stream.id };
    },
    'streams.cancel': async ({ streamId }) => {
      ctx.streams.cancel(streamId);
      return { ok: true as const };
    },
  };
}
