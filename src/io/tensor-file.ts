/**
 * A small container for named tensors plus a JSON header, shared by checkpoints:
 *
 *   bytes 0..7    magic (8 ASCII bytes, e.g. "ONEBITCK")
 *   bytes 8..11   format version (uint32 little-endian)
 *   bytes 12..15  header length H in bytes (uint32 LE)
 *   bytes 16..16+H  UTF-8 JSON: { meta: <any JSON>, tensors: [{ name, dtype, length, offset }] }
 *   then the data section; each tensor at `offset` bytes from its start (8-byte aligned), little-endian.
 *
 * The reader checks every size against the file's length before it allocates anything.
 */
import { TensorFileError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';

import type { NamedTensor, TensorData, TensorDType } from '../tensor/tensor-data.js';

export type { NamedTensor, TensorData, TensorDType } from '../tensor/tensor-data.js';

const BYTES: Record<TensorDType, number> = {
  float32: 4,
  float64: 8,
  int32: 4,
  uint32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
};

function dtypeOf(value: TensorData): TensorDType {
  if (value instanceof Float32Array) return 'float32';
  if (value instanceof Float64Array) return 'float64';
  if (value instanceof Int32Array) return 'int32';
  if (value instanceof Uint32Array) return 'uint32';
  if (value instanceof Int16Array) return 'int16';
  if (value instanceof Int8Array) return 'int8';
  return 'uint8';
}

function construct(dtype: TensorDType, length: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(length);
    case 'float64':
      return new Float64Array(length);
    case 'int32':
      return new Int32Array(length);
    case 'uint32':
      return new Uint32Array(length);
    case 'int16':
      return new Int16Array(length);
    case 'int8':
      return new Int8Array(length);
    case 'uint8':
      return new Uint8Array(length);
  }
}

interface TensorEntry {
  name: string;
  dtype: TensorDType;
  length: number;
  offset: number;
}

const PREFIX_BYTES = 16;
const ALIGN = 8;

/** Writes the tensor file atomically (temporary file, then rename). */
export function writeTensorFile(
  path: string,
  magic: string,
  version: number,
  meta: unknown,
  tensors: readonly NamedTensor[],
): void {
  if (magic.length !== 8) throw new RangeError('magic must be 8 ASCII characters');
  const entries: TensorEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    const dtype = dtypeOf(t.value);
    entries.push({ name: t.name, dtype, length: t.value.length, offset });
    offset += Math.ceil(t.value.byteLength / ALIGN) * ALIGN;
  }
  const dataBytes = offset;
  const headerJson = new TextEncoder().encode(JSON.stringify({ meta, tensors: entries }));
  const headerPadded = Math.ceil((PREFIX_BYTES + headerJson.byteLength) / ALIGN) * ALIGN - PREFIX_BYTES;
  const prefix = new Uint8Array(PREFIX_BYTES + headerPadded);
  prefix.set(new TextEncoder().encode(magic), 0);
  const view = new DataView(prefix.buffer);
  view.setUint32(8, version, true);
  view.setUint32(12, headerPadded, true);
  prefix.set(headerJson, PREFIX_BYTES);
  prefix.fill(0x20, PREFIX_BYTES + headerJson.byteLength); // pad the JSON with spaces
  const data = new Uint8Array(dataBytes);
  for (let i = 0; i < tensors.length; i++) {
    const v = tensors[i].value;
    data.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), entries[i].offset);
  }
  writeFileAtomic(path, [prefix, data]);
}

export interface TensorFile {
  readonly version: number;
  readonly meta: unknown;
  readonly tensors: ReadonlyMap<string, TensorData>;
}

function isEntry(x: unknown): x is TensorEntry {
  if (typeof x !== 'object' || x === null) return false;
  const e = x as Record<string, unknown>;
  return (
    typeof e.name === 'string' &&
    typeof e.dtype === 'string' &&
    e.dtype in BYTES &&
    Number.isSafeInteger(e.length) &&
    (e.length as number) >= 0 &&
    Number.isSafeInteger(e.offset) &&
    (e.offset as number) >= 0
  );
}

/** Reads and validates a tensor file written by writeTensorFile with the given magic. */
export function readTensorFile(
  path: string,
  magic: string,
  supportedVersions: readonly number[],
): TensorFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new TensorFileError(path, `cannot read: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (bytes.byteLength < PREFIX_BYTES) {
    throw new TensorFileError(
      path,
      `file too short: ${bytes.byteLength} bytes, expected at least ${PREFIX_BYTES}`,
    );
  }
  const foundMagic = new TextDecoder('latin1').decode(bytes.subarray(0, 8));
  if (foundMagic !== magic) {
    throw new TensorFileError(path, `bad magic: expected "${magic}", found ${JSON.stringify(foundMagic)}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (!supportedVersions.includes(version)) {
    throw new TensorFileError(
      path,
      `unsupported format version ${version}; this build reads version ${supportedVersions.join(', ')}`,
    );
  }
  const headerLength = view.getUint32(12, true);
  if (PREFIX_BYTES + headerLength > bytes.byteLength) {
    throw new TensorFileError(
      path,
      `header length ${headerLength} runs past the end of the file (${bytes.byteLength} bytes)`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength)));
  } catch {
    throw new TensorFileError(path, 'header is not valid JSON');
  }
  if (
    typeof header !== 'object' ||
    header === null ||
    !Array.isArray((header as { tensors?: unknown }).tensors)
  ) {
    throw new TensorFileError(path, 'header has no "tensors" list');
  }
  const dataStart = PREFIX_BYTES + headerLength;
  const dataBytes = bytes.byteLength - dataStart;
  const tensors = new Map<string, TensorData>();
  for (const entry of (header as { tensors: unknown[] }).tensors) {
    if (!isEntry(entry)) throw new TensorFileError(path, `malformed tensor entry ${JSON.stringify(entry)}`);
    const byteLength = entry.length * BYTES[entry.dtype];
    if (entry.offset % ALIGN !== 0 || entry.offset + byteLength > dataBytes) {
      throw new TensorFileError(
        path,
        `tensor "${entry.name}" (${entry.dtype} x ${entry.length} at offset ${entry.offset}) lies outside the ${dataBytes}-byte data section`,
      );
    }
    if (tensors.has(entry.name)) throw new TensorFileError(path, `tensor "${entry.name}" appears twice`);
    const value = construct(entry.dtype, entry.length);
    new Uint8Array(value.buffer).set(
      bytes.subarray(dataStart + entry.offset, dataStart + entry.offset + byteLength),
    );
    tensors.set(entry.name, value);
  }
  return { version, meta: (header as { meta?: unknown }).meta ?? null, tensors };
}
