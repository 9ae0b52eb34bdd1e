// A small but real OpenAI-compatible HTTP server for the self-instruct tests: it listens on 127.0.0.1, parses
// the JSON request, and answers POST /v1/chat/completions with a completion composed deterministically from
// the request (the numbering and seed tasks in the prompt, and the request's `seed`).
//
// Each reply continues the prompt's numbered list. Its first four tasks are ones the filters must reject
// (a banned word, too short, a copy of a seed shown in the prompt, an empty output); the rest are distinct.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const TOPICS = [
  'the water cycle to a ten year old',
  'why bread dough needs time to rise',
  'how compound interest grows savings',
  'what causes ocean tides along coastlines',
  'the rules of chess castling',
  'how vaccines train immune systems',
  'the difference between weather and climate',
  'why leaves change colour in autumn',
  'how a bicycle gear ratio affects pedalling',
  'what a hash table stores internally',
  'how volcanoes form new islands',
  'the main causes of inflation',
  'why cats purr when relaxed',
  'how solar panels produce electricity',
  'what photosynthesis needs besides sunlight',
  'how recursion solves the towers of hanoi',
  'why the moon shows phases',
  'the history behind the marathon distance',
  'how noise cancelling headphones work',
  'what makes a good password memorable',
  'how bees choose a new nest site',
  'why salt melts ice on roads',
  'the purpose of a cover letter',
  'how binary search halves its range',
  'what jet lag does to sleep',
  'how glaciers carve valleys',
  'why prime numbers matter for encryption',
  'the steps of brewing green tea properly',
  'how elections use ranked choice ballots',
  'what overfitting means for small models',
];
const VERBS = ['Explain', 'Describe briefly', 'Summarize for a newcomer', 'Teach me', 'Outline'];

export interface RecordedRequest {
  path: string;
  authorization: string | undefined;
  body: { model: string; messages: { role: string; content: string }[]; seed?: number; temperature?: number; max_tokens?: number };
}

export interface FakeOpenAIServer {
  baseUrl: string;
  requests: RecordedRequest[];
  /** Answer the next `n` requests with this HTTP status instead. */
  failNext(n: number, status: number): void;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The completion for a prompt: continues from "N. Instruction:" up to the task count it asks for. */
export function composeCompletion(prompt: string, seed: number): string {
  const next = Number(/(\d+)\. Instruction:\s*$/.exec(prompt)?.[1]);
  const last = Number(/up to task (\d+)/.exec(prompt)?.[1]);
  const firstSeed = /^1\. Instruction: (.*)$/m.exec(prompt)?.[1] ?? 'Repeat the first seed';
  if (!next || !last) return 'I do not understand the request.';
  const tasks: { instruction: string; input: string; output: string }[] = [
    { instruction: `Draw a picture of ${TOPICS[seed % TOPICS.length]}`, input: '', output: 'I cannot draw.' },
    { instruction: 'Do it.', input: '', output: 'Done.' },
    { instruction: firstSeed, input: '', output: 'A copy of a seed task.' },
    { instruction: `List three facts about ${TOPICS[(seed + 7) % TOPICS.length]} with no answer`, input: '', output: '' },
  ];
  for (let k = 0; tasks.length < last - next + 1; k++) {
    const topic = TOPICS[(seed * 3 + k) % TOPICS.length]!;
    const withInput = k % 2 === 1;
    tasks.push({
      instruction: `${VERBS[(seed + k) % VERBS.length]} ${topic}.`,
      input: withInput ? `Audience: request ${seed}, task ${k}` : '',
      output: `Here is an answer about ${topic} (request ${seed}, task ${k}).`,
    });
  }
  // The prompt ends with "N. Instruction:", so the reply starts with that instruction's text.
  return tasks
    .map((t, k) => {
      const n = next + k;
      const head = k === 0 ? ` ${t.instruction}` : `${n}. Instruction: ${t.instruction}`;
      return [head, `${n}. Input:`, t.input || '<noinput>', `${n}. Output:`, t.output].join('\n');
    })
    .join('\n###\n');
}

export async function startFakeOpenAIServer(expectedKey: string): Promise<FakeOpenAIServer> {
  const requests: RecordedRequest[] = [];
  let failures = { n: 0, status: 500 };
  const server: Server = createServer(async (req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') return send(404, { error: { message: `no route ${req.method} ${req.url}` } });
    if (req.headers.authorization !== `Bearer ${expectedKey}`) return send(401, { error: { message: 'bad api key' } });
    let body: RecordedRequest['body'];
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      return send(400, { error: { message: 'body is not JSON' } });
    }
    requests.push({ path: req.url, authorization: req.headers.authorization, body });
    if (failures.n > 0) {
      failures.n--;
      return send(failures.status, { error: { message: 'the model is overloaded' } });
    }
    const prompt = body.messages.at(-1)?.content ?? '';
    const content = composeCompletion(prompt, body.seed ?? 0);
    send(200, {
      id: `chatcmpl-${requests.length}`,
      object: 'chat.completion',
      model: body.model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    failNext: (n, status) => (failures = { n, status }),
    close: () => new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}
