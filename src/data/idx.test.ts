import { DataFormatError } from '../errors.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { encodeIdx, parseIdx, readIdxFile, readIdxImagesLabels } from './idx.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'onebit-idx-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** 5 images of 3 x 4 with distinct bytes, and labels 0..4. */
function fixture(): { images: Uint8Array; labels: Uint8Array } {
  const images = new Uint8Array(5 * 3 * 4);
  for (let i = 0; i < images.length; i++) images[i] = (i * 7 + 3) % 256;
  return { images: encodeIdx([5, 3, 4], images), labels: encodeIdx([5], Uint8Array.from([0, 1, 2, 3, 4])) };
}

/** Assert a DataFormatError with the given field, and return it for further checks. */
function formatError(fn: () => unknown, field: string | RegExp): DataFormatError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof DataFormatError, `expected DataFormatError, got ${String(caught)}`);
  if (typeof field === 'string') assert.equal(caught.field, field);
  else assert.match(caught.field, field);
  return caught;
}

async function rejectsFormat(promise: Promise<unknown>, field: string | RegExp): Promise<DataFormatError> {
  const err = await promise.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  return formatError(() => {
    throw err;
  }, field);
}

describe('IDX', () => {
  test('encode/parse round trip keeps dims and bytes', () => {
    const data = Uint8Array.from({ length: 24 }, (_, i) => i * 10);
    const parsed = parseIdx(encodeIdx([2, 3, 4], data), 'x', { ndim: 3 });
    assert.deepEqual(parsed.dims, [2, 3, 4]);
    assert.deepEqual(Array.from(parsed.data), Array.from(data));
  });

  for (const gz of [false, true]) {
    test(`images + labels round trip from ${gz ? 'gzip' : 'raw'} files`, async () => {
      const { images, labels } = fixture();
      const suffix = gz ? '.gz' : '';
      const ip = join(dir, `rt-images${suffix}`);
      const lp = join(dir, `rt-labels${suffix}`);
      await writeFile(ip, gz ? gzipSync(images) : images);
      await writeFile(lp, gz ? gzipSync(labels) : labels);
      const got = await readIdxImagesLabels(ip, lp, { classes: 5 });
      assert.equal(got.count, 5);
      assert.deepEqual(got.shape, [1, 3, 4]);
      assert.deepEqual(Array.from(got.images), Array.from(images.subarray(16)));
      assert.deepEqual(Array.from(got.labels), [0, 1, 2, 3, 4]);
      assert.equal(got.images.byteOffset, 0, 'returned arrays are owned copies');
    });
  }

  test('compression is detected from content, not the name', async () => {
    const p = join(dir, 'gzipped-without-gz-suffix');
    await writeFile(p, gzipSync(fixture().labels));
    assert.deepEqual((await readIdxFile(p, { ndim: 1 })).dims, [5]);
  });

  test('wrong magic number: message names file, expected and found', () => {
    const bytes = fixture().images;
    bytes.set([0x12, 0x34, 0x56, 0x78], 0);
    const err = formatError(
      () => parseIdx(bytes, 't10k-images-idx3-ubyte.gz', { ndim: 3 }),
      'bad magic number',
    );
    assert.equal(
      err.message,
      't10k-images-idx3-ubyte.gz: bad magic number: expected 0x00000803, found 0x12345678',
    );
    assert.equal(err.file, 't10k-images-idx3-ubyte.gz');
    assert.equal(err.expected, '0x00000803');
    assert.equal(err.found, '0x12345678');
  });

  test('a labels file where images are expected is a magic number mismatch', () => {
    const err = formatError(() => parseIdx(fixture().labels, 'labels', { ndim: 3 }), 'bad magic number');
    assert.match(err.message, /expected 0x00000803, found 0x00000801 \(1 dimension\)/);
  });

  test('element types other than unsigned byte are rejected by name', () => {
    const bytes = encodeIdx([4], new Uint8Array(4));
    bytes[2] = 0x0d;
    const err = formatError(() => parseIdx(bytes, 'f.idx'), 'element type');
    assert.equal(err.message, 'f.idx: element type: expected 0x08 (unsigned byte), found 0x0d (float32)');
  });

  test('zero dimensions, zero-sized dimension and truncated header are rejected', () => {
    formatError(() => parseIdx(Uint8Array.from([0, 0, 8, 0]), 'f'), 'number of dimensions');
    const zeroDim = encodeIdx([2, 1], new Uint8Array(2));
    zeroDim.set([0, 0, 0, 0], 8);
    formatError(() => parseIdx(zeroDim, 'f'), 'dimension 1');
    formatError(() => parseIdx(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 5]), 'f'), 'header');
    formatError(() => parseIdx(Uint8Array.from([0, 0]), 'f'), 'header');
  });

  test('short (truncated) file and trailing bytes are rejected with exact sizes', () => {
    const full = fixture().images; // 16 + 60 bytes
    const short = formatError(() => parseIdx(full.subarray(0, full.length - 1), 'short.idx'), 'file size');
    assert.equal(
      short.message,
      'short.idx: file size: expected 76 bytes (16-byte header + 5 x 3 x 4), found 75 bytes (truncated file)',
    );
    const long = new Uint8Array(full.length + 3);
    long.set(full);
    assert.match(
      formatError(() => parseIdx(long, 'long.idx'), 'file size').found,
      /79 bytes \(trailing bytes\)/,
    );
  });

  test('a hostile header cannot make the reader allocate: huge dims fail the size check', () => {
    const bytes = new Uint8Array(4 + 4 * 255);
    bytes.set([0, 0, 8, 255]);
    bytes.fill(0xff, 4);
    formatError(() => parseIdx(bytes, 'hostile'), 'file size');
  });

  test('item count mismatch between images and labels', async () => {
    const ip = join(dir, 'mm-images');
    const lp = join(dir, 'mm-labels');
    await writeFile(ip, fixture().images);
    await writeFile(lp, encodeIdx([4], Uint8Array.from([0, 1, 2, 3])));
    const err = await rejectsFormat(readIdxImagesLabels(ip, lp, { classes: 10 }), 'item count');
    assert.equal(err.file, lp);
    assert.equal(err.message, `${lp}: item count: expected 5 (the item count of ${ip}), found 4`);
  });

  test('label out of range names the item', async () => {
    const ip = join(dir, 'lr-images');
    const lp = join(dir, 'lr-labels');
    await writeFile(ip, fixture().images);
    await writeFile(lp, encodeIdx([5], Uint8Array.from([0, 1, 9, 10, 2])));
    const err = await rejectsFormat(readIdxImagesLabels(ip, lp, { classes: 10 }), 'label of item 3');
    assert.equal(err.message, `${lp}: label of item 3: expected a class index < 10, found 10`);
  });

  test('gzip corruption and truncated gzip are format errors', async () => {
    const gz = gzipSync(fixture().images);
    const corrupt = Uint8Array.from(gz);
    for (let i = 12; i < corrupt.length - 8; i += 3) corrupt[i] ^= 0x5a;
    const cp = join(dir, 'corrupt.gz');
    await writeFile(cp, corrupt);
    const err = await rejectsFormat(readIdxFile(cp), 'gzip stream');
    assert.match(
      err.message,
      new RegExp(`^${cp}: gzip stream: expected valid gzip data, found corrupt data`),
    );
    const tp = join(dir, 'truncated.gz');
    await writeFile(tp, gz.subarray(0, gz.length - 10));
    await rejectsFormat(readIdxFile(tp), 'gzip stream');
  });

  test('decompressed size is capped', async () => {
    const p = join(dir, 'big.gz');
    await writeFile(p, gzipSync(encodeIdx([4096], new Uint8Array(4096))));
    await rejectsFormat(readIdxFile(p, { maxBytes: 1000 }), 'decompressed size');
  });
});
