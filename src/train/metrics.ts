/**
 * Evaluation metrics over predicted class probabilities: accuracy, negative log-likelihood, expected
 * calibration error (Guo et al. 2017, "On Calibration of Modern Neural Networks": equal-width confidence
 * bins, ECE = sum_b |B_b|/n * |acc(B_b) - conf(B_b)|) and per-example predictive entropy.
 */

/** One bin of a reliability diagram. */
export interface ReliabilityBin {
  /** Lower and upper edge of the confidence interval (lower exclusive except for the first bin). */
  readonly lower: number;
  readonly upper: number;
  /** Mean confidence of the examples in the bin (0 when empty). */
  readonly confidence: number;
  /** Accuracy of the examples in the bin (0 when empty). */
  readonly accuracy: number;
  readonly count: number;
}

export interface ClassificationMetrics {
  readonly count: number;
  readonly accuracy: number;
  /** Mean negative log-likelihood of the true class (natural log). */
  readonly nll: number;
  readonly ece: number;
  /** Mean predictive entropy (nats). */
  readonly meanEntropy: number;
  readonly bins: readonly ReliabilityBin[];
}

/** Probabilities below this are clamped before the log, so one confident mistake gives a finite NLL. */
export const PROBABILITY_FLOOR = 1e-12;

/**
 * Accumulates metrics batch by batch, so evaluation needs no buffer over the whole data set except the
 * optional per-example entropies.
 */
export class MetricsAccumulator {
  private count = 0;
  private correct = 0;
  private nllSum = 0;
  private entropySum = 0;
  private readonly binCount: Float64Array;
  private readonly binConfidence: Float64Array;
  private readonly binCorrect: Float64Array;
  /** Per-example predictive entropy, in the order examples were added (when requested). */
  readonly entropies: number[] | null;
  /** Per-example top probability and whether the top class was right (with the entropies). */
  readonly confidences: number[] | null;
  readonly outcomes: boolean[] | null;
  /** Per-example predicted class (with the entropies). */
  readonly predictions: number[] | null;

  constructor(
    readonly classes: number,
    readonly numBins = 15,
    keepEntropies = false,
  ) {
    this.binCount = new Float64Array(numBins);
    this.binConfidence = new Float64Array(numBins);
    this.binCorrect = new Float64Array(numBins);
    this.entropies = keepEntropies ? [] : null;
    this.confidences = keepEntropies ? [] : null;
    this.outcomes = keepEntropies ? [] : null;
    this.predictions = keepEntropies ? [] : null;
  }

  /** Adds `batch` rows of probabilities (row-major, `classes` per row) with their labels. */
  add(probabilities: ArrayLike<number>, labels: ArrayLike<number>, batch: number): void {
    const k = this.classes;
    for (let i = 0; i < batch; i++) {
      const row = i * k;
      let best = 0;
      let bestP = probabilities[row];
      let entropy = 0;
      for (let c = 0; c < k; c++) {
        const p = probabilities[row + c];
        if (p > bestP) {
          bestP = p;
          best = c;
        }
        if (p > 0) entropy -= p * Math.log(p);
      }
      const label = labels[i];
      const hit = best === label ? 1 : 0;
      this.correct += hit;
      this.nllSum -= Math.log(Math.max(probabilities[row + label], PROBABILITY_FLOOR));
      this.entropySum += entropy;
      this.entropies?.push(entropy);
      this.confidences?.push(bestP);
      this.outcomes?.push(hit === 1);
      this.predictions?.push(best);
      // Bin b holds confidences in (b/B, (b+1)/B]; a confidence of exactly 0 cannot occur for a max.
      const bin = Math.min(this.numBins - 1, Math.max(0, Math.ceil(bestP * this.numBins) - 1));
      this.binCount[bin] += 1;
      this.binConfidence[bin] += bestP;
      this.binCorrect[bin] += hit;
      this.count++;
    }
  }

  result(): ClassificationMetrics {
    const n = this.count;
    const bins: ReliabilityBin[] = [];
    let ece = 0;
    for (let b = 0; b < this.numBins; b++) {
      const c = this.binCount[b];
      const confidence = c > 0 ? this.binConfidence[b] / c : 0;
      const accuracy = c > 0 ? this.binCorrect[b] / c : 0;
      if (n > 0) ece += (c / n) * Math.abs(accuracy - confidence);
      bins.push({ lower: b / this.numBins, upper: (b + 1) / this.numBins, confidence, accuracy, count: c });
    }
    return {
      count: n,
      accuracy: n > 0 ? this.correct / n : 0,
      nll: n > 0 ? this.nllSum / n : 0,
      ece,
      meanEntropy: n > 0 ? this.entropySum / n : 0,
      bins,
    };
  }
}

/** Row-wise softmax of `batch` rows of logits into `out` (may alias), stable against overflow. */
export function softmaxRows(
  logits: ArrayLike<number>,
  out: { [i: number]: number },
  batch: number,
  classes: number,
): void {
  for (let i = 0; i < batch; i++) {
    const row = i * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[row + c]);
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      const e = Math.exp(logits[row + c] - max);
      out[row + c] = e;
      sum += e;
    }
    for (let c = 0; c < classes; c++) out[row + c] /= sum;
  }
}

export { countCorrect } from '../nn/losses.js';
