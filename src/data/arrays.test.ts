import { ConfigError } from '../errors.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { datasetFromArrays, type DatasetArrays } from './arrays.js';

/** 5 items of 2 x 2 x 3, pixel bytes numbered so a mix-up of items or offsets would show. */
function arrays(overrides: Partial<DatasetArrays> = {}): DatasetArrays {
  return {
    images: Uint8Array.from({ length: 5 * 12 }, (_, i) => (i * 7) % 256),
    labels: [0, 2, 1, 2, 0],
    shape: [2, 2, 3],
    classes: 3,
    ...overrides,
  };
}

/** Assert that `fn` throws a ConfigError for `field` whose message matches `pattern`. */
function throwsConfig(fn: () => unknown, field: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.match(e.message, pattern);
    return true;
  });
}

test('datasetFromArrays wraps valid arrays as a Dataset, labels as bytes', () => {
  const input = arrays();
  for (const labels of [[0, 2, 1, 2, 0], Int32Array.of(0, 2, 1, 2, 0), Uint8Array.of(0, 2, 1, 2, 0)]) {
    const ds = datasetFromArrays({ ...input, labels, name: 'mine' });
    assert.equal(ds.name, 'mine');
    assert.equal(ds.count, 5);
    assert.deepEqual(ds.shape, [2, 2, 3]);
    assert.equal(ds.classes, 3);
    assert.ok(ds.labels instanceof Uint8Array);
    assert.deepEqual([...ds.labels], [0, 2, 1, 2, 0]);
    assert.equal(ds.images, input.images, 'pixels are used as given, not copied');
    // The labels are a copy: changing the caller's array later does not relabel the data set.
    if (labels instanceof Uint8Array) {
      labels[0] = 1;
      assert.equal(ds.labels[0], 0);
    }
  }
  assert.equal(datasetFromArrays(input).name, 'arrays');
});

test('datasetFromArrays rejects pixels that are not bytes, with a hint for floats', () => {
  const floats = new Float32Array(60) as unknown as Uint8Array;
  throwsConfig(
    () => datasetFromArrays(arrays({ images: floats })),
    'images',
    /Uint8Array.*multiply by 255.*Float32Array/,
  );
  const plain = [1, 2, 3] as unknown as Uint8Array;
  throwsConfig(() => datasetFromArrays(arrays({ images: plain })), 'images', /got an array of 3/);
});

test('datasetFromArrays rejects a pixel count that does not match labels x shape', () => {
  throwsConfig(
    () => datasetFromArrays(arrays({ images: new Uint8Array(48) })),
    'images',
    /5 labels x 12 bytes per \[2, 2, 3\] item = 60 bytes, got 48 bytes \(enough for 4 items\)/,
  );
  throwsConfig(() => datasetFromArrays(arrays({ images: new Uint8Array(61) })), 'images', /got 61 bytes$/);
});

test('datasetFromArrays rejects labels out of range, fractional or missing', () => {
  throwsConfig(() => datasetFromArrays(arrays({ labels: [0, 1, 3, 0, 0] })), 'labels[2]', /0\.\.2, got 3/);
  throwsConfig(() => datasetFromArrays(arrays({ labels: [0, -1, 0, 0, 0] })), 'labels[1]', /got -1/);
  throwsConfig(() => datasetFromArrays(arrays({ labels: [0, 0, 0, 1.5, 0] })), 'labels[3]', /got 1\.5/);
  throwsConfig(
    () => datasetFromArrays(arrays({ labels: [], images: new Uint8Array(0) })),
    'labels',
    /at least one item/,
  );
});

test('datasetFromArrays rejects a bad shape or class count', () => {
  throwsConfig(() => datasetFromArrays(arrays({ shape: [12] })), 'shape', /\[C, H, W\].*got \[12\]/);
  throwsConfig(() => datasetFromArrays(arrays({ shape: [2, 0, 6] })), 'shape', /got \[2, 0, 6\]/);
  throwsConfig(() => datasetFromArrays(arrays({ shape: [2, 2.5, 3] })), 'shape', /got \[2, 2\.5, 3\]/);
  throwsConfig(() => datasetFromArrays(arrays({ classes: 0 })), 'classes', /1\.\.256.*got 0/);
  throwsConfig(() => datasetFromArrays(arrays({ classes: 257 })), 'classes', /got 257/);
  // 256 classes fit in byte labels (0..255).
  assert.equal(datasetFromArrays(arrays({ classes: 256, labels: [0, 255, 1, 2, 3] })).classes, 256);
});
