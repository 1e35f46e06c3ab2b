/**
 * `onebit export`: a checkpoint to a `.onebit` model (the bit-packed engine's format), an ONNX model, or a
 * safetensors file of the checkpoint's tensors. The bytes are built in full before anything is written,
 * then written atomically (temporary file, then rename), so an error never leaves a partial file.
 */
import type { Backend } from '../backend/backend.js';
import { encodeOnebit } from '../engine/format.js';
import { ExportError } from '../errors.js';
import { writeFileAtomic } from './atomic.js';
import { loadCheckpoint, type Checkpoint } from './checkpoint.js';
import { buildOnebitModel, checkpointExportSource, describeNetwork, type ExportSource } from './export.js';
import {
  float32WeightBytes,
  floatFreeNetwork,
  floatFreeOnebitModel,
  floatFreeSafeTensors,
} from './float-free-export.js';
import { encodeOnnx } from './onnx.js';
import { encodeSafetensors, type SafeTensor } from './safetensors.js';
import type { ModelSpec } from '../nn/spec.js';

export const EXPORT_FORMATS = ['onebit', 'onnx', 'safetensors'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** The shape of a checkpoint tensor: its parameter's ("model/fc1.weight", "method/fc1.weight/latent"). */
function tensorShape(
  name: string,
  length: number,
  shapes: ReadonlyMap<string, readonly number[]>,
): readonly number[] {
  const path = name.replace(/^(model|method|optimizer)\//, '');
  for (const candidate of [path, path.replace(/\/[^/]*$/, '')]) {
    const shape = shapes.get(candidate);
    if (shape === undefined) continue;
    const size = shape.reduce((a, b) => a * b, 1);
    if (size === length) return shape;
    if (size > 0 && length % size === 0) return [length / size, ...shape];
  }
  return [length];
}

/**
 * A safetensors file of a network's tensors (already shaped) with the metadata every onebit export of
 * tensors carries: the format, the spec and the input normalisation, plus `header` (a checkpoint's config
 * and counters). Shared by the float-model and the float-free exports.
 */
function onebitSafetensors(
  tensors: readonly SafeTensor[],
  spec: ModelSpec,
  normalization: ExportSource['normalization'],
  header: Readonly<Record<string, string>>,
): Uint8Array {
  return encodeSafetensors(tensors, {
    format: 'onebit-checkpoint',
    spec: JSON.stringify(spec),
    normalization: JSON.stringify(normalization),
    ...header,
  });
}

/**
 * Every tensor of the source (for a checkpoint: model, method and optimizer state), shaped like its
 * parameter in the model built from the spec. `header` adds string metadata (a checkpoint's config and
 * counters).
 */
export function checkpointSafetensors(
  source: ExportSource,
  header: Readonly<Record<string, string>> = {},
): Uint8Array {
  const shapes = new Map<string, readonly number[]>();
  for (const p of source.model.parameters()) shapes.set(p.name, p.shape);
  const tensors: SafeTensor[] = [];
  for (const [name, data] of source.tensors) {
    tensors.push({ name, shape: tensorShape(name, data.length, shapes), data });
  }
  return onebitSafetensors(tensors, source.spec, source.normalization, header);
}

/** The safetensors string metadata of a checkpoint's export: its config, counters and temperatures. */
function checkpointHeader(checkpoint: Checkpoint): Record<string, string> {
  const { config, epoch, step, calibration } = checkpoint.meta;
  return {
    config: JSON.stringify(config),
    epoch: String(epoch),
    step: String(step),
    ...(calibration !== undefined
      ? { temperature: String(calibration.mode.temperature), calibration: JSON.stringify(calibration) }
      : {}),
  };
}

/**
 * The export of a float-free checkpoint (float-free-export.ts): the integer network read from its tensors,
 * no model built, in any format.
 */
function floatFreeExportBytes(
  name: string,
  checkpoint: Checkpoint,
  format: ExportFormat,
): { readonly data: Uint8Array; readonly float32WeightBytes: number } {
  const model = floatFreeOnebitModel(name, checkpoint);
  const weights = float32WeightBytes(model);
  switch (format) {
    case 'onebit':
      return { data: encodeOnebit(model), float32WeightBytes: weights };
    case 'onnx':
      return { data: encodeOnnx(floatFreeNetwork(name, checkpoint)), float32WeightBytes: weights };
    case 'safetensors': {
      const spec = checkpoint.meta.config.spec;
      if (spec === undefined) throw new ExportError(name, 'the checkpoint has no model spec');
      const data = onebitSafetensors(
        floatFreeSafeTensors(name, checkpoint),
        spec,
        checkpoint.meta.normalization,
        { ...checkpointHeader(checkpoint), inference: 'float-free' },
      );
      return { data, float32WeightBytes: weights };
    }
  }
}

/** The export's bytes in `format`; `header` is the safetensors string metadata. */
export function exportBytes(
  source: ExportSource,
  format: ExportFormat,
  header: Readonly<Record<string, string>> = {},
): Uint8Array {
  switch (format) {
    case 'onebit':
      return encodeOnebit(buildOnebitModel(source));
    case 'onnx':
      return encodeOnnx(describeNetwork(source));
    case 'safetensors':
      return checkpointSafetensors(source, header);
  }
}

export interface ExportResult {
  readonly bytes: number;
  /** Bytes the binary layers' weights take as float32 (for the size ratio). */
  readonly float32WeightBytes: number;
}

/**
 * The export of a checkpoint (read from a file or held in memory, e.g. the fit API's result) in `format`:
 * checkpoint -> spec + tensors -> bytes, no training run. `name` names it in errors. `backend` builds the
 * float model for probing (use float32 wasm, as `onebit eval` does).
 */
export function checkpointExportBytes(
  name: string,
  checkpoint: Checkpoint,
  format: ExportFormat,
  backend: Backend,
): { readonly data: Uint8Array; readonly float32WeightBytes: number } {
  // A float-free checkpoint is an integer network: it maps onto every format directly.
  if (checkpoint.meta.inference === 'float-free') return floatFreeExportBytes(name, checkpoint, format);
  const source = checkpointExportSource(name, checkpoint, backend);
  try {
    const data = exportBytes(source, format, checkpointHeader(checkpoint));
    const weights = source.model.binaryParameters().reduce((sum, p) => sum + p.value.length, 0);
    return { data, float32WeightBytes: 4 * weights };
  } finally {
    source.dispose();
  }
}

/** Exports the checkpoint at `path` to `out`, atomically (temporary file, then rename). */
export function exportCheckpoint(
  path: string,
  format: ExportFormat,
  out: string,
  backend: Backend,
): ExportResult {
  const { data, float32WeightBytes } = checkpointExportBytes(path, loadCheckpoint(path), format, backend);
  writeFileAtomic(out, [data]);
  return { bytes: data.byteLength, float32WeightBytes };
}
