/**
 * The user's own images: a directory of PNG files, one subfolder per class, read into a train and a test
 * `Dataset` (what `onebit train --data DIR` loads).
 *
 * Layouts:
 * - `DIR/train/<class>/*.png` and `DIR/test/<class>/*.png`: the test split is that folder. Every class of
 *   train/ needs a folder in test/ (it may be empty) and test/ may hold no class that train/ lacks, so that a
 *   misspelt folder is an error rather than a silently shifted label. Any other subfolder next to train/ is
 *   an error (rename a `val/` to `test/` to use it).
 * - `DIR/train/<class>/*.png` alone, or `DIR/<class>/*.png`: the test split is held out, stratified: from each
 *   class, `min(round(testFraction * n), n - 1)` of its n images, chosen by a seeded shuffle of that class's
 *   files. Each class gets its own sub-stream of the seed, so adding images to one class leaves the split of
 *   the others as it was.
 *
 * Class names are the class folder names sorted by code point (the label is the index in that list, the
 * same on every machine and locale). At least 2 classes and at most 256 (labels are bytes).
 *
 * Files: `.png` in any letter case. Names starting with `.`, `Thumbs.db`, `desktop.ini` and `__MACOSX/` are
 * skipped everywhere (they are left by file managers and zip tools, never data); loose files next to the
 * class folders (a README, a labels.csv) are skipped and listed in `ignored`. Inside a class folder, any
 * other file or a subfolder is an error: silently dropping a folder of JPEGs would train on less data than
 * the user thinks, and a subfolder usually means DIR is one level too high.
 *
 * Pixels: every image must have the same width and height (resize them first); any bit depth is read as 8
 * bits (16-bit samples are rounded). Channels by default follow the PNG colour type, not the pixel values:
 * 1 when every file is a grayscale PNG, else 3, with grayscale files repeated into R = G = B (lossless, as
 * the usual image-folder loaders do). The counts come back so a caller can say when a few colour files
 * turned a grayscale set into RGB; `channels: 1` converts colour to luminance instead. Transparent pixels
 * are composited over black. The conversion is the one `onebit predict --image` applies (src/io/image.ts),
 * so a model sees the same bytes at training and at prediction time.
 */
import { ConfigError, DataFormatError, DatasetNotFoundError } from '../errors.js';
import { open, readFile, readdir, stat } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { PNG } from 'pngjs';
import { Rng } from '../tensor/rng.js';
import { MAX_CLASSES } from './arrays.js';
import { createDataset, type DataSource, type Dataset } from './dataset.js';

export interface ImageFolderOptions {
  /** Share of each class held out as the test split when DIR has no test/ folder, in (0, 1). Default 0.2. */
  readonly testFraction?: number;
  /** Seed of the held-out split (an integer). Default 0. */
  readonly seed?: number;
  /** 'auto' (default): 1 if every PNG is grayscale, else 3. 1: colour becomes luminance. 3: gray is repeated. */
  readonly channels?: 1 | 3 | 'auto';
  /** Refuse a folder whose pixels (train + test, after conversion) would exceed this many bytes. Default 2 GiB. */
  readonly maxBytes?: number;
}

export interface ImageFolder {
  readonly train: Dataset;
  readonly test: Dataset;
  /** Class names in label order. */
  readonly classNames: string[];
  /** 'folder': DIR/test/; 'held-out': drawn from the training images with `testFraction` and `seed`. */
  readonly testSplit: 'folder' | 'held-out';
  /** PNG files whose colour type is grayscale (with or without alpha). */
  readonly grayscaleFiles: number;
  /** PNG files whose colour type is RGB, RGBA or palette; the first of them, for messages, or null. */
  readonly colourFiles: number;
  readonly firstColourFile: string | null;
  /** Loose files skipped next to the class folders, as full paths. */
  readonly ignored: string[];
}

export const DEFAULT_TEST_FRACTION = 0.2;
const DEFAULT_MAX_FOLDER_BYTES = 2 ** 31;
/** File names that tools leave behind and that are never data. */
const JUNK = new Set(['thumbs.db', 'desktop.ini', '__macosx']);
const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
/** Signature, chunk length, "IHDR", width, height, bit depth, colour type. */
const HEADER_BYTES = 26;
/** Largest image a folder may hold, in pixels. */
const MAX_IMAGE_PIXELS = 1 << 24;
/** Files read at once: enough to hide file-system latency, few enough to stay far from the open-file limit. */
const CONCURRENCY = 16;

const LAYOUT_HINT =
  'Pass a directory holding one subfolder of PNG images per class (DIR/<class>/*.png), or train/ and test/ ' +
  'folders laid out that way (DIR/train/<class>/*.png, DIR/test/<class>/*.png).';

interface Entry {
  readonly name: string;
  readonly path: string;
  readonly kind: 'dir' | 'file' | 'other';
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function skipped(name: string): boolean {
  return name.startsWith('.') || JUNK.has(name.toLowerCase());
}

/** The entries of a directory in code-point order, junk left out, symbolic links resolved. */
async function listDir(dir: string): Promise<Entry[]> {
  let dirents;
  try {
    dirents = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    throw new DataFormatError(dir, 'directory', 'a readable directory', reason(error));
  }
  const entries: Entry[] = [];
  for (const d of dirents) {
    if (skipped(d.name)) continue;
    const path = join(dir, d.name);
    let isDir = d.isDirectory();
    let isFile = d.isFile();
    if (d.isSymbolicLink()) {
      try {
        const s = await stat(path);
        isDir = s.isDirectory();
        isFile = s.isFile();
      } catch {
        // A broken link: skipped next to class folders, refused inside one (kind 'other').
      }
    }
    entries.push({ name: d.name, path, kind: isDir ? 'dir' : isFile ? 'file' : 'other' });
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Class folders of a split root, with loose files recorded in `ignored`. */
async function classFolders(root: string, ignored: string[]): Promise<Entry[]> {
  const entries = await listDir(root);
  for (const e of entries) if (e.kind !== 'dir') ignored.push(e.path);
  return entries.filter((e) => e.kind === 'dir');
}

/** The PNG files of one class folder, by name; anything else in it is an error. */
async function classFiles(folder: Entry): Promise<string[]> {
  const files: string[] = [];
  for (const e of await listDir(folder.path)) {
    if (e.kind === 'dir') {
      throw new DataFormatError(
        e.path,
        'file',
        `a .png image in class folder ${folder.name}/`,
        'a subfolder (is the directory one level too high? classes are the folders directly inside it)',
      );
    }
    if (e.kind !== 'file' || !e.name.toLowerCase().endsWith('.png')) {
      const dot = e.name.lastIndexOf('.');
      const what =
        e.kind !== 'file'
          ? 'not a regular file (a broken link?)'
          : dot > 0
            ? `a ${e.name.slice(dot)} file`
            : 'a file without .png';
      throw new DataFormatError(
        e.path,
        'file',
        `a .png image in class folder ${folder.name}/ (convert it to PNG or move it out)`,
        what,
      );
    }
    files.push(e.path);
  }
  return files;
}

interface PngHeader {
  readonly width: number;
  readonly height: number;
  readonly colour: boolean;
}

/** Width, height and colour type from the first bytes, so sizes are checked before anything is decoded. */
async function readHeader(file: string): Promise<PngHeader> {
  const bytes = new Uint8Array(HEADER_BYTES);
  let got: number;
  try {
    const handle = await open(file, 'r');
    try {
      got = (await handle.read(bytes, 0, HEADER_BYTES, 0)).bytesRead;
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new DataFormatError(file, 'file', 'a readable PNG image', reason(error));
  }
  if (got < HEADER_BYTES || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new DataFormatError(
      file,
      'signature',
      'a PNG image',
      got < HEADER_BYTES ? `${got} bytes` : 'not a PNG file',
    );
  }
  const view = new DataView(bytes.buffer);
  const type = bytes[25];
  // 0 gray, 4 gray + alpha; 2 RGB, 6 RGBA, 3 palette.
  if (![0, 2, 3, 4, 6].includes(type))
    throw new DataFormatError(file, 'colour type', '0, 2, 3, 4 or 6', String(type));
  const width = view.getUint32(16);
  const height = view.getUint32(20);
  // Checked before pngjs allocates width * height * 4 bytes: a few kilobytes can announce gigabytes.
  if (width < 1 || height < 1 || width * height > MAX_IMAGE_PIXELS) {
    throw new DataFormatError(
      file,
      'size',
      `1 to ${MAX_IMAGE_PIXELS} pixels (4096x4096)`,
      `${width}x${height} in its header`,
    );
  }
  return { width, height, colour: type === 2 || type === 3 || type === 6 };
}

/**
 * Decode `file` into `out` at `offset` as C x H x W bytes, the way decodePngImage (src/io/image.ts) does;
 * returns the file's SHA-256 and size.
 */
async function decodeInto(
  file: string,
  channels: number,
  out: Uint8Array,
  offset: number,
): Promise<{ sha256: string; bytes: number }> {
  let png: PNG;
  const bytes = await readFile(file);
  const digest = { sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.byteLength };
  try {
    png = PNG.sync.read(bytes);
  } catch (error) {
    throw new DataFormatError(file, 'PNG', 'a readable PNG image', reason(error));
  }
  const plane = png.width * png.height;
  const rgba = png.data; // 8-bit RGBA whatever the file's depth and colour type
  for (let p = 0; p < plane; p++) {
    const alpha = rgba[4 * p + 3] / 255;
    const r = rgba[4 * p] * alpha;
    const g = rgba[4 * p + 1] * alpha;
    const b = rgba[4 * p + 2] * alpha;
    if (channels === 1) out[offset + p] = Math.min(255, Math.round(0.299 * r + 0.587 * g + 0.114 * b));
    else {
      out[offset + p] = Math.round(r);
      out[offset + plane + p] = Math.round(g);
      out[offset + 2 * plane + p] = Math.round(b);
    }
  }
  return digest;
}

/** Run `task(i)` for i in 0..n-1 with at most `limit` in flight; rejects with the first error. */
async function forEachLimited(n: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    try {
      while (next < n && !failed) await task(next++);
    } catch (error) {
      failed = true; // the other workers stop at their next item instead of reading the rest
      throw error;
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

interface Item {
  readonly file: string;
  readonly label: number;
}

/** Stratified held-out split of `perClass` (file lists in label order), reproducible from `seed`. */
function holdOut(
  perClass: readonly string[][],
  fraction: number,
  seed: number,
): { train: Item[]; test: Item[] } {
  const root = new Rng(seed);
  const train: Item[] = [];
  const test: Item[] = [];
  perClass.forEach((files, label) => {
    // One fork per class, in class order: a class's split depends on the seed and its index, not on how
    // many files the other classes hold.
    const rng = root.fork();
    const n = files.length;
    const nTest = Math.min(Math.round(fraction * n), n - 1);
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    rng.shuffle(order);
    const isTest = new Uint8Array(n);
    for (let i = 0; i < nTest; i++) isTest[order[i]] = 1;
    for (let i = 0; i < n; i++) (isTest[i] ? test : train).push({ file: files[i], label });
  });
  return { train, test };
}

function checkOptions(options: ImageFolderOptions): { fraction: number; seed: number; maxBytes: number } {
  const fraction = options.testFraction ?? DEFAULT_TEST_FRACTION;
  if (!(typeof fraction === 'number' && fraction > 0 && fraction < 1))
    throw new ConfigError('testFraction', 'a number in (0, 1)', String(fraction));
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new ConfigError('seed', 'an integer', String(seed));
  const channels = options.channels ?? 'auto';
  if (channels !== 1 && channels !== 3 && channels !== 'auto')
    throw new ConfigError('channels', "1, 3 or 'auto'", String(channels));
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FOLDER_BYTES;
  if (!(maxBytes > 0)) throw new ConfigError('maxBytes', 'a number > 0', String(maxBytes));
  return { fraction, seed, maxBytes };
}

/**
 * Read a folder of PNG images, one subfolder per class, into train and test data sets named
 * `folder:<name of DIR>`. The layouts, rules and conversions are described at the top of this file.
 */
export async function loadImageFolder(dir: string, options: ImageFolderOptions = {}): Promise<ImageFolder> {
  const { fraction, seed, maxBytes } = checkOptions(options);
  const root = resolve(dir);
  const name = `folder:${basename(root)}`;
  let rootStat;
  try {
    rootStat = await stat(root);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    const why = missing ? 'directory does not exist' : reason(error);
    throw new DatasetNotFoundError(name, 'train', [{ dir: root, reason: why }], LAYOUT_HINT);
  }
  if (!rootStat.isDirectory())
    throw new DataFormatError(root, 'data directory', 'a directory of class folders', 'a file');

  const ignored: string[] = [];
  const top = await classFolders(root, ignored);
  const trainDir = top.find((e) => e.name === 'train');
  const testDir = top.find((e) => e.name === 'test');
  let trainRoot = root;
  if (trainDir !== undefined) {
    const other = top.find((e) => e !== trainDir && e !== testDir);
    if (other !== undefined) {
      throw new DataFormatError(
        other.path,
        'layout',
        'only train/ and test/ next to train/ (rename a validation folder to test/)',
        `a folder ${other.name}/`,
      );
    }
    trainRoot = trainDir.path;
  } else if (testDir !== undefined) {
    throw new DataFormatError(
      testDir.path,
      'layout',
      'a train/ folder next to test/ (or rename test/ if it is a class)',
      'test/ without train/',
    );
  }

  const trainFolders = trainDir === undefined ? top : await classFolders(trainRoot, ignored);
  if (trainFolders.length < 2) {
    throw new DataFormatError(
      trainRoot,
      'class folders',
      'at least 2 subfolders of PNG images, one per class',
      trainFolders.length === 0 ? 'none' : `only ${trainFolders[0].name}/`,
    );
  }
  if (trainFolders.length > MAX_CLASSES) {
    throw new DataFormatError(
      trainRoot,
      'class folders',
      `at most ${MAX_CLASSES} classes (labels are bytes)`,
      String(trainFolders.length),
    );
  }
  const classNames = trainFolders.map((e) => e.name);
  const trainFiles: string[][] = [];
  for (const folder of trainFolders) {
    const files = await classFiles(folder);
    if (files.length === 0)
      throw new DataFormatError(
        folder.path,
        'images',
        'at least one .png file in each training class folder',
        'none',
      );
    trainFiles.push(files);
  }

  let train: Item[];
  let test: Item[];
  if (testDir !== undefined) {
    if (options.testFraction !== undefined) {
      throw new ConfigError(
        'testFraction',
        `no value: ${testDir.path} is the test split`,
        String(options.testFraction),
      );
    }
    const testFolders = await classFolders(testDir.path, ignored);
    const extra = testFolders.find((e) => !classNames.includes(e.name));
    if (extra !== undefined) {
      throw new DataFormatError(
        extra.path,
        'class',
        `one of the classes in train/ (${classNames.slice(0, 10).join(', ')}${classNames.length > 10 ? ', ...' : ''})`,
        extra.name,
      );
    }
    const missing = classNames.find((c) => !testFolders.some((e) => e.name === c));
    if (missing !== undefined) {
      throw new DataFormatError(
        join(testDir.path, missing),
        'class folder',
        `a test folder for every class in train/ (create it empty if the test split has no ${missing} images)`,
        'none',
      );
    }
    train = trainFiles.flatMap((files, label) => files.map((file) => ({ file, label })));
    test = [];
    for (const folder of testFolders) {
      const label = classNames.indexOf(folder.name);
      for (const file of await classFiles(folder)) test.push({ file, label });
    }
    if (test.length === 0)
      throw new DataFormatError(
        testDir.path,
        'images',
        'at least one .png file in its class folders',
        'none',
      );
  } else {
    ({ train, test } = holdOut(trainFiles, fraction, seed));
    if (test.length === 0) {
      throw new DataFormatError(
        trainRoot,
        'held-out test split',
        `at least one image (testFraction ${fraction} of ${train.length} images, at least one kept per class)`,
        'none: add images, raise testFraction or add a test/ folder',
      );
    }
  }

  // First pass: headers only, so a mismatched size or a non-PNG is reported before minutes of decoding.
  const all = [...train, ...test];
  const headers = new Array<PngHeader>(all.length);
  await forEachLimited(all.length, CONCURRENCY, async (i) => {
    headers[i] = await readHeader(all[i].file);
  });
  const { width, height } = headers[0];
  let colourFiles = 0;
  let firstColourFile: string | null = null;
  for (let i = 0; i < all.length; i++) {
    const h = headers[i];
    if (h.width !== width || h.height !== height) {
      throw new DataFormatError(
        all[i].file,
        'image size',
        `${width}x${height} like ${all[0].file} (all images must have one size)`,
        `${h.width}x${h.height}`,
      );
    }
    if (h.colour) {
      colourFiles++;
      firstColourFile ??= all[i].file;
    }
  }
  const requested = options.channels ?? 'auto';
  const channels = requested === 'auto' ? (colourFiles > 0 ? 3 : 1) : requested;
  const itemSize = channels * height * width;
  if (all.length * itemSize > maxBytes) {
    throw new DataFormatError(
      root,
      'size',
      `at most ${maxBytes} bytes of pixels (option maxBytes)`,
      `${all.length} images of ${channels}x${height}x${width} = ${all.length * itemSize} bytes`,
    );
  }

  const trainImages = new Uint8Array(train.length * itemSize);
  const testImages = new Uint8Array(test.length * itemSize);
  const digests = new Array<{ sha256: string; bytes: number }>(all.length);
  await forEachLimited(all.length, CONCURRENCY, async (i) => {
    const inTrain = i < train.length;
    const out = inTrain ? trainImages : testImages;
    digests[i] = await decodeInto(all[i].file, channels, out, (inTrain ? i : i - train.length) * itemSize);
  });
  // One source per split: the folder, with a SHA-256 over its files' relative paths and digests in order.
  const folderSource = (from: number, to: number): DataSource => {
    const hash = createHash('sha256');
    let bytes = 0;
    for (let i = from; i < to; i++) {
      hash.update(`${relative(root, all[i].file)}\t${digests[i].sha256}\n`);
      bytes += digests[i].bytes;
    }
    return { path: root, sha256: hash.digest('hex'), bytes };
  };

  const shape = [channels, height, width] as const;
  const classes = classNames.length;
  return {
    train: {
      ...createDataset({
        name,
        images: trainImages,
        labels: Uint8Array.from(train, (t) => t.label),
        shape,
        classes,
      }),
      sources: [folderSource(0, train.length)],
    },
    test: {
      ...createDataset({
        name,
        images: testImages,
        labels: Uint8Array.from(test, (t) => t.label),
        shape,
        classes,
      }),
      sources: [folderSource(train.length, all.length)],
    },
    classNames,
    testSplit: testDir === undefined ? 'held-out' : 'folder',
    grayscaleFiles: all.length - colourFiles,
    colourFiles,
    firstColourFile,
    ignored,
  };
}
