import { DataFormatError } from '../errors.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CIFAR_IMAGE_BYTES, cifarRecordBytes, encodeCifar, parseCifar, readCifarFiles } from './cifar.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'onebit-cifar-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `n` images whose bytes encode (item, position), so any misplaced byte shows. */
function images(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n * CIFAR_IMAGE_BYTES);
  for (let i = 0; i < out.length; i++) out[i] = (i * 31 + seed * 17 + (i >> 10)) % 256;
  return out;
}

function expectFormatError(fn: () => unknown, field: RegExp | string): DataFormatError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DataFormatError, String(err));
    if (typeof field === 'string') assert.equal(err.field, field);
    else assert.match(err.field, field);
    return err;
  }
  return assert.fail('expected a DataFormatError');
}

describe('CIFAR binary format', () => {
  test('record sizes', () => {
    assert.equal(cifarRecordBytes('cifar10'), 3073);
    assert.equal(cifarRecordBytes('cifar100'), 3074);
  });

  test('CIFAR-10 round trip', () => {
    const imgs = images(3, 1);
    const labels = Uint8Array.from([9, 0, 4]);
    const bytes = encodeCifar('cifar10', imgs, labels);
    assert.equal(bytes.length, 3 * 3073);
    assert.equal(bytes[3073], 0, 'label byte leads each record');
    const got = parseCifar(bytes, 'data_batch_1.bin', 'cifar10');
    assert.equal(got.count, 3);
    assert.equal(got.coarseLabels, null);
    assert.deepEqual(Array.from(got.labels), [9, 0, 4]);
    assert.deepEqual(got.images, imgs);
  });

  test('CIFAR-100 round trip keeps coarse and fine labels', () => {
    const imgs = images(2, 2);
    const bytes = encodeCifar('cifar100', imgs, Uint8Array.from([99, 42]), Uint8Array.from([19, 7]));
    assert.deepEqual([bytes[0], bytes[1]], [19, 99], 'coarse byte, then fine byte');
    const got = parseCifar(bytes, 'train.bin', 'cifar100');
    assert.deepEqual(Array.from(got.labels), [99, 42]);
    assert.deepEqual(Array.from(got.coarseLabels ?? []), [19, 7]);
    assert.deepEqual(got.images, imgs);
  });

  test('several files are concatenated in order', async () => {
    const a = images(2, 3);
    const b = images(3, 4);
    const pa = join(dir, 'data_batch_1.bin');
    const pb = join(dir, 'data_batch_2.bin');
    await writeFile(pa, encodeCifar('cifar10', a, Uint8Array.from([1, 2])));
    await writeFile(pb, encodeCifar('cifar10', b, Uint8Array.from([3, 4, 5])));
    const got = await readCifarFiles([pa, pb], 'cifar10');
    assert.equal(got.count, 5);
    assert.deepEqual(Array.from(got.labels), [1, 2, 3, 4, 5]);
    assert.deepEqual(got.images.subarray(0, a.length), a);
    assert.deepEqual(got.images.subarray(a.length), b);
  });

  test('truncated record: size must be a whole number of records', () => {
    const bytes = encodeCifar('cifar10', images(2, 5), Uint8Array.from([1, 2]));
    const err = expectFormatError(
      () => parseCifar(bytes.subarray(0, bytes.length - 100), 'test_batch.bin', 'cifar10'),
      'file size',
    );
    assert.equal(
      err.message,
      'test_batch.bin: file size: expected a positive multiple of the cifar10 record size 3073 bytes, found 6046 bytes (1 whole record + 2973 bytes: truncated record)',
    );
    const c100 = encodeCifar('cifar100', images(1, 6), Uint8Array.from([1]), Uint8Array.from([1]));
    expectFormatError(() => parseCifar(c100, 'train.bin', 'cifar10'), 'file size'); // 3074 is not a multiple of 3073
  });

  test('empty file is rejected', () => {
    expectFormatError(() => parseCifar(new Uint8Array(0), 'empty.bin', 'cifar100'), 'file size');
  });

  test('a truncated file among several names that file', async () => {
    const good = join(dir, 'good.bin');
    const bad = join(dir, 'bad.bin');
    await writeFile(good, encodeCifar('cifar10', images(1, 7), Uint8Array.from([0])));
    await writeFile(bad, encodeCifar('cifar10', images(1, 7), Uint8Array.from([0])).subarray(0, 3000));
    await assert.rejects(
      readCifarFiles([good, bad], 'cifar10'),
      (err: unknown) => err instanceof DataFormatError && err.file === bad,
    );
  });

  test('label ranges: CIFAR-10 < 10, CIFAR-100 coarse < 20 and fine < 100', () => {
    const img = images(2, 8);
    const c10 = encodeCifar('cifar10', img, Uint8Array.from([3, 10]));
    const err = expectFormatError(() => parseCifar(c10, 'data_batch_3.bin', 'cifar10'), 'label of item 1');
    assert.equal(err.message, 'data_batch_3.bin: label of item 1: expected a class index < 10, found 10');
    const coarse = encodeCifar('cifar100', img, Uint8Array.from([5, 5]), Uint8Array.from([20, 0]));
    expectFormatError(() => parseCifar(coarse, 'train.bin', 'cifar100'), 'coarse label of item 0');
    const fine = encodeCifar('cifar100', img, Uint8Array.from([5, 100]), Uint8Array.from([0, 0]));
    expectFormatError(() => parseCifar(fine, 'train.bin', 'cifar100'), 'fine label of item 1');
  });
});
