/**
 * Measures of uncertainty at work, from per-example predictions:
 *
 * - Selective prediction: set aside the least confident examples and report the accuracy on the rest, at
 *   coverage c (the share kept: the ceil(c n) most confident, ties broken by example order), and the area
 *   under the accuracy-coverage curve, AUC = (1/n) sum_k acc(top k) over k = 1..n (1 for a ranking that
 *   puts every error last; the accuracy itself for a ranking that tells nothing).
 * - Out-of-distribution detection: the AUROC of a score that should be higher on out-of-distribution
 *   inputs (predictive entropy, or minus the top probability): the probability that a random
 *   out-of-distribution example scores above a random in-distribution one, ties counting one half
 *   (Mann-Whitney U / (n_in n_out)). 0.5 is chance, 1 a perfect detector.
 */

/** The coverages selective prediction reports. */
export const COVERAGES = [0.5, 0.8, 0.9, 0.95] as const;

export interface SelectivePrediction {
  /** Accuracy on the most confident share of the examples, for each of COVERAGES. */
  readonly accuracyAtCoverage: Readonly<Record<string, number>>;
  /** Area under the accuracy-coverage curve. */
  readonly auc: number;
}

/** Indices sorted by confidence, highest first; ties keep example order. */
function byConfidence(confidence: ArrayLike<number>): number[] {
  const order = Array.from({ length: confidence.length }, (_, i) => i);
  return order.sort((a, b) => confidence[b] - confidence[a] || a - b);
}

/** Selective prediction from each example's confidence (its top probability) and whether it was right. */
export function selectivePrediction(
  confidence: ArrayLike<number>,
  correct: ArrayLike<boolean | number>,
): SelectivePrediction {
  const n = confidence.length;
  if (n === 0 || correct.length !== n)
    throw new RangeError(`selectivePrediction: ${n} confidences and ${correct.length} outcomes`);
  const order = byConfidence(confidence);
  // hits[k] = correct among the k most confident.
  const hits = new Float64Array(n + 1);
  for (let k = 0; k < n; k++) hits[k + 1] = hits[k] + (correct[order[k]] ? 1 : 0);
  let area = 0;
  for (let k = 1; k <= n; k++) area += hits[k] / k;
  const accuracyAtCoverage: Record<string, number> = {};
  for (const c of COVERAGES) {
    const kept = Math.max(1, Math.ceil(c * n));
    accuracyAtCoverage[String(c)] = hits[kept] / kept;
  }
  return { accuracyAtCoverage, auc: area / n };
}

/**
 * AUROC of `score` separating out-of-distribution examples (`outside`) from in-distribution ones
 * (`inside`), higher scores meaning "outside". Ties count one half.
 */
export function auroc(inside: ArrayLike<number>, outside: ArrayLike<number>): number {
  if (inside.length === 0 || outside.length === 0)
    throw new RangeError(`auroc: ${inside.length} inside and ${outside.length} outside examples`);
  // Rank-sum over the pooled scores, with average ranks for ties.
  const pooled = [
    ...Array.from(inside, (s) => ({ s, out: false })),
    ...Array.from(outside, (s) => ({ s, out: true })),
  ].sort((a, b) => a.s - b.s);
  let rankSumOutside = 0;
  for (let i = 0; i < pooled.length;) {
    let j = i;
    while (j < pooled.length && pooled[j].s === pooled[i].s) j++;
    const averageRank = (i + 1 + j) / 2; // ranks i+1..j
    for (let k = i; k < j; k++) if (pooled[k].out) rankSumOutside += averageRank;
    i = j;
  }
  const m = outside.length;
  const u = rankSumOutside - (m * (m + 1)) / 2;
  return u / (m * inside.length);
}
