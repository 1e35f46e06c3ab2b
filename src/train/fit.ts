/**
 * `fit`: one call that trains any model with any method (docs/architecture.md, "The training API").
 *
 * The model is a spec (written by hand, by the builder API of nn/spec.ts, or a named model's); the data are a
 * named data set or the user's own `Dataset`s (`datasetFromArrays`, `loadImageFolder`); the method and its
 * options, the run settings (epochs, batch size, learning rate, ...), an optional output folder (checkpoints
 * and metrics; nothing is written without one), an optional backend (created and disposed here when absent),
 * callbacks per step and per epoch, early stopping and an AbortSignal. The result is the trained model as
 * plain data (spec, deployed tensors, normalisation) with the run's metrics; `exportModel` turns it into a
 * `.onebit`, ONNX or safetensors file's bytes, which `onebit/engine` runs.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../backend/backend.js';
import { createBackend } from '../backend/index.js';
import { isDatasetName, loadDataset, type Dataset } from '../data/dataset.js';
import { ConfigError } from '../errors.js';
import { checkpointExportBytes, type ExportFormat } from '../io/export-file.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { isModelName, modelSpecByName } from '../nn/models.js';
import { parseModelSpec, type ModelSpec } from '../nn/spec.js';
import type { TrainConfig } from '../config/train-config.js';
import { trainConfig } from './run-config.js';
import { runSnapshot } from './run.js';
import type { BatchProgress, CallbackAnswer } from './epoch.js';
import { train, type EpochRecord, type TrainResult } from './trainer.js';

/** Stop when a validation figure has not improved for `patience` epochs. */
export interface EarlyStopping {
  readonly monitor: 'validationAccuracy' | 'validationNll';
  readonly patience: number;
  /** Smallest change that counts as an improvement; default 0. */
  readonly minDelta?: number;
}

/** Run settings `fit` takes; every one has the default `onebit train` has. */
export type FitSettings = Partial<
  Pick<
    TrainConfig,
    | 'epochs'
    | 'batchSize'
    | 'learningRate'
    | 'schedule'
    | 'warmupEpochs'
    | 'realLearningRate'
    | 'realOptimizer'
    | 'realWeightDecay'
    | 'seed'
    | 'validationFraction'
    | 'trainLimit'
    | 'testLimit'
    | 'recalibrateBatchNorm'
  >
>;

export interface FitOptions extends FitSettings {
  /** A spec (nn/spec.ts) or a named model (built for the data's shape and classes). */
  readonly model: ModelSpec | string;
  /** Default 'ste'. */
  readonly method?: string;
  /** The method's options by key (docs/methods.md); defaults for the rest. */
  readonly methodOptions?: Readonly<Record<string, number | string | boolean>>;
  /** A named data set (searched in dataDir, then cacheDir, then the system's), or the user's own sets. */
  readonly data: string | { readonly train: Dataset; readonly test: Dataset };
  readonly dataDir?: string;
  /** Where named data sets are cached (`onebit data fetch`); default ~/.cache/onebit. */
  readonly cacheDir?: string;
  /** Checkpoints and metrics.jsonl go here; absent: nothing is written. */
  readonly outDir?: string;
  /** Continue the run in outDir. */
  readonly resume?: boolean;
  /** Absent: a wasm backend is created for the call and disposed after it. */
  readonly backend?: Backend;
  readonly onBatch?: (progress: BatchProgress) => CallbackAnswer;
  readonly onEpoch?: (record: EpochRecord) => CallbackAnswer;
  readonly earlyStopping?: EarlyStopping;
  readonly signal?: AbortSignal;
}

/** A trained model as plain data: what export and the engine need, and the checkpoint it would be on disk. */
export interface TrainedModel {
  readonly spec: ModelSpec;
  readonly method: string;
  /** The run's checkpoint, in memory (deployed weights under `model/`, training state besides). */
  readonly checkpoint: Checkpoint;
}

export interface FitResult extends Omit<TrainResult, 'checkpoint'> {
  readonly model: TrainedModel;
  /** The last checkpoint written to outDir; null without one. */
  readonly checkpointPath: string | null;
}

function resolveSpec(model: ModelSpec | string, data: Dataset): ModelSpec {
  if (typeof model === 'string') {
    if (!isModelName(model)) throw new ConfigError('model', 'a named model or a spec', JSON.stringify(model));
    return modelSpecByName(model, { classes: data.classes, inputShape: data.shape }, 'model');
  }
  return parseModelSpec(model);
}

async function resolveData(options: FitOptions): Promise<{ train: Dataset; test: Dataset }> {
  if (typeof options.data !== 'string') return options.data;
  const name = options.data;
  if (!isDatasetName(name)) throw new ConfigError('data', 'a named data set or { train, test }', name);
  const common = {
    cacheDir: options.cacheDir ?? defaultCacheDir(),
    ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
  };
  const [train, test] = await Promise.all([
    loadDataset(name, { ...common, split: 'train' }),
    loadDataset(name, { ...common, split: 'test' }),
  ]);
  return { train, test };
}

function defaultCacheDir(): string {
  // The library reads no environment variable: the CLI passes XDG_CACHE_HOME's folder when it is set.
  return join(homedir(), '.cache', 'onebit');
}

/** Whether `value` is better than `best` by at least minDelta for the monitored figure. */
function improved(stopping: EarlyStopping, value: number, best: number): boolean {
  const delta = stopping.minDelta ?? 0;
  return stopping.monitor === 'validationAccuracy' ? value > best + delta : value < best - delta;
}

/** Trains `options.model` with `options.method` on `options.data`; see the file comment. */
export async function fit(options: FitOptions): Promise<FitResult> {
  const data = await resolveData(options);
  const spec = resolveSpec(options.model, data.train);
  const method = options.method ?? 'ste';
  const config = trainConfig({
    data: typeof options.data === 'string' ? options.data : data.train.name,
    dataDir: options.dataDir ?? null,
    model: typeof options.model === 'string' ? options.model : 'spec',
    spec,
    method,
    methodOptions: options.methodOptions ?? {},
    epochs: options.epochs,
    batchSize: options.batchSize,
    learningRate: options.learningRate,
    schedule: options.schedule,
    warmupEpochs: options.warmupEpochs,
    realLearningRate: options.realLearningRate,
    realOptimizer: options.realOptimizer,
    realWeightDecay: options.realWeightDecay,
    seed: options.seed,
    validationFraction: options.validationFraction,
    trainLimit: options.trainLimit ?? null,
    testLimit: options.testLimit ?? null,
    recalibrateBatchNorm: options.recalibrateBatchNorm,
  });
  const stopping = options.earlyStopping;
  if (stopping !== undefined && !(Number.isInteger(stopping.patience) && stopping.patience >= 1)) {
    throw new ConfigError('earlyStopping.patience', 'a positive integer', String(stopping.patience));
  }
  if (stopping !== undefined && config.validationFraction === 0) {
    throw new ConfigError('earlyStopping', 'a validation split (validationFraction > 0) to monitor', 'none');
  }
  let best = Number.NaN;
  let sinceBest = 0;
  const onEpoch = (record: EpochRecord): CallbackAnswer => {
    const answer = options.onEpoch?.(record);
    if (stopping === undefined) return answer;
    const value = record[stopping.monitor];
    if (value !== null && (Number.isNaN(best) || improved(stopping, value, best))) {
      best = value;
      sinceBest = 0;
    } else {
      sinceBest++;
    }
    return sinceBest >= stopping.patience ? 'stop' : answer;
  };

  const backend = options.backend ?? (await createBackend());
  let kept: Checkpoint | null = null;
  try {
    const result = await train({
      config,
      backend,
      train: data.train,
      test: data.test,
      outDir: options.outDir ?? null,
      resume: options.resume ?? false,
      signal: options.signal,
      callbacks: { onBatch: options.onBatch, onEpoch },
      keep(live, counters, calibration) {
        kept = runSnapshot(live, counters, calibration);
      },
    });
    if (kept === null) throw new Error('fit: the run ended without a model');
    const { checkpoint, ...rest } = result;
    return { ...rest, model: { spec, method, checkpoint: kept }, checkpointPath: checkpoint };
  } finally {
    if (options.backend === undefined) backend.dispose();
  }
}

/**
 * The trained model as the bytes of a `.onebit` (run it with `onebit/engine`), ONNX or safetensors file.
 * `backend` builds the float model to fold batch norm (default: a float32 wasm backend, as `onebit eval`).
 */
export async function exportModel(
  model: TrainedModel,
  format: ExportFormat,
  options: { readonly backend?: Backend } = {},
): Promise<Uint8Array> {
  const backend = options.backend ?? (await createBackend());
  try {
    return checkpointExportBytes('<fit>', model.checkpoint, format, backend).data;
  } finally {
    if (options.backend === undefined) backend.dispose();
  }
}
