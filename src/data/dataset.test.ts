import { DatasetNotFoundError } from '../errors.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { CIFAR_IMAGE_BYTES, encodeCifar } from './cifar.js';
import {
  createDataset,
  DEBIAN_FASHION_MNIST_DIR,
  loadDataset,
  locateDataset,
  syntheticDataset,
} from './dataset.js';
import { encodeIdx } from './idx.js';
import { channelStats } from './pipeline.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'onebit-dataset-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Write a tiny IDX split (n items of 1 x 2 x 2, labels i % 10) into `dir`, gzipped or not. */
async function writeIdxSplit(dir: string, prefix: 'train' | 't10k', n: number, gz: boolean): Promise<void> {
  await mkdir(dir, { recursive: true });
  const images = encodeIdx(
    [n, 2, 2],
    Uint8Array.from({ length: n * 4 }, (_, i) => i % 256),
  );
  const labels = encodeIdx(
    [n],
    Uint8Array.from({ length: n }, (_, i) => i % 10),
  );
  const suffix = gz ? '.gz' : '';
  await writeFile(join(dir, `${prefix}-images-idx3-ubyte${suffix}`), gz ? gzipSync(images) : images);
  await writeFile(join(dir, `${prefix}-labels-idx1-ubyte${suffix}`), gz ? gzipSync(labels) : labels);
}

describe('loadDataset lookup', () => {
  test('dataDir is the only place searched when given; else the cache beats the system directory', async () => {
    const base = join(root, 'order');
    const dataDir = join(base, 'data');
    const cacheDir = join(base, 'cache');
    const systemDir = join(base, 'system');
    await writeIdxSplit(dataDir, 'train', 3, false);
    await writeIdxSplit(join(cacheDir, 'fashion-mnist'), 'train', 4, true);
    await writeIdxSplit(systemDir, 'train', 5, true);

    const fromData = await loadDataset('fashion-mnist', { split: 'train', dataDir, cacheDir, systemDir });
    assert.equal(fromData.count, 3);
    // The files it was read from, with their SHA-256 (recorded by every run).
    assert.deepEqual(
      fromData.sources?.map((f) => f.path),
      [join(dataDir, 'train-images-idx3-ubyte'), join(dataDir, 'train-labels-idx1-ubyte')],
    );
    const labelBytes = await readFile(join(dataDir, 'train-labels-idx1-ubyte'));
    assert.equal(fromData.sources?.[1].sha256, createHash('sha256').update(labelBytes).digest('hex'));
    assert.equal(fromData.sources?.[1].bytes, labelBytes.byteLength);
    const fromCache = await loadDataset('fashion-mnist', { split: 'train', cacheDir, systemDir });
    assert.equal(fromCache.count, 4);
    const fromSystem = await loadDataset('fashion-mnist', {
      split: 'train',
      cacheDir: join(base, 'nocache'),
      systemDir,
    });
    assert.equal(fromSystem.count, 5);
    assert.deepEqual(fromSystem.shape, [1, 2, 2]);
    assert.equal(fromSystem.classes, 10);
    assert.equal(fromSystem.name, 'fashion-mnist');
  });

  test('a directory with only some files of the split is passed over', async () => {
    const base = join(root, 'partial');
    const cacheDir = join(base, 'cache');
    const systemDir = join(base, 'system');
    await writeIdxSplit(join(cacheDir, 'fashion-mnist'), 'train', 3, false);
    await rm(join(cacheDir, 'fashion-mnist', 'train-labels-idx1-ubyte'));
    await writeIdxSplit(systemDir, 'train', 6, false);
    const ds = await loadDataset('fashion-mnist', { split: 'train', cacheDir, systemDir });
    assert.equal(ds.count, 6);
  });

  test('a dataDir that does not hold the set is an error, never a fall-back to the cache', async () => {
    const base = join(root, 'explicit');
    const cacheDir = join(base, 'cache');
    await writeIdxSplit(join(cacheDir, 'mnist'), 'train', 6, false);
    const empty = join(base, 'empty');
    await mkdir(empty, { recursive: true });
    const aFile = join(base, 'a-file');
    await writeFile(aFile, 'x');
    for (const [dataDir, reason] of [
      [empty, 'missing train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]'],
      [join(base, 'missing'), 'directory does not exist'],
      [aFile, 'not a directory'],
    ] as const) {
      const err = await loadDataset('mnist', { split: 'train', dataDir, cacheDir }).catch((e: unknown) => e);
      assert.ok(err instanceof DatasetNotFoundError, String(err));
      assert.deepEqual(err.searched, [{ dir: dataDir, reason }]);
      assert.match(err.message, new RegExp(`${dataDir} \\(${reason.replace(/[[\].]/g, '\\$&')}\\)`));
    }
  });

  test('missing data set: the error lists every place searched and how to get it', async () => {
    const base = join(root, 'missing');
    const cacheDir = join(base, 'cache');
    const dataDir = join(cacheDir, 'fashion-mnist');
    await writeIdxSplit(dataDir, 'train', 3, false); // train only: the test split is missing
    const systemDir = join(base, 'system');
    const err = await loadDataset('fashion-mnist', { split: 'test', cacheDir, systemDir }).then(
      () => assert.fail('expected DatasetNotFoundError'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DatasetNotFoundError);
    assert.deepEqual(
      err.searched.map((s) => s.dir),
      [dataDir, systemDir],
    );
    assert.equal(
      err.message,
      [
        `data set 'fashion-mnist' (test split) not found. Looked in:`,
        `  ${dataDir} (missing t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])`,
        `  ${systemDir} (directory does not exist)`,
        'Get it with `onebit data fetch fashion-mnist` or `apt-get install dataset-fashion-mnist`, or pass a directory holding the files.',
      ].join('\n'),
    );
  });

  test('the Debian directory is the default system directory for Fashion-MNIST only', async () => {
    const cacheDir = join(root, 'defaults');
    const fm = await locateDataset('fashion-mnist', { split: 'test', cacheDir }).catch((e: unknown) => e);
    if (fm instanceof DatasetNotFoundError) assert.equal(fm.searched.at(-1)?.dir, DEBIAN_FASHION_MNIST_DIR);
    else assert.equal((fm as { dir: string }).dir, DEBIAN_FASHION_MNIST_DIR);
    const mnist = await locateDataset('mnist', { split: 'test', cacheDir }).catch((e: unknown) => e);
    assert.ok(mnist instanceof DatasetNotFoundError);
    assert.deepEqual(
      mnist.searched.map((s) => s.dir),
      [join(cacheDir, 'mnist')],
    );
    assert.doesNotMatch(mnist.message, /apt-get/);
    assert.match(mnist.message, /`onebit data fetch mnist`/);
  });

  test('CIFAR-10 is found inside the directory its tarball extracts to', async () => {
    const cacheDir = join(root, 'c10cache');
    const inner = join(cacheDir, 'cifar10', 'cifar-10-batches-bin');
    await mkdir(inner, { recursive: true });
    for (let b = 1; b <= 5; b++) {
      const img = new Uint8Array(2 * CIFAR_IMAGE_BYTES).fill(b);
      await writeFile(
        join(inner, `data_batch_${b}.bin`),
        encodeCifar('cifar10', img, Uint8Array.from([b, b + 1])),
      );
    }
    const ds = await loadDataset('cifar10', { split: 'train', cacheDir });
    assert.equal(ds.count, 10);
    assert.deepEqual(ds.shape, [3, 32, 32]);
    assert.deepEqual(Array.from(ds.labels), [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    assert.equal(ds.images[4 * CIFAR_IMAGE_BYTES], 3, 'batches are loaded in order');
    const err = await loadDataset('cifar10', { split: 'test', cacheDir }).catch((e: unknown) => e);
    assert.ok(err instanceof DatasetNotFoundError);
    assert.match(err.message, /missing test_batch\.bin \(also looked in its cifar-10-batches-bin\/\)/);
  });

  test('CIFAR-100 gives fine labels by default and coarse labels on request', async () => {
    const dataDir = join(root, 'c100');
    await mkdir(dataDir, { recursive: true });
    const img = new Uint8Array(2 * CIFAR_IMAGE_BYTES);
    await writeFile(
      join(dataDir, 'test.bin'),
      encodeCifar('cifar100', img, Uint8Array.from([77, 3]), Uint8Array.from([12, 0])),
    );
    const opts = { split: 'test' as const, dataDir, cacheDir: join(root, 'c100cache') };
    const fine = await loadDataset('cifar100', opts);
    assert.equal(fine.classes, 100);
    assert.deepEqual(Array.from(fine.labels), [77, 3]);
    const coarse = await loadDataset('cifar100', { ...opts, cifar100Labels: 'coarse' });
    assert.equal(coarse.classes, 20);
    assert.deepEqual(Array.from(coarse.labels), [12, 0]);
  });
});

describe('real Fashion-MNIST (Debian package dataset-fashion-mnist)', () => {
  const present = existsSync(join(DEBIAN_FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz'));
  const skip = present
    ? false
    : `${DEBIAN_FASHION_MNIST_DIR} is absent (apt-get install dataset-fashion-mnist)`;
  for (const [split, count] of [
    ['train', 60000],
    ['test', 10000],
  ] as const) {
    test(
      `${split} split loads from the Debian location: ${count} items, 10 balanced classes`,
      { skip },
      async () => {
        const ds = await loadDataset('fashion-mnist', { split, cacheDir: join(root, 'empty-cache') });
        assert.equal(ds.count, count);
        assert.deepEqual(ds.shape, [1, 28, 28]);
        assert.equal(ds.classes, 10);
        assert.equal(ds.images.length, count * 784);
        const perClass = new Array<number>(10).fill(0);
        for (const l of ds.labels) perClass[l]++;
        assert.deepEqual(perClass, new Array<number>(10).fill(count / 10));
        if (split === 'train') {
          // The widely quoted Fashion-MNIST statistics and first labels (ankle boot, T-shirt, T-shirt, dress, ...).
          const stats = channelStats(ds);
          assert.ok(
            Math.abs(stats.mean[0] - 0.286) < 5e-4 && Math.abs(stats.std[0] - 0.353) < 5e-4,
            JSON.stringify(stats),
          );
          assert.deepEqual(Array.from(ds.labels.subarray(0, 5)), [9, 0, 0, 3, 0]);
        }
      },
    );
  }
});

describe('synthetic data sets', () => {
  test('shapes, balanced labels, determinism per seed', async () => {
    const a = await loadDataset('synthetic-mnist', {
      split: 'train',
      cacheDir: root,
      synthetic: { count: 100, seed: 7 },
    });
    assert.deepEqual(a.shape, [1, 28, 28]);
    assert.equal(a.count, 100);
    assert.equal(a.images.length, 100 * 784);
    const perClass = new Array<number>(10).fill(0);
    for (const l of a.labels) perClass[l]++;
    assert.deepEqual(perClass, new Array<number>(10).fill(10));
    const again = await loadDataset('synthetic-mnist', {
      split: 'train',
      cacheDir: root,
      synthetic: { count: 100, seed: 7 },
    });
    assert.deepEqual(again.images, a.images);
    assert.deepEqual(again.labels, a.labels);
    const other = await loadDataset('synthetic-mnist', {
      split: 'train',
      cacheDir: root,
      synthetic: { count: 100, seed: 8 },
    });
    assert.notDeepEqual(other.images, a.images);
    const rgb = await loadDataset('synthetic-cifar', {
      split: 'test',
      cacheDir: root,
      synthetic: { count: 12, classes: 4 },
    });
    assert.deepEqual(rgb.shape, [3, 32, 32]);
    assert.equal(rgb.classes, 4);
    assert.equal(rgb.images.length, 12 * 3072);
  });

  test('train and test share class prototypes: nearest train centroid classifies test items', () => {
    const opts = { shape: [1, 8, 8] as const, classes: 5, seed: 3, noise: 48 };
    const train = syntheticDataset({ ...opts, count: 200, split: 'train' });
    const test_ = syntheticDataset({ ...opts, count: 100, split: 'test' });
    assert.notDeepEqual(train.images.subarray(0, 64), test_.images.subarray(0, 64));
    const centroids = new Float64Array(5 * 64);
    const counts = new Array<number>(5).fill(0);
    for (let i = 0; i < train.count; i++) {
      counts[train.labels[i]]++;
      for (let p = 0; p < 64; p++) centroids[train.labels[i] * 64 + p] += train.images[i * 64 + p];
    }
    for (let c = 0; c < 5; c++) for (let p = 0; p < 64; p++) centroids[c * 64 + p] /= counts[c];
    let correct = 0;
    for (let i = 0; i < test_.count; i++) {
      let best = -1;
      let bestDist = Infinity;
      for (let c = 0; c < 5; c++) {
        let d = 0;
        for (let p = 0; p < 64; p++) d += (test_.images[i * 64 + p] - centroids[c * 64 + p]) ** 2;
        if (d < bestDist) [best, bestDist] = [c, d];
      }
      if (best === test_.labels[i]) correct++;
    }
    assert.ok(correct >= 95, `nearest-centroid accuracy ${correct}/100`);
  });

  test('createDataset rejects inconsistent fields', () => {
    const ok = {
      name: 'x',
      images: new Uint8Array(8),
      labels: Uint8Array.from([0, 1]),
      shape: [1, 2, 2],
      classes: 2,
    };
    assert.equal(createDataset(ok).count, 2);
    assert.throws(() => createDataset({ ...ok, images: new Uint8Array(7) }), RangeError);
    assert.throws(() => createDataset({ ...ok, labels: Uint8Array.from([0, 2]) }), /label of item 1 is 2/);
    assert.throws(() => createDataset({ ...ok, shape: [4, 2] }), RangeError);
  });
});
