// Reference outputs made elsewhere (for example a fully fine-tuned Alpaca's answers to the same prompts),
// imported as one column of an evaluation. Accepted JSON shapes:
//   [{"instruction": ..., "input": ..., "output": ...}]   Alpaca's format (input optional)
//   [{"prompt": ..., "response": ...}]
//   {"<prompt>": "<response>", ...}
// A prompt is matched by its instruction and input text with surrounding whitespace trimmed.

export class ReferencesError extends Error {
  override name = 'ReferencesError';
}

export function promptKey(instruction: string, input = ''): string {
  return `${instruction.trim()}\u0000${input.trim()}`;
}

const MAX_FIELD = 1_000_000;

export function parseReferences(fileName: string, content: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch (e) {
    throw new ReferencesError(`${fileName}: not valid JSON (${(e as Error).message})`);
  }
  const out = new Map<string, string>();
  const put = (where: string, instruction: unknown, input: unknown, response: unknown, names: [string, string]) => {
    for (const [value, field] of [
      [instruction, names[0]],
      [response, names[1]],
    ] as const) {
      if (typeof value !== 'string') throw new ReferencesError(`${fileName}: ${where}: field "${field}" must be a string, got ${value === undefined ? 'nothing' : typeof value}`);
      if (value.length > MAX_FIELD) throw new ReferencesError(`${fileName}: ${where}: field "${field}" is over ${MAX_FIELD} characters`);
    }
    if (input !== undefined && input !== null && typeof input !== 'string') throw new ReferencesError(`${fileName}: ${where}: field "input" must be a string`);
    if ((instruction as string).trim() === '') throw new ReferencesError(`${fileName}: ${where}: field "${names[0]}" is empty`);
    const key = promptKey(instruction as string, (input as string | undefined) ?? '');
    if (out.has(key)) throw new ReferencesError(`${fileName}: ${where}: the same prompt appears twice`);
    out.set(key, (response as string).trim());
  };
  if (Array.isArray(json)) {
    json.forEach((entry, i) => {
      const where = `entry ${i}`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new ReferencesError(`${fileName}: ${where}: expected an object`);
      const e = entry as Record<string, unknown>;
      if ('prompt' in e) put(where, e.prompt, undefined, e.response, ['prompt', 'response']);
      else put(where, e.instruction, e.input, e.output, ['instruction', 'output']);
    });
  } else if (typeof json === 'object' && json !== null) {
    for (const [prompt, response] of Object.entries(json)) put(`key ${JSON.stringify(prompt.slice(0, 60))}`, prompt, undefined, response, ['prompt', 'response']);
  } else {
    throw new ReferencesError(`${fileName}: expected a list of {instruction, input, output} or {prompt, response}, or an object of prompt: response`);
  }
  if (out.size === 0) throw new ReferencesError(`${fileName}: holds no references`);
  return out;
}
