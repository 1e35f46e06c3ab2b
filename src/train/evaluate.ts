/**
 * Evaluation of a run on a data set: the deterministic network (the method's mode), or an ensemble of
 * sampled networks whose logits are averaged (as BayesBiNN's and VISPA's official evaluation code do).
 */
import type { FloatArray } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import { fillBatch, type BatchBuffers, type Normalizer } from '../data/pipeline.js';
import { Rng } from '../tensor/rng.js';
import { MetricsAccumulator, softmaxRows, type ClassificationMetrics } from './metrics.js';
import type { Run } from './run.js';
import { isWholeStepMethod } from '../methods/method.js';

export interface EvaluationOptions {
  /** 'mode': one pass with the deterministic weights; 'ensemble': average logits over `samples` draws. */
  readonly kind: 'mode' | 'ensemble';
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
   * Called after each sampled network of an 'ensemble' is drawn, before it is evaluated: where a run whose
   * batch-norm statistics were recalibrated for its deterministic network recalibrates them for the sample.
   */
  readonly prepareSample?: () => void;
}

export interface Evaluation extends ClassificationMetrics {
  readonly entropies: readonly number[] | null;
}

/** Batch buffers whose images live in the backend's memory, so the model reads them without a copy. */
export function createBackendBatch(run: Run, capacity: number): BatchBuffers & { images: FloatArray } {
  const [c, h, w] = run.shape.inputShape;
  return { images: run.backend.alloc(capacity * c * h * w), labels: new Int32Array(capacity), capacity };
}

export function evaluate(
  run: Run,
  data: Dataset,
  normalizer: Normalizer,
  batch: BatchBuffers,
  options: EvaluationOptions,
): Evaluation {
  const classes = run.shape.classes;
  const count = Math.min(data.count, options.limit ?? data.count);
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const samples = options.kind === 'ensemble' ? Math.max(1, options.samples ?? 1) : 1;
  const rng = new Rng(options.seed);
  const logitSums = new Float64Array(count * classes);
  const ctx = { training: false, rng };
  const averageProbabilities = options.average === 'probabilities';
  const probabilities = averageProbabilities ? new Float64Array(batch.capacity * classes) : null;
  // A whole-step method (float-free) computes its logits itself from the raw bytes; it is deterministic.
  const whole = isWholeStepMethod(run.method) ? run.method : null;
  const wholeLogits = whole !== null ? new Float64Array(batch.capacity * classes) : null;
  for (let s = 0; s < samples; s++) {
    if (whole === null) {
      run.method.predict(options.kind === 'ensemble' ? 'sample' : 'mode', rng);
      if (options.kind === 'ensemble') options.prepareSample?.();
    }
    for (let start = 0; start < count; start += batch.capacity) {
      let n: number;
      let logits: ArrayLike<number>;
      if (whole !== null && wholeLogits !== null) {
        n = Math.min(batch.capacity, count - start);
        whole.logits(data, order, start, n, wholeLogits);
        logits = wholeLogits;
      } else {
        n = fillBatch(data, order, start, batch, { normalizer });
        logits = run.model.forward(batch.images, n, ctx);
      }
      const base = start * classes;
      if (probabilities !== null) {
        softmaxRows(logits, probabilities, n, classes);
        for (let i = 0; i < n * classes; i++) logitSums[base + i] += probabilities[i];
      } else {
        for (let i = 0; i < n * classes; i++) logitSums[base + i] += logits[i];
      }
    }
  }
  if (samples > 1) for (let i = 0; i < logitSums.length; i++) logitSums[i] /= samples;
  // Averaged probabilities are already a distribution; averaged logits go through the softmax.
  if (!averageProbabilities) softmaxRows(logitSums, logitSums, count, classes);
  const metrics = new MetricsAccumulator(classes, 15, options.keepEntropies ?? false);
  const labels = data.labels.subarray(0, count);
  metrics.add(logitSums, labels, count);
  return { ...metrics.result(), entropies: metrics.entropies };
}
