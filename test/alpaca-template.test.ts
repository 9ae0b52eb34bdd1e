// The Stanford Alpaca prompt as train.py builds it: PROMPT_DICT[...].format_map(example), the with-input
// template for any non-empty input. One pass over both fields, so text that looks like a placeholder or like a
// replacement pattern stays as the user wrote it (formatAlpacaPrompt serves training, eval, the CLI, the host,
// the OpenAI API and the stats alike).

import { describe, expect, it } from 'vitest';
import { formatAlpacaPrompt } from '../src-main/engine/data.js';

const HEAD_INPUT = 'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n';
const HEAD = 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n';

describe('formatAlpacaPrompt', () => {
  it('is format_map of the two templates', () => {
    expect(formatAlpacaPrompt('Add.', '2 and 3')).toBe(`${HEAD_INPUT}### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:`);
    expect(formatAlpacaPrompt('Name a color.')).toBe(`${HEAD}### Instruction:\nName a color.\n\n### Response:`);
  });

  it('keeps placeholders, braces and replacement patterns inside the fields', () => {
    for (const tricky of ['use {input} here', '{instruction}', 'a {b} c {{input}}', '$& and $1 and $$', "$'", '$`']) {
      expect(formatAlpacaPrompt(tricky, 'x')).toBe(`${HEAD_INPUT}### Instruction:\n${tricky}\n\n### Input:\nx\n\n### Response:`);
      expect(formatAlpacaPrompt('i', tricky)).toBe(`${HEAD_INPUT}### Instruction:\ni\n\n### Input:\n${tricky}\n\n### Response:`);
      expect(formatAlpacaPrompt(tricky)).toBe(`${HEAD}### Instruction:\n${tricky}\n\n### Response:`);
    }
  });

  it('an input of only whitespace takes the with-input template, as train.py does', () => {
    expect(formatAlpacaPrompt('Add.', ' ')).toBe(`${HEAD_INPUT}### Instruction:\nAdd.\n\n### Input:\n \n\n### Response:`);
  });
});
