/**
 * A training run assembled from a config: model, loss, binary-weight method, optimizer for the real-valued
 * parameters, and the one seeded generator. Shared by training, resumption and evaluation, so that all three
 * rebuild exactly the same objects in the same order.
 */
import { ConfigError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { NamedTensor } from '../io/tensor-file.js';
import { restoreOptimizerState, saveOptimizerState } from '../optim/optimizer.js';
import { restoreTensors, type Checkpoint } from './checkpoint.js';
import { createMethod } from '../methods/registry.js';
import { isWholeStepMethod, type BinaryMethod } from '../methods/method.js';
import type { Layer, Parameter } from '../nn/layer.js';
import { SoftmaxCrossEntropy } from '../nn/losses.js';
import { buildModel, isModelName, MODEL_NAMES } from '../nn/models.js';
import { adam } from '../optim/adam.js';
import { sgd } from '../optim/sgd.js';
import type { Optimizer, OptimizerState } from '../optim/optimizer.js';
import { scheduleFromConfig, type Schedule } from '../optim/schedules.js';
import { Rng } from '../tensor/rng.js';
import type { Shape } from '../tensor/shape.js';
import { type TrainConfig } from './config.js';

export interface RunShape {
  /** Per-example input shape [C, H, W]. */
  readonly inputShape: readonly [number, number, number];
  readonly classes: number;
  /** Optimisation steps per epoch. */
  readonly stepsPerEpoch: number;
  /** Training examples per epoch (after the validation split). */
  readonly trainingExamples: number;
}

export interface Run {
  readonly config: TrainConfig;
  readonly backend: Backend;
  readonly model: Layer;
  readonly loss: SoftmaxCrossEntropy;
  readonly method: BinaryMethod;
  readonly binaryParameters: readonly Parameter[];
  readonly realParameters: readonly Parameter[];
  readonly optimizer: Optimizer;
  readonly optimizerState: OptimizerState;
  readonly schedule: Schedule;
  readonly rng: Rng;
  readonly shape: RunShape;
  /** Largest batch the model is planned for. */
  readonly maxBatch: number;
}

/** Builds, plans and initialises a run. Random draws happen in a fixed order: model init, then method init. */
export function createRun(config: TrainConfig, backend: Backend, shape: RunShape, maxBatch: number): Run {
  if (!isModelName(config.model))
    throw new ConfigError('model', `one of ${MODEL_NAMES.join(', ')}`, config.model);
  const rng = new Rng(config.seed);
  const model = buildModel(config.model, {
    activations: config.activations,
    classes: shape.classes,
    inputShape: shape.inputShape,
    batchNormAffine: config.batchNormAffine,
    channelScale: config.channelScale ?? false,
  });
  const inputShape: Shape = shape.inputShape;
  const method = createMethod(config.method, config.methodOptions);
  // A whole-step method (float-free) runs its own network: the float layers are neither planned nor
  // initialised, so they hold no memory and no checkpoint tensors.
  if (!isWholeStepMethod(method)) {
    model.plan(backend, inputShape, maxBatch);
    model.initialize(rng);
  }
  const loss = new SoftmaxCrossEntropy('loss');
  loss.plan(backend, shape.classes, maxBatch);

  const parameters = model.parameters();
  const binaryParameters = parameters.filter((p) => p.kind === 'binary');
  const realParameters = parameters.filter((p) => p.kind === 'real');
  const totalSteps = config.epochs * shape.stepsPerEpoch;
  const context = {
    trainingExamples: shape.trainingExamples,
    stepsPerEpoch: shape.stepsPerEpoch,
    learningRate: config.learningRate,
    totalSteps,
  };
  if (isWholeStepMethod(method)) {
    method.attachNetwork(model, shape.inputShape, shape.classes, backend, rng, { ...context, maxBatch });
  } else {
    method.attach(binaryParameters, backend, rng, context);
  }

  const schedule = (learningRate: number): Schedule =>
    scheduleFromConfig({
      kind: config.schedule,
      lr: learningRate,
      totalSteps,
      ...(config.schedule === 'warmup-cosine'
        ? { warmupSteps: Math.round(config.warmupEpochs * shape.stepsPerEpoch) }
        : {}),
    });
  const realSchedule = schedule(config.realLearningRate);
  const optimizer: Optimizer =
    config.realOptimizer === 'sgd'
      ? sgd(backend, { learningRate: realSchedule, momentum: 0.9, weightDecay: config.realWeightDecay })
      : adam(backend, { learningRate: realSchedule, weightDecay: config.realWeightDecay });
  const optimizerState = optimizer.init(realParameters);
  return {
    config,
    backend,
    model,
    loss,
    method,
    binaryParameters,
    realParameters,
    optimizer,
    optimizerState,
    schedule: schedule(config.learningRate),
    rng,
    shape,
    maxBatch,
  };
}

/** Every tensor of the run's state, named for the checkpoint. */
export function runTensors(run: Run): NamedTensor[] {
  return [
    ...run.model.parameters().map((p) => ({ name: `model/${p.name}`, value: p.value })),
    ...run.model.stateBuffers().map((s) => ({ name: `model/${s.name}`, value: s.value })),
    ...run.method.stateTensors().map((t) => ({ name: `method/${t.name}`, value: t.value })),
    ...run.optimizerState.buffers.map((b) => ({ name: `optimizer/${b.name}`, value: b.value })),
  ];
}

/** Puts a checkpoint's state into a run built from the same config. */
export function restoreRun(run: Run, path: string, checkpoint: Checkpoint): void {
  restoreTensors(path, checkpoint.tensors, runTensors(run));
  run.rng.setState(checkpoint.meta.rng);
  run.method.loadStateScalars(checkpoint.meta.methodScalars);
  restoreOptimizerState(run.optimizerState, {
    ...saveOptimizerState(run.optimizerState),
    count: checkpoint.meta.optimizerScalars.count ?? 0,
  });
}

export function disposeRun(run: Run): void {
  run.optimizer.dispose(run.optimizerState);
  run.method.dispose();
  run.loss.dispose();
  run.model.dispose();
}
