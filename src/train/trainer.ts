/**
 * The training loop: epochs of seeded mini-batches through a learner (methods/learner.ts), validation after
 * each epoch, a checkpoint per epoch written atomically and metrics appended as JSON lines when there is an
 * output folder, callbacks per step and per epoch with early stopping and an AbortSignal.
 *
 * Reproducibility: the run's one generator drives initialisation, data order, dropout and weight sampling,
 * and its state is checkpointed with everything else, so resuming from epoch k replays epochs k+1.. exactly
 * and ends with byte-identical weights. Evaluation draws from its own stream and never touches the run's.
 * Before each checkpoint the learner is set to its mode (`predict('mode')`, which draws nothing), so the
 * checkpoint's model tensors are the deployed network (checkpoint.ts); the next step proposes afresh.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import { channelStats, subsetDataset, validationSplit } from '../data/pipeline.js';
import { ConfigError, TrainingDivergedError } from '../errors.js';
import { Rng } from '../tensor/rng.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from '../io/checkpoint.js';
import { validateConfig, type TrainConfig } from '../config/train-config.js';
import { evaluate, type Evaluation } from './evaluate.js';
import { createRun, disposeRun, restoreRun, runTensors, type Normalization, type Run } from './run.js';

export type { Normalization } from './run.js';

export const CHECKPOINT_FILE = 'checkpoint.ckpt';
export const METRICS_FILE = 'metrics.jsonl';

export interface BatchProgress {
  readonly epoch: number;
  readonly epochs: number;
  readonly batch: number;
  readonly batches: number;
  /** 1-based count of optimisation steps so far in the run. */
  readonly step: number;
  /** This batch's mean loss. */
  readonly batchLoss: number;
  /** Running means over the epoch so far. */
  readonly loss: number;
  readonly accuracy: number;
  readonly samplesPerSecond: number;
}

export interface EpochRecord {
  readonly epoch: number;
  readonly step: number;
  readonly learningRate: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly validationAccuracy: number | null;
  readonly validationNll: number | null;
  readonly seconds: number;
  readonly samplesPerSecond: number;
  /** Mean wall time of one training step (forward, backward, updates), in milliseconds. */
  readonly stepMilliseconds: number;
}

export interface TrainResult {
  readonly epochs: readonly EpochRecord[];
  readonly test: Evaluation;
  /** Training throughput over all epochs of this process (evaluation excluded). */
  readonly samplesPerSecond: number;
  /** The checkpoint written last; null without an output folder. */
  readonly checkpoint: string | null;
  /** Why training ended before its last epoch: a callback asked to stop, or the signal aborted. */
  readonly stopped: 'early-stopping' | 'aborted' | null;
}

/** What a callback can ask of the loop: `'stop'` ends training after the current step or epoch. */
export type CallbackAnswer = 'stop' | void;

export interface TrainCallbacks {
  onBatch?(progress: BatchProgress): CallbackAnswer;
  /** After each epoch's checkpoint is written; `run` gives access to the live learner. */
  onEpoch?(record: EpochRecord, run: Run): CallbackAnswer;
}

export interface TrainOptions {
  readonly config: TrainConfig;
  readonly backend: Backend;
  readonly train: Dataset;
  readonly test: Dataset;
  /** Output folder (checkpoint, metrics.jsonl); absent: nothing is written to disk. */
  readonly outDir?: string | null;
  /** Continue from the checkpoint in outDir (its config wins over `config`). */
  readonly resume?: boolean;
  readonly callbacks?: TrainCallbacks;
  /**
   * Stops training (after the current step) when aborted; the checkpoint of the last full epoch stays as it
   * was. A callback's 'stop' from onBatch does the same.
   */
  readonly signal?: AbortSignal;
  /**
   * Called with the live run (its learner set to the mode) once training ends, before it is disposed, with
   * the epochs and steps done: the fit API keeps the model.
   */
  readonly keep?: (run: Run, counters: { readonly epoch: number; readonly step: number }) => void;
}

/** Splits off the validation set and fixes the normalisation from the training part. */
export function prepareData(
  config: TrainConfig,
  full: Dataset,
): { train: Dataset; validation: Dataset | null; normalization: Normalization } {
  const split = validationSplit(full.count, { seed: config.seed, fraction: config.validationFraction });
  let trainIndices: ArrayLike<number> = split.train;
  if (config.trainLimit !== null && config.trainLimit < split.train.length) {
    trainIndices = split.train.subarray(0, config.trainLimit);
  }
  const train = subsetDataset(full, trainIndices, full.name);
  const validation =
    split.validation.length > 0 ? subsetDataset(full, split.validation, `${full.name}-validation`) : null;
  const stats = channelStats(train);
  return { train, validation, normalization: { mean: stats.mean, std: stats.std } };
}

function checkpointMeta(run: Run, epoch: number, step: number): CheckpointMeta {
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

/** Keeps the metrics lines of epochs up to `epoch` (a killed run may have written one more). */
function truncateMetrics(path: string, epoch: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => {
      const parsed: unknown = JSON.parse(line);
      const lineEpoch =
        typeof parsed === 'object' && parsed !== null ? (parsed as { epoch?: unknown }).epoch : null;
      return typeof lineEpoch === 'number' && lineEpoch <= epoch;
    });
  writeFileSync(path, kept.map((l) => `${l}\n`).join(''));
}

/** One epoch's totals. */
export interface EpochTotals {
  readonly loss: number;
  readonly accuracy: number;
  readonly seen: number;
  readonly seconds: number;
  /** The learning rate of the epoch's last step. */
  readonly learningRate: number;
  /** Steps taken (fewer than the epoch's when a callback or the signal stopped it). */
  readonly steps: number;
  readonly stopped: 'early-stopping' | 'aborted' | null;
  /** The epoch's order of the examples (recalibration reads its first ones). */
  readonly order: Uint32Array;
}

export interface EpochPlan {
  readonly epoch: number;
  readonly epochs: number;
  readonly batchSize: number;
  /** Steps taken in the run before this epoch. */
  readonly stepsBefore: number;
  /** The 0-based step at which the schedules are read, from the run step (continual learning remaps it). */
  readonly scheduleStep?: (step: number) => number;
  readonly onBatch?: (progress: BatchProgress) => CallbackAnswer;
  readonly signal?: AbortSignal;
  /** The last good checkpoint, for the divergence message. */
  readonly lastCheckpoint: string | null;
}

/**
 * One epoch of training: shuffles the order from the identity with the run's generator, then takes one
 * learner step per batch. Shared by `train` and continual learning. Throws TrainingDivergedError on a loss
 * that is not finite (nothing is updated by that step).
 */
export async function trainEpoch(run: Run, data: Dataset, plan: EpochPlan): Promise<EpochTotals> {
  const order = new Uint32Array(data.count);
  // From the identity each epoch, so an epoch's order depends only on the generator state.
  for (let i = 0; i < order.length; i++) order[i] = i;
  run.rng.shuffle(order);
  const batches = Math.ceil(data.count / plan.batchSize);
  let lossSum = 0;
  let correct = 0;
  let seen = 0;
  let learningRate = 0;
  let steps = 0;
  let stopped: EpochTotals['stopped'] = null;
  const started = performance.now();
  for (let b = 0; b < batches; b++) {
    if (plan.signal?.aborted === true) {
      stopped = 'aborted';
      break;
    }
    const first = b * plan.batchSize;
    const n = Math.min(plan.batchSize, data.count - first);
    const step = plan.stepsBefore + steps;
    const scheduleStep = plan.scheduleStep?.(step) ?? step;
    learningRate = run.schedule(scheduleStep);
    const result = run.learner.trainBatch(data, order, first, n, {
      step: step + 1,
      learningRate,
      scheduleStep,
    });
    if (!Number.isFinite(result.loss))
      throw new TrainingDivergedError(plan.epoch, step + 1, plan.lastCheckpoint);
    steps++;
    lossSum += result.loss * n;
    correct += result.correct;
    seen += n;
    const answer = plan.onBatch?.({
      epoch: plan.epoch,
      epochs: plan.epochs,
      batch: b + 1,
      batches,
      step: step + 1,
      batchLoss: result.loss,
      loss: lossSum / seen,
      accuracy: correct / seen,
      samplesPerSecond: seen / Math.max((performance.now() - started) / 1000, 1e-9),
    });
    if (answer === 'stop') {
      stopped = 'early-stopping';
      break;
    }
    // Let signals and progress rendering through now and then.
    if (b % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
  }
  return {
    loss: seen > 0 ? lossSum / seen : NaN,
    accuracy: seen > 0 ? correct / seen : NaN,
    seen,
    seconds: (performance.now() - started) / 1000,
    learningRate,
    steps,
    stopped,
    order,
  };
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { backend, callbacks } = options;
  const outDir = options.outDir ?? null;
  if (options.resume === true && outDir === null) {
    throw new ConfigError('resume', 'an output folder holding the checkpoint to resume', 'none');
  }
  if (outDir !== null) mkdirSync(outDir, { recursive: true });
  const checkpointPath = outDir === null ? null : join(outDir, CHECKPOINT_FILE);
  const metricsPath = outDir === null ? null : join(outDir, METRICS_FILE);

  const saved = options.resume === true && checkpointPath !== null ? loadCheckpoint(checkpointPath) : null;
  const config = saved?.meta.config ?? options.config;
  validateConfig(config);
  const prepared = prepareData(config, options.train);
  const { train: trainData, validation } = prepared;
  // A resumed run keeps the normalisation it started with.
  const normalization = saved?.meta.normalization ?? prepared.normalization;
  if (trainData.classes !== options.test.classes) {
    throw new ConfigError(
      '--data',
      `a test set with ${trainData.classes} classes`,
      String(options.test.classes),
    );
  }
  const stepsPerEpoch = Math.ceil(trainData.count / config.batchSize);
  const run = createRun(
    config,
    backend,
    {
      inputShape: trainData.shape,
      classes: trainData.classes,
      stepsPerEpoch,
      trainingExamples: trainData.count,
      ...(options.train.classNames !== undefined ? { classNames: options.train.classNames } : {}),
    },
    config.batchSize,
    normalization,
  );
  try {
    let startEpoch = 0;
    let step = 0;
    if (saved !== null && checkpointPath !== null && metricsPath !== null) {
      restoreRun(run, checkpointPath, saved);
      startEpoch = saved.meta.epoch;
      step = saved.meta.step;
      truncateMetrics(metricsPath, startEpoch);
    } else if (metricsPath !== null) {
      writeFileSync(metricsPath, '');
    }
    await run.learner.prepare();
    const records: EpochRecord[] = [];
    let trainedSamples = 0;
    let trainingSeconds = 0;
    let lastCheckpoint: string | null = saved !== null ? checkpointPath : null;
    let stopped: TrainResult['stopped'] = null;

    for (let epoch = startEpoch + 1; epoch <= config.epochs && stopped === null; epoch++) {
      const totals = await trainEpoch(run, trainData, {
        epoch,
        epochs: config.epochs,
        batchSize: config.batchSize,
        stepsBefore: step,
        onBatch: callbacks?.onBatch,
        signal: options.signal,
        lastCheckpoint,
      });
      step += totals.steps;
      trainedSamples += totals.seen;
      trainingSeconds += totals.seconds;
      stopped = totals.stopped;
      // An epoch stopped part-way is not an epoch: no record, no checkpoint (the last full epoch's stays).
      if (totals.seen < trainData.count) break;
      // The deployed network: the mode (draws nothing, so the run's stream stays as is).
      run.learner.predict('mode', new Rng(config.seed));
      if (config.recalibrateBatchNorm === true) {
        // Before validation and the checkpoint, so both see the statistics of the deployed network.
        run.learner.recalibrate(trainData, totals.order, config.seed + epoch);
      }
      const valEval =
        validation === null ? null : evaluate(run, validation, { kind: 'mode', seed: config.seed + epoch });
      const record: EpochRecord = {
        epoch,
        step,
        learningRate: totals.learningRate,
        trainLoss: totals.loss,
        trainAccuracy: totals.accuracy,
        validationAccuracy: valEval?.accuracy ?? null,
        validationNll: valEval?.nll ?? null,
        seconds: totals.seconds,
        samplesPerSecond: totals.seen / totals.seconds,
        stepMilliseconds: (totals.seconds * 1000) / totals.steps,
      };
      if (checkpointPath !== null && metricsPath !== null) {
        saveCheckpoint(checkpointPath, checkpointMeta(run, epoch, step), runTensors(run));
        lastCheckpoint = checkpointPath;
        appendFileSync(metricsPath, `${JSON.stringify(record)}\n`);
      }
      records.push(record);
      if (callbacks?.onEpoch?.(record, run) === 'stop') stopped ??= 'early-stopping';
    }
    const test = evaluate(run, options.test, { kind: 'mode', seed: config.seed, limit: config.testLimit });
    options.keep?.(run, { epoch: records.at(-1)?.epoch ?? startEpoch, step });
    return {
      epochs: records,
      test,
      samplesPerSecond: trainingSeconds > 0 ? trainedSamples / trainingSeconds : 0,
      checkpoint: lastCheckpoint,
      stopped,
    };
  } finally {
    disposeRun(run);
  }
}
