/**
 * The `.onebit` reader: specific faults are rejected with the right code and place, damaged bytes are
 * caught by the CRC32C checksums naming the header or the tensor, version-1 files (no checksums) still
 * decode, and a seeded fuzz run of mutated and truncated files (byte flips, truncations, hostile header
 * values, corrupted data) shows that every file is either rejected with the OnebitFormatError code its damage
 * calls for (a truncation is always 'truncated', changed tensor bytes are always 'bad-checksum', and once the
 * checksums are recomputed to match, always 'bad-value', ...) or loads as a model that is valid by a check
 * independent of the reader, carries exactly what the file says, and runs on the engine without allocating
 * more than the file's size justifies. Part of the mutants have their checksums recomputed after the damage,
 * so the structural checks behind the checksums are exercised too.
 */
import { type OnebitErrorCode, OnebitFormatError } from '../errors.js';
import CRC32C from 'crc-32/crc32c.js';
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { Rng } from '../tensor/rng.js';
import { createEngine } from './engine.js';
import { crc32c } from './crc32c.js';
import {
  decodeOnebit,
  encodeOnebit,
  packedWords,
  packSignRows,
  PREFIX_BYTES,
  type ConvLayer,
  type DenseLayer,
  type DenseOutput,
  type OnebitLayer,
  type OnebitModel,
} from './format.js';

function sampleModel(seed = 1): OnebitModel {
  const rng = new Rng(seed);
  const signs = (n: number): Float32Array =>
    Float32Array.from({ length: n }, () => (rng.uniform() < 0.5 ? -1 : 1));
  const layers: DenseLayer[] = [
    {
      kind: 'dense',
      name: 'fc1',
      input: 'real',
      inFeatures: 36,
      outFeatures: 40,
      weights: packSignRows(signs(36 * 40), 40, 36),
      output: {
        kind: 'bits',
        thresholds: Float32Array.from({ length: 40 }, () => rng.uniform() - 0.5),
        directions: Int8Array.from({ length: 40 }, (_, j) => (j % 5 === 0 ? -1 : 1)),
      },
    },
    {
      kind: 'dense',
      name: 'fc2',
      input: 'bits',
      inFeatures: 40,
      outFeatures: 33,
      weights: packSignRows(signs(40 * 33), 33, 40),
      output: {
        kind: 'bits',
        thresholds: Int32Array.from({ length: 33 }, () => rng.int(9) - 4),
        directions: Int8Array.from({ length: 33 }, () => 1),
      },
    },
    {
      kind: 'dense',
      name: 'fc3',
      input: 'bits',
      inFeatures: 33,
      outFeatures: 5,
      weights: packSignRows(signs(33 * 5), 5, 33),
      output: {
        kind: 'real',
        scale: Float32Array.from({ length: 5 }, () => rng.uniform()),
        bias: Float32Array.from({ length: 5 }, () => rng.uniform() - 0.5),
        activation: 'none',
      },
    },
  ];
  return {
    input: { shape: [1, 6, 6], mean: [0.25], std: [0.5] },
    classes: 5,
    layers: [{ kind: 'flatten' }, ...layers],
    metadata: { model: 'test', epoch: 3, exact: true },
  };
}

/** A version-3 model with every kind of layer: convolutions on reals and bits, pooling, threshold, affine, residual. */
function sampleConvModel(seed = 3): OnebitModel {
  const rng = new Rng(seed);
  const signs = (n: number): Float32Array =>
    Float32Array.from({ length: n }, () => (rng.uniform() < 0.5 ? -1 : 1));
  const floats = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.uniform() - 0.5);
  const conv = (name: string, input: 'real' | 'bits', c: number, n: number, bitsOut: boolean): ConvLayer => ({
    kind: 'conv2d',
    name,
    input,
    inChannels: c,
    outChannels: n,
    kernel: 3,
    stride: 1,
    padding: 1,
    weights: packSignRows(signs(n * 9 * c), n, 9 * c),
    output: bitsOut
      ? {
          kind: 'bits',
          thresholds: input === 'bits' ? Int32Array.from({ length: n }, () => rng.int(9) - 4) : floats(n),
          directions: Int8Array.from({ length: n }, (_, j) => (j % 3 === 0 ? -1 : 1)),
        }
      : { kind: 'real', scale: floats(n), bias: floats(n), activation: 'relu' },
  });
  return {
    input: { shape: [2, 6, 6], mean: [0.25, 0.5], std: [0.5, 0.25] },
    classes: 4,
    layers: [
      conv('conv1', 'real', 2, 5, true),
      { kind: 'maxpool', name: 'pool1', kernel: 2, stride: 2, padding: 0 },
      conv('conv2', 'bits', 5, 6, false),
      {
        kind: 'residual',
        name: 'block1',
        body: [
          {
            kind: 'threshold',
            name: 'sign',
            channels: 6,
            thresholds: floats(6),
            directions: new Int8Array(6).fill(1),
          },
          conv('conv3', 'bits', 6, 6, false),
        ],
        shortcut: null,
      },
      { kind: 'affine', name: 'bn3', channels: 6, scale: floats(6), bias: floats(6), activation: 'hardtanh' },
      { kind: 'avgpool', name: 'pool3', kernel: 2, stride: 1, padding: 1 },
      { kind: 'flatten', layout: 'hwc' },
      {
        kind: 'dense',
        name: 'fc',
        input: 'real',
        inFeatures: 96,
        outFeatures: 4,
        weights: packSignRows(signs(96 * 4), 4, 96),
        output: { kind: 'real', scale: floats(4), bias: floats(4), activation: 'none' },
      },
    ],
    metadata: { model: 'conv-test' },
  };
}

/** CRC32C computed here, by the library the format names, independently of the reader. */
function crc(bytes: Uint8Array): number {
  return CRC32C.buf(bytes, 0) >>> 0;
}

function align16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

function headerOf(bytes: Uint8Array): { json: Record<string, unknown>; length: number } {
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  const json = JSON.parse(
    new TextDecoder().decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + length)),
  ) as Record<string, unknown>;
  return { json, length };
}

/** A copy with the header's CRC32C (bytes 16..19) recomputed over the header bytes it now declares. */
function sealHeader(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const view = new DataView(out.buffer);
  const length = view.getUint32(12, true);
  if (PREFIX_BYTES + length <= out.byteLength)
    view.setUint32(16, crc(out.subarray(PREFIX_BYTES, PREFIX_BYTES + length)), true);
  return out;
}

/** The file with its header replaced by `header` (data section unchanged, re-aligned; header CRC matching). */
function withHeader(bytes: Uint8Array, header: unknown): Uint8Array {
  const { length } = headerOf(bytes);
  const data = bytes.subarray(align16(PREFIX_BYTES + length));
  const json = new TextEncoder().encode(JSON.stringify(header));
  const newStart = align16(PREFIX_BYTES + json.byteLength);
  const out = new Uint8Array(newStart + data.byteLength);
  out.set(bytes.subarray(0, PREFIX_BYTES));
  new DataView(out.buffer).setUint32(12, newStart - PREFIX_BYTES, true);
  out.set(json, PREFIX_BYTES);
  out.fill(0x20, PREFIX_BYTES + json.byteLength, newStart);
  out.set(data, newStart);
  return sealHeader(out);
}

/** The file with every tensor's `crc32c` recomputed from its bytes as they are now (and the header's). */
function sealTensors(bytes: Uint8Array): Uint8Array {
  const { json, length } = headerOf(bytes);
  const dataStart = align16(PREFIX_BYTES + length);
  for (const t of json.tensors as { offset: number; byteLength: number; crc32c: number }[]) {
    t.crc32c = crc(bytes.subarray(dataStart + t.offset, dataStart + t.offset + t.byteLength));
  }
  return withHeader(bytes, json);
}

/** The same model in the version-1 layout: no header CRC (the JSON at byte 16), no `crc32c` entries. */
function toVersion1(bytes: Uint8Array): Uint8Array {
  const { json, length } = headerOf(bytes);
  for (const t of json.tensors as Record<string, unknown>[]) delete t.crc32c;
  const data = bytes.subarray(align16(PREFIX_BYTES + length));
  const text = new TextEncoder().encode(JSON.stringify(json));
  const dataStart = align16(16 + text.byteLength);
  const out = new Uint8Array(dataStart + data.byteLength);
  out.set(bytes.subarray(0, 8));
  const view = new DataView(out.buffer);
  view.setUint32(8, 1, true);
  view.setUint32(12, dataStart - 16, true);
  out.set(text, 16);
  out.fill(0x20, 16 + text.byteLength, dataStart);
  out.set(data, dataStart);
  return out;
}

/** Where each tensor of a file lies: name, its index in header.tensors, and its byte range in the file. */
function tensorRanges(bytes: Uint8Array): { name: string; index: number; start: number; end: number }[] {
  const { json, length } = headerOf(bytes);
  const dataStart = align16(PREFIX_BYTES + length);
  return (json.tensors as { name: string; offset: number; byteLength: number }[]).map((t, index) => ({
    name: t.name,
    index,
    start: dataStart + t.offset,
    end: dataStart + t.offset + t.byteLength,
  }));
}

/**
 * Checks, independently of the reader, everything the format promises of a decoded model: the layer chain
 * fits together and ends in `classes` real logits, every tensor has its layer's type and length, padding
 * bits are clear, directions are +-1, thresholds are not NaN, scales and biases are finite.
 */
function assertValidModel(model: OnebitModel, what: string): void {
  const { shape, mean, std } = model.input;
  assert.equal(shape.length, 3, `${what}: input shape`);
  for (const d of shape)
    assert.ok(Number.isSafeInteger(d) && d >= 1, `${what}: input shape ${shape.join('x')}`);
  assert.ok(mean.length === shape[0] && std.length === shape[0], `${what}: one mean and std per channel`);
  assert.ok(
    mean.every(Number.isFinite) && std.every((s) => Number.isFinite(s) && s > 0),
    `${what}: mean, std`,
  );
  assert.ok(Number.isSafeInteger(model.classes) && model.classes >= 1, `${what}: classes`);
  for (const v of Object.values(model.metadata)) {
    assert.ok(typeof v !== 'number' || Number.isFinite(v), `${what}: metadata number ${v}`);
  }
  const end = assertValidLayers(model.layers, { features: [...shape], values: 'real' }, what, 'layers');
  assert.equal(end.values, 'real', `${what}: the logits are real`);
  assert.deepEqual(end.features, [model.classes], `${what}: one logit per class`);
}

/** Checks a packed sign matrix: its type, its length and clear padding bits. */
function assertPacked(weights: Uint32Array, n: number, k: number, at: string): void {
  assert.ok(weights instanceof Uint32Array, `${at} weights type`);
  const words = packedWords(k);
  assert.equal(weights.length, n * words, `${at} weights length`);
  for (let row = 0; row < n; row++) {
    for (let c = k; c < words * 32; c++) {
      const bit: number = (weights[row * words + (c >>> 5)] >>> (c & 31)) & 1;
      assert.equal(bit, 0, `${at} padding bit ${c} of row ${row}`);
    }
  }
}

/** Checks an output stage (or a threshold/affine layer) of n channels after `input` values. */
function assertOutput(output: DenseOutput, n: number, input: 'real' | 'bits', at: string): void {
  if (output.kind === 'bits') {
    assert.ok(
      input === 'bits' ? output.thresholds instanceof Int32Array : output.thresholds instanceof Float32Array,
      `${at} threshold type for ${input} input`,
    );
    assert.ok(output.directions instanceof Int8Array, `${at} directions type`);
    assert.ok(output.thresholds.length === n && output.directions.length === n, `${at} lengths`);
    assert.ok(
      output.thresholds.every((x) => !Number.isNaN(x)),
      `${at} NaN threshold`,
    );
    assert.ok(
      output.directions.every((d) => d === 1 || d === -1),
      `${at} direction not +-1`,
    );
  } else {
    assert.ok(output.scale instanceof Float32Array && output.bias instanceof Float32Array, `${at} types`);
    assert.ok(output.scale.length === n && output.bias.length === n, `${at} lengths`);
    assert.ok(output.scale.every(Number.isFinite) && output.bias.every(Number.isFinite), `${at} finite`);
    assert.ok(['none', 'relu', 'hardtanh'].includes(output.activation), `${at} activation`);
  }
}

interface ValidFlow {
  features: number[];
  values: 'real' | 'bits';
}

/** The layer chain fits together from `flow` (see assertValidModel); returns what it ends with. */
function assertValidLayers(
  layers: readonly OnebitLayer[],
  start: ValidFlow,
  what: string,
  path: string,
): ValidFlow {
  let { features, values } = start;
  const windowOut = (size: number, k: number, s: number, p: number): number =>
    Math.floor((size + 2 * p - k) / s) + 1;
  for (const [i, layer] of layers.entries()) {
    const at = `${what}: ${path}[${i}]`;
    switch (layer.kind) {
      case 'flatten':
        features = [features.reduce((a, b) => a * b, 1)];
        break;
      case 'dense': {
        const { inFeatures: k, outFeatures: n, output } = layer;
        assert.deepEqual(features, [k], `${at} takes ${k} features`);
        assert.ok(layer.input === values, `${at}: takes ${layer.input} values, receives ${values}`);
        assertPacked(layer.weights, n, k, at);
        assertOutput(output, n, layer.input, at);
        features = [n];
        values = output.kind;
        break;
      }
      case 'conv2d': {
        assert.equal(features.length, 3, `${at} takes a map`);
        const [c, h, w] = features;
        const { kernel: k, stride: s, padding: p, outChannels: n, output } = layer;
        assert.equal(layer.inChannels, c, `${at} channels`);
        assert.ok(layer.input === values, `${at}: takes ${layer.input} values, receives ${values}`);
        assert.ok(windowOut(h, k, s, p) >= 1 && windowOut(w, k, s, p) >= 1, `${at} window fits`);
        assertPacked(layer.weights, n, k * k * c, at);
        assertOutput(output, n, layer.input, at);
        features = [n, windowOut(h, k, s, p), windowOut(w, k, s, p)];
        values = output.kind;
        break;
      }
      case 'maxpool':
      case 'avgpool': {
        assert.equal(features.length, 3, `${at} takes a map`);
        const [c, h, w] = features;
        const { kernel: k, stride: s, padding: p } = layer;
        assert.ok(2 * p <= k && windowOut(h, k, s, p) >= 1 && windowOut(w, k, s, p) >= 1, `${at} window`);
        if (layer.kind === 'avgpool') assert.equal(values, 'real', `${at} averages reals`);
        features = [c, windowOut(h, k, s, p), windowOut(w, k, s, p)];
        break;
      }
      case 'threshold':
      case 'affine': {
        assert.equal(values, 'real', `${at} takes reals`);
        assert.equal(layer.channels, features[0], `${at} channels`);
        assertOutput(
          layer.kind === 'threshold'
            ? { kind: 'bits', thresholds: layer.thresholds, directions: layer.directions }
            : { kind: 'real', scale: layer.scale, bias: layer.bias, activation: layer.activation },
          layer.channels,
          'real',
          at,
        );
        values = layer.kind === 'threshold' ? 'bits' : 'real';
        break;
      }
      case 'residual': {
        assert.equal(values, 'real', `${at} takes reals`);
        const body = assertValidLayers(layer.body, { features, values }, what, `${path}[${i}].body`);
        const shortcut =
          layer.shortcut === null
            ? { features, values }
            : assertValidLayers(layer.shortcut, { features, values }, what, `${path}[${i}].shortcut`);
        assert.ok(body.values === 'real' && shortcut.values === 'real', `${at} branches end real`);
        assert.deepEqual(body.features, shortcut.features, `${at} branches agree`);
        features = body.features;
        break;
      }
    }
  }
  return { features, values };
}

/** The value at `path` in `root`, or undefined where the path leads nowhere. */
function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let v = root;
  for (const key of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string | number, unknown>)[key];
  }
  return v;
}

/**
 * `model` with the field at header path `path` put back as it is in `original` (header and model share
 * the paths of the fields a mutant may change and still load: input, layer names, metadata).
 */
function restored(
  model: OnebitModel,
  path: readonly (string | number)[],
  original: OnebitModel,
): OnebitModel {
  const copy = structuredClone(model) as unknown as Record<string | number, unknown>;
  let target = copy;
  let source = original as unknown as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) {
    const next = target[key];
    if (typeof next !== 'object' || next === null) return model;
    target = next as Record<string | number, unknown>;
    source = source[key] as Record<string | number, unknown>;
  }
  const last = path[path.length - 1];
  if (last !== undefined && source !== undefined && last in source) target[last] = source[last];
  return copy as unknown as OnebitModel;
}

function rejects(bytes: Uint8Array, code: OnebitErrorCode, where?: RegExp, message?: RegExp): void {
  assert.throws(
    () => decodeOnebit(bytes, 'm.onebit'),
    (error: unknown) => {
      assert.ok(error instanceof OnebitFormatError, `expected OnebitFormatError, got ${String(error)}`);
      assert.equal(error.code, code, error.message);
      assert.ok(error.where.startsWith('m.onebit: '), error.where);
      if (where !== undefined) assert.match(error.where, where);
      if (message !== undefined) assert.match(error.message, message);
      return true;
    },
  );
}

describe('.onebit reader', () => {
  const good = encodeOnebit(sampleModel());

  test('a valid file decodes to the model it was made from', () => {
    assert.deepEqual(decodeOnebit(good), sampleModel());
    // Also from a Node Buffer that is a slice of a larger pool (byteOffset != 0).
    const padded = Buffer.alloc(good.byteLength + 3);
    padded.set(good, 3);
    assert.deepEqual(decodeOnebit(padded.subarray(3)), sampleModel());
  });

  test('wrong magic, version and truncations say what and where', () => {
    rejects(good.subarray(0, 10), 'truncated', /byte 0/);
    const magic = good.slice();
    magic[0] = 0x58;
    rejects(magic, 'bad-magic', /byte 0/);
    const version = good.slice();
    version[8] = 4;
    rejects(version, 'bad-version', /byte 8/);
    rejects(good.subarray(0, 18), 'truncated', /byte 0/);
    rejects(good.subarray(0, 40), 'truncated', /byte 12/);
    rejects(good.subarray(0, good.byteLength - 1), 'truncated', /header\.tensors\[\d+\]/);
    const long = good.slice();
    new DataView(long.buffer).setUint32(12, 0xffffffff, true);
    rejects(long, 'bad-header', /byte 12/);
  });

  test('hostile header values are rejected before anything is allocated', () => {
    const { json } = headerOf(good);
    const layers = json.layers as Record<string, unknown>[];
    const huge = structuredClone(json);
    (huge.layers as Record<string, unknown>[])[1].outFeatures = 1_000_000;
    rejects(withHeader(good, huge), 'bad-layer'); // fc2 no longer takes what fc1 gives
    const big = structuredClone(json);
    (big.layers as Record<string, unknown>[])[3].inFeatures = 1e15;
    rejects(withHeader(good, big), 'bad-header', /layers\[3\]\.inFeatures/);
    const claim = structuredClone(json);
    const tensors = claim.tensors as Record<string, unknown>[];
    tensors[0].shape = [40, 400000];
    rejects(withHeader(good, claim), 'bad-tensor', /tensors\[0\]\.shape/);
    const overlap = structuredClone(json);
    (overlap.tensors as Record<string, unknown>[])[1].offset = (
      overlap.tensors as Record<string, unknown>[]
    )[0].offset;
    rejects(withHeader(good, overlap), 'bad-tensor', /header\.tensors/);
    const bits = structuredClone(json);
    (bits.bits as Record<string, unknown>).set = 1;
    rejects(withHeader(good, bits), 'unsupported', /bits\.set/);
    const kind = structuredClone(json);
    (kind.layers as Record<string, unknown>[])[2].kind = 'deconv';
    rejects(withHeader(good, kind), 'bad-header', /layers\[2\]\.kind/);
    // A kind of a later version in a version-2 file.
    const later = structuredClone(json);
    (later.layers as Record<string, unknown>[])[2].kind = 'conv2d';
    rejects(withHeader(good, later), 'bad-version', /layers\[2\]\.kind/);
    const std = structuredClone(json);
    (std.input as Record<string, unknown>).std = [0];
    rejects(withHeader(good, std), 'bad-header', /input\.std\[0\]/);
    const classes = structuredClone(json);
    classes.classes = 6;
    rejects(withHeader(good, classes), 'bad-layer');
    // 100,000 nested arrays: spliced in as text, since JSON.stringify would overflow the stack on them.
    const deep = structuredClone(json);
    deep.metadata = { nested: '@DEEP@' };
    const deepText = new TextEncoder().encode(
      JSON.stringify(deep).replace('"@DEEP@"', '['.repeat(100000) + ']'.repeat(100000)),
    );
    const deepFile = withHeader(good, {});
    const deepBytes = new Uint8Array(
      align16(PREFIX_BYTES + deepText.byteLength) + (deepFile.byteLength - 32),
    );
    deepBytes.set(good.subarray(0, PREFIX_BYTES));
    new DataView(deepBytes.buffer).setUint32(
      12,
      deepBytes.byteLength - (deepFile.byteLength - 32) - PREFIX_BYTES,
      true,
    );
    deepBytes.fill(0x20, PREFIX_BYTES);
    deepBytes.set(deepText, PREFIX_BYTES);
    deepBytes.set(deepFile.subarray(32), deepBytes.byteLength - (deepFile.byteLength - 32));
    rejects(sealHeader(deepBytes), 'bad-header');
    void layers;
  });

  test('corrupted data fails its checksum; with the checksum made to match, the value checks catch it', () => {
    const ranges = tensorRanges(good);
    const at = (name: string): number => (ranges.find((t) => t.name === name) as { start: number }).start;
    const place = (name: string): RegExp =>
      new RegExp(`header\\.tensors\\[${(ranges.find((t) => t.name === name) as { index: number }).index}\\]`);
    const damaged = (name: string): RegExp =>
      new RegExp(
        `tensor "${name.replace(/\./g, '\\.')}" fails its CRC32C checksum \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\): the file is damaged`,
      );
    const padding = good.slice();
    padding[at('layers.1.weights') + 4 + 3] |= 0x80; // word 1 of row 0: bits 36..63 are padding
    rejects(padding, 'bad-checksum', place('layers.1.weights'), damaged('layers.1.weights'));
    rejects(sealTensors(padding), 'bad-value', /layers\[1\]\.weights row 0/);
    const direction = good.slice();
    direction[at('layers.1.directions') + 2] = 0;
    rejects(direction, 'bad-checksum', place('layers.1.directions'), damaged('layers.1.directions'));
    rejects(sealTensors(direction), 'bad-value', /directions\[2\]/);
    const nan = good.slice();
    new DataView(nan.buffer).setFloat32(at('layers.3.scale') + 4, NaN, true);
    rejects(nan, 'bad-checksum', place('layers.3.scale'), damaged('layers.3.scale'));
    rejects(sealTensors(nan), 'bad-value', /scale\[1\]/);
    const threshold = good.slice();
    new DataView(threshold.buffer).setFloat32(at('layers.1.thresholds'), NaN, true);
    rejects(threshold, 'bad-checksum', place('layers.1.thresholds'), damaged('layers.1.thresholds'));
    rejects(sealTensors(threshold), 'bad-value', /thresholds\[0\]/);
  });

  test("the engine's CRC32C is the crc-32 package's (Castagnoli; check value 0xe3069283)", () => {
    assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(0)), 0);
    const rng = new Rng(7);
    for (let i = 0; i < 200; i++) {
      const bytes = Uint8Array.from({ length: rng.int(i < 100 ? 64 : 5000) }, () => rng.int(256));
      assert.equal(crc32c(bytes), crc(bytes), `buffer ${i} of ${bytes.length} bytes`);
    }
  });

  test('a flipped bit in any tensor names that tensor; in the header or its checksum, the header', () => {
    const ranges = tensorRanges(good);
    assert.equal(ranges.length, 9);
    for (const { name, index, start, end } of ranges) {
      for (const at of [start, Math.floor((start + end) / 2), end - 1]) {
        const flipped = good.slice();
        flipped[at] ^= 0x10;
        rejects(
          flipped,
          'bad-checksum',
          new RegExp(`^m\\.onebit: header\\.tensors\\[${index}\\]$`),
          new RegExp(`tensor "${name.replace(/\./g, '\\.')}" fails its CRC32C checksum`),
        );
      }
    }
    const { length } = headerOf(good);
    for (const at of [16, 19, PREFIX_BYTES, PREFIX_BYTES + 40, PREFIX_BYTES + length - 1]) {
      const flipped = good.slice();
      flipped[at] ^= 0x01;
      rejects(
        flipped,
        'bad-checksum',
        new RegExp(`^m\\.onebit: bytes ${PREFIX_BYTES}\\.\\.${PREFIX_BYTES + length}$`),
        /header fails its CRC32C checksum \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\): the file is damaged/,
      );
    }
    // The stored checksums are CRC32C of exactly those bytes (computed here with the library, independently).
    const { json } = headerOf(good);
    const entries = json.tensors as { crc32c: number }[];
    ranges.forEach((r, i) => assert.equal(entries[i].crc32c, crc(good.subarray(r.start, r.end))));
    const view = new DataView(good.buffer, good.byteOffset);
    assert.equal(view.getUint32(16, true), crc(good.subarray(PREFIX_BYTES, PREFIX_BYTES + length)));
    assert.equal(view.getUint32(8, true), 2);
    // A checksum that is not a uint32 is a malformed header, not a mismatch.
    for (const value of [-1, 2 ** 32, 1.5, '0', null]) {
      const bad = structuredClone(json);
      (bad.tensors as Record<string, unknown>[])[2].crc32c = value;
      rejects(withHeader(good, bad), 'bad-header', /header\.tensors\[2\]\.crc32c/);
    }
    const missing = structuredClone(json);
    delete (missing.tensors as Record<string, unknown>[])[0].crc32c;
    rejects(withHeader(good, missing), 'bad-header', /header\.tensors\[0\]\.crc32c/);
  });

  test('a version-1 file (no checksums) still decodes to the same model; its damage is left to the value checks', () => {
    const v1 = toVersion1(good);
    assert.equal(new DataView(v1.buffer).getUint32(8, true), 1);
    assert.ok(!new TextDecoder().decode(v1).includes('crc32c'));
    assert.deepEqual(decodeOnebit(v1, 'old.onebit'), sampleModel());
    // Re-encoded, it is today's (checksummed) file.
    assert.deepEqual(encodeOnebit(decodeOnebit(v1)), good);
    // The data section moved up by the 4 checksum bytes' worth of alignment, if at all: same offsets inside it.
    const shift = tensorRanges(good)[0].start - (16 + new DataView(v1.buffer).getUint32(12, true));
    const directions = tensorRanges(good).find((t) => t.name === 'layers.1.directions') as { start: number };
    const direction = v1.slice();
    direction[directions.start - shift + 2] = 0;
    rejects(direction, 'bad-value', /directions\[2\]/);
    // A version-2 file relabelled as version 1 (its checksum bytes where the JSON should start) is refused as
    // a damaged version.
    const relabelled = good.slice();
    relabelled[8] = 1;
    rejects(relabelled, 'bad-version', /byte 8/);
  });

  test('fuzz: 12,000 mutated and truncated files: each kind of damage gets the error it must, or loads intact', async (t) => {
    const rng = new Rng(2024);
    const hostile: unknown[] = [
      -1,
      0,
      1,
      3,
      2 ** 31,
      2 ** 53,
      1e308,
      -1e308,
      0.5,
      'x',
      '',
      null,
      true,
      [],
      {},
      [1e9, 1e9],
      'a'.repeat(300),
    ];
    const variants = [sampleModel(1), sampleModel(2), sampleConvModel(3)].map((model) => {
      const bytes = encodeOnebit(model);
      const { json, length } = headerOf(bytes);
      const dataStart = align16(PREFIX_BYTES + length);
      const tensors = tensorRanges(bytes);
      const paths: (string | number)[][] = [];
      const walk = (v: unknown, path: (string | number)[]): void => {
        if (path.length > 0) paths.push(path);
        if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
        else if (typeof v === 'object' && v !== null)
          for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
      };
      walk(json, []);
      const inTensor = (at: number): boolean => tensors.some((r) => at >= r.start && at < r.end);
      return { model, bytes, json, dataStart, paths, inTensor };
    });
    // The reader decodes what the encoder writes and nothing else: the fuzz's ground truth.
    for (const v of variants) assert.deepEqual(encodeOnebit(decodeOnebit(v.bytes)), v.bytes);

    /**
     * flip: bits flipped anywhere; flip-sealed: the same with the header checksum then recomputed; truncate;
     * header: a header field set to a hostile value (header checksum recomputed); data: a data-section byte
     * set at random; data-sealed: the same with the tensor and header checksums then recomputed.
     */
    type Kind = 'flip' | 'flip-sealed' | 'truncate' | 'header' | 'data' | 'data-sealed';
    const tally = new Map<string, number>();
    const count = (key: string): void => void tally.set(key, (tally.get(key) ?? 0) + 1);
    let ran = 0;
    for (let i = 0; i < 12000; i++) {
      const base = variants[i % 3];
      const u = rng.uniform();
      const kind: Kind =
        u < 0.2
          ? 'flip'
          : u < 0.35
            ? 'flip-sealed'
            : u < 0.47
              ? 'truncate'
              : u < 0.8
                ? 'header'
                : u < 0.9
                  ? 'data'
                  : 'data-sealed';
      let bytes: Uint8Array;
      let path: (string | number)[] = [];
      let header: Record<string, unknown> = {};
      if (kind === 'flip' || kind === 'flip-sealed') {
        bytes = base.bytes.slice();
        const flips = 1 + rng.int(4);
        for (let f = 0; f < flips; f++) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
      } else if (kind === 'truncate') {
        bytes = base.bytes.slice(0, rng.int(base.bytes.length));
      } else if (kind === 'header') {
        header = structuredClone(base.json);
        path = base.paths[rng.int(base.paths.length)];
        let parent = header as Record<string | number, unknown>;
        for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
        const last = path[path.length - 1];
        if (rng.uniform() < 0.15 && !Array.isArray(parent)) delete parent[last];
        else parent[last] = hostile[rng.int(hostile.length)];
        bytes = withHeader(base.bytes, header);
      } else {
        bytes = base.bytes.slice();
        bytes[base.dataStart + rng.int(bytes.length - base.dataStart)] = rng.int(256);
      }
      /** Byte positions whose value differs from the original (flip and data kinds, before any resealing). */
      const changed: number[] = [];
      if (kind === 'flip' || kind === 'flip-sealed' || kind === 'data' || kind === 'data-sealed') {
        for (let at = 0; at < bytes.length; at++) if (bytes[at] !== base.bytes[at]) changed.push(at);
      }
      const unsealed = bytes;
      if (kind === 'flip-sealed') bytes = sealHeader(bytes);
      if (kind === 'data-sealed') bytes = sealTensors(bytes);
      const dataOnly = changed.length > 0 && changed.every((at) => at >= base.dataStart);
      const inPrefix = changed.some((at) => at < 12);
      const what = `mutant ${i} (${kind}${path.length > 0 ? ` at ${path.join('.')}` : ''})`;

      let model: OnebitModel;
      try {
        model = decodeOnebit(bytes, `fuzz-${i}`);
      } catch (error) {
        assert.ok(error instanceof OnebitFormatError, `${what}: ${String(error)}`);
        count(`${kind} rejected`);
        count(`code ${error.code}`);
        const says = `${what}: ${error.message}`;
        // What each kind of damage must be reported as (the first check the file fails, in file order).
        if (kind === 'truncate') assert.equal(error.code, 'truncated', says);
        if (changed.some((at) => at < 8)) assert.equal(error.code, 'bad-magic', says);
        else if (inPrefix) assert.equal(error.code, 'bad-version', says);
        else if (kind === 'data-sealed') {
          // The header and every checksum match: only a value in a tensor can be wrong.
          assert.equal(error.code, 'bad-value', says);
        } else if (dataOnly && kind !== 'header') {
          // Changed tensor bytes: the checksum of a tensor holding one of them names it.
          assert.equal(error.code, 'bad-checksum', says);
          const m = /^fuzz-\d+: header\.tensors\[(\d+)\]$/.exec(error.where);
          assert.ok(m !== null, says);
          const range = tensorRanges(base.bytes)[Number(m[1])];
          assert.ok(
            changed.some((at) => at >= range.start && at < range.end),
            says,
          );
          assert.ok(error.message.includes(`tensor "${range.name}" fails its CRC32C checksum`), says);
        } else if (kind === 'flip') {
          // A damaged header, header length or header checksum.
          if (changed.some((at) => at < 16))
            assert.ok(['bad-checksum', 'bad-header', 'truncated'].includes(error.code), says);
          else {
            assert.equal(error.code, 'bad-checksum', says);
            assert.match(error.message, /header fails its CRC32C checksum/, says);
          }
        }
        if (kind === 'header') {
          // The prefix is rewritten to match and the data section is untouched; a checksum can only be
          // wrong where the mutant changed the tensor table.
          const codes = ['bad-header', 'bad-layer', 'bad-tensor', 'unsupported', 'truncated'];
          if (path[0] === 'tensors') codes.push('bad-checksum');
          assert.ok(codes.includes(error.code), says);
        }
        continue;
      }
      count(`${kind} loaded`);
      assert.notEqual(kind, 'truncate', `${what}: a truncated file loaded`);
      assert.ok(!inPrefix, `${what}: a file with a damaged magic or version loaded`);
      assertValidModel(model, what);
      if (kind === 'flip' || kind === 'data' || (kind === 'flip-sealed' && dataOnly)) {
        // Without recomputed checksums only bytes no checksum covers can change and load: the alignment gaps
        // between tensors, which the reader ignores (and flip-sealed recomputes the header's checksum).
        assert.ok(
          changed.every(
            (at) =>
              (at >= base.dataStart || (kind === 'flip-sealed' && at >= 16 && at < 20)) && !base.inTensor(at),
          ),
          `${what}: changed bytes ${changed.join(', ')} loaded`,
        );
        assert.deepEqual(model, base.model, `${what}: loaded something else`);
      }
      if (kind === 'data-sealed') {
        // Loaded intact: re-encoded, it is the original file with exactly the changed tensor bytes (a byte in
        // the alignment gap between tensors is ignored by the reader, so it comes back as the encoder's 0).
        const expected = base.bytes.slice();
        for (const at of changed) if (base.inTensor(at)) expected[at] = unsealed[at];
        assert.deepEqual(
          encodeOnebit(model),
          sealTensors(expected),
          `${what}: decoded values differ from the file`,
        );
      }
      if (kind === 'header') {
        // The model carries the field as the header now has it (where the model has that field at all:
        // not the bit convention, the tensor table or the tensor names)...
        const now = valueAt(model, path);
        if (path[0] !== 'bits' && path[0] !== 'tensors' && !ArrayBuffer.isView(now)) {
          const written = valueAt(header, path);
          // An absent metadata object reads as an empty one.
          const expected = written === undefined && path.join('.') === 'metadata' ? {} : written;
          assert.deepEqual(now, expected, `${what}: the field did not load as written`);
        }
        // ...and a changed header field that loads is one the format leaves free (a name, metadata, a normalisation
        // constant) or one set to the value it had: putting the original back gives the original model.
        assert.deepEqual(restored(model, path, base.model), base.model, `${what}: loaded something else`);
      }
      let tensorBytes = 0;
      for (const layer of model.layers) {
        if (layer.kind !== 'dense') continue;
        const out = layer.output;
        tensorBytes += layer.weights.byteLength;
        tensorBytes +=
          out.kind === 'bits'
            ? out.thresholds.byteLength + out.directions.byteLength
            : out.scale.byteLength + out.bias.byteLength;
      }
      assert.ok(
        tensorBytes <= bytes.byteLength,
        `${what}: ${tensorBytes} tensor bytes from a ${bytes.byteLength}-byte file`,
      );
      if (ran < 2000) {
        const engine = await createEngine(model, { threads: 1, maxBatch: 2 });
        try {
          // Memory: the module's own pages plus what the model and two examples justify.
          assert.ok(
            engine.memoryBytes() <= (64 + 2 * 64) * 1024 + 64 * bytes.byteLength * 2,
            `${what}: ${engine.memoryBytes()} bytes of memory`,
          );
          const size = engine.inputSize;
          const logits = engine.logits(
            Uint8Array.from({ length: 2 * size }, (_, j) => (j * 37) & 255),
            2,
          );
          assert.equal(logits.length, 2 * model.classes);
        } finally {
          engine.dispose();
        }
        ran++;
      }
    }
    t.diagnostic([...tally].map(([k, n]) => `${k}: ${n}`).join(', '));
    const n = (key: string): number => tally.get(key) ?? 0;
    // Every kind of damage was exercised both ways where both are possible, and the rejections span the
    // reader's checks (a reader that accepted everything, or refused everything, fails here).
    assert.ok(n('truncate rejected') > 1000, 'truncations');
    assert.ok(n('data rejected') > 500 && n('data loaded') > 10, 'unsealed data damage both ways');
    assert.ok(
      n('data-sealed rejected') > 100 && n('data-sealed loaded') > 100,
      'sealed data damage both ways',
    );
    assert.ok(n('header rejected') > 1000 && n('header loaded') > 50, 'header damage both ways');
    assert.ok(n('flip rejected') > 1000 && n('flip loaded') >= 3, 'bit flips both ways');
    assert.ok(n('flip-sealed rejected') > 1000 && n('flip-sealed loaded') >= 3, 'sealed bit flips both ways');
    for (const code of [
      'truncated',
      'bad-magic',
      'bad-version',
      'bad-header',
      'bad-layer',
      'bad-tensor',
      'bad-value',
      'bad-checksum',
      'unsupported',
    ]) {
      assert.ok(n(`code ${code}`) > 0, `no mutant was rejected as ${code}`);
    }
  });
});
