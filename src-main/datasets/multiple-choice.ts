// Multiple-choice questions as text, in the format of LLaMA-Adapter's ScienceQA figure (the QCM-A format of
// ScienceQA's own prompts, with the letter in parentheses):
//
//   Question: Which animal has feathers?
//   Context: N/A
//   Options: (A) cat (B) sparrow (C) frog
//   Answer: The answer is (B).
//
// Context is the question's hint ("N/A" when empty). Pure functions; nothing here knows about files or models.
//
// How a question becomes a training example (what the importers store, so the ordinary training path trains on
// it): instruction = the Question/Context/Options block, input = "", output = "The answer is (B).". With the
// Stanford Alpaca template (what every run uses) that reads
//   "...### Instruction:\nQuestion: ...\nContext: ...\nOptions: ...\n\n### Response:The answer is (B)."
// where "### Response:" takes the place of "Answer:". Without a template (`multipleChoicePrompt`), the prompt ends
// in "\nAnswer:" and the model is expected to go on with " The answer is (B).", exactly the figure.

export const CHOICE_LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

export interface MultipleChoiceQuestion {
  question: string;
  /** ScienceQA's hint; empty when there is none. */
  context: string;
  choices: string[];
}

/** The text around a question. `{question}`, `{context}`, `{options}`, `{letter}`, `{choice}` are filled in. */
export interface MultipleChoiceTemplate {
  /** The instruction: question, context and options. */
  prompt: string;
  /** One option inside `{options}`. */
  option: string;
  /** Between two options. */
  optionSeparator: string;
  /** The context when the question has none. */
  emptyContext: string;
  /** What the model should answer (the training output). */
  answer: string;
  /** Ends the prompt when no Alpaca template is used (the figure's "Answer:"); a space then the answer follow. */
  answerCue: string;
}

export const DEFAULT_MULTIPLE_CHOICE_TEMPLATE: Readonly<MultipleChoiceTemplate> = Object.freeze({
  prompt: 'Question: {question}\nContext: {context}\nOptions: {options}',
  option: '({letter}) {choice}',
  optionSeparator: ' ',
  emptyContext: 'N/A',
  answer: 'The answer is ({letter}).',
  answerCue: 'Answer:',
});

export class MultipleChoiceError extends Error {
  override name = 'MultipleChoiceError';
}

/**
 * Fills `{name}` placeholders in one pass (as Python's str.format_map), so a question that itself contains
 * "{context}" or "$&" stays as written.
 */
export function fillPlaceholders(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => (Object.prototype.hasOwnProperty.call(values, name) ? values[name]! : whole));
}

/** Checks a partial template from a user (import options) and completes it with the defaults. */
export function resolveTemplate(partial: Partial<MultipleChoiceTemplate> = {}): MultipleChoiceTemplate {
  const t = { ...DEFAULT_MULTIPLE_CHOICE_TEMPLATE, ...partial };
  for (const [key, value] of Object.entries(t)) {
    if (!(key in DEFAULT_MULTIPLE_CHOICE_TEMPLATE)) throw new MultipleChoiceError(`multiple-choice template: unknown field "${key}"`);
    if (typeof value !== 'string') throw new MultipleChoiceError(`multiple-choice template: field "${key}" must be text`);
  }
  if (!t.prompt.includes('{question}') || !t.prompt.includes('{options}')) {
    throw new MultipleChoiceError('multiple-choice template: "prompt" must contain {question} and {options}');
  }
  if (!t.answer.includes('{letter}')) throw new MultipleChoiceError('multiple-choice template: "answer" must contain {letter}');
  return t;
}

export function choiceLetter(index: number): string {
  const letter = CHOICE_LETTERS[index];
  if (!Number.isInteger(index) || letter === undefined) throw new MultipleChoiceError(`choice ${index} has no letter (at most ${CHOICE_LETTERS.length} choices)`);
  return letter;
}

export function formatOptions(choices: readonly string[], template: MultipleChoiceTemplate = DEFAULT_MULTIPLE_CHOICE_TEMPLATE): string {
  return choices.map((choice, i) => fillPlaceholders(template.option, { letter: choiceLetter(i), choice })).join(template.optionSeparator);
}

/** The Question/Context/Options block (the training instruction). */
export function multipleChoiceInstruction(q: MultipleChoiceQuestion, template: MultipleChoiceTemplate = DEFAULT_MULTIPLE_CHOICE_TEMPLATE): string {
  const context = q.context.trim() === '' ? template.emptyContext : q.context;
  return fillPlaceholders(template.prompt, { question: q.question, context, options: formatOptions(q.choices, template) });
}

/** "The answer is (B)." for choice 1. */
export function multipleChoiceAnswer(answer: number, template: MultipleChoiceTemplate = DEFAULT_MULTIPLE_CHOICE_TEMPLATE): string {
  return fillPlaceholders(template.answer, { letter: choiceLetter(answer) });
}

/** The figure's prompt without the Alpaca template: the block, then "\nAnswer:". */
export function multipleChoicePrompt(q: MultipleChoiceQuestion, template: MultipleChoiceTemplate = DEFAULT_MULTIPLE_CHOICE_TEMPLATE): string {
  return `${multipleChoiceInstruction(q, template)}\n${template.answerCue}`;
}

/** The example the importers store for a question with its answer. */
export function multipleChoiceExample(
  q: MultipleChoiceQuestion & { answer: number },
  template: MultipleChoiceTemplate = DEFAULT_MULTIPLE_CHOICE_TEMPLATE,
): { instruction: string; input: string; output: string } {
  return { instruction: multipleChoiceInstruction(q, template), input: '', output: multipleChoiceAnswer(q.answer, template) };
}
