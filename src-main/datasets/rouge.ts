// ROUGE-L: longest-common-subsequence overlap of two texts' words (Lin, "ROUGE: A Package for Automatic
// Evaluation of Summaries", 2004). Self-Instruct uses its F-measure to drop generated instructions too similar
// to ones already in the pool.
//
// Tokens follow the rouge_score package's default (lowercase, split on anything that is not a letter or a
// digit), extended to all Unicode letters and digits so non-English text does not tokenize to nothing.

export function rougeTokens(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** Length of the longest common subsequence, in O(a * b) time and O(b) memory. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Uint32Array(b.length + 1);
  let row = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      row[j] = ai === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, row[j - 1]!);
    }
    [prev, row] = [row, prev];
  }
  return prev[b.length]!;
}

/** ROUGE-L F1 of two token lists (0 when either is empty). */
export function rougeLTokens(candidate: readonly string[], reference: readonly string[]): number {
  const lcs = lcsLength(candidate, reference);
  if (lcs === 0) return 0;
  const precision = lcs / candidate.length;
  const recall = lcs / reference.length;
  return (2 * precision * recall) / (precision + recall);
}

export function rougeL(candidate: string, reference: string): number {
  return rougeLTokens(rougeTokens(candidate), rougeTokens(reference));
}
