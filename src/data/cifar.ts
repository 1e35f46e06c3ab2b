/**
 * The binary versions of CIFAR-10 and CIFAR-100 (https://www.cs.toronto.edu/~kriz/cifar.html).
 *
 * A file is a sequence of fixed-size records and has no header:
 * - CIFAR-10 (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`): 1 label byte (0..9), then
 *   3072 pixel bytes;
 * - CIFAR-100 (`train.bin`, `test.bin`): 1 coarse label byte (0..19), 1 fine label byte (0..99), then
 *   3072 pixel bytes.
 * The pixels are 1024 red, 1024 green, 1024 blue values, each a row-major 32 x 32 plane: already the
 * CHW order the rest of onebit uses, so records are copied without reordering. With no header, the only
 * structural check is that the file is a whole number of records; labels are range-checked.
 */
import { DataFormatError } from '../errors.js';
import { asUint8, DEFAULT_MAX_BYTES, readMaybeGzip } from './gzip.js';
import { checkLabels } from './idx.js';

export type CifarVariant = 'cifar10' | 'cifar100';

/** Bytes of one 3 x 32 x 32 image. */
export const CIFAR_IMAGE_BYTES = 3 * 32 * 32;
export const CIFAR_SHAPE = [3, 32, 32] as const;
/** Number of classes: CIFAR-10's labels, CIFAR-100's fine labels, CIFAR-100's coarse labels. */
export const CIFAR10_CLASSES = 10;
export const CIFAR100_FINE_CLASSES = 100;
export const CIFAR100_COARSE_CLASSES = 20;

/** Label bytes before the pixels of each record. */
function labelBytes(variant: CifarVariant): number {
  return variant === 'cifar10' ? 1 : 2;
}

/** Bytes per record: 3073 for CIFAR-10, 3074 for CIFAR-100. */
export function cifarRecordBytes(variant: CifarVariant): number {
  return labelBytes(variant) + CIFAR_IMAGE_BYTES;
}

/** Decoded records. For CIFAR-10 `coarseLabels` is null and `labels` are the 10 classes. */
export interface CifarArrays {
  readonly images: Uint8Array;
  /** CIFAR-10 label, or CIFAR-100 fine label. */
  readonly labels: Uint8Array;
  /** CIFAR-100 coarse (superclass) label; null for CIFAR-10. */
  readonly coarseLabels: Uint8Array | null;
  readonly count: number;
}

/** Number of whole records in a file of `size` bytes; throws if it is not a positive whole number. */
function recordCount(size: number, file: string, variant: CifarVariant): number {
  const record = cifarRecordBytes(variant);
  if (size === 0 || size % record !== 0) {
    const whole = Math.floor(size / record);
    throw new DataFormatError(
      file,
      'file size',
      `a positive multiple of the ${variant} record size ${record} bytes`,
      `${size} bytes (${whole} whole record${whole === 1 ? '' : 's'} + ${size % record} bytes${size === 0 ? '' : ': truncated record'})`,
    );
  }
  return size / record;
}

/** Copy records into the output arrays at item offset `at`, checking labels. */
function decodeInto(
  bytes: Uint8Array,
  file: string,
  variant: CifarVariant,
  out: CifarArrays,
  at: number,
): number {
  const n = recordCount(bytes.length, file, variant);
  const record = cifarRecordBytes(variant);
  const skip = labelBytes(variant);
  for (let i = 0; i < n; i++) {
    const r = i * record;
    if (variant === 'cifar10') {
      out.labels[at + i] = bytes[r];
    } else {
      (out.coarseLabels as Uint8Array)[at + i] = bytes[r];
      out.labels[at + i] = bytes[r + 1];
    }
    out.images.set(bytes.subarray(r + skip, r + record), (at + i) * CIFAR_IMAGE_BYTES);
  }
  // Check the labels just written, so the error names this file and the item's index within it.
  if (variant === 'cifar10') {
    checkLabels(out.labels.subarray(at, at + n), CIFAR10_CLASSES, file);
  } else {
    checkLabels(
      (out.coarseLabels as Uint8Array).subarray(at, at + n),
      CIFAR100_COARSE_CLASSES,
      file,
      'coarse label',
    );
    checkLabels(out.labels.subarray(at, at + n), CIFAR100_FINE_CLASSES, file, 'fine label');
  }
  return n;
}

function allocate(variant: CifarVariant, count: number): CifarArrays {
  return {
    images: new Uint8Array(count * CIFAR_IMAGE_BYTES),
    labels: new Uint8Array(count),
    coarseLabels: variant === 'cifar100' ? new Uint8Array(count) : null,
    count,
  };
}

/** Decode the bytes of one CIFAR binary file. `file` only names the source in errors. */
export function parseCifar(bytes: Uint8Array, file: string, variant: CifarVariant): CifarArrays {
  const out = allocate(variant, recordCount(bytes.length, file, variant));
  decodeInto(bytes, file, variant, out, 0);
  return out;
}

/**
 * Read several CIFAR binary files (e.g. the five training batches) into one set of arrays, in order.
 * Every file's size is checked before the output is allocated. Gzipped files are accepted too.
 */
export async function readCifarFiles(
  paths: readonly string[],
  variant: CifarVariant,
  options: { maxBytes?: number } = {},
): Promise<CifarArrays> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const contents: Uint8Array[] = [];
  let total = 0;
  for (const path of paths) {
    const bytes = await readMaybeGzip(path, maxBytes);
    total += recordCount(bytes.length, path, variant);
    contents.push(bytes);
  }
  const out = allocate(variant, total);
  let at = 0;
  for (let i = 0; i < paths.length; i++) at += decodeInto(contents[i], paths[i], variant, out, at);
  return out;
}

/** Encode records (the inverse of `parseCifar`); used to write fixtures. */
export function encodeCifar(
  variant: CifarVariant,
  images: Uint8Array,
  labels: Uint8Array,
  coarseLabels: Uint8Array | null = null,
): Uint8Array {
  const n = labels.length;
  if (images.length !== n * CIFAR_IMAGE_BYTES) {
    throw new RangeError(
      `encodeCifar: ${n} labels need ${n * CIFAR_IMAGE_BYTES} image bytes, got ${images.length}`,
    );
  }
  if (variant === 'cifar100' && (coarseLabels === null || coarseLabels.length !== n)) {
    throw new RangeError(`encodeCifar: cifar100 needs ${n} coarse labels`);
  }
  const record = cifarRecordBytes(variant);
  const skip = labelBytes(variant);
  const out = new Uint8Array(n * record);
  for (let i = 0; i < n; i++) {
    const r = i * record;
    if (variant === 'cifar10') {
      out[r] = labels[i];
    } else {
      out[r] = (coarseLabels as Uint8Array)[i];
      out[r + 1] = labels[i];
    }
    out.set(asUint8(images).subarray(i * CIFAR_IMAGE_BYTES, (i + 1) * CIFAR_IMAGE_BYTES), r + skip);
  }
  return out;
}
