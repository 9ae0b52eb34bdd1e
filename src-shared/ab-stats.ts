// Tallies of blind A/B ratings: wins, ties and losses of model A against model B, with a 95%
// confidence interval on A's score (win = 1, tie = 1/2, loss = 0), as in pairwise LLM evaluations.
// Pure: shared by the renderer, the server and the CLI.

export type Verdict = 'a' | 'b' | 'tie';

export interface Tally {
  wins: number; // A preferred
  ties: number;
  losses: number; // B preferred
  n: number;
  score: number; // (wins + ties / 2) / n
  low: number; // 95% interval on score
  high: number;
}

/**
 * Wilson score interval on the tie-as-half score. Ties make the outcome non-binary, so the
 * variance term uses the sample variance of the 0 / 0.5 / 1 outcomes instead of p(1 - p); with no
 * ties it reduces to the ordinary Wilson interval.
 */
export function tally(verdicts: Verdict[], z = 1.96): Tally {
  const wins = verdicts.filter((v) => v === 'a').length;
  const ties = verdicts.filter((v) => v === 'tie').length;
  const losses = verdicts.length - wins - ties;
  const n = verdicts.length;
  if (n === 0) return { wins, ties, losses, n, score: 0.5, low: 0, high: 1 };
  const score = (wins + ties / 2) / n;
  const variance = (wins * (1 - score) ** 2 + ties * (0.5 - score) ** 2 + losses * score ** 2) / n;
  const z2 = z * z;
  const centre = (score + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt(variance / n + z2 / (4 * n * n));
  return { wins, ties, losses, n, score, low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}
