/**
 * Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): the predicted
 * probabilities become softmax(s / T) for the network's scores s (its logits, or the log of an ensemble's
 * averaged probabilities), with one T > 0 fitted on held-out data by minimising the mean negative
 * log-likelihood. The arg max, and so the accuracy, does not change.
 *
 * The solver works on beta = 1 / T, where the problem is convex: NLL(beta) = mean_i [logsumexp(beta s_i) -
 * beta s_i,y_i] has NLL'(beta) = mean_i [E_p(beta)[s_i] - s_i,y_i] and NLL''(beta) = mean_i Var_p(beta)[s_i]
 * >= 0. Newton steps on beta, kept inside a bracket [lo, hi] where NLL' changes sign (bisection whenever a
 * Newton step would leave it), until |NLL'| is below a tolerance. The bracket is grown geometrically from
 * [0, 1] until NLL'(hi) >= 0; if NLL' stays negative (the data are separable: sharper is always better),
 * beta stops at a cap and the result says so; if NLL'(0) >= 0 already (the scores carry no information about
 * the labels), T stops at the other cap.
 */

/** The fitted temperature and the mean NLL before (T = 1) and after. */
export interface TemperatureFit {
  readonly temperature: number;
  readonly nllBefore: number;
  readonly nllAfter: number;
  /** Newton or bisection steps taken. */
  readonly iterations: number;
  /** True when the optimum lies outside the solver's range of T (1/1000 to 1000): T is at that end. */
  readonly atLimit: boolean;
}

/** Largest 1 / T the solver goes to: scores 1000 times sharper. */
const MAX_BETA = 1000;
const TOLERANCE = 1e-10;
const MAX_ITERATIONS = 200;

/** Mean NLL and its first two derivatives in beta, over `count` rows of `classes` scores. */
function nllAndDerivatives(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  count: number,
  classes: number,
  beta: number,
): { nll: number; d1: number; d2: number } {
  let nll = 0;
  let d1 = 0;
  let d2 = 0;
  for (let i = 0; i < count; i++) {
    const row = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, beta * scores[row + c]);
    let sum = 0;
    let mean = 0;
    let meanSquare = 0;
    for (let c = 0; c < classes; c++) {
      const s = scores[row + c];
      const e = Math.exp(beta * s - max);
      sum += e;
      mean += e * s;
      meanSquare += e * s * s;
    }
    mean /= sum;
    meanSquare /= sum;
    const label = scores[row + labels[i]];
    nll += max + Math.log(sum) - beta * label;
    d1 += mean - label;
    d2 += Math.max(0, meanSquare - mean * mean);
  }
  return { nll: nll / count, d1: d1 / count, d2: d2 / count };
}

/**
 * Fits the temperature of `count` rows of scores (row-major, `classes` per row) against their labels.
 * Scores must be finite; `count` at least 1.
 */
export function fitTemperature(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  count: number,
  classes: number,
): TemperatureFit {
  if (!(count >= 1) || scores.length < count * classes)
    throw new RangeError(`fitTemperature: ${count} rows of ${classes} scores need ${count * classes} values`);
  const at = (beta: number) => nllAndDerivatives(scores, labels, count, classes, beta);
  const nllBefore = at(1).nll;
  // NLL'(0) >= 0: the labels' scores are no better than the average score, and the flattest prediction
  // (T -> infinity) is best; the solver stops at its smallest beta and says so.
  if (at(0).d1 >= 0) {
    const beta = 1 / MAX_BETA;
    return { temperature: 1 / beta, nllBefore, nllAfter: at(beta).nll, iterations: 0, atLimit: true };
  }
  // Bracket: NLL'(0) < 0; grow hi until NLL'(hi) >= 0.
  let lo = 0;
  let hi = 1;
  while (at(hi).d1 < 0 && hi < MAX_BETA) {
    lo = hi;
    hi = Math.min(MAX_BETA, hi * 2);
  }
  let iterations = 0;
  let beta: number;
  const top = at(hi);
  if (top.d1 < 0) {
    beta = hi;
  } else {
    beta = Math.min(Math.max(1, lo), hi);
    for (; iterations < MAX_ITERATIONS; iterations++) {
      const { d1, d2 } = at(beta);
      if (Math.abs(d1) < TOLERANCE) break;
      if (d1 > 0) hi = beta;
      else lo = beta;
      const newton = d2 > 0 ? beta - d1 / d2 : NaN;
      beta = newton > lo && newton < hi ? newton : (lo + hi) / 2;
      if (hi - lo < 1e-15 * Math.max(1, hi)) break;
    }
  }
  return {
    temperature: 1 / beta,
    nllBefore,
    nllAfter: at(beta).nll,
    iterations,
    atLimit: top.d1 < 0,
  };
}
