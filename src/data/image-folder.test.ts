import { ConfigError, DataFormatError, DatasetNotFoundError } from '../errors.js';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { decodePngImage } from '../io/image.js';
import type { Dataset } from './dataset.js';
import { loadImageFolder, type ImageFolder } from './image-folder.js';

const W = 3;
const H = 2;

let root: string;
let serial = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'onebit-image-folder-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh directory under the temporary root. */
async function freshDir(): Promise<string> {
  const dir = join(root, `case-${serial++}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

interface PngSpec {
  /** 0 gray, 4 gray + alpha, 2 RGB, 6 RGBA. */
  readonly colorType: 0 | 2 | 4 | 6;
  /** Samples in the PNG's own layout (HW x samples per pixel), 8 bits each. */
  readonly samples: Uint8Array;
  readonly width?: number;
  readonly height?: number;
}

function encodePng(spec: PngSpec): Buffer {
  const width = spec.width ?? W;
  const height = spec.height ?? H;
  const png = new PNG({ width, height });
  png.data = Buffer.from(spec.samples);
  // Same input and output colour type: pngjs writes the samples as given, in the requested colour type.
  return PNG.sync.write(png, { colorType: spec.colorType, inputColorType: spec.colorType, bitDepth: 8 });
}

async function writePng(path: string, spec: PngSpec): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, encodePng(spec));
}

/** A grayscale image whose pixels are all `value` but the last, which is `value + 1` (so flips would show). */
function grayImage(value: number): PngSpec {
  const samples = new Uint8Array(W * H).fill(value);
  samples[W * H - 1] = value + 1;
  return { colorType: 0, samples };
}

/** An RGB image with R = `value`, G = `value + 1`, B = `value + 2` everywhere. */
function rgbImage(value: number): PngSpec {
  const samples = new Uint8Array(W * H * 3);
  for (let p = 0; p < W * H; p++) samples.set([value, value + 1, value + 2], 3 * p);
  return { colorType: 2, samples };
}

/** Item i of a data set, as its C x H x W bytes. */
function item(ds: Dataset, i: number): number[] {
  const size = ds.shape[0] * ds.shape[1] * ds.shape[2];
  return [...ds.images.subarray(i * size, (i + 1) * size)];
}

/** Expect a DataFormatError about `file` whose message matches `pattern`. */
async function rejectsFormat(promise: Promise<unknown>, file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof DataFormatError, `expected DataFormatError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.match(e.message, pattern);
    return true;
  });
}

/**
 * DIR/<class>/*.png, grayscale: class c's image k has pixel value 10 * c + k (k < 10), so each loaded
 * item says which file it came from. Class folders are created in an order that is not the sorted one.
 */
async function grayClassTree(
  counts: Record<string, number>,
): Promise<{ dir: string; value: Map<string, number> }> {
  const dir = await freshDir();
  const names = Object.keys(counts);
  const sorted = [...names].sort();
  const value = new Map<string, number>();
  for (const name of names) {
    const c = sorted.indexOf(name);
    for (let k = 0; k < counts[name]; k++) {
      const file = join(dir, name, `img-${String(k).padStart(3, '0')}.png`);
      await writePng(file, grayImage(100 * c + k));
      value.set(file, 100 * c + k);
    }
  }
  return { dir, value };
}

/** The (class, k) pairs of every item of `ds`, checking that each item's label is its folder's class. */
function itemsOf(ds: Dataset): string[] {
  const out: string[] = [];
  for (let i = 0; i < ds.count; i++) {
    const pixels = item(ds, i);
    const v = pixels[0];
    const c = Math.floor(v / 100);
    assert.equal(ds.labels[i], c, `item ${i} (value ${v}) is labelled ${ds.labels[i]}`);
    assert.equal(pixels[pixels.length - 1], v + 1, 'pixel order kept');
    out.push(`${c}/${v % 100}`);
  }
  return out;
}

describe('loadImageFolder, DIR/<class>/*.png (held-out test split)', () => {
  const counts = { b: 20, a: 10, 'c-10': 2 };
  let tree: { dir: string; value: Map<string, number> };
  let folder: ImageFolder;
  before(async () => {
    tree = await grayClassTree(counts);
    folder = await loadImageFolder(tree.dir, { seed: 7 });
  });

  test('classes are the sorted folder names; grayscale PNGs give one channel', () => {
    assert.deepEqual(folder.classNames, ['a', 'b', 'c-10']);
    assert.deepEqual(folder.train.shape, [1, H, W]);
    assert.deepEqual(folder.test.shape, [1, H, W]);
    assert.equal(folder.train.classes, 3);
    assert.equal(folder.train.name, `folder:${tree.dir.split('/').pop()}`);
    assert.equal(folder.testSplit, 'held-out');
    assert.equal(folder.grayscaleFiles, 32);
    assert.equal(folder.colourFiles, 0);
    assert.equal(folder.firstColourFile, null);
  });

  test('the split is stratified, disjoint and covers every file once', () => {
    const train = itemsOf(folder.train);
    const test = itemsOf(folder.test);
    const all = [...train, ...test].sort();
    const expected = [
      ...Array.from({ length: 10 }, (_, k) => `0/${k}`),
      ...Array.from({ length: 20 }, (_, k) => `1/${k}`),
      ...Array.from({ length: 2 }, (_, k) => `2/${k}`),
    ].sort();
    assert.deepEqual(all, expected);
    const perClass = (items: string[], c: number) => items.filter((s) => s.startsWith(`${c}/`)).length;
    // round(0.2 * n) per class: 2 of 10, 4 of 20, and round(0.4) = 0 of 2.
    assert.deepEqual(
      [0, 1, 2].map((c) => perClass(test, c)),
      [2, 4, 0],
    );
  });

  test('the same seed gives the same split, another seed another one', async () => {
    const again = await loadImageFolder(tree.dir, { seed: 7 });
    assert.deepEqual(itemsOf(again.test), itemsOf(folder.test));
    assert.deepEqual(again.train.images, folder.train.images);
    const other = await loadImageFolder(tree.dir, { seed: 8 });
    assert.notDeepEqual(itemsOf(other.test), itemsOf(folder.test));
  });

  test('adding images to one class leaves the split of the others unchanged', async () => {
    const before = itemsOf(folder.test).filter((s) => !s.startsWith('0/'));
    for (let k = 10; k < 15; k++) await writePng(join(tree.dir, 'a', `img-${k}.png`), grayImage(k));
    try {
      const grown = await loadImageFolder(tree.dir, { seed: 7 });
      assert.deepEqual(
        itemsOf(grown.test).filter((s) => !s.startsWith('0/')),
        before,
      );
      assert.equal(itemsOf(grown.test).filter((s) => s.startsWith('0/')).length, 3); // round(0.2 * 15)
    } finally {
      for (let k = 10; k < 15; k++) await rm(join(tree.dir, 'a', `img-${k}.png`));
    }
  });

  test('testFraction sets the share held out, but keeps one training image per class', async () => {
    const half = await loadImageFolder(tree.dir, { testFraction: 0.5, seed: 1 });
    assert.equal(half.test.count, 5 + 10 + 1);
    const most = await loadImageFolder(tree.dir, { testFraction: 0.99, seed: 1 });
    assert.equal(most.train.count, 3);
    assert.deepEqual([...most.train.labels].sort(), [0, 1, 2]);
  });
});

test('DIR/train and DIR/test: the test folder is the test split; RGB PNGs give three channels in CHW order', async () => {
  const dir = await freshDir();
  await writePng(join(dir, 'train', 'cat', '1.png'), rgbImage(10));
  await writePng(join(dir, 'train', 'cat', '2.png'), rgbImage(20));
  await writePng(join(dir, 'train', 'dog', '1.png'), rgbImage(30));
  await writePng(join(dir, 'test', 'cat', '9.png'), rgbImage(40));
  await writePng(join(dir, 'test', 'dog', '9.png'), rgbImage(50));
  await writePng(join(dir, 'test', 'dog', '8.png'), rgbImage(60));
  const folder = await loadImageFolder(dir);
  assert.equal(folder.testSplit, 'folder');
  assert.deepEqual(folder.classNames, ['cat', 'dog']);
  assert.deepEqual(folder.train.shape, [3, H, W]);
  assert.equal(folder.colourFiles, 6);
  const plane = (v: number) => new Array<number>(W * H).fill(v);
  const chw = (v: number) => [...plane(v), ...plane(v + 1), ...plane(v + 2)];
  assert.deepEqual([...folder.train.labels], [0, 0, 1]);
  assert.deepEqual(
    [0, 1, 2].map((i) => item(folder.train, i)),
    [chw(10), chw(20), chw(30)],
  );
  // Files in name order within a class: 8.png before 9.png.
  assert.deepEqual([...folder.test.labels], [0, 1, 1]);
  assert.deepEqual(
    [0, 1, 2].map((i) => item(folder.test, i)),
    [chw(40), chw(60), chw(50)],
  );
});

test('DIR/train alone: the test split is held out from it', async () => {
  const dir = await freshDir();
  for (let k = 0; k < 5; k++) {
    await writePng(join(dir, 'train', 'x', `${k}.png`), grayImage(k));
    await writePng(join(dir, 'train', 'y', `${k}.png`), grayImage(100 + k));
  }
  const folder = await loadImageFolder(dir);
  assert.equal(folder.testSplit, 'held-out');
  assert.deepEqual(folder.classNames, ['x', 'y']);
  assert.equal(folder.test.count, 2);
  assert.deepEqual([...folder.test.labels], [0, 1]);
});

test('mixed grayscale and colour: three channels with gray repeated, or one channel of luminance on request', async () => {
  const dir = await freshDir();
  const rgba = new Uint8Array(W * H * 4);
  for (let p = 0; p < W * H; p++) rgba.set([200, 100, 50 + p, p === 0 ? 0 : 128 + p], 4 * p);
  const files = {
    gray: join(dir, 'a', 'gray.png'),
    grayAlpha: join(dir, 'a', 'gray-alpha.png'),
    rgba: join(dir, 'b', 'rgba.png'),
  };
  await writePng(files.gray, grayImage(70));
  const ga = new Uint8Array(W * H * 2);
  for (let p = 0; p < W * H; p++) ga.set([90, 255 - 20 * p], 2 * p);
  await writePng(files.grayAlpha, { colorType: 4, samples: ga });
  await writePng(files.rgba, { colorType: 6, samples: rgba });
  await writePng(join(dir, 'b', 'rgb.png'), rgbImage(5));
  // testFraction 0.5 of 2 images per class holds one out of each; both splits are checked below.
  const auto = await loadImageFolder(dir, { testFraction: 0.5 });
  assert.deepEqual(auto.train.shape, [3, H, W]);
  assert.equal(auto.grayscaleFiles, 2);
  assert.equal(auto.colourFiles, 2);
  assert.ok(auto.firstColourFile === files.rgba || auto.firstColourFile === join(dir, 'b', 'rgb.png'));
  const gray = await loadImageFolder(dir, { testFraction: 0.5, channels: 1 });
  assert.deepEqual(gray.train.shape, [1, H, W]);

  // Every item equals what `onebit predict --image` (decodePngImage) makes of the same file, for both
  // channel counts: the model sees the same bytes at training and prediction time.
  const expected = new Map<string, { c1: number[]; c3: number[] }>();
  for (const file of [...Object.values(files), join(dir, 'b', 'rgb.png')]) {
    const bytes = await readFile(file);
    expected.set(file, {
      c1: [...decodePngImage(bytes, [1, H, W], file)],
      c3: [...decodePngImage(bytes, [3, H, W], file)],
    });
  }
  const seen3 = [auto.train, auto.test].flatMap((ds) =>
    Array.from({ length: ds.count }, (_, i) => item(ds, i)),
  );
  const seen1 = [gray.train, gray.test].flatMap((ds) =>
    Array.from({ length: ds.count }, (_, i) => item(ds, i)),
  );
  const sortRows = (rows: number[][]) => rows.map((r) => r.join(',')).sort();
  assert.deepEqual(sortRows(seen3), sortRows([...expected.values()].map((e) => e.c3)));
  assert.deepEqual(sortRows(seen1), sortRows([...expected.values()].map((e) => e.c1)));
  // The gray file becomes R = G = B = its value.
  const g = expected.get(files.gray)?.c3 ?? [];
  assert.deepEqual(g.slice(0, W * H), g.slice(W * H, 2 * W * H));
  assert.equal(g[0], 70);
  // The fully transparent pixel of the RGBA file is black.
  assert.equal(expected.get(files.rgba)?.c3[0], 0);
});

test('16-bit PNGs are read as 8 bits; hidden files, junk and loose files are skipped', async () => {
  const dir = await freshDir();
  const png16 = new PNG({ width: W, height: H });
  const samples = new Uint16Array(W * H).fill(0x8080);
  png16.data = Buffer.from(samples.buffer);
  await mkdir(join(dir, 'deep'), { recursive: true });
  await writeFile(
    join(dir, 'deep', 'x.png'),
    PNG.sync.write(png16, { colorType: 0, inputColorType: 0, bitDepth: 16 }),
  );
  await writePng(join(dir, 'deep', 'y.PNG'), grayImage(3));
  await writePng(join(dir, 'shallow', 'z.png'), grayImage(9));
  await writePng(join(dir, 'shallow', 'w.png'), grayImage(11));
  await writeFile(join(dir, 'shallow', '.DS_Store'), 'junk');
  await writeFile(join(dir, 'shallow', 'Thumbs.db'), 'junk');
  await mkdir(join(dir, '.git'), { recursive: true });
  await mkdir(join(dir, '__MACOSX', 'deep'), { recursive: true });
  await writeFile(join(dir, 'README.md'), 'my data');
  const folder = await loadImageFolder(dir, { testFraction: 0.5 });
  assert.deepEqual(folder.classNames, ['deep', 'shallow']);
  assert.deepEqual(folder.ignored, [join(dir, 'README.md')]);
  const all = [folder.train, folder.test].flatMap((ds) =>
    Array.from({ length: ds.count }, (_, i) => item(ds, i)[0]),
  );
  // 0x8080 / 65535 * 255 = 128.0 after rounding.
  assert.deepEqual(
    all.sort((a, b) => a - b),
    [3, 9, 11, 128],
  );
});

describe('loadImageFolder errors name the file, what was expected and what was found', () => {
  test('a directory that does not exist, or a file', async () => {
    const missing = join(root, 'no-such-dir');
    await assert.rejects(loadImageFolder(missing), (e: unknown) => {
      assert.ok(e instanceof DatasetNotFoundError);
      assert.match(
        e.message,
        /folder:no-such-dir.*no-such-dir \(directory does not exist\).*one subfolder of PNG/s,
      );
      return true;
    });
    const file = join(await freshDir(), 'file.png');
    await writePng(file, grayImage(1));
    await rejectsFormat(loadImageFolder(file), file, /expected a directory of class folders, found a file/);
  });

  test('no class folders, or only one', async () => {
    const dir = await freshDir();
    await writeFile(join(dir, 'a.png'), encodePng(grayImage(1)));
    await rejectsFormat(loadImageFolder(dir), dir, /class folders: expected at least 2 .* found none/);
    await writePng(join(dir, 'only', 'a.png'), grayImage(1));
    await rejectsFormat(loadImageFolder(dir), dir, /found only only\/$/);
  });

  test('a training class folder without PNGs', async () => {
    const dir = await freshDir();
    await writePng(join(dir, 'a', '1.png'), grayImage(1));
    await mkdir(join(dir, 'b'));
    await writeFile(join(dir, 'b', '.hidden.png'), encodePng(grayImage(1)));
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'b'),
      /images: expected at least one \.png .* found none/,
    );
  });

  test('a file that is not .png, or a subfolder, in a class folder', async () => {
    const dir = await freshDir();
    await writePng(join(dir, 'a', '1.png'), grayImage(1));
    await writePng(join(dir, 'b', '1.png'), grayImage(1));
    await writeFile(join(dir, 'b', 'photo.jpg'), 'not a png');
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'b', 'photo.jpg'),
      /expected a \.png image in class folder b\/ \(convert it to PNG or move it out\), found a \.jpg file/,
    );
    await rm(join(dir, 'b', 'photo.jpg'));
    await mkdir(join(dir, 'a', 'nested'));
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'a', 'nested'),
      /found a subfolder \(is the directory one level too high/,
    );
  });

  test('links: a linked class folder is read, a broken link in a class folder is refused', async () => {
    const { dir } = await grayClassTree({ a: 5, b: 5 });
    const elsewhere = await grayClassTree({ c: 5 });
    await symlink(join(elsewhere.dir, 'c'), join(dir, 'c'));
    await symlink(join(dir, 'nowhere'), join(dir, 'loose-link'));
    const folder = await loadImageFolder(dir);
    assert.deepEqual(folder.classNames, ['a', 'b', 'c']);
    assert.equal(folder.train.count + folder.test.count, 15);
    assert.deepEqual(folder.ignored, [join(dir, 'loose-link')]);
    await symlink(join(dir, 'nowhere.png'), join(dir, 'b', 'broken.png'));
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'b', 'broken.png'),
      /found not a regular file \(a broken link\?\)/,
    );
  });

  test('a .png that is not a PNG, or a PNG that does not decode', async () => {
    const { dir } = await grayClassTree({ a: 5, b: 5 });
    await writeFile(join(dir, 'b', '2.png'), 'GIF89a, not a PNG at all, but long enough');
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'b', '2.png'),
      /signature: expected a PNG image, found not a PNG file/,
    );
    await writeFile(join(dir, 'b', '2.png'), 'short');
    await rejectsFormat(loadImageFolder(dir), join(dir, 'b', '2.png'), /found 5 bytes/);
    // A valid header with its image data cut off: found when decoding.
    const good = encodePng(grayImage(1));
    await writeFile(join(dir, 'b', '2.png'), good.subarray(0, 40));
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'b', '2.png'),
      /PNG: expected a readable PNG image, found /,
    );
    // A header announcing 30000x30000 pixels (a few bytes that would inflate to gigabytes): refused unread.
    const bomb = Uint8Array.from(good);
    new DataView(bomb.buffer).setUint32(16, 30000);
    new DataView(bomb.buffer).setUint32(20, 30000);
    await writeFile(join(dir, 'b', '2.png'), bomb);
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'b', '2.png'),
      /size: expected 1 to 16777216 pixels \(4096x4096\), found 30000x30000 in its header/,
    );
  });

  test('an image of a different size names both files', async () => {
    const { dir } = await grayClassTree({ a: 5, b: 5 });
    await writePng(join(dir, 'b', '1.png'), {
      colorType: 0,
      samples: new Uint8Array(4 * 4),
      width: 4,
      height: 4,
    });
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'b', '1.png'),
      new RegExp(`image size: expected 3x2 like ${join(dir, 'a', 'img-000.png')} .*found 4x4`),
    );
  });

  test('more than 256 classes', async () => {
    const dir = await freshDir();
    const png = encodePng(grayImage(1));
    for (let c = 0; c < 257; c++) {
      await mkdir(join(dir, `c${c}`));
      await writeFile(join(dir, `c${c}`, '1.png'), png);
    }
    await rejectsFormat(loadImageFolder(dir), dir, /at most 256 classes \(labels are bytes\), found 257/);
  });

  test('train/ and test/ whose classes disagree, other folders next to train/, test/ alone', async () => {
    const dir = await freshDir();
    await writePng(join(dir, 'train', 'cat', '1.png'), grayImage(1));
    await writePng(join(dir, 'train', 'dog', '1.png'), grayImage(2));
    await writePng(join(dir, 'test', 'cat', '1.png'), grayImage(3));
    await writePng(join(dir, 'test', 'Dog', '1.png'), grayImage(4));
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'test', 'Dog'),
      /class: expected one of the classes in train\/ \(cat, dog\), found Dog/,
    );
    await rm(join(dir, 'test', 'Dog'), { recursive: true });
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'test', 'dog'),
      /a test folder for every class in train\/ \(create it empty/,
    );
    // An empty test class folder is allowed: that class has no test images.
    await mkdir(join(dir, 'test', 'dog'));
    const folder = await loadImageFolder(dir);
    assert.deepEqual([...folder.test.labels], [0]);
    await mkdir(join(dir, 'val', 'cat'), { recursive: true });
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'val'),
      /only train\/ and test\/ next to train\/.*found a folder val\//,
    );
    await rm(join(dir, 'val'), { recursive: true });
    await rm(join(dir, 'train'), { recursive: true });
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'test'),
      /a train\/ folder next to test\/.*found test\/ without train\//,
    );
  });

  test('test/ holding no PNG at all', async () => {
    const dir = await freshDir();
    await writePng(join(dir, 'train', 'a', '1.png'), grayImage(1));
    await writePng(join(dir, 'train', 'b', '1.png'), grayImage(2));
    await mkdir(join(dir, 'test', 'a'), { recursive: true });
    await mkdir(join(dir, 'test', 'b'), { recursive: true });
    await rejectsFormat(
      loadImageFolder(dir),
      join(dir, 'test'),
      /images: expected at least one \.png file .* found none/,
    );
  });

  test('a held-out split that would be empty, and more pixels than maxBytes', async () => {
    const { dir } = await grayClassTree({ a: 1, b: 2 });
    await rejectsFormat(
      loadImageFolder(dir),
      dir,
      /held-out test split: expected at least one image .* found none/,
    );
    const big = await grayClassTree({ a: 5, b: 5 });
    await rejectsFormat(
      loadImageFolder(big.dir, { maxBytes: 59 }),
      big.dir,
      /at most 59 bytes of pixels \(option maxBytes\), found 10 images of 1x2x3 = 60 bytes/,
    );
    assert.equal((await loadImageFolder(big.dir, { maxBytes: 60 })).train.count, 8);
  });

  test('bad options, and testFraction next to a test/ folder', async () => {
    const { dir } = await grayClassTree({ a: 5, b: 5 });
    const config = (field: string) => (e: unknown) => e instanceof ConfigError && e.field === field;
    await assert.rejects(loadImageFolder(dir, { testFraction: 0 }), config('testFraction'));
    await assert.rejects(loadImageFolder(dir, { testFraction: 1 }), config('testFraction'));
    await assert.rejects(loadImageFolder(dir, { seed: 0.5 }), config('seed'));
    await assert.rejects(loadImageFolder(dir, { channels: 2 as 1 }), config('channels'));
    const split = await freshDir();
    await writePng(join(split, 'train', 'a', '1.png'), grayImage(1));
    await writePng(join(split, 'train', 'b', '1.png'), grayImage(1));
    await writePng(join(split, 'test', 'a', '1.png'), grayImage(1));
    await mkdir(join(split, 'test', 'b'));
    await assert.rejects(loadImageFolder(split, { testFraction: 0.3 }), (e: unknown) => {
      assert.ok(config('testFraction')(e));
      assert.match((e as Error).message, /is the test split/);
      return true;
    });
  });
});
