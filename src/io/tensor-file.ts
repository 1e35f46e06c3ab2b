/**
 * A small container for named tensors plus a JSON header, shared by checkpoints (docs/architecture.md,
 * "Checkpoints and exports"):
 *
 *   bytes 0..7    magic (8 ASCII bytes, e.g. "ONEBITCK")
 *   bytes 8..11   format version (uint32 little-endian)
 *   bytes 12..15  header length H in bytes (uint32 LE)
 *   from version 3 (CHECKSUM_VERSION) on:
 *   bytes 16..19  CRC32C of the H header bytes (uint32 LE)
 *   then H bytes of UTF-8 JSON, space-padded so that the data section starts at a multiple of 8:
 *     { meta: <any JSON>, tensors: [{ name, dtype, length, offset, crc32c }] }
 *   then the data section; each tensor at `offset` bytes from its start (8-byte aligned), little-endian.
 *
 * Versions 1 and 2 have the same layout without the checksum bytes (the JSON starts at byte 16) and without
 * `crc32c` in the tensor entries. From version 3 the reader checks the header's checksum before it parses the
 * JSON and each tensor's before it returns the tensor, so a damaged file is refused by name (the file, and
 * the header or the tensor) rather than loaded with wrong numbers. The version number is the caller's
 * (checkpoint.ts); the container only decides from it whether checksums are present. Every size is checked
 * against the file's length before anything is allocated, and tensors may not overlap, so a file never makes
 * the reader allocate more than its own size.
 */
import { TensorFileError } from '../errors.js';
import { nodeFs } from '../node-builtins.js';
import CRC32C from 'crc-32/crc32c.js';
import { writeFileAtomic } from './atomic.js';

import type { NamedTensor, TensorData, TensorDType } from '../tensor/tensor-data.js';

export type { NamedTensor, TensorData, TensorDType } from '../tensor/tensor-data.js';

/** Bytes per element of each tensor dtype. */
export const DTYPE_BYTES: Readonly<Record<TensorDType, number>> = {
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
  /** CRC32C of the tensor's bytes; from version CHECKSUM_VERSION on. */
  crc32c?: number;
}

/** The first container version whose files carry CRC32C checksums of the header and of every tensor. */
export const CHECKSUM_VERSION = 3;
const ALIGN = 8;

/** Bytes before the JSON header: magic, version, header length, and from CHECKSUM_VERSION the header's CRC32C. */
function prefixBytes(version: number): number {
  return version >= CHECKSUM_VERSION ? 20 : 16;
}

/** CRC32C (Castagnoli) of `bytes`, as an unsigned 32-bit integer. */
export function crc32c(bytes: Uint8Array): number {
  return CRC32C.buf(bytes, 0) >>> 0;
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

function bytesOf(value: TensorData): Uint8Array {
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** The bytes of a tensor file (see the top of this file); `version` below CHECKSUM_VERSION writes no checksums. */
export function encodeTensorFile(
  magic: string,
  version: number,
  meta: unknown,
  tensors: readonly NamedTensor[],
): Uint8Array {
  if (magic.length !== 8) throw new RangeError('magic must be 8 ASCII characters');
  const checked = version >= CHECKSUM_VERSION;
  const prefixLength = prefixBytes(version);
  const entries: TensorEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    const dtype = dtypeOf(t.value);
    const entry: TensorEntry = { name: t.name, dtype, length: t.value.length, offset };
    if (checked) entry.crc32c = crc32c(bytesOf(t.value));
    entries.push(entry);
    offset += Math.ceil(t.value.byteLength / ALIGN) * ALIGN;
  }
  const headerJson = new TextEncoder().encode(JSON.stringify({ meta, tensors: entries }));
  const dataStart = Math.ceil((prefixLength + headerJson.byteLength) / ALIGN) * ALIGN;
  const headerLength = dataStart - prefixLength;
  const bytes = new Uint8Array(dataStart + offset);
  bytes.set(new TextEncoder().encode(magic), 0);
  const view = new DataView(bytes.buffer);
  view.setUint32(8, version, true);
  view.setUint32(12, headerLength, true);
  bytes.set(headerJson, prefixLength);
  bytes.fill(0x20, prefixLength + headerJson.byteLength, dataStart); // pad the JSON with spaces
  if (checked) view.setUint32(16, crc32c(bytes.subarray(prefixLength, dataStart)), true);
  for (let i = 0; i < tensors.length; i++)
    bytes.set(bytesOf(tensors[i].value), dataStart + entries[i].offset);
  return bytes;
}

/** Writes the tensor file atomically (temporary file, then rename). */
export function writeTensorFile(
  path: string,
  magic: string,
  version: number,
  meta: unknown,
  tensors: readonly NamedTensor[],
): void {
  writeFileAtomic(path, [encodeTensorFile(magic, version, meta, tensors)]);
}

export interface TensorFile {
  readonly version: number;
  readonly meta: unknown;
  readonly tensors: ReadonlyMap<string, TensorData>;
}

function isEntry(x: unknown, checked: boolean): x is TensorEntry {
  if (typeof x !== 'object' || x === null) return false;
  const e = x as Record<string, unknown>;
  return (
    typeof e.name === 'string' &&
    typeof e.dtype === 'string' &&
    Object.hasOwn(DTYPE_BYTES, e.dtype) &&
    Number.isSafeInteger(e.length) &&
    (e.length as number) >= 0 &&
    Number.isSafeInteger(e.offset) &&
    (e.offset as number) >= 0 &&
    (!checked ||
      (Number.isSafeInteger(e.crc32c) && (e.crc32c as number) >= 0 && (e.crc32c as number) <= 0xffffffff))
  );
}

/** Reads the file at `path` and decodes it with `decodeTensorFile`. */
export function readTensorFile(
  path: string,
  magic: string,
  supportedVersions: readonly number[],
): TensorFile {
  let bytes: Uint8Array;
  try {
    bytes = nodeFs('reading a file').readFileSync(path);
  } catch (error) {
    throw new TensorFileError(path, `cannot read: ${error instanceof Error ? error.message : String(error)}`);
  }
  return decodeTensorFile(bytes, path, magic, supportedVersions);
}

/**
 * Validates and decodes the bytes of a tensor file written with the given magic, in one of the supported
 * versions; `path` names the file in errors. Every fault is a TensorFileError naming the file; a checksum
 * mismatch also names the header or the tensor.
 */
export function decodeTensorFile(
  bytes: Uint8Array,
  path: string,
  magic: string,
  supportedVersions: readonly number[],
): TensorFile {
  if (bytes.byteLength < 16) {
    throw new TensorFileError(path, `file too short: ${bytes.byteLength} bytes, expected at least 16`);
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
  const checked = version >= CHECKSUM_VERSION;
  const prefixLength = prefixBytes(version);
  if (bytes.byteLength < prefixLength) {
    throw new TensorFileError(
      path,
      `file too short: ${bytes.byteLength} bytes, a version-${version} file has at least ${prefixLength}`,
    );
  }
  const headerLength = view.getUint32(12, true);
  if (prefixLength + headerLength > bytes.byteLength) {
    throw new TensorFileError(
      path,
      `header length ${headerLength} runs past the end of the file (${bytes.byteLength} bytes)`,
    );
  }
  const headerBytes = bytes.subarray(prefixLength, prefixLength + headerLength);
  if (checked) {
    const stored = view.getUint32(16, true);
    const computed = crc32c(headerBytes);
    if (stored !== computed) {
      throw new TensorFileError(
        path,
        `header fails its CRC32C checksum (stored ${hex32(stored)}, computed ${hex32(computed)}): the file is damaged`,
      );
    }
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(headerBytes));
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
  const dataStart = prefixLength + headerLength;
  const dataBytes = bytes.byteLength - dataStart;
  // Every entry is checked (well-formed, inside the data section, unique, disjoint) before anything is copied.
  const entries: TensorEntry[] = [];
  const names = new Set<string>();
  for (const entry of (header as { tensors: unknown[] }).tensors) {
    if (!isEntry(entry, checked)) {
      const text = JSON.stringify(entry) ?? String(entry);
      throw new TensorFileError(
        path,
        `malformed tensor entry ${text.length > 200 ? `${text.slice(0, 197)}...` : text}`,
      );
    }
    const byteLength = entry.length * DTYPE_BYTES[entry.dtype];
    if (entry.offset % ALIGN !== 0 || entry.offset + byteLength > dataBytes) {
      throw new TensorFileError(
        path,
        `tensor "${entry.name}" (${entry.dtype} x ${entry.length} at offset ${entry.offset}) lies outside the ${dataBytes}-byte data section`,
      );
    }
    if (names.has(entry.name)) throw new TensorFileError(path, `tensor "${entry.name}" appears twice`);
    names.add(entry.name);
    entries.push(entry);
  }
  const sorted = [...entries].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (prev.offset + prev.length * DTYPE_BYTES[prev.dtype] > sorted[i].offset) {
      throw new TensorFileError(path, `tensors "${prev.name}" and "${sorted[i].name}" overlap`);
    }
  }
  const tensors = new Map<string, TensorData>();
  for (const entry of entries) {
    const start = dataStart + entry.offset;
    const stored = bytes.subarray(start, start + entry.length * DTYPE_BYTES[entry.dtype]);
    if (checked) {
      const computed = crc32c(stored);
      if (computed !== entry.crc32c) {
        throw new TensorFileError(
          path,
          `tensor "${entry.name}" fails its CRC32C checksum (stored ${hex32(entry.crc32c as number)}, computed ${hex32(computed)}): the file is damaged`,
        );
      }
    }
    const value = construct(entry.dtype, entry.length);
    new Uint8Array(value.buffer).set(stored);
    tensors.set(entry.name, value);
  }
  return { version, meta: (header as { meta?: unknown }).meta ?? null, tensors };
}
