/**
 * A minimal reader for ustar archives (POSIX.1-1988 tar, as GNU tar writes), enough to unpack the
 * official CIFAR tarballs without a dependency.
 *
 * Each member is a 512-byte header (name, octal size, checksum, type flag, ...) followed by its data
 * padded to a multiple of 512 bytes; the archive ends with a zero block. Only regular files are
 * returned; directories, links and pax/GNU extension records are skipped. Every header's checksum and
 * size are checked against the bytes present, and member data is returned as views (no copies).
 */
import { DataFormatError } from '../errors.js';

const BLOCK = 512;

export interface TarEntry {
  /** Path inside the archive (ustar prefix joined with the name). */
  readonly name: string;
  readonly data: Uint8Array;
}

/** NUL-terminated ASCII field. */
function text(bytes: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && bytes[end] !== 0) end++;
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('utf8');
}

/** Octal number field, terminated by NUL or space; null when it is not octal. */
function octal(bytes: Uint8Array, start: number, length: number): number | null {
  const s = text(bytes, start, length).trim();
  return /^[0-7]+$/.test(s) ? parseInt(s, 8) : null;
}

function isZeroBlock(bytes: Uint8Array, at: number): boolean {
  for (let i = at; i < at + BLOCK; i++) if (bytes[i] !== 0) return false;
  return true;
}

/** Parse a (decompressed) tar archive. `file` only names the source in errors. */
export function parseTar(bytes: Uint8Array, file: string): TarEntry[] {
  const entries: TarEntry[] = [];
  let at = 0;
  while (true) {
    if (at + BLOCK > bytes.length) {
      throw new DataFormatError(
        file,
        `tar header at byte ${at}`,
        `${BLOCK} bytes or an end-of-archive block`,
        `${bytes.length - at} bytes (truncated archive)`,
      );
    }
    if (isZeroBlock(bytes, at)) return entries;

    // The checksum is the byte sum of the header with its own 8-byte field counted as spaces.
    let sum = 0;
    for (let i = at; i < at + BLOCK; i++) sum += i >= at + 148 && i < at + 156 ? 0x20 : bytes[i];
    const recorded = octal(bytes, at + 148, 8);
    if (recorded !== sum) {
      throw new DataFormatError(
        file,
        `tar header checksum at byte ${at}`,
        `${sum}`,
        recorded === null ? 'no octal number' : `${recorded}`,
      );
    }
    const magic = text(bytes, at + 257, 6);
    if (!magic.startsWith('ustar')) {
      throw new DataFormatError(file, `tar header magic at byte ${at}`, "'ustar'", `'${magic}'`);
    }
    if ((bytes[at + 124] & 0x80) !== 0) {
      throw new DataFormatError(
        file,
        `tar member size at byte ${at}`,
        'an octal size',
        'a base-256 size (member over 8 GiB)',
      );
    }
    const size = octal(bytes, at + 124, 12);
    if (size === null) {
      throw new DataFormatError(
        file,
        `tar member size at byte ${at}`,
        'an octal number',
        `'${text(bytes, at + 124, 12)}'`,
      );
    }
    const dataStart = at + BLOCK;
    if (dataStart + size > bytes.length) {
      throw new DataFormatError(
        file,
        `tar member at byte ${at}`,
        `${size} data bytes`,
        `${bytes.length - dataStart} (truncated archive)`,
      );
    }
    const type = String.fromCharCode(bytes[at + 156]);
    if (type === '0' || type === '\0') {
      const name = text(bytes, at, 100);
      const prefix = text(bytes, at + 345, 155);
      entries.push({
        name: prefix === '' ? name : `${prefix}/${name}`,
        data: bytes.subarray(dataStart, dataStart + size),
      });
    }
    at = dataStart + Math.ceil(size / BLOCK) * BLOCK;
  }
}

function writeOctal(header: Uint8Array, start: number, length: number, value: number): void {
  // length - 1 octal digits, zero-padded, then NUL.
  const digits = value.toString(8).padStart(length - 1, '0');
  if (digits.length > length - 1)
    throw new RangeError(`tar: ${value} does not fit a ${length}-byte octal field`);
  for (let i = 0; i < length - 1; i++) header[start + i] = digits.charCodeAt(i);
  header[start + length - 1] = 0;
}

/** Encode regular files as a ustar archive (the inverse of `parseTar`); used to write fixtures. */
export function encodeTar(entries: readonly TarEntry[]): Uint8Array {
  let size = 2 * BLOCK; // end-of-archive marker
  for (const e of entries) size += BLOCK + Math.ceil(e.data.length / BLOCK) * BLOCK;
  const out = new Uint8Array(size);
  let at = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    if (name.length > 100) throw new RangeError(`tar: name longer than 100 bytes: ${e.name}`);
    const header = out.subarray(at, at + BLOCK);
    header.set(name, 0);
    writeOctal(header, 100, 8, 0o644);
    writeOctal(header, 108, 8, 0);
    writeOctal(header, 116, 8, 0);
    writeOctal(header, 124, 12, e.data.length);
    writeOctal(header, 136, 12, 0);
    header[156] = 0x30; // '0': regular file
    header.set(Buffer.from('ustar\x0000', 'latin1'), 257);
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += header[i];
    writeOctal(header, 148, 7, sum);
    header[155] = 0x20;
    out.set(e.data, at + BLOCK);
    at += BLOCK + Math.ceil(e.data.length / BLOCK) * BLOCK;
  }
  return out;
}
