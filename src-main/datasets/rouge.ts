// ROUGE-L: longest-common-subsequence overlap of two texts' words (Lin, "ROUGE: A Package for Automatic
// Evaluation of Summaries", 2004). Self-Instruct uses its F-measure to drop generated instructions too similar
// to ones already in the pool.
//
// Tokens follow the rouge_score package's default (lowercase, split on anything that is not a letter or a
// digit), extended to all Unicode letters and digits so non-English text does not tokenize to nothing.

import { rougeLTokens } from '../../src-shared/rouge.js';

export { lcsLength, rougeLTokens } from '../../src-shared/rouge.js';

export function rougeTokens(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

export function rougeL(candidate: string, reference: string): number {
  return rougeLTokens(rougeTokens(candidate), rougeTokens(reference));
}
