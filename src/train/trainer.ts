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
import type { Backend } from '../backend/backend.js';
import { nodeFs, nodePath } from '../node-builtins.js';
import type { Dataset } from '../data/dataset.js';
import { channelStats, subsetDataset, validationSplit } from '../data/pipeline.js';
import { ConfigError } from '../errors.js';
import { Rng } from '../tensor/rng.js';
import {
  loadCheckpoint,
  saveCheckpoint,
  type Calibration,
  type Checkpoint,
  type TemperatureRecord,
} from '../io/checkpoint.js';
import { fitTemperature } from './calibration.js';
import { trainEpoch, type BatchProgress, type CallbackAnswer } from './epoch.js';
import { flipRatios, stepRecorder, testReport } from './run-records.js';
import type { BinarySigns } from '../methods/learner.js';
import { atomicWriteLive, atomicWriteTarget, writeFileAtomic } from '../io/atomic.js';
import type { DataSource } from '../data/dataset.js';
import { validateConfig, type TrainConfig } from '../config/train-config.js';
import { evaluate, type Evaluation, type EvaluationOptions } from './evaluate.js';
import {
  createRun,
  disposeRun,
  restoreRun,
  runCheckpointMeta,
  runTensors,
  type Normalization,
  type Run,
} from './run.js';

/** Node's fs and path, asked for only when a run has a folder: `train` without one also runs in a browser. */
const fsApi = (): ReturnType<typeof nodeFs> => nodeFs('a run folder');
const pathApi = (): ReturnType<typeof nodePath> => nodePath('a run folder');

export type { Normalization } from './run.js';

export const CHECKPOINT_FILE = 'checkpoint.ckpt';
export const METRICS_FILE = 'metrics.jsonl';
/** The run's config, written when a run starts, so a run killed before its first checkpoint can resume. */
export const RUN_FILE = 'run.json';
/** The final test evaluation's confusion matrix, per-class accuracy and reliability diagrams (run-records.ts). */
export const TEST_FILE = 'test.json';
/** Every file a run writes in its folder. */
export const RUN_FILES: readonly string[] = [CHECKPOINT_FILE, METRICS_FILE, RUN_FILE, TEST_FILE];

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
  /** The temperature fitted on the validation split once training ended (null: none, or --no-calibrate). */
  readonly calibration: Calibration | null;
  /** Why training ended before its last epoch: a callback asked to stop, or the signal aborted. */
  readonly stopped: 'early-stopping' | 'aborted' | null;
}

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
  /**
   * Continue the run in outDir from its checkpoint (or from its start, with the config in run.json, when it
   * was stopped before its first checkpoint); the saved config wins over `config`.
   */
  readonly resume?: boolean;
  /**
   * With `resume`: train to this many epochs instead of the saved config's (extending a finished run). The
   * schedules become those of a run of this length, read at the step reached (docs/architecture.md, "Runs").
   */
  readonly epochs?: number;
  /**
   * Called once, right after the first checkpoint is written, with the output folder; the run goes on in
   * the folder it returns (the CLI's --overwrite trains in a new folder and swaps it in here).
   */
  readonly onFirstCheckpoint?: (outDir: string) => string;
  /** With `resume`: the run folder as readSavedRun read it already (read here when absent). */
  readonly saved?: SavedRun;
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
  readonly keep?: (
    run: Run,
    counters: { readonly epoch: number; readonly step: number },
    calibration: Calibration | null,
  ) => void;
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

/**
 * The records of a metrics file, in order; a line a kill tore (not a JSON object) is left out. Every line
 * was written by JSON.stringify, so writing a record back gives the same line.
 */
export function readMetrics(path: string): Record<string, unknown>[] {
  if (!fsApi().existsSync(path)) return [];
  const records: Record<string, unknown>[] = [];
  for (const line of fsApi().readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
        records.push(parsed as Record<string, unknown>);
    } catch {
      // a line torn by a kill
    }
  }
  return records;
}

/**
 * Keeps the metrics lines of epochs up to `epoch` and the data lines (a killed run may have written one more
 * epoch); rewritten atomically, so a crash here loses nothing.
 */
function truncateMetrics(path: string, epoch: number): void {
  if (!fsApi().existsSync(path)) return;
  const kept = readMetrics(path).filter(
    (r) => r.type === 'data' || (typeof r.epoch === 'number' && r.epoch <= epoch),
  );
  writeFileAtomic(path, [new TextEncoder().encode(kept.map((r) => `${JSON.stringify(r)}\n`).join(''))]);
}

/**
 * Fits the temperature of the run's predictions evaluated with `options` (the deterministic network, or an
 * ensemble) on held-out data (calibration.ts).
 */
export function calibrateOn(run: Run, heldOut: Dataset, options: EvaluationOptions): TemperatureRecord {
  const held = evaluate(run, heldOut, { ...options, keepScores: true });
  if (held.scores === null) throw new Error('calibrateOn: evaluate kept no scores');
  const fit = fitTemperature(held.scores.values, held.scores.labels, held.count, run.spec.classes);
  return {
    temperature: fit.temperature,
    nllBefore: fit.nllBefore,
    nllAfter: fit.nllAfter,
    examples: held.count,
  };
}

/**
 * Temporary files of atomic writes of the run's files that a killed run left behind (those of a live
 * process writing the same folder are its writes in progress, and stay).
 */
export function removeStaleTemporaries(outDir: string): void {
  for (const name of fsApi().readdirSync(outDir)) {
    const target = atomicWriteTarget(name);
    if (target !== null && RUN_FILES.includes(target) && !atomicWriteLive(name))
      fsApi().rmSync(pathApi().join(outDir, name), { force: true });
  }
}

/** The record of which files a process trained and tested on (a metrics line; the CLI prints it too). */
export function dataRecord(train: Dataset, test: Dataset, resumedAtEpoch: number | null = null) {
  const files = (d: Dataset): readonly DataSource[] => d.sources ?? [];
  return {
    type: 'data' as const,
    ...(resumedAtEpoch !== null ? { resumedAtEpoch } : {}),
    train: { name: train.name, count: train.count, files: files(train) },
    test: { name: test.name, count: test.count, files: files(test) },
  };
}

/** What a run folder says about itself: its config and the epochs done (0 before its first checkpoint). */
export interface SavedRun {
  readonly config: TrainConfig;
  readonly epoch: number;
  /** Null when the run stopped before its first checkpoint. */
  readonly checkpoint: Checkpoint | null;
  /** The backend the run started on (run.json), when recorded: resuming elsewhere changes the numbers. */
  readonly backend: Backend['name'] | null;
}

/** The backend recorded in a run folder's run.json (`runPath`), or null. */
export function recordedBackend(runPath: string): Backend['name'] | null {
  try {
    const parsed = JSON.parse(fsApi().readFileSync(runPath, 'utf8')) as { backend?: unknown } | null;
    return parsed?.backend === 'wasm' || parsed?.backend === 'reference' ? parsed.backend : null;
  } catch {
    return null;
  }
}

/**
 * The config a resumed run goes on with: the saved one, extended to `epochs` when given (fewer epochs than
 * the run has done are refused).
 */
export function resumedConfig(saved: SavedRun, epochs?: number): TrainConfig {
  if (epochs === undefined) return saved.config;
  if (epochs < saved.epoch) {
    throw new ConfigError('--epochs', `at least the ${saved.epoch} epochs the run has done`, String(epochs));
  }
  return { ...saved.config, epochs };
}

/** Reads a run folder for resuming: its checkpoint, else the run.json written when it started. */
export function readSavedRun(outDir: string): SavedRun {
  const checkpointPath = pathApi().join(outDir, CHECKPOINT_FILE);
  if (fsApi().existsSync(checkpointPath)) {
    const checkpoint = loadCheckpoint(checkpointPath);
    const backend = recordedBackend(pathApi().join(outDir, RUN_FILE));
    return { config: checkpoint.meta.config, epoch: checkpoint.meta.epoch, checkpoint, backend };
  }
  const runPath = pathApi().join(outDir, RUN_FILE);
  if (!fsApi().existsSync(runPath)) {
    throw new ConfigError(
      '--resume',
      `a run folder holding ${CHECKPOINT_FILE} or ${RUN_FILE}`,
      fsApi().existsSync(outDir) ? `${outDir}, which has neither` : `${outDir}, which does not exist`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(fsApi().readFileSync(runPath, 'utf8'));
  } catch (error) {
    throw new ConfigError('--resume', `${runPath} holding JSON`, (error as Error).message);
  }
  const config = (parsed as { config?: unknown } | null)?.config;
  if (typeof config !== 'object' || config === null) {
    throw new ConfigError('--resume', `${runPath} with a "config" object`, JSON.stringify(parsed));
  }
  validateConfig(config as TrainConfig);
  return { config: config as TrainConfig, epoch: 0, checkpoint: null, backend: recordedBackend(runPath) };
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { backend, callbacks } = options;
  let outDir = options.outDir ?? null;
  if (options.resume === true && outDir === null) {
    throw new ConfigError('resume', 'an output folder holding the checkpoint to resume', 'none');
  }
  const paths = (dir: string | null) =>
    dir === null
      ? null
      : {
          checkpoint: pathApi().join(dir, CHECKPOINT_FILE),
          metrics: pathApi().join(dir, METRICS_FILE),
          run: pathApi().join(dir, RUN_FILE),
        };
  let files = paths(outDir);

  const saved = options.resume === true && outDir !== null ? (options.saved ?? readSavedRun(outDir)) : null;
  if (options.resume !== true && outDir !== null && fsApi().existsSync(outDir)) {
    // A new run never writes over another one (the CLI's --overwrite trains in a new folder and swaps).
    const taken = fsApi()
      .readdirSync(outDir)
      .filter((n) => RUN_FILES.includes(n));
    if (taken.length > 0) {
      throw new ConfigError(
        'outDir',
        'a folder without a run in it (resume that run, or choose another folder)',
        `${outDir}, which holds ${taken.join(', ')}`,
      );
    }
  }
  const config = saved !== null ? resumedConfig(saved, options.epochs) : options.config;
  validateConfig(config);
  const prepared = prepareData(config, options.train);
  const { train: trainData, validation } = prepared;
  if (config.batchSize > trainData.count) {
    throw new ConfigError(
      '--batch-size',
      `at most the ${trainData.count} training examples (after the validation split and --train-limit)`,
      String(config.batchSize),
    );
  }
  // A resumed run keeps the normalisation it started with.
  const normalization = saved?.checkpoint?.meta.normalization ?? prepared.normalization;
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
    if (files !== null && outDir !== null) {
      fsApi().mkdirSync(outDir, { recursive: true });
      removeStaleTemporaries(outDir);
      const checkpoint = saved?.checkpoint ?? null;
      if (checkpoint !== null) {
        restoreRun(run, files.checkpoint, checkpoint);
        startEpoch = checkpoint.meta.epoch;
        step = checkpoint.meta.step;
        truncateMetrics(files.metrics, startEpoch);
      } else {
        // A new run (or one resumed from before its first checkpoint): its config, then an empty log.
        const runFile = { config: run.config, backend: backend.name };
        writeFileAtomic(files.run, [new TextEncoder().encode(`${JSON.stringify(runFile, null, 2)}\n`)]);
        writeFileAtomic(files.metrics, []);
      }
      const record = dataRecord(options.train, options.test, saved === null ? null : startEpoch);
      fsApi().appendFileSync(files.metrics, `${JSON.stringify(record)}\n`);
    }
    await run.learner.prepare();
    // For the report: the step lines, and the signs of the binary weights to count each epoch's flips
    // against (epoch 1 against the initial weights; a resumed run against its checkpoint's).
    const recordStep = stepRecorder((record) => {
      if (files !== null) fsApi().appendFileSync(files.metrics, `${JSON.stringify(record)}\n`);
    });
    let signs: BinarySigns[] | null = files !== null ? run.learner.binarySigns() : null;
    const records: EpochRecord[] = [];
    let trainedSamples = 0;
    let trainingSeconds = 0;
    let lastCheckpoint: string | null = saved?.checkpoint != null && files !== null ? files.checkpoint : null;
    let stopped: TrainResult['stopped'] = null;
    let partialEpoch = false;

    for (let epoch = startEpoch + 1; epoch <= config.epochs && stopped === null; epoch++) {
      const totals = await trainEpoch(run, trainData, {
        epoch,
        epochs: config.epochs,
        batchSize: config.batchSize,
        stepsBefore: step,
        onBatch: callbacks?.onBatch,
        ...(files !== null ? { onStep: recordStep } : {}),
        signal: options.signal,
        lastCheckpoint,
      });
      step += totals.steps;
      trainedSamples += totals.seen;
      trainingSeconds += totals.seconds;
      stopped = totals.stopped;
      // An epoch stopped part-way is not an epoch: no record, no checkpoint (the last full epoch's stays).
      if (totals.seen < trainData.count) {
        partialEpoch = true;
        break;
      }
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
      if (files !== null) {
        if (signs !== null) {
          const now = run.learner.binarySigns();
          fsApi().appendFileSync(
            files.metrics,
            `${JSON.stringify({ type: 'flips', epoch, layers: flipRatios(signs, now) })}\n`,
          );
          signs = now;
        }
        // The metrics line first: a kill between the two leaves a line that resume drops (it keeps the
        // lines up to the checkpoint's epoch), never a checkpointed epoch without its line.
        fsApi().appendFileSync(files.metrics, `${JSON.stringify({ type: 'epoch', ...record })}\n`);
        saveCheckpoint(files.checkpoint, runCheckpointMeta(run, epoch, step), runTensors(run));
        if (lastCheckpoint === null && options.onFirstCheckpoint !== undefined && outDir !== null) {
          outDir = options.onFirstCheckpoint(outDir);
          files = paths(outDir);
        }
        lastCheckpoint = files?.checkpoint ?? null;
      }
      records.push(record);
      if (callbacks?.onEpoch?.(record, run) === 'stop') stopped ??= 'early-stopping';
    }
    const epochsDone = records.at(-1)?.epoch ?? startEpoch;
    // Temperature scaling of the deployed network on the validation split (calibration.ts); the final
    // checkpoint is written again with it, unless training stopped part-way through an epoch (then the live
    // weights are not the checkpoint's).
    let calibration: Calibration | null = null;
    if (config.calibrate !== false && validation !== null) {
      // The mode draws nothing, so the run's stream stays as is.
      calibration = { mode: calibrateOn(run, validation, { kind: 'mode', seed: config.seed }) };
      if (files !== null && !partialEpoch && epochsDone > 0) {
        saveCheckpoint(
          files.checkpoint,
          { ...runCheckpointMeta(run, epochsDone, step), calibration },
          runTensors(run),
        );
        lastCheckpoint = files.checkpoint;
      }
    }
    const test = evaluate(run, options.test, {
      kind: 'mode',
      seed: config.seed,
      limit: config.testLimit,
      temperature: calibration?.mode.temperature ?? 1,
      keepScores: files !== null,
    });
    if (files !== null && outDir !== null) {
      const report = testReport(test, run.spec.classNames ?? run.shape.classNames ?? null);
      writeFileAtomic(pathApi().join(outDir, TEST_FILE), [
        new TextEncoder().encode(`${JSON.stringify(report)}\n`),
      ]);
    }
    options.keep?.(run, { epoch: epochsDone, step }, calibration);
    return {
      epochs: records,
      test,
      samplesPerSecond: trainingSeconds > 0 ? trainedSamples / trainingSeconds : 0,
      checkpoint: lastCheckpoint,
      calibration,
      stopped,
    };
  } finally {
    disposeRun(run);
  }
}
