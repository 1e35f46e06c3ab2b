/**
 * What kind of file a command was given, from its first bytes, before the loader reads it: a command that
 * takes a checkpoint (magic "ONEBITCK", io/checkpoint.ts) and gets an exported model (magic "ONEBITNN",
 * engine/format.ts), or the other way round, says so and names the command that takes it; any other file is
 * described (its first bytes, and what they look like) next to the magic that was expected.
 */
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { ConfigError, OnebitFormatError, TensorFileError } from '../errors.js';
import { CHECKPOINT_MAGIC } from '../io/checkpoint.js';
import { ONEBIT_MAGIC } from '../engine/format.js';
import { CHECKPOINT_FILE } from '../train/trainer.js';

export type FileKind =
  'checkpoint' | 'model' | 'png' | 'safetensors' | 'json' | 'gzip' | 'zip' | 'text' | 'empty' | 'unknown';

export interface FileHead {
  readonly kind: FileKind;
  /** The file's first bytes (at most 16). */
  readonly head: Uint8Array;
  /** The file's size in bytes. */
  readonly size: number;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function startsWith(head: Uint8Array, bytes: readonly number[]): boolean {
  return head.length >= bytes.length && bytes.every((b, i) => head[i] === b);
}

function latin1(head: Uint8Array, length: number): string {
  let s = '';
  for (let i = 0; i < Math.min(length, head.length); i++) s += String.fromCharCode(head[i]);
  return s;
}

/** The kind of a file from its first bytes. */
export function kindOf(head: Uint8Array): FileKind {
  if (head.length === 0) return 'empty';
  const magic = latin1(head, 8);
  if (magic === CHECKPOINT_MAGIC) return 'checkpoint';
  if (magic === ONEBIT_MAGIC) return 'model';
  if (startsWith(head, PNG_SIGNATURE)) return 'png';
  if (startsWith(head, [0x1f, 0x8b])) return 'gzip';
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04])) return 'zip';
  // safetensors: a little-endian uint64 header length, then the JSON header.
  if (head.length >= 9 && head[8] === 0x7b && head[6] === 0 && head[7] === 0) return 'safetensors';
  const text = latin1(head, head.length);
  if (/^\s*[[{]/.test(text)) return 'json';
  if (/^[\t\n\r\x20-\x7e]+$/.test(text)) return 'text';
  return 'unknown';
}

/** Reads the first 16 bytes of `path` (a file that exists) and tells its kind. */
export function sniffFile(path: string): FileHead {
  const fd = openSync(path, 'r');
  try {
    const head = new Uint8Array(16);
    const n = readSync(fd, head, 0, head.length, 0);
    return { kind: kindOf(head.subarray(0, n)), head: head.subarray(0, n), size: statSync(path).size };
  } finally {
    closeSync(fd);
  }
}

const KIND_NAMES: Readonly<Record<FileKind, string>> = {
  checkpoint: `a training checkpoint (magic "${CHECKPOINT_MAGIC}")`,
  model: `an exported .onebit model (magic "${ONEBIT_MAGIC}")`,
  png: 'a PNG image',
  safetensors: 'a safetensors file (as onebit export --format safetensors writes)',
  json: 'JSON text',
  gzip: 'a gzip archive',
  zip: 'a zip archive',
  text: 'text',
  empty: 'an empty file',
  unknown: 'no format onebit knows',
};

/** "bytes 89 50 4e 47 ... ("\u0089PNG..."), which looks like a PNG image": what a file's first bytes are. */
export function describeFile(path: string, file: FileHead): string {
  if (file.kind === 'empty') return 'an empty file (0 bytes)';
  const shown = file.head.subarray(0, 8);
  const hex = Array.from(shown, (b) => b.toString(16).padStart(2, '0')).join(' ');
  let looks = KIND_NAMES[file.kind];
  // An ONNX model is a protobuf message; its first field (ir_version) starts with the byte 0x08.
  if (file.kind === 'unknown' && extname(path).toLowerCase() === '.onnx' && file.head[0] === 0x08)
    looks = 'an ONNX model (as onebit export --format onnx writes)';
  const size = file.size < 8 ? ` (the whole file: ${file.size} bytes)` : '';
  return `bytes ${hex} (${JSON.stringify(latin1(shown, 8))})${size}, which looks like ${looks}`;
}

/** sniffFile, with a read error (permissions, ...) turned into the caller's typed error. */
function sniffOr(path: string, fail: (detail: string) => Error): FileHead {
  try {
    return sniffFile(path);
  } catch (error) {
    throw fail(`cannot read: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function predictHint(path: string): string {
  return `run it with onebit predict ${path} --data <name> or onebit predict ${path} --image <file.png>`;
}

/**
 * The checkpoint a command reads for its `<checkpoint>` argument: the file itself, or `CHECKPOINT_FILE` in a
 * run folder. Anything else is refused with what it is: an exported model (and that `onebit predict` runs
 * it), a folder without a checkpoint (and which checkpoints it holds), or another file (its first bytes
 * against the magic expected).
 */
export function checkpointArgument(path: string, command: string): string {
  if (!existsSync(path)) {
    throw new TensorFileError(
      path,
      `no such file or folder (onebit ${command} takes a checkpoint written by onebit train, or its run folder)`,
    );
  }
  if (statSync(path).isDirectory()) {
    const inside = join(path, CHECKPOINT_FILE);
    if (existsSync(inside) && statSync(inside).isFile()) return checkpointArgument(inside, command);
    const others = readdirSync(path)
      .filter((name) => name.endsWith('.ckpt'))
      .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    throw new TensorFileError(
      path,
      `a folder without ${CHECKPOINT_FILE}: onebit ${command} takes a checkpoint file, or a run folder ` +
        `holding ${CHECKPOINT_FILE} (as onebit train writes)` +
        (others.length > 0 ? `; this folder holds ${others.join(', ')}: give one of them` : ''),
    );
  }
  const file = sniffOr(path, (detail) => new TensorFileError(path, detail));
  if (file.kind === 'checkpoint') return path;
  if (file.kind === 'model') {
    throw new TensorFileError(
      path,
      `this is an exported model file (magic "${ONEBIT_MAGIC}"), not a training checkpoint ` +
        `(magic "${CHECKPOINT_MAGIC}"), so onebit ${command} cannot read it; ${predictHint(path)}`,
    );
  }
  throw new TensorFileError(
    path,
    `not a onebit checkpoint: expected the magic "${CHECKPOINT_MAGIC}" (a checkpoint written by onebit train), ` +
      `found ${describeFile(path, file)}`,
  );
}

/**
 * Checks the `<model>` argument of predict and bench before the .onebit reader runs: a training checkpoint
 * is refused with how to export or evaluate it, any other file with its first bytes against the magic
 * expected.
 */
export function modelArgument(path: string, command: string): string {
  const expected = 'a .onebit model file written by onebit export';
  if (!existsSync(path)) throw new ConfigError('<model>', expected, `${path}, which does not exist`);
  if (statSync(path).isDirectory()) {
    const run = existsSync(join(path, CHECKPOINT_FILE))
      ? `; it is a run folder: export its checkpoint first with onebit export ${join(path, CHECKPOINT_FILE)} --out m.onebit`
      : '';
    throw new ConfigError('<model>', expected, `${path}, which is a folder${run}`);
  }
  const file = sniffOr(path, (detail) => new ConfigError('<model>', expected, `${path}: ${detail}`));
  if (file.kind === 'model') return path;
  if (file.kind === 'checkpoint') {
    throw new OnebitFormatError(
      'bad-magic',
      path,
      `this is a training checkpoint (magic "${CHECKPOINT_MAGIC}"), not an exported model ` +
        `(magic "${ONEBIT_MAGIC}"), so onebit ${command} cannot run it: export it first with ` +
        `onebit export ${path} --out m.onebit, or evaluate it with onebit eval ${path}`,
    );
  }
  throw new OnebitFormatError(
    'bad-magic',
    path,
    `not a .onebit model: expected the magic "${ONEBIT_MAGIC}" (a file written by onebit export --format onebit), ` +
      `found ${describeFile(path, file)}`,
  );
}
