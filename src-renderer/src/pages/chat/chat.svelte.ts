// The Chat page: saved conversations, the open one's messages, and the reply streaming in.

import type { ChatMessage, ChatSummary, ModelRef, Sampling } from '../../../../src-shared/api';
import { api, connection, errorText } from '../../lib/api';
import { uploadPicture } from '../../lib/pictures';

export class ChatState {
  chats = $state<ChatSummary[]>([]);
  chat = $state<ChatSummary | null>(null);
  messages = $state<ChatMessage[]>([]);
  draft = $state('');
  /** A picture uploaded for the next message (a multi-modal adapter reads it). */
  attachment = $state<{ sha256: string; name: string; url: string } | null>(null);
  attaching = $state(false);
  reply = $state<string | null>(null); // streaming text, null when no reply is being written
  streamId = $state<string | null>(null);
  error = $state<string | null>(null);
  lastSpeed = $state<number | null>(null);

  async loadList(): Promise<void> {
    try {
      this.chats = await api.chats.list({});
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async open(chatId: string): Promise<void> {
    try {
      const { chat, messages } = await api.chats.get({ chatId });
      this.chat = chat;
      this.messages = messages;
      this.error = null;
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async create(model: ModelRef | null): Promise<void> {
    try {
      const chat = await api.chats.create({ model, sampling: this.chat?.sampling });
      await this.loadList();
      await this.open(chat.id);
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async update(change: { model?: ModelRef | null; systemPrompt?: string; sampling?: Sampling; title?: string }): Promise<void> {
    if (!this.chat) return;
    try {
      this.chat = await api.chats.update({ chatId: this.chat.id, ...change });
      this.error = null;
      await this.loadList();
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async remove(chatId: string): Promise<void> {
    try {
      await api.chats.remove({ chatId });
      if (this.chat?.id === chatId) {
        this.chat = null;
        this.messages = [];
      }
      await this.loadList();
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async attach(file: File): Promise<void> {
    this.error = null;
    this.attaching = true;
    try {
      const { stored, url } = await uploadPicture(file);
      this.attachment = { sha256: stored.sha256, name: file.name, url };
    } catch (e) {
      this.error = errorText(e);
    } finally {
      this.attaching = false;
    }
  }

  async send(): Promise<void> {
    const content = this.draft.trim();
    if (!content || !this.chat || this.streamId) return;
    this.error = null;
    try {
      const chatId = this.chat.id;
      const { streamId, userMessage } = await api.chats.send({ chatId, content, image: this.attachment?.sha256 });
      this.draft = '';
      this.attachment = null;
      this.messages.push(userMessage);
      this.reply = '';
      this.streamId = streamId;
      const unsubscribe = connection.stream(streamId, (e) => {
        if (e.type === 'stream.delta') this.reply = (this.reply ?? '') + e.text;
        else if (e.type === 'stream.end') this.lastSpeed = e.result.tokensPerSec;
        else if (e.type === 'stream.error') this.error = e.message;
        else if (e.type === 'stream.closed') {
          unsubscribe();
          this.streamId = null;
          this.reply = null;
          // The saved conversation is the truth (the reply is stored when it ends).
          void this.open(chatId).then(() => this.loadList());
        }
      });
    } catch (e) {
      this.error = errorText(e);
    }
  }

  async stop(): Promise<void> {
    if (this.streamId) await api.streams.cancel({ streamId: this.streamId });
  }
}
