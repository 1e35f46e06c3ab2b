/**
 * What a run records beside its epochs for `onebit report` (metrics.jsonl and test.json in its folder):
 *
 * - `step` lines: mean loss and accuracy over about 50 intervals per epoch, with the learning rate, so the
 *   learning curve has its shape within epochs, not only its end points;
 * - `flips` lines: per binary layer, the fraction of weights whose sign changed over the epoch (BNN
 *   training settles as this falls; Bop's threshold and BayesBiNN's lambda govern it directly);
 * - test.json: the final test evaluation's confusion matrix, per-class accuracy and reliability diagrams,
 *   at the calibrated temperature and at temperature 1.
 */
import type { BinarySigns } from '../methods/learner.js';
import type { Evaluation } from './evaluate.js';
import type { ReliabilityBin } from './metrics.js';

/** Step lines per epoch (fewer when an epoch has fewer steps). */
export const STEP_RECORDS_PER_EPOCH = 50;

export interface StepRecord {
  readonly type: 'step';
  readonly epoch: number;
  readonly step: number;
  /** Means over the steps since the previous record. */
  readonly loss: number;
  readonly accuracy: number;
  readonly learningRate: number;
}

/** The progress the recorder reads from each training step. */
export interface StepProgress {
  readonly epoch: number;
  readonly step: number;
  readonly batch: number;
  readonly batches: number;
  readonly batchLoss: number;
  /** Examples in this batch, and those of them classified right. */
  readonly examples: number;
  readonly correct: number;
  readonly learningRate: number;
}

/**
 * Returns a function to call after every step; it calls `write` with a StepRecord every
 * ceil(batches / STEP_RECORDS_PER_EPOCH) steps and at the end of each epoch.
 */
export function stepRecorder(write: (record: StepRecord) => void): (progress: StepProgress) => void {
  let lossSum = 0;
  let correct = 0;
  let examples = 0;
  let steps = 0;
  return (p) => {
    lossSum += p.batchLoss;
    correct += p.correct;
    examples += p.examples;
    steps++;
    const every = Math.max(1, Math.ceil(p.batches / STEP_RECORDS_PER_EPOCH));
    if (p.batch % every !== 0 && p.batch !== p.batches) return;
    write({
      type: 'step',
      epoch: p.epoch,
      step: p.step,
      loss: lossSum / steps,
      accuracy: examples > 0 ? correct / examples : 0,
      learningRate: p.learningRate,
    });
    lossSum = 0;
    correct = 0;
    examples = 0;
    steps = 0;
  };
}

/** Per layer, the fraction of weights whose sign differs between two snapshots of the same network. */
export function flipRatios(
  before: readonly BinarySigns[],
  after: readonly BinarySigns[],
): Record<string, number> {
  const ratios: Record<string, number> = {};
  for (const layer of after) {
    const earlier = before.find((b) => b.name === layer.name);
    if (earlier === undefined || earlier.negative.length !== layer.negative.length) {
      throw new Error(`flipRatios: layer ${layer.name} has no earlier snapshot of its size`);
    }
    let flipped = 0;
    for (let i = 0; i < layer.negative.length; i++) flipped += earlier.negative[i] ^ layer.negative[i];
    ratios[layer.name] = layer.negative.length === 0 ? 0 : flipped / layer.negative.length;
  }
  return ratios;
}

export interface ClassResult {
  readonly class: number;
  readonly name: string;
  /** Test examples of the class, and the fraction of them predicted right. */
  readonly count: number;
  readonly accuracy: number;
}

/** test.json. */
export interface TestReport {
  readonly count: number;
  readonly accuracy: number;
  readonly nll: number;
  readonly ece: number;
  readonly temperature: number;
  /** confusion[t][p]: test examples of class t predicted as p. */
  readonly confusion: number[][];
  readonly classes: ClassResult[];
  /** Reliability diagrams at the run's temperature, and at temperature 1 when that is another. */
  readonly reliability: {
    readonly calibrated: readonly ReliabilityBin[];
    readonly uncalibrated: readonly ReliabilityBin[] | null;
  };
}

/** The test report of an evaluation made with keepScores (the class of a row is its largest score). */
export function testReport(evaluation: Evaluation, classNames: readonly string[] | null): TestReport {
  const scores = evaluation.scores;
  if (scores === null) throw new Error('testReport: the evaluation kept no scores');
  const classes = scores.values.length / Math.max(1, scores.labels.length);
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let r = 0; r < scores.labels.length; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++)
      if (scores.values[r * classes + c] > scores.values[r * classes + best]) best = c;
    confusion[scores.labels[r]][best]++;
  }
  return {
    count: evaluation.count,
    accuracy: evaluation.accuracy,
    nll: evaluation.nll,
    ece: evaluation.ece,
    temperature: evaluation.temperature,
    confusion,
    classes: confusion.map((row, c) => {
      const count = row.reduce((s, v) => s + v, 0);
      return {
        class: c,
        name: classNames?.[c] ?? String(c),
        count,
        accuracy: count === 0 ? 0 : row[c] / count,
      };
    }),
    reliability: { calibrated: evaluation.bins, uncalibrated: evaluation.uncalibrated?.bins ?? null },
  };
}
