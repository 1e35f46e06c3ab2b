/**
 * The one typed configuration of a training run. The CLI builds it from flags; the library reads nothing
 * else (no environment, no globals). It is stored in every checkpoint so that `--resume` and `eval` rebuild
 * exactly the same model and method.
 */
import { ConfigError } from '../errors.js';
import type { ModelSpec } from '../nn/spec.js';
import type { ScheduleKind } from '../optim/schedules.js';

export type ActivationPrecision = 'real' | 'binary';
export type BackendKind = 'wasm' | 'native' | 'reference';

export interface TrainConfig {
  /** Data set name (fashion-mnist, mnist, cifar10, cifar100, synthetic-mnist, synthetic-cifar). */
  readonly data: string;
  readonly dataDir: string | null;
  /** The model: a named model, or the path of the spec file it came from (a label once `spec` is set). */
  readonly model: string;
  /**
   * The network as data (nn/spec.ts). Absent in a config made from a model name before the data is known;
   * a run fills it in (the named model for the data's shape and classes) and checkpoints always store it.
   */
  readonly spec?: ModelSpec;
  readonly activations: ActivationPrecision;
  readonly method: string;
  /** Method hyperparameters by flag name (e.g. { surrogate: 'identity' } or { temperature: 1e-10 }). */
  readonly methodOptions: Readonly<Record<string, number | string | boolean>>;
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly schedule: ScheduleKind;
  readonly warmupEpochs: number;
  /** Learning rate of the optimizer for real-valued parameters (batch-norm affine, PReLU, scales). */
  readonly realLearningRate: number;
  /** Optimizer for real-valued parameters: Adam, or SGD with momentum 0.9 (VISPA's recipe). */
  readonly realOptimizer: 'adam' | 'sgd';
  /** Weight decay of the real-valued optimizer (decoupled for Adam, L2 for SGD); only on decay=true params. */
  readonly realWeightDecay: number;
  readonly seed: number;
  /** Fraction of the training set held out for validation (0 disables). */
  readonly validationFraction: number;
  /** Limit on training examples (after the validation split), for quick runs and tests; null = all. */
  readonly trainLimit: number | null;
  /** Limit on test examples; null = all. */
  readonly testLimit: number | null;
  readonly batchNormAffine: boolean;
  /**
   * A learnable per-output-channel scale after every binary layer (VISPA's `Alpha`, init U(0, 1)), trained
   * by the real-valued optimizer. Optional so that configs stored before it existed still load; absent =
   * false.
   */
  readonly channelScale?: boolean;
  /**
   * After each epoch, re-estimate the batch-norm running statistics for the method's deterministic network
   * (methods/recalibrate.ts). Optional so that configs stored before it existed still load; absent = false.
   */
  readonly recalibrateBatchNorm?: boolean;
  /**
   * Random crop (4 pixels of zero padding) and horizontal flip of each training image, drawn from the run's
   * generator (data/pipeline.ts). Optional so that configs stored before it existed still load; absent = false.
   */
  readonly augment?: boolean;
  /**
   * Fit the deployed network's temperature on the validation split when training ends (train/calibration.ts).
   * Optional so that configs stored before it existed still load; absent = true.
   */
  readonly calibrate?: boolean;
  /**
   * Train (and test) on these classes of the data set only, relabelled 0..k-1 in this order (the others are
   * held out, for out-of-distribution evaluation). Absent: every class.
   */
  readonly classes?: readonly number[];
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, 'data' | 'model' | 'method'> = {
  dataDir: null,
  activations: 'real',
  methodOptions: {},
  epochs: 5,
  batchSize: 100,
  learningRate: 1e-3,
  schedule: 'cosine',
  warmupEpochs: 0,
  realLearningRate: 1e-3,
  realOptimizer: 'adam',
  realWeightDecay: 0,
  seed: 1,
  validationFraction: 0.1,
  trainLimit: null,
  testLimit: null,
  batchNormAffine: false,
};

function positiveInteger(field: string, value: number): void {
  if (!Number.isInteger(value) || value <= 0)
    throw new ConfigError(field, 'a positive integer', String(value));
}

function positiveNumber(field: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(field, 'a positive number', String(value));
}

/** Checks ranges that would otherwise fail deep inside a run. */
export function validateConfig(config: TrainConfig): void {
  positiveInteger('--epochs', config.epochs);
  positiveInteger('--batch-size', config.batchSize);
  positiveNumber('--lr', config.learningRate);
  positiveNumber('--real-lr', config.realLearningRate);
  if (!Number.isInteger(config.seed)) throw new ConfigError('--seed', 'an integer', String(config.seed));
  if (!(config.validationFraction >= 0 && config.validationFraction < 1)) {
    throw new ConfigError('--validation', 'a fraction in [0, 1)', String(config.validationFraction));
  }
  if (!(config.warmupEpochs >= 0 && config.warmupEpochs <= config.epochs)) {
    throw new ConfigError(
      '--warmup-epochs',
      `a number in [0, epochs=${config.epochs}]`,
      String(config.warmupEpochs),
    );
  }
  // A spec sets each layer's binarizer itself (float-free checks it); --activations shapes named models only.
  if (config.method === 'float-free' && config.spec === undefined && config.activations !== 'binary') {
    throw new ConfigError(
      '--activations',
      'binary for --method float-free (its integer step keeps 1-bit activations; add --activations binary)',
      config.activations,
    );
  }
  if (config.augment === true && config.method === 'float-free') {
    throw new ConfigError(
      '--augment',
      'a method that trains on normalised images (float-free reads the raw pixels; augmentation is not built into its integer step)',
      '--method float-free',
    );
  }
  if (config.classes !== undefined) {
    const seen = new Set<number>();
    for (const c of config.classes) {
      if (!Number.isInteger(c) || c < 0 || seen.has(c))
        throw new ConfigError('--classes', 'distinct class indices >= 0', JSON.stringify(config.classes));
      seen.add(c);
    }
    if (seen.size < 2)
      throw new ConfigError('--classes', 'at least two classes', JSON.stringify(config.classes));
  }
  if (config.trainLimit !== null) positiveInteger('--train-limit', config.trainLimit);
  if (config.testLimit !== null) positiveInteger('--test-limit', config.testLimit);
}
