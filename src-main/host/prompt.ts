// The text a model sees for each kind of request. Adapters are trained on Stanford Alpaca's template, so
// chat turns are rendered in that template too: earlier turns become earlier "### Instruction / ### Response"
// blocks, and the system prompt (if any) replaces Alpaca's one-line preamble.

import { formatAlpacaPrompt, type PromptTemplate } from '../engine/data.js';
import type { PromptSpec } from './protocol.js';

/** Generation stops before the model starts writing the next turn itself. */
export const TURN_STOPS = ['### Instruction:', '### Input:', '### Response:'];

const ALPACA_PREAMBLE = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.';

/** `trained`: the template the adapter (if any) trained with; Alpaca-LoRA's ends "### Response:" with a newline. */
export function renderPrompt(p: PromptSpec, trained: PromptTemplate = 'alpaca'): string {
  const responseCue = formatAlpacaPrompt('', '', trained).slice(formatAlpacaPrompt('', '', trained).lastIndexOf('### Response:'));
  switch (p.template) {
    case 'none':
      return p.text;
    case 'alpaca':
      return formatAlpacaPrompt(p.instruction, p.input, trained);
    case 'chat': {
      const preamble = p.system.trim() === '' ? ALPACA_PREAMBLE : p.system.trim();
      const blocks: string[] = [preamble];
      for (const turn of p.turns) {
        blocks.push(turn.role === 'user' ? `### Instruction:\n${turn.content}` : `### Response:\n${turn.content}`);
      }
      // The model answers the last user turn.
      return `${blocks.join('\n\n')}\n\n${responseCue}`;
    }
  }
}
