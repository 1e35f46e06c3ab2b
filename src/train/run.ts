/**
 * A training run assembled from a config: the model spec, the learner (method and model bound together,
 * methods/learner.ts), the schedule and the one seeded generator. Shared by training, resumption, continual
 * learning and evaluation, so all of them rebuild exactly the same objects in the same order.
 */
import type { Backend } from '../backend/backend.js';
import { Normalizer } from '../data/pipeline.js';
import { ConfigError } from '../errors.js';
import type { Learner } from '../methods/learner.js';
import { createLearner, resolveMethodConfig } from '../methods/registry.js';
import { modelSpecByName } from '../nn/models.js';
import type { ModelSpec } from '../nn/spec.js';
import { scheduleFromConfig, type Schedule } from '../optim/schedules.js';
import { Rng } from '../tensor/rng.js';
import type { NamedTensor, TensorData } from '../tensor/tensor-data.js';
import {
  CHECKPOINT_VERSION,
  restoreTensors,
  type Calibration,
  type Checkpoint,
  type CheckpointMeta,
} from '../io/checkpoint.js';
import type { TrainConfig } from '../config/train-config.js';

/** Per-channel normalisation statistics, fixed at the start of a run and kept in its checkpoint. */
export interface Normalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export interface RunShape {
  /** Per-example input shape [C, H, W] of the data. */
  readonly inputShape: readonly [number, number, number];
  readonly classes: number;
  /** Optimisation steps per epoch. */
  readonly stepsPerEpoch: number;
  /** Training examples per epoch (after the validation split). */
  readonly trainingExamples: number;
  /** The data's class names, when it has them; they go into the spec. */
  readonly classNames?: readonly string[];
}

export interface Run {
  readonly config: TrainConfig;
  readonly spec: ModelSpec;
  readonly backend: Backend;
  readonly learner: Learner;
  /** The method's learning rate per 0-based step. */
  readonly schedule: Schedule;
  readonly rng: Rng;
  readonly shape: RunShape;
  readonly normalization: Normalization;
  /** Largest batch the learner is planned for. */
  readonly maxBatch: number;
}

/**
 * The spec a config trains: the one it carries (a spec file, a checkpoint), or its named model built for the
 * data's shape and classes with the config's activations, batch-norm affine and channel-scale settings.
 */
export function configSpec(
  config: TrainConfig,
  shape: Pick<RunShape, 'inputShape' | 'classes' | 'classNames'>,
): ModelSpec {
  const names =
    shape.classNames !== undefined && shape.classNames.length === shape.classes
      ? shape.classNames
      : undefined;
  if (config.spec !== undefined) {
    return config.spec.classNames === undefined && names !== undefined
      ? { ...config.spec, classNames: names }
      : config.spec;
  }
  return modelSpecByName(config.model, {
    activations: config.activations,
    classes: shape.classes,
    inputShape: shape.inputShape,
    batchNormAffine: config.batchNormAffine,
    channelScale: config.channelScale ?? false,
    ...(names !== undefined ? { classNames: names } : {}),
  });
}

/**
 * Throws ConfigError unless the spec takes the data's examples and predicts its classes; `flag` names what
 * the user chose that does not fit (the model when training, the data when evaluating a checkpoint).
 */
export function checkSpecFitsData(
  spec: ModelSpec,
  shape: Pick<RunShape, 'inputShape' | 'classes'>,
  flag = '--model',
): void {
  const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
  const sameShape =
    spec.input.length === shape.inputShape.length
      ? spec.input.every((d, i) => d === shape.inputShape[i])
      : spec.input.length === 1 && size(spec.input) === size(shape.inputShape);
  if (!sameShape) {
    throw new ConfigError(
      flag,
      `a spec whose input is the data's [${shape.inputShape.join(', ')}]`,
      `input [${spec.input.join(', ')}]`,
    );
  }
  if (spec.classes !== shape.classes) {
    throw new ConfigError(flag, `a spec with the data's ${shape.classes} classes`, `${spec.classes} classes`);
  }
}

/** Builds, plans and initialises a run. Random draws happen in a fixed order: model init, then method init. */
export function createRun(
  config: TrainConfig,
  backend: Backend,
  shape: RunShape,
  maxBatch: number,
  normalization: Normalization = {
    mean: Array<number>(shape.inputShape[0]).fill(0),
    std: Array<number>(shape.inputShape[0]).fill(1),
  },
): Run {
  const spec = configSpec(config, shape);
  checkSpecFitsData(spec, shape);
  const rng = new Rng(config.seed);
  const totalSteps = config.epochs * shape.stepsPerEpoch;
  const schedule = (learningRate: number): Schedule =>
    scheduleFromConfig({
      kind: config.schedule,
      lr: learningRate,
      totalSteps,
      ...(config.schedule === 'warmup-cosine'
        ? { warmupSteps: Math.round(config.warmupEpochs * shape.stepsPerEpoch) }
        : {}),
    });
  // Options that would do nothing under this run's settings are refused here too (the library's path).
  resolveMethodConfig(config.method, config.methodOptions, { schedule: config.schedule });
  const learner = createLearner(config.method, config.methodOptions, {
    spec,
    backend,
    rng,
    maxBatch,
    context: {
      trainingExamples: shape.trainingExamples,
      stepsPerEpoch: shape.stepsPerEpoch,
      learningRate: config.learningRate,
      totalSteps,
    },
    realOptimizer: {
      kind: config.realOptimizer,
      learningRate: schedule(config.realLearningRate),
      weightDecay: config.realWeightDecay,
    },
    normalizer: new Normalizer(shape.inputShape, normalization),
    ...(config.augment === true ? { augment: { rng, pad: 4, flip: true } } : {}),
  });
  return {
    config: { ...config, spec },
    spec,
    backend,
    learner,
    schedule: schedule(config.learningRate),
    rng,
    shape,
    normalization,
    maxBatch,
  };
}

/** What a checkpoint of the run at `epoch` and `step` stores besides its tensors. */
export function runCheckpointMeta(run: Run, epoch: number, step: number): CheckpointMeta {
  const scalars = run.learner.stateScalars();
  return {
    config: run.config,
    inference: run.learner.inference,
    epoch,
    step,
    rng: run.rng.getState(),
    methodScalars: scalars.method,
    optimizerScalars: scalars.optimizer,
    normalization: run.normalization,
  };
}

/** Every tensor of the run's state, named for the checkpoint. */
export function runTensors(run: Run): NamedTensor[] {
  return run.learner.stateTensors();
}

/** Puts a checkpoint's state into a run built from the same config. */
export function restoreRun(run: Run, path: string, checkpoint: Checkpoint): void {
  restoreTensors(path, checkpoint.tensors, runTensors(run));
  run.rng.setState(checkpoint.meta.rng);
  run.learner.loadStateScalars({
    method: checkpoint.meta.methodScalars,
    optimizer: checkpoint.meta.optimizerScalars,
  });
}

export function disposeRun(run: Run): void {
  run.learner.dispose();
}

/** Copies a live run's state into an in-memory checkpoint, its mode set as the deployed weights. */
export function runSnapshot(
  run: Run,
  counters: { epoch: number; step: number },
  calibration: Calibration | null,
): Checkpoint {
  const meta = {
    ...runCheckpointMeta(run, counters.epoch, counters.step),
    ...(calibration !== null ? { calibration } : {}),
  };
  const tensors = new Map<string, TensorData>(
    run.learner.stateTensors().map((t) => [t.name, t.value.slice() as TensorData]),
  );
  return { meta, tensors, version: CHECKPOINT_VERSION };
}
