/**
 * Where data sets come from (the in-memory `Dataset` itself is in in-memory.ts, re-exported here).
 *
 * A `Dataset` is plain data: all images as one Uint8Array in N x C x H x W order (the raw 0..255 pixels;
 * normalisation happens when a batch is filled) and one label byte per item. `loadDataset` finds the
 * files of a named data set in a fixed order of directories (an explicit `dataDir`, then the cache that
 * `onebit data fetch` fills, then the Debian package location for Fashion-MNIST), so the same command
 * works offline on a machine with `dataset-fashion-mnist` installed and anywhere after a fetch.
 */
import { DatasetNotFoundError, type SearchedLocation } from '../errors.js';
import { createHash } from 'node:crypto';
import { access, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  CIFAR100_COARSE_CLASSES,
  CIFAR100_FINE_CLASSES,
  CIFAR10_CLASSES,
  CIFAR_SHAPE,
  readCifarFiles,
} from './cifar.js';
import { DEFAULT_MAX_BYTES } from './gzip.js';
import { readIdxImagesLabels } from './idx.js';
import {
  createDataset,
  syntheticDataset,
  type Dataset,
  type DataSource,
  type DatasetName,
  type RealDatasetName,
  type Split,
} from './in-memory.js';

export * from './in-memory.js';

/** The SHA-256 and size of a file, read in one go (data files are at most a few hundred MB). */
export async function fileSource(path: string): Promise<DataSource> {
  const bytes = await readFile(path);
  return {
    path: resolve(path),
    sha256: createHash('sha256').update(bytes).digest('hex'),
    bytes: bytes.byteLength,
  };
}

/** Where the Debian package `dataset-fashion-mnist` installs the official gzipped IDX files. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Subdirectory that the official CIFAR tarballs extract to; also searched inside each directory. */
const CIFAR_TAR_DIRS: Readonly<Record<'cifar10' | 'cifar100', string>> = {
  cifar10: 'cifar-10-batches-bin',
  cifar100: 'cifar-100-binary',
};

/**
 * Base file names a split needs, in load order. IDX names are given without `.gz`; both the plain and
 * the `.gz` name are accepted when searching.
 */
export function datasetFiles(name: RealDatasetName, split: Split): readonly string[] {
  switch (name) {
    case 'fashion-mnist':
    case 'mnist': {
      const prefix = split === 'train' ? 'train' : 't10k';
      return [`${prefix}-images-idx3-ubyte`, `${prefix}-labels-idx1-ubyte`];
    }
    case 'cifar10':
      return split === 'train' ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ['test_batch.bin'];
    case 'cifar100':
      return [split === 'train' ? 'train.bin' : 'test.bin'];
  }
}

/** Options of the synthetic data sets. */
export interface SyntheticOptions {
  /** Items; default 2000 for the train split, 500 for test. */
  readonly count?: number;
  /** Default 10. */
  readonly classes?: number;
  /** Seed of the class prototypes and the samples; train and test share prototypes. Default 0. */
  readonly seed?: number;
  /** Standard deviation of the per-pixel Gaussian noise, in pixel units (0..255). Default 48. */
  readonly noise?: number;
}

export interface LoadDatasetOptions {
  readonly split: Split;
  /** onebit's download cache (the CLI passes ~/.cache/onebit); data set `x` is looked for in `<cacheDir>/x`. */
  readonly cacheDir: string;
  /**
   * When given, the only place searched: a folder that does not hold the set is an error, never a silent
   * fall-back to the cache or the system copy.
   */
  readonly dataDir?: string;
  /**
   * Searched last: a system-wide install. Default: the Debian location for Fashion-MNIST, none for the
   * others. Pass null to search no system directory.
   */
  readonly systemDir?: string | null;
  /** Which CIFAR-100 labels become `labels`: the 100 fine classes (default) or the 20 superclasses. */
  readonly cifar100Labels?: 'fine' | 'coarse';
  /** Cap on any one file's (decompressed) size. */
  readonly maxBytes?: number;
  readonly synthetic?: SyntheticOptions;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** First of `<dir>/<base>` and `<dir>/<base>.gz` that exists, or null. */
async function findFile(dir: string, base: string): Promise<string | null> {
  for (const candidate of [join(dir, base), join(dir, `${base}.gz`)]) {
    if (await exists(candidate)) return candidate;
  }
  return null;
}

/** The files of a split in `dir`, or the base names that are missing. */
async function filesIn(
  dir: string,
  bases: readonly string[],
): Promise<{ files: string[]; missing: string[] }> {
  const files: string[] = [];
  const missing: string[] = [];
  for (const base of bases) {
    const found = await findFile(dir, base);
    if (found === null) missing.push(base.includes('idx') ? `${base}[.gz]` : base);
    else files.push(found);
  }
  return { files, missing };
}

function fetchHint(name: RealDatasetName): string {
  const fetch = `\`onebit data fetch ${name}\``;
  return name === 'fashion-mnist'
    ? `Get it with ${fetch} or \`apt-get install dataset-fashion-mnist\`, or pass a directory holding the files.`
    : `Get it with ${fetch}, or pass a directory holding the files.`;
}

/** A located data set: the directory used and the full paths of the split's files, in load order. */
export interface DatasetLocation {
  readonly dir: string;
  readonly files: readonly string[];
}

/**
 * Find the files of a split: in `dataDir` alone when it is given, else in `<cacheDir>/<name>`, then the
 * system directory; in each, also in the subdirectory a CIFAR tarball extracts to. A directory is used only if it holds every file
 * of the split. Throws DatasetNotFoundError listing each place searched and why it was not used.
 */
export async function locateDataset(
  name: RealDatasetName,
  options: Pick<LoadDatasetOptions, 'split' | 'cacheDir' | 'dataDir' | 'systemDir'>,
): Promise<DatasetLocation> {
  const systemDir =
    options.systemDir === undefined
      ? name === 'fashion-mnist'
        ? DEBIAN_FASHION_MNIST_DIR
        : null
      : options.systemDir;
  const dirs =
    options.dataDir !== undefined
      ? [options.dataDir]
      : [join(options.cacheDir, name), systemDir].filter((d): d is string => typeof d === 'string');
  const bases = datasetFiles(name, options.split);
  const searched: SearchedLocation[] = [];
  for (const dir of dirs) {
    if (!(await exists(dir))) {
      searched.push({ dir, reason: 'directory does not exist' });
      continue;
    }
    if (!(await stat(dir)).isDirectory()) {
      searched.push({ dir, reason: 'not a directory' });
      continue;
    }
    const tarDir = name === 'cifar10' || name === 'cifar100' ? CIFAR_TAR_DIRS[name] : null;
    const candidates = tarDir === null ? [dir] : [dir, join(dir, tarDir)];
    let firstMissing: string[] | null = null;
    for (const candidate of candidates) {
      const { files, missing } = await filesIn(candidate, bases);
      if (missing.length === 0) return { dir: candidate, files };
      firstMissing ??= missing;
    }
    const sub = tarDir === null ? '' : ` (also looked in its ${tarDir}/)`;
    searched.push({ dir, reason: `missing ${(firstMissing ?? []).join(', ')}${sub}` });
  }
  throw new DatasetNotFoundError(name, options.split, searched, fetchHint(name));
}

/**
 * Load one split of a named data set into memory. Real data sets are searched for as described at
 * `locateDataset`; synthetic ones are generated from `options.synthetic`.
 */
export async function loadDataset(name: DatasetName, options: LoadDatasetOptions): Promise<Dataset> {
  if (name === 'synthetic-mnist' || name === 'synthetic-cifar') {
    const s = options.synthetic ?? {};
    return syntheticDataset({
      name,
      shape: name === 'synthetic-mnist' ? [1, 28, 28] : [3, 32, 32],
      count: s.count ?? (options.split === 'train' ? 2000 : 500),
      classes: s.classes ?? 10,
      seed: s.seed ?? 0,
      split: options.split,
      noise: s.noise,
    });
  }
  const { files } = await locateDataset(name, options);
  const [dataset, sources] = await Promise.all([
    readDatasetFiles(name, files, options),
    Promise.all(files.map(fileSource)),
  ]);
  return { ...dataset, sources };
}

async function readDatasetFiles(
  name: RealDatasetName,
  files: readonly string[],
  options: LoadDatasetOptions,
): Promise<Dataset> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (name === 'fashion-mnist' || name === 'mnist') {
    const idx = await readIdxImagesLabels(files[0], files[1], { classes: 10, maxBytes });
    return createDataset({ name, images: idx.images, labels: idx.labels, shape: idx.shape, classes: 10 });
  }
  if (name === 'cifar10') {
    const c = await readCifarFiles(files, 'cifar10', { maxBytes });
    return createDataset({
      name,
      images: c.images,
      labels: c.labels,
      shape: CIFAR_SHAPE,
      classes: CIFAR10_CLASSES,
    });
  }
  const c = await readCifarFiles(files, 'cifar100', { maxBytes });
  const coarse = options.cifar100Labels === 'coarse';
  return createDataset({
    name,
    images: c.images,
    labels: coarse ? (c.coarseLabels as Uint8Array) : c.labels,
    shape: CIFAR_SHAPE,
    classes: coarse ? CIFAR100_COARSE_CLASSES : CIFAR100_FINE_CLASSES,
  });
}
