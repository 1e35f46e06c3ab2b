/**
 * Training checkpoints: every piece of state a run needs to continue exactly where it stopped — the
 * config with the model's spec, epoch and step counters, the generator state, model parameters and
 * batch-norm statistics, the method's state and the optimizer's state. Written atomically (temporary file,
 * then rename), in the tensor-file container (magic "ONEBITCK"). Distinct from the export format, which
 * holds only what inference needs.
 *
 * Version 3 (docs/architecture.md, "Checkpoints and exports") stores the spec in `config.spec` and says in
 * `inference` where the test-time network is: 'float-model' checkpoints are written right after the method's
 * `predict('mode')`, so their `model/` tensors are the deployed weights and export needs no method;
 * 'float-free' ones hold the integer network's counters. It carries a CRC32C of its header and of every
 * tensor (tensor-file.ts), so a damaged file is refused naming the file and the tensor. Version 2 is the
 * same without checksums and still loads. Version 1 files (named models only) still load too: their spec is
 * rebuilt from the builder name, and their `inference` is 'stale' (the `model/` tensors hold the last
 * proposal, not the mode), which resume and eval accept and export refuses (`onebit upgrade`).
 */
import { OnebitError, TensorFileError } from '../errors.js';
import type { RngState } from '../tensor/rng.js';
import {
  decodeTensorFile,
  encodeTensorFile,
  readTensorFile,
  writeTensorFile,
  type NamedTensor,
  type TensorData,
  type TensorFile,
} from './tensor-file.js';
import { datasetShape } from '../data/in-memory.js';
import type { InferenceLayout } from '../methods/learner.js';
import { modelSpecByName } from '../nn/models.js';
import { parseModelSpec, type ModelSpec } from '../nn/spec.js';
import type { TrainConfig } from '../config/train-config.js';

export const CHECKPOINT_MAGIC = 'ONEBITCK';
export const CHECKPOINT_VERSION = 3;
/** The versions this build reads (1 and 2 carry no checksums). */
const READABLE_VERSIONS = [1, 2, CHECKPOINT_VERSION] as const;

export interface CheckpointMeta {
  /** The run's config; `config.spec` is always present once loaded. */
  readonly config: TrainConfig;
  /** Where the test-time network is; 'stale' for version-1 files (see above). */
  readonly inference: InferenceLayout | 'stale';
  /** Number of completed epochs. */
  readonly epoch: number;
  /** Number of completed optimisation steps. */
  readonly step: number;
  readonly rng: RngState;
  readonly methodScalars: Record<string, number>;
  readonly optimizerScalars: Record<string, number>;
  /** Per-channel input normalisation fixed at the start of the run. */
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
  /**
   * The temperatures of the test-time predictions (train/calibration.ts), fitted on the validation split
   * once training ends or by `onebit calibrate`; absent: temperature 1.
   */
  readonly calibration?: Calibration;
}

/** One fitted temperature and what it did to the held-out NLL. */
export interface TemperatureRecord {
  readonly temperature: number;
  readonly nllBefore: number;
  readonly nllAfter: number;
  /** Held-out examples it was fitted on. */
  readonly examples: number;
}

/** A checkpoint's temperatures: the deterministic network's, and an ensemble's (stochastic methods). */
export interface Calibration {
  readonly mode: TemperatureRecord;
  /** Of the averaged prediction of `samples` sampled networks, combined by `average`. */
  readonly ensemble?: TemperatureRecord & {
    readonly samples: number;
    readonly average: 'logits' | 'probabilities';
  };
}

/** Checks a stored calibration (every temperature a positive finite number). */
function checkCalibration(path: string, value: unknown): void {
  const record = (v: unknown, where: string): void => {
    const r = v as Record<string, unknown> | null;
    const ok =
      typeof r === 'object' &&
      r !== null &&
      typeof r.temperature === 'number' &&
      Number.isFinite(r.temperature) &&
      r.temperature > 0 &&
      ['nllBefore', 'nllAfter', 'examples'].every((k) => typeof r[k] === 'number');
    if (!ok) {
      throw new TensorFileError(
        path,
        `checkpoint field "${where}": expected { temperature > 0, nllBefore, nllAfter, examples }, found ${JSON.stringify(v)}`,
      );
    }
  };
  if (typeof value !== 'object' || value === null)
    throw new TensorFileError(
      path,
      `checkpoint field "calibration": expected an object, found ${JSON.stringify(value)}`,
    );
  const c = value as Record<string, unknown>;
  record(c.mode, 'calibration.mode');
  if (c.ensemble !== undefined) {
    record(c.ensemble, 'calibration.ensemble');
    const e = c.ensemble as Record<string, unknown>;
    if (
      !(Number.isInteger(e.samples) && (e.samples as number) > 0) ||
      (e.average !== 'logits' && e.average !== 'probabilities')
    )
      throw new TensorFileError(
        path,
        `checkpoint field "calibration.ensemble": expected samples > 0 and average logits or probabilities`,
      );
  }
}

export interface Checkpoint {
  /** The format version the file was written in (older ones load; `onebit upgrade` rewrites them). */
  readonly version: number;
  readonly meta: CheckpointMeta;
  readonly tensors: ReadonlyMap<string, TensorData>;
}

export function saveCheckpoint(path: string, meta: CheckpointMeta, tensors: readonly NamedTensor[]): void {
  writeTensorFile(path, CHECKPOINT_MAGIC, CHECKPOINT_VERSION, meta, tensors);
}

/** The bytes `saveCheckpoint` writes. */
export function encodeCheckpoint(meta: CheckpointMeta, tensors: readonly NamedTensor[]): Uint8Array {
  return encodeTensorFile(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, meta, tensors);
}

function field(
  path: string,
  record: Record<string, unknown>,
  name: string,
  kind: 'number' | 'object' | 'string',
): unknown {
  const value = record[name];
  if (kind === 'object' ? typeof value !== 'object' || value === null : typeof value !== kind) {
    throw new TensorFileError(
      path,
      `checkpoint field "${name}": expected ${kind}, found ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function isScalarRecord(value: unknown): value is Record<string, number> {
  return (
    typeof value === 'object' && value !== null && Object.values(value).every((v) => typeof v === 'number')
  );
}

/** The spec of a version-1 checkpoint: its named model, for its data set's shape and its logits' width. */
function versionOneSpec(
  path: string,
  config: Record<string, unknown>,
  tensors: ReadonlyMap<string, TensorData>,
) {
  const inputShape = datasetShape(String(config.data));
  if (inputShape === undefined) {
    throw new TensorFileError(
      path,
      `checkpoint field "config.data": unknown data set ${JSON.stringify(config.data)}`,
    );
  }
  // The logits' batch norm is the last one: bn<L> with the largest L (the method's counters for float-free).
  let last = -1;
  let classes = 0;
  for (const [name, value] of tensors) {
    const m = /^(?:model\/bn(\d+)\.running_mean|method\/fc(\d+)\/running_mean_q8)$/.exec(name);
    const index = m === null ? -1 : Number(m[1] ?? m[2]);
    if (index > last) {
      last = index;
      classes = value.length;
    }
  }
  if (classes < 1) throw new TensorFileError(path, 'version-1 checkpoint: cannot tell the number of classes');
  try {
    return modelSpecByName(
      String(config.model),
      {
        activations: config.activations === 'binary' ? 'binary' : 'real',
        classes,
        inputShape,
        batchNormAffine: config.batchNormAffine === true,
        channelScale: config.channelScale === true,
      },
      'config.model',
    );
  } catch (error) {
    throw new TensorFileError(path, `version-1 checkpoint: ${(error as Error).message}`);
  }
}

/**
 * The checkpoint's spec, validated: a SpecError names the file and the field; anything else the spec reader
 * throws on a damaged spec becomes a TensorFileError naming the file, so a loader never fails untyped.
 */
function specOf(path: string, value: unknown): ModelSpec {
  try {
    return parseModelSpec(value, `${path}: config.spec`);
  } catch (error) {
    if (error instanceof OnebitError) throw error;
    throw new TensorFileError(
      path,
      `checkpoint field "config.spec" cannot be read: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

/** Reads and validates the checkpoint at `path`; every fault is a TensorFileError (or SpecError) naming it. */
export function loadCheckpoint(path: string): Checkpoint {
  return checkpointOf(readTensorFile(path, CHECKPOINT_MAGIC, READABLE_VERSIONS), path);
}

/** `loadCheckpoint` on bytes already in memory; `path` names them in errors. */
export function decodeCheckpoint(bytes: Uint8Array, path: string): Checkpoint {
  return checkpointOf(decodeTensorFile(bytes, path, CHECKPOINT_MAGIC, READABLE_VERSIONS), path);
}

function checkpointOf(file: TensorFile, path: string): Checkpoint {
  if (typeof file.meta !== 'object' || file.meta === null)
    throw new TensorFileError(path, 'checkpoint has no metadata');
  const meta = file.meta as Record<string, unknown>;
  const config = field(path, meta, 'config', 'object') as Record<string, unknown>;
  for (const name of ['data', 'model', 'method', 'activations'] as const) field(path, config, name, 'string');
  for (const name of ['epochs', 'batchSize', 'learningRate', 'seed'] as const)
    field(path, config, name, 'number');
  field(path, meta, 'epoch', 'number');
  field(path, meta, 'step', 'number');
  const rng = field(path, meta, 'rng', 'object') as Record<string, unknown>;
  if (!Array.isArray(rng.s) || rng.s.length !== 4 || !rng.s.every((w) => Number.isInteger(w))) {
    throw new TensorFileError(path, 'checkpoint field "rng.s": expected 4 integers');
  }
  if (!isScalarRecord(meta.methodScalars) || !isScalarRecord(meta.optimizerScalars)) {
    throw new TensorFileError(
      path,
      'checkpoint fields "methodScalars"/"optimizerScalars": expected name -> number maps',
    );
  }
  const norm = field(path, meta, 'normalization', 'object') as Record<string, unknown>;
  const numbers = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'number');
  if (!numbers(norm.mean) || !numbers(norm.std)) {
    throw new TensorFileError(path, 'checkpoint field "normalization": expected mean and std number lists');
  }
  if (meta.calibration !== undefined) checkCalibration(path, meta.calibration);
  if (file.version === 1) {
    const spec = versionOneSpec(path, config, file.tensors);
    const inference = config.method === 'float-free' ? 'float-free' : 'stale';
    return {
      meta: {
        ...(meta as unknown as CheckpointMeta),
        config: { ...(config as unknown as TrainConfig), spec },
        inference,
      },
      tensors: file.tensors,
      version: file.version,
    };
  }
  const spec = specOf(path, config.spec);
  if (meta.inference !== 'float-model' && meta.inference !== 'float-free') {
    throw new TensorFileError(
      path,
      `checkpoint field "inference": expected "float-model" or "float-free", found ${JSON.stringify(meta.inference)}`,
    );
  }
  return {
    meta: { ...(meta as unknown as CheckpointMeta), config: { ...(config as unknown as TrainConfig), spec } },
    tensors: file.tensors,
    version: file.version,
  };
}

/**
 * Copies saved tensors into the live arrays of a rebuilt run. Every live tensor must be present with the
 * same type and length; a mismatch names the checkpoint, the tensor and both shapes.
 */
export function restoreTensors(
  path: string,
  saved: ReadonlyMap<string, TensorData>,
  live: readonly NamedTensor[],
): void {
  for (const t of live) {
    const s = saved.get(t.name);
    if (s === undefined) throw new TensorFileError(path, `tensor "${t.name}" is missing`);
    if (s.constructor !== t.value.constructor || s.length !== t.value.length) {
      throw new TensorFileError(
        path,
        `tensor "${t.name}": expected ${t.value.constructor.name} x ${t.value.length}, found ${s.constructor.name} x ${s.length}`,
      );
    }
    t.value.set(s);
  }
}
