// A real HTTP server speaking OpenAI's chat API as a deterministic LLM judge for the color task: it reads the
// question and both answers out of the review prompt, as a judge model would see them, scores an answer 9
// when it is the right color and 2 otherwise, and answers without scores for questions about `unreadableFor`.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { COLORS } from './color-task.js';

export interface JudgeServer {
  url: string;
  /** Every prompt the judge was sent, in order. */
  prompts: string[];
  close(): Promise<void>;
}

export async function startJudgeServer(unreadableFor = 'coal'): Promise<JudgeServer> {
  const prompts: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const prompt = JSON.parse(body).messages.at(-1).content as string;
      prompts.push(prompt);
      const thing = /What color is (\w+)\?/.exec(prompt)?.[1] ?? '';
      const answer = (n: 1 | 2) => new RegExp(`\\[The Start of Assistant ${n}'s Answer\\]\\n([\\s\\S]*?)\\n\\[The End`).exec(prompt)?.[1] ?? '';
      const score = (n: 1 | 2) => (answer(n).trim() === COLORS[thing] ? 9 : 2);
      const content = thing === unreadableFor ? 'I cannot decide.' : `${score(1)} ${score(2)}\nAssistant answers compared.`;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: 'judge', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, prompts, close: () => new Promise<void>((r) => server.close(() => r())) };
}
