// LLM-as-judge, pairwise, in the style of the review prompt Vicuna used with GPT-4 (the comparison the
// LLaMA-Adapter paper reports against Alpaca): the judge scores both answers from 1 to 10 on the first line
// of its reply, then explains. Verdicts from a model are opinions, not measurements; the UI and the CLI label
// them as LLM-judge results wherever they are shown.

export const JUDGE_SYSTEM_PROMPT = 'You are a helpful and precise assistant for checking the quality of the answer.';

export function judgePrompt(question: string, answer1: string, answer2: string): string {
  return [
    `[Question]\n${question}`,
    `[The Start of Assistant 1's Answer]\n${answer1}\n[The End of Assistant 1's Answer]`,
    `[The Start of Assistant 2's Answer]\n${answer2}\n[The End of Assistant 2's Answer]`,
    '[System]\nWe would like your feedback on the performance of two AI assistants answering the user question shown above.\n' +
      'Please rate the helpfulness, relevance, accuracy and level of detail of their responses. Each assistant gets an overall ' +
      'score from 1 to 10, where higher means better overall performance.\n' +
      'First output a single line containing only two values: the scores for Assistant 1 and Assistant 2, separated by a space. ' +
      'On the following lines, explain your evaluation, avoiding any bias and making sure the order in which the answers were ' +
      'presented does not affect your judgment.',
  ].join('\n\n');
}

export interface JudgeVerdict {
  /** Scores as the judge gave them, for the answer shown first and second. */
  scores: [number, number];
  winner: 'first' | 'second' | 'tie';
}

/**
 * Reads the two scores from the first line that holds two numbers (judges sometimes add a word such as
 * "Scores:" or markdown around them). Null when no line does: the verdict is then recorded as unreadable,
 * never guessed.
 */
export function parseJudgeReply(reply: string): JudgeVerdict | null {
  for (const line of reply.split(/\r?\n/)) {
    const numbers = line.match(/-?\d+(?:\.\d+)?/g);
    if (!numbers || numbers.length !== 2) continue;
    const [a, b] = numbers.map(Number);
    if (![a, b].every((v) => v >= 0 && v <= 10)) continue;
    return { scores: [a, b], winner: a > b ? 'first' : b > a ? 'second' : 'tie' };
  }
  return null;
}

/**
 * Which answer the judge sees first. Judges favour one position (Zheng et al. 2023), so the order alternates
 * from one example to the next: over a set, each column is shown first half of the time.
 */
export function leftShownFirst(position: number): boolean {
  return position % 2 === 0;
}
