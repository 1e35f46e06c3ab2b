/**
 * Evaluation of a run's learner on a data set: the deterministic network (the method's mode), or an ensemble
 * of sampled networks whose logits (or probabilities) are averaged, as BayesBiNN's and VISPA's official
 * evaluation code do.
 */
import type { Dataset } from '../data/dataset.js';
import { shuffledIndices } from '../data/pipeline.js';
import { Rng } from '../tensor/rng.js';
import { MetricsAccumulator, PROBABILITY_FLOOR, softmaxRows, type ClassificationMetrics } from './metrics.js';
import type { Run } from './run.js';

export interface EvaluationOptions {
  /**
   * 'mode': one pass with the deterministic weights; 'ensemble': average over `samples` draws; 'mean': one
   * pass with the posterior mean weights (methods whose learner `hasMean`).
   */
  readonly kind: 'mode' | 'ensemble' | 'mean';
  /** Number of sampled networks for 'ensemble'. */
  readonly samples?: number;
  /**
   * How an ensemble combines its networks: 'logits' (default; the official BayesBiNN and VISPA evaluation,
   * softmax of the mean logits) or 'probabilities' (mean of the softmax outputs, the usual Bayesian model
   * average, as BayesBiNN's two-moons notebook does).
   */
  readonly average?: 'logits' | 'probabilities';
  /** Seed of the sampling stream (kept apart from the training stream, so evaluation never changes training). */
  readonly seed: number;
  /** Keep per-example predictive entropies in the result. */
  readonly keepEntropies?: boolean;
  /** Limit on the number of examples (the first ones). */
  readonly limit?: number | null;
  /**
   * Called after each sampled network of an 'ensemble' (or the mean network) is set, before it is evaluated:
   * where a run whose batch-norm statistics were recalibrated for its deterministic network recalibrates them
   * for that network.
   */
  readonly prepareSample?: () => void;
  /**
   * Temperature of the predicted probabilities, softmax(s / T) of the scores s (calibration.ts); default 1.
   * Accuracy does not depend on it.
   */
  readonly temperature?: number;
  /** Keep the per-example scores (what a temperature is fitted on) in the result. */
  readonly keepScores?: boolean;
}

export interface Evaluation extends ClassificationMetrics {
  /** With keepEntropies: per example, the predictive entropy, the top probability and whether it was right. */
  readonly entropies: readonly number[] | null;
  readonly confidences: readonly number[] | null;
  readonly outcomes: readonly boolean[] | null;
  readonly predictions: readonly number[] | null;
  /** The temperature the metrics above were computed at. */
  readonly temperature: number;
  /** The same predictions at temperature 1, when the temperature is another. */
  readonly uncalibrated: ClassificationMetrics | null;
  /**
   * With keepScores: count x classes scores whose softmax is the prediction at temperature 1 (the mean
   * logits, or the log of the mean probabilities), and the labels they belong to.
   */
  readonly scores: { readonly values: Float64Array; readonly labels: Uint8Array } | null;
}

/**
 * The `prepareSample` of an ensemble over a run that recalibrates its batch-norm statistics for its
 * deterministic network (`recalibrateBatchNorm`): each sampled network gets statistics of its own, from the
 * training set in a seeded order, as it would be deployed. Undefined for other runs.
 */
export function sampleRecalibration(run: Run, train: Dataset, seed: number): (() => void) | undefined {
  if (run.config.recalibrateBatchNorm !== true) return undefined;
  const order = shuffledIndices(train.count, new Rng(seed));
  return () => run.learner.recalibrate(train, order, seed);
}

export function evaluate(run: Run, data: Dataset, options: EvaluationOptions): Evaluation {
  const { learner, maxBatch } = run;
  const classes = run.spec.classes;
  const count = Math.min(data.count, options.limit ?? data.count);
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const samples = options.kind === 'ensemble' ? Math.max(1, options.samples ?? 1) : 1;
  const rng = new Rng(options.seed);
  const sums = new Float64Array(count * classes);
  const averageProbabilities = options.average === 'probabilities';
  const probabilities = averageProbabilities ? new Float64Array(maxBatch * classes) : null;
  // A recalibration for a sampled (or the mean) network rewrites the batch-norm statistics: keep the run's
  // own (its mode's) and put them back afterwards, so what is evaluated next sees the run as it was.
  const recalibrates = options.kind !== 'mode' && options.prepareSample !== undefined;
  const saved = recalibrates
    ? learner
        .stateTensors()
        .filter((t) => t.name.startsWith('model/'))
        .map((t) => ({ target: t.value, copy: t.value.slice() }))
    : [];
  for (let s = 0; s < samples; s++) {
    if (options.kind === 'mean') learner.predictMean();
    else learner.predict(options.kind === 'ensemble' ? 'sample' : 'mode', rng);
    if (options.kind !== 'mode') options.prepareSample?.();
    for (let start = 0; start < count; start += maxBatch) {
      const n = Math.min(maxBatch, count - start);
      const logits = learner.logits(data, order, start, n);
      const base = start * classes;
      if (probabilities !== null) {
        softmaxRows(logits, probabilities, n, classes);
        for (let i = 0; i < n * classes; i++) sums[base + i] += probabilities[i];
      } else {
        for (let i = 0; i < n * classes; i++) sums[base + i] += logits[i];
      }
    }
  }
  for (const { target, copy } of saved) target.set(copy);
  if (samples > 1) for (let i = 0; i < sums.length; i++) sums[i] /= samples;
  const labels = data.labels.subarray(0, count);
  const temperature = options.temperature ?? 1;
  // The scores: mean logits, or the log of the mean probabilities (what a temperature divides).
  const scores = averageProbabilities ? sums.map((p) => Math.log(Math.max(p, PROBABILITY_FLOOR))) : sums;
  const metricsAt = (t: number, keepEntropies: boolean) => {
    const probabilities = new Float64Array(count * classes);
    // At T = 1, averaged probabilities are the prediction as they are; anything else goes through softmax.
    if (t === 1 && averageProbabilities) probabilities.set(sums);
    else if (t === 1) softmaxRows(scores, probabilities, count, classes);
    else
      softmaxRows(
        scores.map((s) => s / t),
        probabilities,
        count,
        classes,
      );
    const metrics = new MetricsAccumulator(classes, 15, keepEntropies);
    metrics.add(probabilities, labels, count);
    return {
      ...metrics.result(),
      entropies: metrics.entropies,
      confidences: metrics.confidences,
      outcomes: metrics.outcomes,
      predictions: metrics.predictions,
    };
  };
  const calibrated = metricsAt(temperature, options.keepEntropies ?? false);
  return {
    ...calibrated,
    temperature,
    uncalibrated: temperature === 1 ? null : metricsAt(1, false),
    scores:
      options.keepScores === true ? { values: Float64Array.from(scores), labels: labels.slice() } : null,
  };
}
