/**
 * Data sets as plain arrays in memory: the `Dataset` type and its checks, the named sets' shapes, and the
 * synthetic sets (seeded Gaussian blobs) that stand in for real data in tests and smoke runs. Nothing
 * here touches a file, so the in-page training path can use it (docs/browser.md); dataset.ts loads sets
 * from disk.
 */
import { Rng } from '../tensor/rng.js';

/** Images and labels held in memory. */
export interface Dataset {
  readonly name: string;
  /** `count * C * H * W` pixel bytes, item-major, each item in CHW order. */
  readonly images: Uint8Array;
  /** One class index per item, each `< classes`. */
  readonly labels: Uint8Array;
  readonly count: number;
  /** Per-item shape [C, H, W]. */
  readonly shape: readonly [number, number, number];
  readonly classes: number;
  /** One name per class, when the data come with them (an image folder's subfolders). */
  readonly classNames?: readonly string[];
  /** The files the items were read from, with their SHA-256, so a run can say what it trained on. */
  readonly sources?: readonly DataSource[];
}

/** One file (or folder of files) a data set was read from. */
export interface DataSource {
  readonly path: string;
  /** Hex SHA-256 of the file's bytes as stored (compressed if it is); for a folder, see image-folder.ts. */
  readonly sha256: string;
  readonly bytes: number;
}

export type Split = 'train' | 'test';

/** Per-item shape [C, H, W] of each named data set. */
const DATASET_SHAPES: Readonly<Record<string, readonly [number, number, number]>> = {
  'fashion-mnist': [1, 28, 28],
  mnist: [1, 28, 28],
  'synthetic-mnist': [1, 28, 28],
  cifar10: [3, 32, 32],
  cifar100: [3, 32, 32],
  'synthetic-cifar': [3, 32, 32],
};

/** The per-item shape of a named data set, without loading it; undefined for a name onebit does not know. */
export function datasetShape(name: string): readonly [number, number, number] | undefined {
  return DATASET_SHAPES[name];
}
export type RealDatasetName = 'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100';
/** Seeded Gaussian blobs shaped like MNIST (1 x 28 x 28) or like CIFAR (3 x 32 x 32). */
export type SyntheticDatasetName = 'synthetic-mnist' | 'synthetic-cifar';
export type DatasetName = RealDatasetName | SyntheticDatasetName;

export const REAL_DATASET_NAMES: readonly RealDatasetName[] = [
  'fashion-mnist',
  'mnist',
  'cifar10',
  'cifar100',
];
export const DATASET_NAMES: readonly DatasetName[] = [
  ...REAL_DATASET_NAMES,
  'synthetic-mnist',
  'synthetic-cifar',
];

export function isDatasetName(name: string): name is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(name);
}

/** Check that the fields of a data set agree, and freeze the shape into a tuple. */
export function createDataset(fields: {
  name: string;
  images: Uint8Array;
  labels: Uint8Array;
  shape: readonly number[];
  classes: number;
}): Dataset {
  const { name, images, labels, shape, classes } = fields;
  if (shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new RangeError(`${name}: shape must be [C, H, W] with positive sizes, got [${shape.join(', ')}]`);
  }
  if (!Number.isInteger(classes) || classes < 1 || classes > 256) {
    throw new RangeError(`${name}: classes must be 1..256 (labels are bytes), got ${classes}`);
  }
  const count = labels.length;
  const itemSize = shape[0] * shape[1] * shape[2];
  if (images.length !== count * itemSize) {
    throw new RangeError(
      `${name}: ${count} labels need ${count * itemSize} image bytes, got ${images.length}`,
    );
  }
  for (let i = 0; i < count; i++) {
    if (labels[i] >= classes)
      throw new RangeError(`${name}: label of item ${i} is ${labels[i]}, not < ${classes}`);
  }
  return { name, images, labels, count, shape: [shape[0], shape[1], shape[2]], classes };
}

export interface SyntheticDatasetOptions {
  readonly name?: string;
  readonly shape: readonly [number, number, number];
  readonly count: number;
  readonly classes: number;
  readonly seed: number;
  /** Train and test draw different samples around the same class prototypes. Default 'train'. */
  readonly split?: Split;
  /** Standard deviation of the per-pixel noise, in pixel units. Default 48. */
  readonly noise?: number;
}

/**
 * Gaussian blobs: each class has a prototype image whose pixels are 64 or 192 (a fair coin each), and
 * an item is its class prototype plus N(0, noise^2) per pixel, rounded and clipped to 0..255. Labels are
 * balanced (item i has class i mod classes before shuffling). With the default noise the classes are
 * far apart, so a correct training pipeline reaches near 100% accuracy: a smoke test, not a benchmark.
 */
export function syntheticDataset(options: SyntheticDatasetOptions): Dataset {
  const { shape, count, classes, seed } = options;
  const noise = options.noise ?? 48;
  if (!Number.isInteger(count) || count < 1)
    throw new RangeError(`synthetic count must be >= 1, got ${count}`);
  const itemSize = shape[0] * shape[1] * shape[2];
  // Independent sub-streams: prototypes are shared by both splits, samples are not.
  const root = new Rng(seed);
  const protoRng = root.fork();
  const trainRng = root.fork();
  const testRng = root.fork();
  const rng = options.split === 'test' ? testRng : trainRng;

  const prototypes = new Uint8Array(classes * itemSize);
  for (let i = 0; i < prototypes.length; i++) prototypes[i] = protoRng.uniform() < 0.5 ? 64 : 192;

  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = i % classes;
  rng.shuffle(labels);
  const images = new Uint8Array(count * itemSize);
  for (let i = 0; i < count; i++) {
    const proto = labels[i] * itemSize;
    for (let p = 0; p < itemSize; p++) {
      const v = Math.round(prototypes[proto + p] + noise * rng.normal());
      images[i * itemSize + p] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return createDataset({ name: options.name ?? 'synthetic', images, labels, shape, classes });
}
