/**
 * The training loop: epochs of seeded mini-batches, one method step and one optimizer step per batch,
 * validation after each epoch, a checkpoint per epoch written atomically, metrics appended as JSON lines.
 *
 * Reproducibility: the run's one generator drives initialisation, data order, dropout and weight sampling,
 * and its state is checkpointed with everything else, so resuming from epoch k replays epochs k+1.. exactly
 * and ends with byte-identical weights. Evaluation draws from its own stream and never touches the run's.
 */
import { ConfigError, TrainingDivergedError } from '../errors.js';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import { channelStats, fillBatch, Normalizer, subsetDataset, validationSplit } from '../data/pipeline.js';
import { validateConfig, type TrainConfig } from './config.js';
import { loadCheckpoint, saveCheckpoint, type CheckpointMeta } from './checkpoint.js';
import { createBackendBatch, evaluate, type Evaluation } from './evaluate.js';
import { createRun, disposeRun, restoreRun, runTensors, type Run } from './run.js';
import { Rng } from '../tensor/rng.js';
import { recalibrateBatchNorm, RECALIBRATION_EXAMPLES } from './recalibrate.js';
import { trainStep } from './step.js';
import { isWholeStepMethod } from '../methods/method.js';

export const CHECKPOINT_FILE = 'checkpoint.ckpt';
export const METRICS_FILE = 'metrics.jsonl';

/** Per-channel normalisation statistics, fixed at the start of a run and kept in its checkpoint. */
export interface Normalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export interface BatchProgress {
  readonly epoch: number;
  readonly epochs: number;
  readonly batch: number;
  readonly batches: number;
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
  readonly checkpoint: string;
}

export interface TrainCallbacks {
  onBatch?(progress: BatchProgress): void;
  /** After each epoch's checkpoint is written; `run` gives access to the live model and method state. */
  onEpoch?(record: EpochRecord, run: Run): void;
}

export interface TrainOptions {
  readonly config: TrainConfig;
  readonly backend: Backend;
  readonly train: Dataset;
  readonly test: Dataset;
  /** Output folder: checkpoint, metrics.jsonl. */
  readonly outDir: string;
  /** Continue from the checkpoint in outDir (its config wins over `config`). */
  readonly resume: boolean;
  readonly callbacks?: TrainCallbacks;
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

function checkpointMeta(run: Run, epoch: number, step: number, normalization: Normalization): CheckpointMeta {
  return {
    config: run.config,
    epoch,
    step,
    rng: run.rng.getState(),
    methodScalars: run.method.stateScalars(),
    optimizerScalars: { count: run.optimizerState.count },
    normalization,
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

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { backend, outDir, callbacks } = options;
  mkdirSync(outDir, { recursive: true });
  const checkpointPath = join(outDir, CHECKPOINT_FILE);
  const metricsPath = join(outDir, METRICS_FILE);

  const saved = options.resume ? loadCheckpoint(checkpointPath) : null;
  const config = saved?.meta.config ?? options.config;
  validateConfig(config);
  const { train: trainData, validation, normalization } = prepareData(config, options.train);
  if (trainData.classes !== options.test.classes) {
    throw new ConfigError(
      'data',
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
    },
    config.batchSize,
  );
  let batch: ReturnType<typeof createBackendBatch> | null = null;
  try {
    let startEpoch = 0;
    let step = 0;
    if (saved !== null) {
      restoreRun(run, checkpointPath, saved);
      startEpoch = saved.meta.epoch;
      step = saved.meta.step;
      truncateMetrics(metricsPath, startEpoch);
    } else {
      writeFileSync(metricsPath, '');
    }
    const normalizer = new Normalizer(trainData.shape, normalization);
    batch = createBackendBatch(run, config.batchSize);
    // A whole-step method (float-free) trains on the raw bytes with its own forward and backward.
    const whole = isWholeStepMethod(run.method) ? run.method : null;
    if (whole !== null) await whole.prepare();
    const order = new Uint32Array(trainData.count);
    const records: EpochRecord[] = [];
    let trainedSamples = 0;
    let trainingSeconds = 0;
    let lastCheckpoint: string | null = saved !== null ? checkpointPath : null;

    for (let epoch = startEpoch + 1; epoch <= config.epochs; epoch++) {
      // Shuffle from the identity each epoch, so an epoch's order depends only on the generator state.
      for (let i = 0; i < order.length; i++) order[i] = i;
      run.rng.shuffle(order);
      const ctx = { training: true, rng: run.rng };
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      let learningRate = 0;
      const epochStart = performance.now();
      for (let b = 0; b < stepsPerEpoch; b++) {
        const first = b * config.batchSize;
        const n =
          whole !== null
            ? Math.min(config.batchSize, trainData.count - first)
            : fillBatch(trainData, order, first, batch, { normalizer });
        learningRate = run.schedule(step);
        const update = { step: step + 1, learningRate, scheduleStep: step };
        const { loss, correct: hits } =
          whole !== null
            ? whole.trainBatch(trainData, order, first, n, update)
            : trainStep(run, batch.images, batch.labels, n, ctx, update);
        correct += hits;
        if (!Number.isFinite(loss)) throw new TrainingDivergedError(epoch, step + 1, lastCheckpoint);
        step++;
        lossSum += loss * n;
        seen += n;
        if (callbacks?.onBatch !== undefined) {
          const seconds = (performance.now() - epochStart) / 1000;
          callbacks.onBatch({
            epoch,
            epochs: config.epochs,
            batch: b + 1,
            batches: stepsPerEpoch,
            loss: lossSum / seen,
            accuracy: correct / seen,
            samplesPerSecond: seen / Math.max(seconds, 1e-9),
          });
        }
        // Let signals and progress rendering through now and then.
        if (b % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
      }
      const seconds = (performance.now() - epochStart) / 1000;
      trainedSamples += seen;
      trainingSeconds += seconds;
      if (config.recalibrateBatchNorm === true && whole === null) {
        // Before validation and the checkpoint, so both see the statistics of the deployed network.
        run.method.predict('mode', new Rng(config.seed)); // the mode draws nothing; the run's stream stays as is
        recalibrateBatchNorm(run.model, trainData, order, normalizer, batch, {
          examples: RECALIBRATION_EXAMPLES,
          seed: config.seed + epoch,
        });
      }
      const valEval =
        validation === null
          ? null
          : evaluate(run, validation, normalizer, batch, { kind: 'mode', seed: config.seed + epoch });
      const record: EpochRecord = {
        epoch,
        step,
        learningRate,
        trainLoss: lossSum / seen,
        trainAccuracy: correct / seen,
        validationAccuracy: valEval?.accuracy ?? null,
        validationNll: valEval?.nll ?? null,
        seconds,
        samplesPerSecond: seen / seconds,
        stepMilliseconds: (seconds * 1000) / stepsPerEpoch,
      };
      saveCheckpoint(checkpointPath, checkpointMeta(run, epoch, step, normalization), runTensors(run));
      lastCheckpoint = checkpointPath;
      appendFileSync(metricsPath, `${JSON.stringify(record)}\n`);
      records.push(record);
      callbacks?.onEpoch?.(record, run);
    }
    const test = evaluate(run, options.test, normalizer, batch, {
      kind: 'mode',
      seed: config.seed,
      limit: config.testLimit,
    });
    return {
      epochs: records,
      test,
      samplesPerSecond: trainingSeconds > 0 ? trainedSamples / trainingSeconds : 0,
      checkpoint: checkpointPath,
    };
  } finally {
    if (batch !== null) backend.free(batch.images);
    disposeRun(run);
  }
}
