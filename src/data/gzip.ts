/**
 * Reading data files that may or may not be gzip-compressed.
 *
 * Compression is detected from the content (the gzip magic bytes 0x1f 0x8b), not the file name, so a
 * renamed or pre-decompressed file still loads. Decompression has an output cap, because a gzip header
 * says nothing trustworthy about the decompressed size.
 */
import { DataFormatError } from '../errors.js';
import { readFile, stat } from 'node:fs/promises';
import { gunzip } from 'node:zlib';

/** Default cap on a decompressed data file: far above CIFAR's 180 MB, far below what breaks a process. */
export const DEFAULT_MAX_BYTES = 1 << 30;

/** True when the bytes start with the gzip magic number. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** A plain Uint8Array view of a Buffer, so `.slice()` copies (Buffer's does not) and types stay simple. */
export function asUint8(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Gunzip `bytes`; every zlib failure becomes a DataFormatError naming `file`. */
export function gunzipChecked(
  bytes: Uint8Array,
  file: string,
  maxBytes = DEFAULT_MAX_BYTES,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    gunzip(bytes, { maxOutputLength: maxBytes }, (err, out) => {
      if (err === null) {
        resolve(asUint8(out));
      } else if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        reject(new DataFormatError(file, 'decompressed size', `at most ${maxBytes} bytes`, 'more'));
      } else {
        reject(new DataFormatError(file, 'gzip stream', 'valid gzip data', `corrupt data (${err.message})`));
      }
    });
  });
}

/** The content of a file already read: gunzipped (output capped at `maxBytes`) when it is gzip, else as is. */
export function decodeMaybeGzip(
  raw: Uint8Array,
  file: string,
  maxBytes = DEFAULT_MAX_BYTES,
): Promise<Uint8Array> {
  return isGzip(raw) ? gunzipChecked(raw, file, maxBytes) : Promise.resolve(asUint8(raw));
}

/** Read a file, gunzipping it when its content is gzip. Both the raw and decompressed sizes are capped. */
export async function readMaybeGzip(path: string, maxBytes = DEFAULT_MAX_BYTES): Promise<Uint8Array> {
  const info = await stat(path);
  if (info.size > maxBytes) {
    throw new DataFormatError(path, 'file size', `at most ${maxBytes} bytes`, `${info.size} bytes`);
  }
  return decodeMaybeGzip(asUint8(await readFile(path)), path, maxBytes);
}
