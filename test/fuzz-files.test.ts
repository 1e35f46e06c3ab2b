/**
 * Fuzzing the file loaders: 10,000 seeded random mutations each (bit flips, truncations, insertions, zeroed
 * ranges, random values in length fields) of a small valid checkpoint, of IDX image and label files and of
 * CIFAR binary files, raw and gzipped. Every mutant must end in a typed error (an OnebitError subclass naming
 * the file) or a valid load, never another exception, never a hang, and never an allocation its size does
 * not justify. A checkpoint of the current version that loads without its checksums recomputed must load
 * exactly what was saved; part of the checkpoint mutants get their checksums recomputed after the damage, so
 * that the structural checks behind the checksums are fuzzed too, and part are of the version-2 layout,
 * which has no checksums. The .onebit reader has its own fuzz test (src/engine/format.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import CRC32C from 'crc-32/crc32c.js';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import {
  CIFAR_IMAGE_BYTES,
  CIFAR10_CLASSES,
  CIFAR100_COARSE_CLASSES,
  CIFAR100_FINE_CLASSES,
  encodeCifar,
  parseCifar,
  type CifarVariant,
} from '../src/data/cifar.js';
import { decodeMaybeGzip } from '../src/data/gzip.js';
import { decodeIdxImagesLabels, encodeIdx } from '../src/data/idx.js';
import { OnebitError } from '../src/errors.js';
import {
  CHECKPOINT_MAGIC,
  decodeCheckpoint,
  encodeCheckpoint,
  type CheckpointMeta,
} from '../src/io/checkpoint.js';
import { DTYPE_BYTES, encodeTensorFile, type NamedTensor } from '../src/io/tensor-file.js';
import { createRun, disposeRun, runCheckpointMeta, runTensors } from '../src/train/run.js';
import { trainConfig } from '../src/train/run-config.js';
import { Rng } from '../src/tensor/rng.js';
import { TINY_SPEC } from './learners.js';

const MUTANTS = 10_000;
/** Cap on decompressed gzip input in these tests: far above the fixtures, far below a problem. */
const MAX_BYTES = 1 << 20;
/** No single load may take longer than this (a hang, or work far beyond the input's size). */
const SLOWEST_MS = 1000;

type Operation = 'flip' | 'truncate' | 'insert' | 'zero' | 'length';

/** A 4-byte length field of a format: where it is and its byte order. */
interface LengthField {
  readonly at: number;
  readonly littleEndian: boolean;
}

/** A random value for a length field: hostile extremes, near misses of the real value, or anything. */
function lengthValue(rng: Rng, original: number): number {
  const choices = [0, 1, 0xffffffff, 0x7fffffff, 0x80000000, original + 1, original - 1, original * 2];
  const value = rng.uniform() < 0.7 ? choices[rng.int(choices.length)] : rng.int(0x100000000);
  return value >>> 0;
}

/** One seeded random mutation of `base` (never `base` itself: a copy). */
function mutate(
  rng: Rng,
  base: Uint8Array,
  fields: readonly LengthField[],
): { bytes: Uint8Array; operation: Operation } {
  const u = rng.uniform();
  const operation: Operation =
    fields.length > 0 && u < 0.2
      ? 'length'
      : u < 0.45
        ? 'flip'
        : u < 0.6
          ? 'truncate'
          : u < 0.8
            ? 'insert'
            : 'zero';
  if (operation === 'flip') {
    const bytes = base.slice();
    const flips = 1 + rng.int(4);
    for (let i = 0; i < flips; i++) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
    return { bytes, operation };
  }
  if (operation === 'truncate') return { bytes: base.slice(0, rng.int(base.length)), operation };
  if (operation === 'insert') {
    const at = rng.int(base.length + 1);
    const count = rng.uniform() < 0.9 ? 1 + rng.int(16) : 1 + rng.int(4096);
    const bytes = new Uint8Array(base.length + count);
    bytes.set(base.subarray(0, at));
    for (let i = 0; i < count; i++) bytes[at + i] = rng.int(256);
    bytes.set(base.subarray(at), at + count);
    return { bytes, operation };
  }
  if (operation === 'zero') {
    const bytes = base.slice();
    const start = rng.int(bytes.length);
    const length = 1 + rng.int(Math.min(rng.uniform() < 0.8 ? 64 : bytes.length, bytes.length - start));
    bytes.fill(0, start, start + length);
    return { bytes, operation };
  }
  const bytes = base.slice();
  const field = fields[rng.int(fields.length)];
  const view = new DataView(bytes.buffer);
  view.setUint32(
    field.at,
    lengthValue(rng, view.getUint32(field.at, field.littleEndian)),
    field.littleEndian,
  );
  return { bytes, operation };
}

/** The 4-byte length fields of a gzip stream: CRC-32 and ISIZE (the uncompressed size) at its end. */
function gzipFields(gz: Uint8Array): LengthField[] {
  return [
    { at: gz.length - 4, littleEndian: true },
    { at: gz.length - 8, littleEndian: true },
    { at: 4, littleEndian: true }, // MTIME
  ];
}

/** Tally of outcomes, reported as a diagnostic and checked for coverage. */
class Tally {
  readonly counts = new Map<string, number>();
  slowest = 0;
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  n(key: string): number {
    return this.counts.get(key) ?? 0;
  }
  report(t: TestContext): void {
    t.diagnostic(
      [...this.counts]
        .sort()
        .map(([k, n]) => `${k}: ${n}`)
        .join(', ') + `; slowest load ${this.slowest.toFixed(1)} ms`,
    );
  }
}

/**
 * Runs one load; a typed error is tallied and returns null, any other exception fails the test with the
 * mutant's description. A load must not take longer than SLOWEST_MS.
 */
async function attempt<T>(tally: Tally, what: string, load: () => T | Promise<T>): Promise<T | null> {
  const start = performance.now();
  try {
    return await load();
  } catch (error) {
    assert.ok(
      error instanceof OnebitError,
      `${what}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
    );
    tally.add(`error ${error.name}`);
    return null;
  } finally {
    const ms = performance.now() - start;
    tally.slowest = Math.max(tally.slowest, ms);
    assert.ok(ms < SLOWEST_MS, `${what}: took ${ms.toFixed(0)} ms`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints

function tinyCheckpointState(): { meta: CheckpointMeta; tensors: NamedTensor[] } {
  const config = trainConfig({
    data: 'synthetic-mnist',
    model: 'tiny',
    method: 'ste',
    spec: TINY_SPEC,
    epochs: 1,
  });
  const run = createRun(
    config,
    createReferenceBackend('float32'),
    { inputShape: [1, 4, 4], classes: 2, stepsPerEpoch: 1, trainingExamples: 8 },
    8,
  );
  try {
    return {
      meta: runCheckpointMeta(run, 1, 1),
      tensors: runTensors(run).map(({ name, value }) => ({ name, value: value.slice() })),
    };
  } finally {
    disposeRun(run);
  }
}

function crc(bytes: Uint8Array): number {
  return CRC32C.buf(bytes, 0) >>> 0;
}

/** A version-3 container with `json` as its header and `data` as its data section, header checksum set. */
function container(prefix: Uint8Array, json: unknown, data: Uint8Array): Uint8Array {
  const text = new TextEncoder().encode(JSON.stringify(json));
  const start = Math.ceil((20 + text.byteLength) / 8) * 8;
  const out = new Uint8Array(start + data.byteLength);
  out.set(prefix.subarray(0, 12));
  const view = new DataView(out.buffer);
  view.setUint32(12, start - 20, true);
  out.set(text, 20);
  out.fill(0x20, 20 + text.byteLength, start);
  out.set(data, start);
  view.setUint32(16, crc(out.subarray(20, start)), true);
  return out;
}

/**
 * A damaged version-3 checkpoint with its checksums made to match the damage, where the damage leaves
 * something to checksum: the header's always (over the header length it now declares), and, when the header
 * still parses, every tensor's that lies inside the file (the header is then rewritten).
 */
function reseal(bytes: Uint8Array): Uint8Array {
  if (bytes.length < 20) return bytes;
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  const length = view.getUint32(12, true);
  if (20 + length > out.length) return out;
  view.setUint32(16, crc(out.subarray(20, 20 + length)), true);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(out.subarray(20, 20 + length)));
  } catch {
    return out;
  }
  const tensors = (json as { tensors?: unknown } | null)?.tensors;
  if (!Array.isArray(tensors)) return out;
  const data = out.subarray(20 + length);
  for (const entry of tensors as Record<string, unknown>[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { offset, length: count, dtype } = entry;
    if (typeof offset !== 'number' || typeof count !== 'number' || typeof dtype !== 'string') continue;
    const end = offset + count * ((DTYPE_BYTES as Readonly<Record<string, number | undefined>>)[dtype] ?? 0);
    if (Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(end) && end <= data.length)
      entry.crc32c = crc(data.subarray(offset, end));
  }
  return container(out, json, data);
}

/** All paths of a JSON value (for mutating one field of the header). */
function jsonPaths(
  value: unknown,
  path: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  if (path.length > 0) out.push(path);
  if (Array.isArray(value)) value.forEach((x, i) => jsonPaths(x, [...path, i], out));
  else if (typeof value === 'object' && value !== null)
    for (const [k, x] of Object.entries(value)) jsonPaths(x, [...path, k], out);
  return out;
}

const HOSTILE: readonly unknown[] = [
  -1,
  0,
  1,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  1e308,
  0.5,
  NaN,
  'x',
  '',
  null,
  true,
  [],
  {},
  [1e9, 1e9, 1e9],
  'constructor',
  '__proto__',
];

describe('fuzz: checkpoints', () => {
  test(`${MUTANTS} mutants of a small checkpoint (versions 3 and 2): a TensorFileError or SpecError, or a valid load`, async (t) => {
    const state = tinyCheckpointState();
    const v3 = encodeCheckpoint(state.meta, state.tensors);
    const v2 = encodeTensorFile(CHECKPOINT_MAGIC, 2, state.meta, state.tensors);
    const original = decodeCheckpoint(v3, 'c.ckpt');
    assert.deepEqual({ ...decodeCheckpoint(v2, 'c.ckpt'), version: 3 }, original);
    const v3Length = new DataView(v3.buffer).getUint32(12, true);
    const v3Json = JSON.parse(new TextDecoder().decode(v3.subarray(20, 20 + v3Length))) as {
      tensors: Record<string, unknown>[];
    };
    const paths = jsonPaths(v3Json);
    const headerFields: LengthField[] = [{ at: 12, littleEndian: true }];
    const rng = new Rng(31);
    const tally = new Tally();
    for (let i = 0; i < MUTANTS; i++) {
      const u = rng.uniform();
      // Raw damage to a version-3 file; the same with its checksums recomputed; one header field (a tensor's
      // length or offset, or any other) set to a hostile value with the checksums recomputed; raw damage to a
      // version-2 file.
      const kind = u < 0.4 ? 'v3' : u < 0.65 ? 'v3-resealed' : u < 0.85 ? 'v3-field' : 'v2';
      let bytes: Uint8Array;
      let operation: string;
      if (kind === 'v3-field') {
        const json = structuredClone(v3Json);
        const lengthField = rng.uniform() < 0.5;
        const path: (string | number)[] = lengthField
          ? ['tensors', rng.int(json.tensors.length), rng.uniform() < 0.5 ? 'length' : 'offset']
          : paths[rng.int(paths.length)];
        let parent = json as unknown as Record<string | number, unknown>;
        for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
        const last = path[path.length - 1];
        const old = parent[last];
        parent[last] =
          lengthField && typeof old === 'number' ? lengthValue(rng, old) : HOSTILE[rng.int(HOSTILE.length)];
        bytes = reseal(container(v3, json, v3.subarray(20 + v3Length)));
        operation = `field ${path.join('.')}`;
      } else {
        ({ bytes, operation } = mutate(rng, kind === 'v2' ? v2 : v3, headerFields));
        if (kind === 'v3-resealed') bytes = reseal(bytes);
      }
      const what = `mutant ${i} (${kind}, ${operation})`;
      const loaded = await attempt(tally, what, () => decodeCheckpoint(bytes, `fuzz-${i}.ckpt`));
      if (loaded === null) {
        tally.add(`${kind} rejected`);
        continue;
      }
      tally.add(`${kind} loaded`);
      // A valid load: the metadata the loader promises, and no more tensor bytes than the file holds.
      assert.ok(loaded.meta.config.spec !== undefined, `${what}: no spec`);
      assert.ok(['float-model', 'float-free', 'stale'].includes(loaded.meta.inference), what);
      let tensorBytes = 0;
      for (const value of loaded.tensors.values()) tensorBytes += value.byteLength;
      assert.ok(tensorBytes <= bytes.length, `${what}: ${tensorBytes} tensor bytes from ${bytes.length}`);
      // Nothing silent: a version-3 file whose checksums were not recomputed loads exactly what was saved.
      if (kind === 'v3') assert.deepEqual(loaded, original, `${what}: loaded something else`);
    }
    tally.report(t);
    for (const kind of ['v3', 'v3-resealed', 'v3-field', 'v2'])
      assert.ok(tally.n(`${kind} rejected`) > 500, kind);
    // Damage that changes no checked byte (trailing bytes, a rewritten field set to what it was) loads.
    assert.ok(tally.n('v3 loaded') + tally.n('v3-resealed loaded') + tally.n('v3-field loaded') > 0);
    assert.ok(tally.n('error TensorFileError') > 5000);
  });
});

// ---------------------------------------------------------------------------------------------------------
// IDX

describe('fuzz: IDX files', () => {
  test(`${MUTANTS} mutants of IDX image and label files, raw and gzipped: a DataFormatError, or a valid load`, async (t) => {
    const count = 12;
    const imagesData = Uint8Array.from({ length: count * 7 * 5 }, (_, i) => (i * 31 + 7) & 255);
    const labelsData = Uint8Array.from({ length: count }, (_, i) => (i * 3) % 10);
    const images = encodeIdx([count, 7, 5], imagesData);
    const labels = encodeIdx([count], labelsData);
    const gz = { images: gzipSync(images), labels: gzipSync(labels) };
    const fields = {
      images: [0, 4, 8, 12].map((at) => ({ at, littleEndian: false })),
      labels: [0, 4].map((at) => ({ at, littleEndian: false })),
    };
    const good = decodeIdxImagesLabels(images, labels, 'i', 'l', { classes: 10 });
    assert.deepEqual(good.images, imagesData);
    const rng = new Rng(47);
    const tally = new Tally();
    for (let i = 0; i < MUTANTS; i++) {
      const which = rng.uniform() < 0.6 ? 'images' : 'labels';
      const zipped = rng.uniform() < 0.25;
      const base = zipped ? gz[which] : which === 'images' ? images : labels;
      const { bytes, operation } = mutate(rng, base, zipped ? gzipFields(base) : fields[which]);
      const what = `mutant ${i} (${which}${zipped ? '.gz' : ''}, ${operation})`;
      const imagesPath = `fuzz-${i}-images-idx3-ubyte${zipped ? '.gz' : ''}`;
      const labelsPath = `fuzz-${i}-labels-idx1-ubyte${zipped ? '.gz' : ''}`;
      const loaded = await attempt(tally, what, async () => {
        const imagesBytes = which === 'images' ? await decodeMaybeGzip(bytes, imagesPath, MAX_BYTES) : images;
        const labelsBytes = which === 'labels' ? await decodeMaybeGzip(bytes, labelsPath, MAX_BYTES) : labels;
        return decodeIdxImagesLabels(imagesBytes, labelsBytes, imagesPath, labelsPath, { classes: 10 });
      });
      const key = `${which}${zipped ? '.gz' : ''}`;
      if (loaded === null) {
        tally.add(`${key} rejected`);
        continue;
      }
      tally.add(`${key} loaded`);
      // A valid load: sizes that agree with each other and with the input, labels in range.
      const [channels, height, width] = loaded.shape;
      assert.equal(channels, 1, what);
      assert.equal(loaded.images.length, loaded.count * height * width, what);
      assert.equal(loaded.labels.length, loaded.count, what);
      assert.ok(
        loaded.images.length <= (which === 'labels' ? images.length : zipped ? MAX_BYTES : bytes.length),
        what,
      );
      assert.ok(
        loaded.labels.every((l) => l < 10),
        `${what}: a label out of range loaded`,
      );
    }
    tally.report(t);
    for (const key of ['images', 'labels', 'images.gz', 'labels.gz']) {
      assert.ok(tally.n(`${key} rejected`) > 300, `${key} rejected`);
    }
    // Some damage leaves a valid pair (a pixel flipped, a label changed to another class).
    assert.ok(tally.n('images loaded') > 100 && tally.n('labels loaded') > 10, 'loads');
  });
});

// ---------------------------------------------------------------------------------------------------------
// CIFAR

describe('fuzz: CIFAR binary files', () => {
  test(`${MUTANTS} mutants of CIFAR-10 and CIFAR-100 files, raw and gzipped: a DataFormatError, or a valid load`, async (t) => {
    const make = (variant: CifarVariant, n: number): Uint8Array => {
      const images = Uint8Array.from({ length: n * CIFAR_IMAGE_BYTES }, (_, i) => (i * 13 + 5) & 255);
      const labels = Uint8Array.from({ length: n }, (_, i) =>
        variant === 'cifar10' ? i % 10 : (i * 7) % 100,
      );
      const coarse = variant === 'cifar100' ? Uint8Array.from({ length: n }, (_, i) => i % 20) : null;
      return encodeCifar(variant, images, labels, coarse);
    };
    const files = { cifar10: make('cifar10', 3), cifar100: make('cifar100', 2) };
    const gz = { cifar10: gzipSync(files.cifar10), cifar100: gzipSync(files.cifar100) };
    const rng = new Rng(59);
    const tally = new Tally();
    for (let i = 0; i < MUTANTS; i++) {
      const variant: CifarVariant = rng.uniform() < 0.5 ? 'cifar10' : 'cifar100';
      const zipped = rng.uniform() < 0.25;
      const base = zipped ? gz[variant] : files[variant];
      // CIFAR has no header: its "fields" are the label bytes of each record, set to random values.
      const record = variant === 'cifar10' ? 3073 : 3074;
      let bytes: Uint8Array;
      let operation: string;
      if (!zipped && rng.uniform() < 0.15) {
        bytes = base.slice();
        const at = rng.int(base.length / record) * record + (variant === 'cifar100' ? rng.int(2) : 0);
        bytes[at] = rng.int(256);
        operation = `label byte ${at}`;
      } else {
        ({ bytes, operation } = mutate(rng, base, zipped ? gzipFields(base) : []));
      }
      const file = `fuzz-${i}.bin${zipped ? '.gz' : ''}`;
      const what = `mutant ${i} (${variant}${zipped ? '.gz' : ''}, ${operation})`;
      const loaded = await attempt(tally, what, async () =>
        parseCifar(await decodeMaybeGzip(bytes, file, MAX_BYTES), file, variant),
      );
      const key = `${variant}${zipped ? '.gz' : ''}`;
      if (loaded === null) {
        tally.add(`${key} rejected`);
        continue;
      }
      tally.add(`${key} loaded`);
      assert.ok(loaded.count >= 1, what);
      assert.equal(loaded.images.length, loaded.count * CIFAR_IMAGE_BYTES, what);
      assert.equal(loaded.labels.length, loaded.count, what);
      assert.ok(loaded.count * record <= (zipped ? MAX_BYTES : bytes.length), what);
      const fine = variant === 'cifar10' ? CIFAR10_CLASSES : CIFAR100_FINE_CLASSES;
      assert.ok(
        loaded.labels.every((l) => l < fine),
        `${what}: a label out of range loaded`,
      );
      if (variant === 'cifar100') {
        assert.ok(
          loaded.coarseLabels !== null && loaded.coarseLabels.every((l) => l < CIFAR100_COARSE_CLASSES),
          what,
        );
      } else assert.equal(loaded.coarseLabels, null, what);
    }
    tally.report(t);
    for (const key of ['cifar10', 'cifar100', 'cifar10.gz', 'cifar100.gz']) {
      assert.ok(tally.n(`${key} rejected`) > 300, `${key} rejected`);
    }
    // Most damage to a raw file leaves whole records with labels in range: it loads (a gzip stream's own
    // CRC-32 refuses nearly all damage to it).
    assert.ok(tally.n('cifar10 loaded') > 500 && tally.n('cifar100 loaded') > 500, 'loads');
  });
});

describe('fuzz: memory', () => {
  test('the whole fuzz run stayed far below a gigabyte of memory', () => {
    // maxRSS is the process's peak resident set, in kibibytes.
    const peak = process.resourceUsage().maxRSS * 1024;
    assert.ok(peak < 1024 ** 3, `peak resident memory ${(peak / 1024 ** 2).toFixed(0)} MiB`);
  });
});
