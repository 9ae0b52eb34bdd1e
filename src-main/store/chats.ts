// Chats with a model (optionally with a run's adapter) and their messages.

import { NotFoundError, StoreError } from './errors.js';
import { newId, type ChatId, type MessageId, type ModelId, type RunId } from './ids.js';
import { readJson, writeJson } from './json-column.js';
import type { Db } from './workspace.js';
import { writeTransaction } from './write-transaction.js';

export type ChatRole = 'system' | 'user' | 'assistant';
const ROLES: readonly ChatRole[] = ['system', 'user', 'assistant'];

export interface Chat {
  id: ChatId;
  title: string;
  modelId: ModelId | null;
  runId: RunId | null;
  adapterPath: string | null;
  /** Generation settings for this chat (temperature, top-p, max tokens, system prompt, ...). */
  settings: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
  messages: number;
}

export interface Message {
  id: MessageId;
  chatId: ChatId;
  role: ChatRole;
  content: string;
  /** Per-message facts such as tokens/s or the sampling seed. */
  meta: Record<string, unknown>;
  createdAt: number;
}

interface ChatRow {
  id: string;
  title: string;
  model_id: string | null;
  run_id: string | null;
  adapter_path: string | null;
  settings: string;
  created_at: number;
  updated_at: number;
  messages: number;
}

interface MessageRow {
  id: number;
  chat_id: string;
  role: ChatRole;
  content: string;
  meta: string;
  created_at: number;
}

function toChat(r: ChatRow): Chat {
  return {
    id: r.id as ChatId,
    title: r.title,
    modelId: r.model_id as ModelId | null,
    runId: r.run_id as RunId | null,
    adapterPath: r.adapter_path,
    settings: readJson(r.settings, `chats.settings of ${r.id}`),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    messages: r.messages,
  };
}

function toMessage(r: MessageRow): Message {
  return {
    id: r.id as MessageId,
    chatId: r.chat_id as ChatId,
    role: r.role,
    content: r.content,
    meta: readJson(r.meta, `messages.meta of ${r.id}`),
    createdAt: r.created_at,
  };
}

export class ChatStore {
  private readonly s;

  constructor(private readonly db: Db) {
    const select = 'SELECT c.*, (SELECT count(*) FROM messages m WHERE m.chat_id = c.id) AS messages FROM chats c';
    this.s = {
      insert: db.prepare(`
        INSERT INTO chats (id, title, model_id, run_id, adapter_path, settings, created_at, updated_at)
        VALUES (@id, @title, @model_id, @run_id, @adapter_path, @settings, @now, @now)`),
      get: db.prepare<[string], ChatRow>(`${select} WHERE c.id = ?`),
      list: db.prepare<[], ChatRow>(`${select} ORDER BY c.updated_at DESC, c.id`),
      update: db.prepare('UPDATE chats SET title = ?, settings = ?, updated_at = ? WHERE id = ?'),
      touch: db.prepare('UPDATE chats SET updated_at = ? WHERE id = ?'),
      delete: db.prepare('DELETE FROM chats WHERE id = ?'),
      insertMessage: db.prepare('INSERT INTO messages (chat_id, role, content, meta, created_at) VALUES (?, ?, ?, ?, ?)'),
      message: db.prepare<[number], MessageRow>('SELECT * FROM messages WHERE id = ?'),
      messages: db.prepare<[string], MessageRow>('SELECT * FROM messages WHERE chat_id = ? ORDER BY id'),
      deleteMessagesFrom: db.prepare('DELETE FROM messages WHERE chat_id = ? AND id >= ?'),
    };
  }

  create(chat: { title?: string; modelId?: ModelId | null; runId?: RunId | null; adapterPath?: string | null; settings?: Record<string, unknown> }): Chat {
    const id = newId<ChatId>('chat');
    this.s.insert.run({
      id,
      title: chat.title?.trim() || 'New chat',
      model_id: chat.modelId ?? null,
      run_id: chat.runId ?? null,
      adapter_path: chat.adapterPath ?? null,
      settings: writeJson(chat.settings ?? {}, 'chat settings'),
      now: Date.now(),
    });
    return this.get(id);
  }

  get(id: ChatId): Chat {
    const row = this.s.get.get(id);
    if (!row) throw new NotFoundError('chat', id);
    return toChat(row);
  }

  list(): Chat[] {
    return this.s.list.all().map(toChat);
  }

  update(id: ChatId, change: { title?: string; settings?: Record<string, unknown> }): Chat {
    const chat = this.get(id);
    this.s.update.run(change.title?.trim() || chat.title, writeJson(change.settings ?? chat.settings, 'chat settings'), Date.now(), id);
    return this.get(id);
  }

  delete(id: ChatId): void {
    this.get(id);
    this.s.delete.run(id);
  }

  addMessage(id: ChatId, message: { role: ChatRole; content: string; meta?: Record<string, unknown> }): Message {
    if (!ROLES.includes(message.role)) throw new StoreError(`message role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(message.role)}`);
    if (typeof message.content !== 'string') throw new StoreError('message content must be text');
    return writeTransaction(this.db, () => {
      this.get(id);
      const now = Date.now();
      const { lastInsertRowid } = this.s.insertMessage.run(id, message.role, message.content, writeJson(message.meta ?? {}, 'message meta'), now);
      this.s.touch.run(now, id);
      return toMessage(this.s.message.get(Number(lastInsertRowid))!);
    });
  }

  messages(id: ChatId): Message[] {
    return this.s.messages.all(id).map(toMessage);
  }

  /** Drops a message and everything after it (regenerate or edit from that point). */
  truncateFrom(id: ChatId, messageId: MessageId): void {
    this.get(id);
    this.s.deleteMessagesFrom.run(id, messageId);
  }
}
