/**
 * safetensors (huggingface/safetensors): tensors that other tools should read.
 *
 *   bytes 0..7   header length N (uint64 little-endian)
 *   bytes 8..8+N UTF-8 JSON: { "<name>": { "dtype": "F32", "shape": [...], "data_offsets": [begin, end] },
 *                ..., "__metadata__": { string: string } }, space-padded so the data starts 8-aligned
 *   then the byte buffer: each tensor's raw little-endian data at [begin, end) from its start, the tensors
 *   back to back with no holes.
 *
 * The reader validates the header and every offset against the file before it copies anything.
 */
import { SafetensorsError } from '../errors.js';
import type { TensorData } from './tensor-file.js';

export type SafetensorsDType = 'F32' | 'F64' | 'I32' | 'U32' | 'I16' | 'I8' | 'U8';

export interface SafeTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

const BYTES: Record<SafetensorsDType, number> = { F32: 4, F64: 8, I32: 4, U32: 4, I16: 2, I8: 1, U8: 1 };

function dtypeOf(data: TensorData): SafetensorsDType {
  if (data instanceof Float32Array) return 'F32';
  if (data instanceof Float64Array) return 'F64';
  if (data instanceof Int32Array) return 'I32';
  if (data instanceof Uint32Array) return 'U32';
  if (data instanceof Int16Array) return 'I16';
  if (data instanceof Int8Array) return 'I8';
  return 'U8';
}

function make(dtype: SafetensorsDType, bytes: Uint8Array): TensorData {
  const copy = new Uint8Array(bytes.byteLength); // a fresh buffer, also when `bytes` is a Node Buffer
  copy.set(bytes);
  const buf = copy.buffer;
  const n = bytes.byteLength / BYTES[dtype];
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf, 0, n);
    case 'F64':
      return new Float64Array(buf, 0, n);
    case 'I32':
      return new Int32Array(buf, 0, n);
    case 'U32':
      return new Uint32Array(buf, 0, n);
    case 'I16':
      return new Int16Array(buf, 0, n);
    case 'I8':
      return new Int8Array(buf, 0, n);
    case 'U8':
      return new Uint8Array(buf, 0, n);
  }
}

/** Serialises tensors (in the given order) and string metadata. */
export function encodeSafetensors(
  tensors: readonly SafeTensor[],
  metadata: Record<string, string> = {},
): Uint8Array {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
    throw new Error('safetensors: big-endian hosts are not supported');
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name))
      throw new SafetensorsError(`tensor name "${t.name}" is reserved or repeated`);
    seen.add(t.name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new SafetensorsError(
        `tensor "${t.name}": shape [${t.shape.join(', ')}] holds ${count} values, the data ${t.data.length}`,
      );
    header[t.name] = {
      dtype: dtypeOf(t.data),
      shape: [...t.shape],
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLength);
  let at = 8 + headerLength;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

export interface SafetensorsFile {
  readonly tensors: ReadonlyMap<
    string,
    { readonly dtype: SafetensorsDType; readonly shape: readonly number[]; readonly data: TensorData }
  >;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Parses a safetensors file; rejects holes, overlaps, out-of-range offsets and unknown dtypes. */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (bytes.byteLength < 8) throw new SafetensorsError(`file too short: ${bytes.byteLength} bytes`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (n > BigInt(bytes.byteLength - 8))
    throw new SafetensorsError(`header length ${n} runs past the end of the file`);
  const headerLength = Number(n);
  let header: unknown;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)),
    );
  } catch {
    throw new SafetensorsError('header is not valid UTF-8 JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new SafetensorsError('header is not a JSON object');
  const dataStart = 8 + headerLength;
  const dataBytes = bytes.byteLength - dataStart;
  const entries: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[] =
    [];
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (
        typeof value !== 'object' ||
        value === null ||
        !Object.values(value).every((v) => typeof v === 'string')
      ) {
        throw new SafetensorsError('__metadata__ must map strings to strings');
      }
      metadata = value as Record<string, string>;
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null || typeof e.dtype !== 'string' || !(e.dtype in BYTES)) {
      throw new SafetensorsError(`tensor "${name}": unknown or missing dtype`);
    }
    const dtype = e.dtype as SafetensorsDType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new SafetensorsError(`tensor "${name}": bad shape`);
    if (
      !Array.isArray(e.data_offsets) ||
      e.data_offsets.length !== 2 ||
      !e.data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new SafetensorsError(`tensor "${name}": bad data_offsets`);
    }
    const [begin, end] = e.data_offsets as number[];
    const shape = e.shape as number[];
    const expected = shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
    if (end < begin || end - begin !== expected || end > dataBytes) {
      throw new SafetensorsError(
        `tensor "${name}": offsets [${begin}, ${end}] do not fit shape [${shape.join(', ')}] of ${dtype} in a ${dataBytes}-byte buffer`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin);
  let expectedBegin = 0;
  for (const e of entries) {
    if (e.begin !== expectedBegin)
      throw new SafetensorsError(
        `tensor "${e.name}" starts at ${e.begin}, expected ${expectedBegin} (holes and overlaps are not allowed)`,
      );
    expectedBegin = e.end;
  }
  if (expectedBegin !== dataBytes)
    throw new SafetensorsError(`the tensors cover ${expectedBegin} of ${dataBytes} data bytes`);
  const tensors = new Map<string, { dtype: SafetensorsDType; shape: readonly number[]; data: TensorData }>();
  for (const e of entries) {
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: make(e.dtype, bytes.subarray(dataStart + e.begin, dataStart + e.end)),
    });
  }
  return { tensors, metadata };
}
