/**
 * The `.onebit` reader: specific faults are rejected with the right code and place, and a seeded fuzz run
 * of mutated and truncated files (byte flips, truncations, hostile header values, corrupted data) shows that
 * every file is either rejected with an OnebitFormatError or loads as a valid model that the engine runs,
 * without crashing, hanging, or allocating more than the file's size justifies.
 */
import { type OnebitErrorCode, OnebitFormatError } from '../errors.js';
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { Rng } from '../tensor/rng.js';
import { createEngine } from './engine.js';
import {
  decodeOnebit,
  encodeOnebit,
  packSignRows,
  PREFIX_BYTES,
  type DenseLayer,
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

function headerOf(bytes: Uint8Array): { json: Record<string, unknown>; length: number } {
  const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  const json = JSON.parse(
    new TextDecoder().decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + length)),
  ) as Record<string, unknown>;
  return { json, length };
}

/** The file with its header replaced by `header` (data section unchanged, re-aligned). */
function withHeader(bytes: Uint8Array, header: unknown): Uint8Array {
  const { length } = headerOf(bytes);
  const dataStart = Math.ceil((PREFIX_BYTES + length) / 16) * 16;
  const data = bytes.subarray(dataStart);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const newStart = Math.ceil((PREFIX_BYTES + json.byteLength) / 16) * 16;
  const out = new Uint8Array(newStart + data.byteLength);
  out.set(bytes.subarray(0, PREFIX_BYTES));
  new DataView(out.buffer).setUint32(12, newStart - PREFIX_BYTES, true);
  out.set(json, PREFIX_BYTES);
  out.fill(0x20, PREFIX_BYTES + json.byteLength, newStart);
  out.set(data, newStart);
  return out;
}

function rejects(bytes: Uint8Array, code: OnebitErrorCode, where?: RegExp): void {
  assert.throws(
    () => decodeOnebit(bytes, 'm.onebit'),
    (error: unknown) => {
      assert.ok(error instanceof OnebitFormatError, `expected OnebitFormatError, got ${String(error)}`);
      assert.equal(error.code, code, error.message);
      assert.ok(error.where.startsWith('m.onebit: '), error.where);
      if (where !== undefined) assert.match(error.where, where);
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
    version[8] = 2;
    rejects(version, 'bad-version', /byte 8/);
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
    (kind.layers as Record<string, unknown>[])[2].kind = 'conv2d';
    rejects(withHeader(good, kind), 'bad-header', /layers\[2\]\.kind/);
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
      Math.ceil((PREFIX_BYTES + deepText.byteLength) / 16) * 16 + (deepFile.byteLength - 32),
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
    rejects(deepBytes, 'bad-header');
    void layers;
  });

  test('corrupted data is rejected: padding bits, directions, NaN', () => {
    const { json, length } = headerOf(good);
    const dataStart = Math.ceil((PREFIX_BYTES + length) / 16) * 16;
    const tensors = json.tensors as { name: string; offset: number }[];
    const at = (name: string): number =>
      dataStart + (tensors.find((t) => t.name === name) as { offset: number }).offset;
    const padding = good.slice();
    padding[at('layers.1.weights') + 4 + 3] |= 0x80; // word 1 of row 0: bits 36..63 are padding
    rejects(padding, 'bad-value', /layers\[1\]\.weights row 0/);
    const direction = good.slice();
    direction[at('layers.1.directions') + 2] = 0;
    rejects(direction, 'bad-value', /directions\[2\]/);
    const nan = good.slice();
    new DataView(nan.buffer).setFloat32(at('layers.3.scale') + 4, NaN, true);
    rejects(nan, 'bad-value', /scale\[1\]/);
  });

  test('fuzz: 12,000 mutated and truncated files are rejected with a typed error or load and run', async (t) => {
    const started = performance.now();
    const rng = new Rng(2024);
    const { json: baseHeader } = headerOf(good);
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
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, path: (string | number)[]): void => {
      paths.push(path);
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
      else if (typeof v === 'object' && v !== null)
        for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    };
    walk(baseHeader, []);
    const variants = [good, encodeOnebit(sampleModel(2))];
    let loaded = 0;
    let rejected = 0;
    let ran = 0;
    const codes = new Map<string, number>();
    for (let i = 0; i < 12000; i++) {
      const base = variants[i % 2];
      let bytes: Uint8Array;
      const kind = rng.uniform();
      if (kind < 0.3) {
        bytes = base.slice();
        const flips = 1 + rng.int(4);
        for (let f = 0; f < flips; f++) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
      } else if (kind < 0.45) {
        bytes = base.slice(0, rng.int(base.length));
      } else if (kind < 0.8) {
        const header = structuredClone(headerOf(base).json);
        const path = paths[1 + rng.int(paths.length - 1)];
        let parent = header as Record<string | number, unknown>;
        for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
        const last = path[path.length - 1];
        if (rng.uniform() < 0.15 && !Array.isArray(parent)) delete parent[last];
        else parent[last] = hostile[rng.int(hostile.length)];
        bytes = withHeader(base, header);
      } else {
        bytes = base.slice();
        const { length } = headerOf(base);
        const dataStart = Math.ceil((PREFIX_BYTES + length) / 16) * 16;
        const at = dataStart + rng.int(bytes.length - dataStart);
        bytes[at] = rng.int(256);
      }
      let model: OnebitModel;
      try {
        model = decodeOnebit(bytes, `fuzz-${i}`);
      } catch (error) {
        assert.ok(error instanceof OnebitFormatError, `mutant ${i}: ${String(error)}`);
        codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
        rejected++;
        continue;
      }
      loaded++;
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
        `mutant ${i}: ${tensorBytes} tensor bytes from a ${bytes.byteLength}-byte file`,
      );
      if (ran < 2000) {
        const engine = await createEngine(model, { threads: 1, maxBatch: 2 });
        try {
          // Memory: the module's own pages plus what the model and two examples justify.
          assert.ok(
            engine.memoryBytes() <= (64 + 2 * 64) * 1024 + 64 * bytes.byteLength * 2,
            `mutant ${i}: ${engine.memoryBytes()} bytes of memory`,
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
    const seconds = (performance.now() - started) / 1000;
    t.diagnostic(
      `${loaded} loaded (${ran} run on the engine), ${rejected} rejected in ${seconds.toFixed(1)} s; ` +
        [...codes].map(([c, n]) => `${c} ${n}`).join(', '),
    );
    assert.equal(loaded + rejected, 12000);
    assert.ok(loaded > 100 && rejected > 5000, `loaded ${loaded}, rejected ${rejected}`);
    assert.ok(codes.size >= 6, `error codes seen: ${[...codes.keys()].join(', ')}`);
    assert.ok(seconds < 60, `fuzzing took ${seconds} s`);
  });
});
