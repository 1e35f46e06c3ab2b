/**
 * Training checkpoints: every piece of state a run needs to continue exactly where it stopped — the
 * config, epoch and step counters, the generator state, model parameters and batch-norm statistics, the
 * method's state and the optimizer's state. Written atomically (temporary file, then rename), in the
 * tensor-file container (magic "ONEBITCK", version 1). Distinct from the export format, which holds only
 * what inference needs.
 */
import { TensorFileError } from '../errors.js';
import type { RngState } from '../tensor/rng.js';
import { readTensorFile, writeTensorFile, type NamedTensor, type TensorData } from '../io/tensor-file.js';
import type { TrainConfig } from './config.js';

export const CHECKPOINT_MAGIC = 'ONEBITCK';
export const CHECKPOINT_VERSION = 1;

export interface CheckpointMeta {
  readonly config: TrainConfig;
  /** Number of completed epochs. */
  readonly epoch: number;
  /** Number of completed optimisation steps. */
  readonly step: number;
  readonly rng: RngState;
  readonly methodScalars: Record<string, number>;
  readonly optimizerScalars: Record<string, number>;
  /** Per-channel input normalisation fixed at the start of the run. */
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
}

export interface Checkpoint {
  readonly meta: CheckpointMeta;
  readonly tensors: ReadonlyMap<string, TensorData>;
}

export function saveCheckpoint(path: string, meta: CheckpointMeta, tensors: readonly NamedTensor[]): void {
  writeTensorFile(path, CHECKPOINT_MAGIC, CHECKPOINT_VERSION, meta, tensors);
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

export function loadCheckpoint(path: string): Checkpoint {
  const file = readTensorFile(path, CHECKPOINT_MAGIC, [CHECKPOINT_VERSION]);
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
  return { meta: meta as unknown as CheckpointMeta, tensors: file.tensors };
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
