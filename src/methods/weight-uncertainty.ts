/**
 * Summaries of how uncertain a weight distribution is about its signs (method.ts `WeightUncertainty`),
 * computed from each weight's flip probability q = P(a sampled sign differs from the mode's). The 1% and
 * 10% lines are the ones docs/uncertainty.md reports: a weight with q below 1% is, for every practical
 * ensemble size, fixed.
 */
import type { WeightUncertainty } from './method.js';

/** Summarises q(x) over every value x of `parameters` (e.g. BayesBiNN's lambda). */
export function summariseFlipProbabilities(
  parameters: readonly ArrayLike<number>[],
  flipProbability: (x: number) => number,
): WeightUncertainty {
  let weights = 0;
  let sum = 0;
  let atLeast1 = 0;
  let atLeast10 = 0;
  for (const values of parameters) {
    for (let i = 0; i < values.length; i++) {
      const q = flipProbability(values[i]);
      sum += q;
      if (q >= 0.01) atLeast1++;
      if (q >= 0.1) atLeast10++;
    }
    weights += values.length;
  }
  const share = (count: number) => (weights === 0 ? 0 : count / weights);
  return {
    weights,
    meanFlipProbability: share(sum),
    shareFlipAtLeast1Percent: share(atLeast1),
    shareFlipAtLeast10Percent: share(atLeast10),
  };
}
