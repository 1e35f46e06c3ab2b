/**
 * `onebit export`: a checkpoint to a `.onebit` model (the bit-packed engine's format), an ONNX model, or a
 * safetensors file of the checkpoint's tensors. The bytes are built in full before anything is written,
 * then written atomically (temporary file, then rename), so an error never leaves a partial file.
 */
import type { Backend } from '../backend/backend.js';
import { encodeOnebit } from '../engine/format.js';
import { writeFileAtomic } from './atomic.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { buildOnebitModel, checkpointExportSource, describeNetwork, type ExportSource } from './export.js';
import { exportFloatFree } from './float-free-export.js';
import { encodeOnnx } from './onnx.js';
import { encodeSafetensors, type SafeTensor } from './safetensors.js';

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
  return encodeSafetensors(tensors, {
    format: 'onebit-checkpoint',
    spec: JSON.stringify(source.spec),
    normalization: JSON.stringify(source.normalization),
    ...header,
  });
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
 * Exports the checkpoint at `path` to `out`, atomically: checkpoint -> spec + tensors -> file, no training
 * run. `backend` builds the float model for probing (use float32 wasm, as `onebit eval` does).
 */
export function exportCheckpoint(
  path: string,
  format: ExportFormat,
  out: string,
  backend: Backend,
): ExportResult {
  const checkpoint = loadCheckpoint(path);
  // A float-free checkpoint is an integer network: it maps onto the format directly (float-free-export.ts).
  if (checkpoint.meta.inference === 'float-free') return exportFloatFree(path, checkpoint, format, out);
  const source = checkpointExportSource(path, checkpoint, backend);
  try {
    const { config, epoch, step } = checkpoint.meta;
    const bytes = exportBytes(source, format, {
      config: JSON.stringify(config),
      epoch: String(epoch),
      step: String(step),
    });
    writeFileAtomic(out, [bytes]);
    const weights = source.model.binaryParameters().reduce((sum, p) => sum + p.value.length, 0);
    return { bytes: bytes.byteLength, float32WeightBytes: 4 * weights };
  } finally {
    source.dispose();
  }
}
