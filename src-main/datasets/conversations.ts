// ShareGPT / chat-messages records turned into instruction/input/output examples.
//
// Accepted shapes (one conversation per record):
//   ShareGPT: { "conversations": [ { "from": "human" | "gpt" | "system", "value": "..." }, ... ], "system"?: "..." }
//   Messages: { "messages": [ { "role": "user" | "assistant" | "system", "content": "..." }, ... ] }
//   (content may also be a list of parts; the text parts are joined.)
//   OpenAssistant message trees (the oasst export's *.trees.jsonl): { "message_tree_id", "prompt": { "role":
//   "prompter", "text", "replies": [ { "role": "assistant", "text", "rank", "replies": [...] }, ... ] } }: the
//   conversation is the top-ranked path (at each turn the reply of lowest rank; unranked replies after ranked
//   ones, in file order), then read as a chat like the others.
//
// The rule:
//   1. Roles are normalised: human/user/prompter -> user; gpt/assistant/model/bot/chatgpt/bard/bing -> assistant;
//      system -> system. Any other role makes the record invalid.
//   2. Consecutive turns of the same role are merged, separated by a blank line. System turns anywhere (and a
//      top-level "system" field) form the system prompt.
//   3. Each assistant turn that directly follows a user turn is a reply. A conversation without one is invalid.
//   4. 'last-turn' (default): one example from the last reply. 'each-turn': one example per reply.
//      instruction = the user turn; output = the assistant reply;
//      input = everything before that user turn, as a transcript:
//        "System: <system prompt>\n\nUser: <turn>\n\nAssistant: <turn>..."  (empty for a single-turn chat).
//   Turns after the last reply (an unanswered user message) are dropped.

import type { NewExample } from '../store/datasets.js';

export type ConversationMode = 'last-turn' | 'each-turn';

export type Role = 'system' | 'user' | 'assistant';

const ROLE_NAMES: Record<string, Role> = {
  system: 'system',
  human: 'user',
  user: 'user',
  prompter: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  model: 'assistant',
  bot: 'assistant',
  chatgpt: 'assistant',
  bard: 'assistant',
  bing: 'assistant',
};

export interface FieldProblem {
  field: string | null;
  message: string;
}

/** A record that looks like a chat: it has a "conversations" or "messages" key (a list or not: a wrong type is
 * then reported as a chat problem, not as missing Alpaca fields). */
export function isConversation(value: Record<string, unknown>): boolean {
  return value.conversations !== undefined || value.messages !== undefined || isMessageTree(value);
}

/** An OpenAssistant message tree: its root prompt with replies. */
function isMessageTree(value: Record<string, unknown>): boolean {
  return value.message_tree_id !== undefined || (isPlainObject(value.prompt) && value.prompt.replies !== undefined);
}

/** The tree's top-ranked path as chat turns, or the problem that stops it (named by its place in the tree). */
function topRankedPath(record: Record<string, unknown>): { turns: { role: unknown; content: unknown }[] } | FieldProblem {
  const turns: { role: unknown; content: unknown }[] = [];
  let node: unknown = record.prompt;
  let at = 'prompt';
  while (node !== undefined) {
    if (!isPlainObject(node)) return { field: at, message: `expected a message {role, text, replies}, got ${typeName(node)}` };
    turns.push({ role: node.role, content: node.text });
    const replies = node.replies ?? [];
    if (!Array.isArray(replies)) return { field: `${at}.replies`, message: `expected a list of replies, got ${typeName(replies)}` };
    if (replies.length === 0) break;
    const rankOf = (r: unknown) => (isPlainObject(r) && typeof r.rank === 'number' ? r.rank : Number.POSITIVE_INFINITY);
    let best = 0;
    replies.forEach((r, i) => {
      if (rankOf(r) < rankOf(replies[best])) best = i;
    });
    node = replies[best];
    at = `${at}.replies[${best}]`;
  }
  return { turns };
}

export function conversationToExamples(
  record: Record<string, unknown>,
  mode: ConversationMode,
): { examples: Omit<NewExample, 'source' | 'sourceLine'>[]; problems: FieldProblem[] } {
  if (record.conversations === undefined && record.messages === undefined) {
    const path = topRankedPath(record);
    if (!('turns' in path)) return { examples: [], problems: [path] };
    return conversationToExamples({ messages: path.turns }, mode);
  }
  const key = record.conversations !== undefined ? 'conversations' : 'messages';
  const turns = record[key];
  const problems: FieldProblem[] = [];
  if (!Array.isArray(turns)) return { examples: [], problems: [{ field: key, message: 'expected a list of turns' }] };

  const merged: { role: Role; text: string }[] = [];
  const system: string[] = [];
  if (record.system !== undefined && record.system !== null) {
    if (typeof record.system === 'string') {
      if (record.system.trim()) system.push(record.system);
    } else problems.push({ field: 'system', message: `expected text, got ${typeName(record.system)}` });
  }

  turns.forEach((turn, k) => {
    const at = `${key}[${k}]`;
    if (!isPlainObject(turn)) return problems.push({ field: at, message: `expected an object with role and content, got ${typeName(turn)}` });
    const roleName = turn.from ?? turn.role;
    if (typeof roleName !== 'string') return problems.push({ field: `${at}.${'from' in turn ? 'from' : 'role'}`, message: 'missing; expected the speaker (user, assistant, system)' });
    const role = ROLE_NAMES[roleName.toLowerCase()];
    if (!role) return problems.push({ field: `${at}.${'from' in turn ? 'from' : 'role'}`, message: `unknown role ${JSON.stringify(roleName)}; expected one of ${Object.keys(ROLE_NAMES).join(', ')}` });
    const textField = 'value' in turn ? 'value' : 'content';
    const text = turnText(turn[textField]);
    if (typeof text !== 'string') return problems.push({ field: `${at}.${textField}`, message: text.error });
    if (role === 'system') {
      if (text.trim()) system.push(text);
      return;
    }
    const last = merged[merged.length - 1];
    if (last && last.role === role) last.text += `\n\n${text}`;
    else merged.push({ role, text });
  });
  if (problems.length) return { examples: [], problems };

  const replies: number[] = []; // indices of assistant turns answering a user turn
  merged.forEach((t, k) => {
    if (t.role === 'assistant' && k > 0 && merged[k - 1]!.role === 'user') replies.push(k);
  });
  if (replies.length === 0) {
    return { examples: [], problems: [{ field: key, message: 'no user turn followed by an assistant reply; nothing to learn from' }] };
  }

  const chosen = mode === 'each-turn' ? replies : replies.slice(-1);
  const examples: Omit<NewExample, 'source' | 'sourceLine'>[] = [];
  for (const k of chosen) {
    const user = merged[k - 1]!;
    const reply = merged[k]!;
    if (!user.text.trim()) problems.push({ field: key, message: `turn ${k - 1} (user) is empty` });
    if (!reply.text.trim()) problems.push({ field: key, message: `turn ${k} (assistant) is empty: the output would be empty` });
    const context = [
      ...(system.length ? [`System: ${system.join('\n\n')}`] : []),
      ...merged.slice(0, k - 1).map((t) => `${t.role === 'user' ? 'User' : 'Assistant'}: ${t.text}`),
    ];
    examples.push({ instruction: user.text, input: context.join('\n\n'), output: reply.text });
  }
  return problems.length ? { examples: [], problems } : { examples, problems };
}

function turnText(content: unknown): string | { error: string } {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const texts: string[] = [];
    for (const part of content) {
      if (typeof part === 'string') texts.push(part);
      else if (isPlainObject(part) && part.type === 'text' && typeof part.text === 'string') texts.push(part.text);
      else return { error: `only text parts are supported, got ${JSON.stringify(isPlainObject(part) ? part.type : part)}` };
    }
    return texts.join('\n');
  }
  if (content === undefined || content === null) return { error: 'missing; expected the text of the turn' };
  return { error: `expected text, got ${typeName(content)}` };
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Uint8Array) return `binary data (${v.length} bytes)`;
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'bigint') return `number ${v}`;
  return typeof v === 'string' ? 'text' : `${typeof v} ${JSON.stringify(v)}`;
}
