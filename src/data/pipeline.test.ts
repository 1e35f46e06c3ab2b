import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from '../tensor/rng.js';
import { createDataset, syntheticDataset, type Dataset } from './dataset.js';
import {
  classSubset,
  batchCount,
  batches,
  channelStats,
  createBatchBuffers,
  fillBatch,
  Normalizer,
  shuffledIndices,
  subsetDataset,
  validationSplit,
} from './pipeline.js';

function isPermutation(a: ArrayLike<number>, n: number): boolean {
  if (a.length !== n) return false;
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (!(a[i] >= 0 && a[i] < n) || seen[a[i]] === 1) return false;
    seen[a[i]] = 1;
  }
  return true;
}

/** Items 0..n-1 of shape C x H x W whose every byte is the item index (mod 256); label = index mod classes. */
function indexDataset(n: number, shape: [number, number, number], classes = 10): Dataset {
  const size = shape[0] * shape[1] * shape[2];
  const images = new Uint8Array(n * size);
  for (let i = 0; i < n; i++) images.fill(i % 256, i * size, (i + 1) * size);
  return createDataset({
    name: 'idx',
    images,
    labels: Uint8Array.from({ length: n }, (_, i) => i % classes),
    shape,
    classes,
  });
}

describe('order and validation split', () => {
  test('shuffledIndices is a permutation, reproducible per seed', () => {
    const a = shuffledIndices(1000, new Rng(1));
    assert.ok(isPermutation(a, 1000));
    assert.deepEqual(shuffledIndices(1000, new Rng(1)), a);
    assert.notDeepEqual(shuffledIndices(1000, new Rng(2)), a);
  });

  test('validationSplit: 10% by default, disjoint, covering, sorted, reproducible per seed', () => {
    const s = validationSplit(1005, { seed: 42 });
    assert.equal(s.validation.length, 101); // round(100.5)
    assert.equal(s.train.length, 904);
    const all = new Uint32Array([...s.train, ...s.validation]).sort();
    assert.ok(isPermutation(all, 1005), 'train and validation are disjoint and cover every item');
    for (let i = 1; i < s.train.length; i++) assert.ok(s.train[i - 1] < s.train[i]);
    assert.deepEqual(validationSplit(1005, { seed: 42 }), s);
    assert.notDeepEqual(validationSplit(1005, { seed: 43 }).validation, s.validation);
    assert.equal(validationSplit(1000, { seed: 1, fraction: 0.25 }).validation.length, 250);
    assert.equal(validationSplit(10, { seed: 1, fraction: 0 }).validation.length, 0);
    assert.throws(() => validationSplit(10, { seed: 1, fraction: 1 }), RangeError);
  });

  test('subsetDataset copies the chosen items in order', () => {
    const ds = indexDataset(10, [1, 2, 2]);
    const sub = subsetDataset(ds, [7, 2]);
    assert.equal(sub.count, 2);
    assert.deepEqual(Array.from(sub.images), [7, 7, 7, 7, 2, 2, 2, 2]);
    assert.deepEqual(Array.from(sub.labels), [7, 2]);
    assert.throws(() => subsetDataset(ds, [10]), RangeError);
  });

  test('classSubset keeps the chosen classes, relabelled in the order given, with their names', () => {
    const ds = { ...indexDataset(10, [1, 2, 2]), classNames: 'abcdefghij'.split('') };
    const sub = classSubset(ds, [7, 2, 5]);
    assert.equal(sub.classes, 3);
    assert.deepEqual(Array.from(sub.labels), [1, 2, 0]); // items 2, 5, 7 in data order
    assert.deepEqual(Array.from(sub.images), [2, 2, 2, 2, 5, 5, 5, 5, 7, 7, 7, 7]);
    assert.deepEqual(sub.classNames, ['h', 'c', 'f']);
  });
});

describe('normalisation', () => {
  test('channelStats computes per-channel mean and population std in [0, 1] units', () => {
    // Channel 0 bytes {0, 255} equally often: mean 0.5, std 0.5; channel 1 all 51: mean 0.2, std 0.
    const images = Uint8Array.from([0, 255, 51, 51, 255, 0, 51, 51]);
    const ds = createDataset({
      name: 's',
      images,
      labels: Uint8Array.from([0, 0]),
      shape: [2, 1, 2],
      classes: 1,
    });
    const stats = channelStats(ds);
    assert.deepEqual(
      stats.mean.map((m) => +m.toFixed(12)),
      [0.5, 0.2],
    );
    assert.deepEqual(
      stats.std.map((s) => +s.toFixed(12)),
      [0.5, 0],
    );
  });

  test('Normalizer writes (v/255 - mean)/std per channel into float32 and float64 buffers', () => {
    const norm = new Normalizer([2, 1, 2], { mean: [0.5, 0.1], std: [0.25, 2] });
    const src = Uint8Array.from([0, 255, 51, 102]);
    for (const dst of [new Float64Array(6), new Float32Array(6)]) {
      norm.writeImage(src, 0, dst, 1);
      const want = [0, (0 - 0.5) / 0.25, (1 - 0.5) / 0.25, (0.2 - 0.1) / 2, (0.4 - 0.1) / 2, 0];
      want.forEach((w, i) => assert.ok(Math.abs(dst[i] - w) < 1e-6, `element ${i}: ${dst[i]} vs ${w}`));
    }
    assert.throws(() => new Normalizer([1, 1, 1], { mean: [0], std: [0] }), /std of channel 0/);
    assert.throws(() => new Normalizer([2, 1, 1], { mean: [0], std: [1] }), /2 channels/);
  });
});

describe('batches', () => {
  test('fillBatch fills pre-allocated buffers from an order; the last batch is partial', () => {
    const ds = indexDataset(10, [1, 2, 2]);
    const buffers = createBatchBuffers(ds.shape, 4);
    const norm = Normalizer.unit(ds.shape);
    const order = Uint32Array.from([9, 3, 0, 5, 1, 8, 2, 7, 6, 4]);
    assert.equal(fillBatch(ds, order, 0, buffers, { normalizer: norm }), 4);
    assert.deepEqual(Array.from(buffers.labels), [9, 3, 0, 5]);
    assert.deepEqual(
      Array.from(buffers.images.subarray(4, 8)),
      [3 / 255, 3 / 255, 3 / 255, 3 / 255].map(Math.fround),
    );
    buffers.images.fill(NaN);
    assert.equal(fillBatch(ds, order, 8, buffers, { normalizer: norm }), 2);
    assert.deepEqual(Array.from(buffers.labels.subarray(0, 2)), [6, 4]);
    assert.ok(buffers.images.subarray(0, 8).every((v) => !Number.isNaN(v)));
    assert.ok(
      buffers.images.subarray(8).every((v) => Number.isNaN(v)),
      'nothing written past the batch',
    );
    assert.throws(() => fillBatch(ds, [10], 0, buffers, { normalizer: norm }), /out of range/);
    assert.throws(
      () => fillBatch(ds, order, 0, buffers, { normalizer: Normalizer.unit([1, 3, 3]) }),
      /does not match/,
    );
  });

  test('batches() reuses the same buffers and counts batches with and without dropLast', () => {
    const ds = indexDataset(10, [1, 1, 1]);
    const buffers = createBatchBuffers(ds.shape, 3, 'float64');
    assert.ok(buffers.images instanceof Float64Array);
    const order = shuffledIndices(10, new Rng(0));
    const sizes: number[] = [];
    const seen: number[] = [];
    for (const n of batches(ds, order, buffers, { normalizer: Normalizer.unit(ds.shape) })) {
      sizes.push(n);
      seen.push(...buffers.labels.subarray(0, n));
    }
    assert.deepEqual(sizes, [3, 3, 3, 1]);
    assert.deepEqual(seen, Array.from(order));
    assert.deepEqual(
      [...batches(ds, order, buffers, { normalizer: Normalizer.unit(ds.shape), dropLast: true })],
      [3, 3, 3],
    );
    assert.equal(batchCount(10, 3), 4);
    assert.equal(batchCount(10, 3, true), 3);
  });

  test('a pixel permutation is applied while filling', () => {
    const images = Uint8Array.from([10, 20, 30, 40]);
    const ds = createDataset({
      name: 'p',
      images,
      labels: Uint8Array.from([0]),
      shape: [1, 2, 2],
      classes: 1,
    });
    const buffers = createBatchBuffers(ds.shape, 1, 'float64');
    fillBatch(ds, [0], 0, buffers, {
      normalizer: Normalizer.unit(ds.shape),
      permutation: Uint32Array.from([3, 0, 2, 1]),
    });
    assert.deepEqual(
      Array.from(buffers.images, (v) => Math.round(v * 255)),
      [40, 10, 30, 20],
    );
  });
});

describe('CIFAR augmentation', () => {
  const shape = [3, 8, 8] as const;
  const plane = 64;
  /** One 3 x 8 x 8 image with byte (c, y, x) = 1 + c*64 + y*8 + x (never 0). */
  const image = Uint8Array.from({ length: 3 * plane }, (_, i) => 1 + i);
  const unit = Normalizer.unit(shape);
  const byteAt = (dst: Float64Array, c: number, y: number, x: number): number =>
    Math.round(dst[c * plane + y * 8 + x] * 255);

  test('centre crop without flip is the identity; centre crop with flip mirrors rows', () => {
    const dst = new Float64Array(3 * plane);
    unit.writeCropFlip(image, 0, dst, 0, 4, 4, 4, false);
    assert.deepEqual(
      Array.from(dst, (v) => Math.round(v * 255)),
      Array.from(image),
    );
    unit.writeCropFlip(image, 0, dst, 0, 4, 4, 4, true);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 8; y++)
        for (let x = 0; x < 8; x++) {
          assert.equal(byteAt(dst, c, y, x), image[c * plane + y * 8 + (7 - x)]);
        }
  });

  test('cropping into the padding gives zeros and shifts the image', () => {
    const dst = new Float64Array(3 * plane);
    unit.writeCropFlip(image, 0, dst, 0, 4, 0, 1, false); // window starts 4 rows up and 3 columns left
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 8; y++)
        for (let x = 0; x < 8; x++) {
          const sy = y - 4;
          const sx = x - 3;
          const want = sy >= 0 && sx >= 0 ? image[c * plane + sy * 8 + sx] : 0;
          assert.equal(byteAt(dst, c, y, x), want, `(${c}, ${y}, ${x})`);
        }
    // With normalisation, padding takes the value of a 0 byte, i.e. -mean/std.
    const norm = new Normalizer(shape, { mean: [0.5, 0.25, 0], std: [0.5, 0.5, 1] });
    norm.writeCropFlip(image, 0, dst, 0, 4, 8, 8, false); // window shifted 4 down and right: bottom-right is padding
    assert.equal(dst[plane - 1], -1);
    assert.equal(dst[2 * plane - 1], -0.5);
    assert.equal(dst[3 * plane - 1], 0);
    assert.equal(
      Math.round((dst[0] * 0.5 + 0.5) * 255),
      image[4 * 8 + 4],
      'top-left comes from source (4, 4)',
    );
  });

  test('augmented batches keep the shape and are deterministic per seed', () => {
    const ds = syntheticDataset({ shape: [3, 32, 32], count: 20, classes: 10, seed: 5 });
    const norm = new Normalizer(ds.shape, channelStats(ds));
    const order = shuffledIndices(20, new Rng(9));
    const run = (seed: number): Float32Array => {
      const buffers = createBatchBuffers(ds.shape, 8);
      const out = new Float32Array(20 * 3072);
      const augment = { rng: new Rng(seed), pad: 4, flip: true };
      let at = 0;
      for (const n of batches(ds, order, buffers, { normalizer: norm, augment })) {
        assert.equal(buffers.images.length, 8 * 3 * 32 * 32);
        out.set(buffers.images.subarray(0, n * 3072), at);
        at += n * 3072;
      }
      assert.equal(at, 20 * 3072);
      return out;
    };
    const a = run(1);
    assert.deepEqual(run(1), a);
    assert.notDeepEqual(run(2), a);
    // Augmentation changes images (a shift or flip happens for almost every one of 20 items).
    const plain = createBatchBuffers(ds.shape, 20);
    fillBatch(ds, order, 0, plain, { normalizer: norm });
    assert.notDeepEqual(plain.images, a);
  });

  test('augmentation and permutation together are refused', () => {
    const ds = syntheticDataset({ shape: [1, 4, 4], count: 2, classes: 2, seed: 0 });
    const buffers = createBatchBuffers(ds.shape, 2);
    assert.throws(
      () =>
        fillBatch(ds, [0, 1], 0, buffers, {
          normalizer: Normalizer.unit(ds.shape),
          augment: { rng: new Rng(0), pad: 1, flip: true },
          permutation: new Uint32Array(16),
        }),
      /cannot be combined/,
    );
  });
});
