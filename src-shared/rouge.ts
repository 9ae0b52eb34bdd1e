// ROUGE-L (Lin, "ROUGE: A Package for Automatic Evaluation of Summaries", 2004): the F-measure of the
// longest common subsequence of two token lists. Pure; callers choose the tokenizer (the engine's
// scores follow rouge_score's ASCII one, self-instruct's filter a Unicode one).

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

/** ROUGE-L F1 (beta = 1) of two token lists; 0 when either is empty or they share nothing. */
export function rougeLTokens(candidate: readonly string[], reference: readonly string[]): number {
  const lcs = lcsLength(candidate, reference);
  if (lcs === 0) return 0;
  const precision = lcs / candidate.length;
  const recall = lcs / reference.length;
  return (2 * precision * recall) / (precision + recall);
}
