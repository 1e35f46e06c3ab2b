/**
 * The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS").
 *
 * Layout, all integers big-endian: magic `0x00 0x00 <type> <ndim>`, then `ndim` uint32 dimensions, then
 * the elements in row-major order. Only type 0x08 (unsigned byte) is used by the data sets we load, so
 * other types are rejected by name rather than half-supported. Every size is checked against the bytes
 * actually present before anything is sized from it; the element data is returned as a view, never
 * allocated from header values.
 */
import { DataFormatError } from '../errors.js';
import { asUint8, DEFAULT_MAX_BYTES, readMaybeGzip } from './gzip.js';

/** IDX element type code for unsigned bytes. */
export const IDX_UBYTE = 0x08;

const IDX_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

/** A decoded IDX array: its dimensions and a view of its bytes (row-major). */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

function hex(value: number, digits: number): string {
  return '0x' + value.toString(16).padStart(digits, '0');
}

/**
 * Decode IDX bytes (already decompressed). `file` only names the source in errors.
 * With `ndim` given, the magic number must announce exactly that many dimensions.
 */
export function parseIdx(bytes: Uint8Array, file: string, options: { ndim?: number } = {}): IdxArray {
  const { ndim: wantNdim } = options;
  const expectedMagic =
    wantNdim === undefined ? '0x000008nn (nn = number of dimensions)' : hex(0x800 + wantNdim, 8);
  if (bytes.length < 4) {
    throw new DataFormatError(file, 'header', 'at least 4 bytes', `${bytes.length} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataFormatError(file, 'bad magic number', expectedMagic, hex(magic, 8));
  }
  const type = bytes[2];
  if (type !== IDX_UBYTE) {
    const typeName = IDX_TYPE_NAMES[type] ?? 'not an IDX type';
    throw new DataFormatError(
      file,
      'element type',
      `${hex(IDX_UBYTE, 2)} (unsigned byte)`,
      `${hex(type, 2)} (${typeName})`,
    );
  }
  const ndim = bytes[3];
  if (wantNdim !== undefined && ndim !== wantNdim) {
    throw new DataFormatError(
      file,
      'bad magic number',
      expectedMagic,
      `${hex(magic, 8)} (${ndim} dimension${ndim === 1 ? '' : 's'})`,
    );
  }
  if (ndim === 0) {
    throw new DataFormatError(file, 'number of dimensions', 'at least 1', '0');
  }
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) {
    throw new DataFormatError(
      file,
      'header',
      `${headerBytes} bytes (4 + 4 x ${ndim} dimensions)`,
      `${bytes.length} bytes (truncated file)`,
    );
  }
  const dims: number[] = [];
  // BigInt so that a hostile header (255 dimensions of 2^32 - 1) cannot overflow the size check.
  let payload = 1n;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    if (d === 0) throw new DataFormatError(file, `dimension ${i}`, 'a size > 0', '0');
    dims.push(d);
    payload *= BigInt(d);
  }
  const expectedSize = BigInt(headerBytes) + payload;
  if (expectedSize !== BigInt(bytes.length)) {
    const what = expectedSize > BigInt(bytes.length) ? 'truncated file' : 'trailing bytes';
    throw new DataFormatError(
      file,
      'file size',
      `${expectedSize} bytes (${headerBytes}-byte header + ${dims.join(' x ')})`,
      `${bytes.length} bytes (${what})`,
    );
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Encode an unsigned-byte IDX array (the inverse of `parseIdx`); used to write fixtures and exports. */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  if (dims.length === 0 || dims.length > 255)
    throw new RangeError(`IDX needs 1..255 dimensions, got ${dims.length}`);
  let size = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d <= 0 || d > 0xffffffff) throw new RangeError(`invalid IDX dimension ${d}`);
    size *= d;
  }
  if (size !== data.length)
    throw new RangeError(`IDX data has ${data.length} bytes, dims [${dims.join(', ')}] need ${size}`);
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + size);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x800 + dims.length, false);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, header);
  return out;
}

/** Read and decode an IDX file, raw or gzip (detected from its content). */
export async function readIdxFile(
  path: string,
  options: { ndim?: number; maxBytes?: number } = {},
): Promise<IdxArray> {
  const bytes = await readMaybeGzip(path, options.maxBytes ?? DEFAULT_MAX_BYTES);
  return parseIdx(bytes, path, options);
}

/** Check that every label is a class index below `classes`; names the first offending item. */
export function checkLabels(labels: Uint8Array, classes: number, file: string, what = 'label'): void {
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= classes) {
      throw new DataFormatError(file, `${what} of item ${i}`, `a class index < ${classes}`, `${labels[i]}`);
    }
  }
}

/** Images (N x 1 x H x W) and labels read from a matching pair of IDX files. */
export interface IdxImagesLabels {
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
  readonly count: number;
  readonly shape: readonly [number, number, number];
}

/**
 * Read an images file (3 dimensions: N x H x W) and a labels file (1 dimension: N) and check that they
 * agree and that labels are below `classes`. The returned arrays are owned copies.
 */
export async function readIdxImagesLabels(
  imagesPath: string,
  labelsPath: string,
  options: { classes: number; maxBytes?: number },
): Promise<IdxImagesLabels> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const images = await readMaybeGzip(imagesPath, maxBytes);
  const labels = await readMaybeGzip(labelsPath, maxBytes);
  return decodeIdxImagesLabels(images, labels, imagesPath, labelsPath, options);
}

/** `readIdxImagesLabels` on the (decompressed) bytes of both files; the paths only name them in errors. */
export function decodeIdxImagesLabels(
  imagesBytes: Uint8Array,
  labelsBytes: Uint8Array,
  imagesPath: string,
  labelsPath: string,
  options: { classes: number },
): IdxImagesLabels {
  const images = parseIdx(imagesBytes, imagesPath, { ndim: 3 });
  const labels = parseIdx(labelsBytes, labelsPath, { ndim: 1 });
  const [count, height, width] = images.dims;
  if (labels.dims[0] !== count) {
    throw new DataFormatError(
      labelsPath,
      'item count',
      `${count} (the item count of ${imagesPath})`,
      `${labels.dims[0]}`,
    );
  }
  checkLabels(labels.data, options.classes, labelsPath);
  return {
    images: asUint8(images.data).slice(),
    labels: asUint8(labels.data).slice(),
    count,
    shape: [1, height, width],
  };
}
