/**
 * The one step interface every training method is run through (docs/architecture.md, "Learners").
 *
 * A learner is a model and a method bound together: it trains on a batch, produces test-time logits, and
 * lists its state. The float-model learner (float-model.ts: a method over the binary weights of a model built
 * from its spec, plus an optimizer over the real-valued parameters) and float-free training (an integer
 * network end to end) are two implementations; the training loop, evaluation, continual learning and
 * checkpoints see only this interface.
 */
import type { Backend } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import type { Augmentation, Normalizer } from '../data/pipeline.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import type { ModelSpec } from '../nn/spec.js';
import type { Schedule } from '../optim/schedules.js';
import type { Rng } from '../tensor/rng.js';
import type { MethodContext, PredictionKind, WeightUncertainty } from './method.js';

/** The counters and rates of one training step. */
export interface LearnerStep {
  /** 1-based count of updates so far, including this one. */
  readonly step: number;
  /** The method's learning rate for this step (from the run's schedule). */
  readonly learningRate: number;
  /** 0-based step at which the real-valued optimizer evaluates its schedule. */
  readonly scheduleStep: number;
}

export interface StepResult {
  /** Mean loss over the batch; when it is not finite, nothing was updated. */
  readonly loss: number;
  /** Examples of the batch whose largest logit is at the label. */
  readonly correct: number;
}

/** The optimizer of the real-valued parameters (batch-norm affine, scales, real layers). */
export interface RealOptimizerSettings {
  readonly kind: 'adam' | 'sgd';
  readonly learningRate: Schedule;
  readonly weightDecay: number;
}

/** One binary layer's weight signs: `negative[i]` is 1 where weight i is -1. */
export interface BinarySigns {
  /** The weight's parameter name (as in checkpoints, without the `model/` prefix), e.g. "fc1.weight". */
  readonly name: string;
  readonly negative: Uint8Array;
}

/** Everything a learner is built from. */
export interface LearnerSetup {
  readonly spec: ModelSpec;
  readonly backend: Backend;
  /** The run's one generator: initialisation, dropout and sampling draw from it, in a fixed order. */
  readonly rng: Rng;
  /** Largest batch `trainBatch` and `logits` will be asked for. */
  readonly maxBatch: number;
  readonly context: MethodContext;
  readonly realOptimizer: RealOptimizerSettings;
  /** The input normalisation fixed at the start of the run (float models read normalised inputs). */
  readonly normalizer: Normalizer;
  /** Random crop and flip of each training image (absent: none); its generator is the run's. */
  readonly augment?: Augmentation;
}

/** What a checkpoint keeps of a learner besides its tensors. */
export interface LearnerScalars {
  readonly method: Record<string, number>;
  readonly optimizer: Record<string, number>;
}

/**
 * How a checkpoint's tensors hold the test-time network: 'float-model' (the `model/` tensors are the mode
 * weights and batch-norm statistics of the spec's layers) or 'float-free' (the integer network's `method/`
 * counters and running means).
 */
export type InferenceLayout = 'float-model' | 'float-free';

export interface Learner {
  readonly method: string;
  readonly spec: ModelSpec;
  /**
   * Whether the method has a distribution over networks that `predict('sample')` draws from (so ensembles
   * mean something). The distribution may be close to a point mass (BayesBiNN with a large |lambda|), where
   * samples rarely differ from the mode; a method without one gives its mode and draws nothing.
   */
  readonly stochastic: boolean;
  readonly inference: InferenceLayout;
  /** Resolves when worker threads (if any) are running. */
  prepare(): Promise<void>;
  /** One training step on the items order[start .. start+n) of `data` (n <= maxBatch). */
  trainBatch(
    data: Dataset,
    order: ArrayLike<number>,
    start: number,
    n: number,
    step: LearnerStep,
  ): StepResult;
  /** Sets the test-time weights: the mode, or one network drawn with `rng`. */
  predict(kind: PredictionKind, rng: Rng): void;
  /** Whether the method has a posterior mean predictor (`predictMean`). */
  readonly hasMean: boolean;
  /** Sets the test-time weights to the posterior mean E[w] (real-valued); throws where `hasMean` is false. */
  predictMean(): void;
  /** How uncertain the method's distribution is about its weights' signs; null for a method without one. */
  weightUncertainty(): WeightUncertainty | null;
  /**
   * Re-estimates the batch-norm statistics for the current test-time weights from the items `order` of
   * `data` (recalibration; a learner without batch-norm statistics to fix does nothing).
   */
  recalibrate(data: Dataset, order: ArrayLike<number>, seed: number): void;
  /** Test-time logits of the items order[start .. start+n): a view of n * classes values, valid until the next call. */
  logits(data: Dataset, order: ArrayLike<number>, start: number, n: number): ArrayLike<number>;
  /** Continual learning: called before task `task` (0-based) with that task's facts. */
  beginTask(task: number, context: MethodContext): void;
  /** Every state array, named for the checkpoint; restoring writes into these same arrays. */
  stateTensors(): NamedTensor[];
  stateScalars(): LearnerScalars;
  loadStateScalars(scalars: LearnerScalars): void;
  /** Binary weights the method trains. */
  readonly binaryWeights: number;
  /**
   * The signs of the test-time binary weights, per binary layer (call after `predict`): 1 where the weight
   * is -1. A fresh copy; the run compares successive epochs' to report how many weights flipped.
   */
  binarySigns(): BinarySigns[];
  /** Bytes of the method's training state per binary weight, measured from its state tensors. */
  stateBytesPerWeight(): number;
  /**
   * Bytes the training step keeps for backward per example, where the learner keeps less than the float
   * layers do (float-free's packed bits); absent: what the spec's float layers keep (train/summary.ts).
   */
  activationBytesPerExample?(): number;
  dispose(): void;
}

/** Bytes of the `method/` tensors per binary weight. */
export function measuredStateBytes(tensors: readonly NamedTensor[], binaryWeights: number): number {
  if (binaryWeights === 0) return 0;
  let bytes = 0;
  for (const t of tensors) if (t.name.startsWith('method/')) bytes += t.value.byteLength;
  return bytes / binaryWeights;
}
