/**
 * The one idea that holds onebit together: a training method is a distribution over binary weights.
 *
 * Every method fits the same contract over a model's binary parameters (docs/architecture.md):
 *  1. `propose(rng)`   writes the weights for this forward pass into each binary parameter's `value`;
 *  2. the model runs forward and backward with them and leaves dL/dw in each parameter's `grad`;
 *  3. `update(step)`   turns those gradients into the method's new state;
 *  4. `predict(kind)`  writes the test-time weights: the mode, or one sample of an ensemble.
 * A method's state is plain data (typed arrays and numbers), listed by `stateTensors` and `stateScalars`, so
 * checkpoints and resumption need nothing method-specific.
 */
import type { Backend } from '../backend/backend.js';
import type { Parameter } from '../nn/layer.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import type { Rng } from '../tensor/rng.js';

export interface MethodStep {
  /** 1-based count of updates so far, including this one. */
  readonly step: number;
  /** Learning rate from the schedule for this step. */
  readonly learningRate: number;
}

/** Facts about the run a method may need (BayesBiNN scales its gradient by the training-set size). */
export interface MethodContext {
  /** Number of training examples per epoch (after the validation split). */
  readonly trainingExamples: number;
  /** Optimisation steps per epoch. */
  readonly stepsPerEpoch: number;
  /**
   * Peak learning rate of the run's schedule (the --lr flag), so a method can follow the schedule's shape
   * (`MethodStep.learningRate / learningRate`) for its own hyperparameters (Bop's gamma). Absent: 1 is assumed.
   */
  readonly learningRate?: number;
  /** Optimisation steps of the whole run (epochs * stepsPerEpoch), for a method's own schedule. Absent: unknown. */
  readonly totalSteps?: number;
}

/** Which weights `predict` writes: the single deterministic network, or one draw from the distribution. */
export type PredictionKind = 'mode' | 'sample';

export interface BinaryMethod {
  readonly name: string;
  /**
   * Binds the method to the binary parameters and initialises its state from their current values
   * (the layers' initialisation). Called once, before the first step.
   */
  attach(params: readonly Parameter[], backend: Backend, rng: Rng, context: MethodContext): void;
  /** Writes this step's forward weights into every bound parameter's value. */
  propose(rng: Rng): void;
  /** Reads every bound parameter's grad and updates the state. */
  update(step: MethodStep): void;
  /** Writes test-time weights; 'sample' draws one network with `rng` (methods without a distribution give the mode). */
  predict(kind: PredictionKind, rng: Rng): void;
  /** Whether 'sample' differs from 'mode' (so ensembles are meaningful). */
  readonly stochastic: boolean;
  /** Every state array, for checkpoints; restoring writes into these same arrays. */
  stateTensors(): NamedTensor[];
  stateScalars(): Record<string, number>;
  loadStateScalars(scalars: Record<string, number>): void;
  /**
   * Optional, for continual learning: called before training on task `task` (0-based) of a stream, with the
   * facts of that task. BayesBiNN makes its current posterior the prior of what follows (lambda0 <- lambda
   * for task > 0) and takes the task's training-set size as its N. Methods without a prior omit it; their
   * state simply carries over from task to task.
   */
  beginTask?(task: number, context: MethodContext): void;
  /**
   * Optional: writes the posterior mean E[w] of every weight, real-valued in [-1, 1] (BayesBiNN's
   * tanh(lambda)), the third predictor beside the mode and samples. Methods without one omit it.
   */
  predictMean?(): void;
  /** Optional: how uncertain the distribution is about each weight's sign (weight-uncertainty.ts). */
  weightUncertainty?(): WeightUncertainty;
  dispose(): void;
}

/**
 * How uncertain a weight distribution is about the signs of its weights, from each weight's probability
 * q = P(a sample's sign differs from the mode's).
 */
export interface WeightUncertainty {
  readonly weights: number;
  /** Mean of q over the weights: the expected share of signs a sampled network flips. */
  readonly meanFlipProbability: number;
  /** Share of weights with q >= 1% (BayesBiNN: |lambda| <= atanh(0.98) = 2.30). */
  readonly shareFlipAtLeast1Percent: number;
  /** Share of weights with q >= 10% (BayesBiNN: |lambda| <= atanh(0.8) = 1.10). */
  readonly shareFlipAtLeast10Percent: number;
}

/** Labelled 8-bit images, item-major (a Dataset satisfies it). */
export interface ByteImageSource {
  /** `count * C * H * W` pixel bytes, each item in CHW order. */
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly shape: readonly [number, number, number];
}
