/**
 * From a `Dataset` to training batches: seeded order and validation split, per-channel normalisation,
 * CIFAR-style augmentation, and a batch filler that writes into buffers allocated once.
 *
 * Images stay bytes in the data set; they become floats only when a batch is filled, through a
 * 256-entry lookup table per channel ((v/255 - mean) / std), so filling costs one table read per pixel
 * and a training step allocates nothing. All randomness comes from a caller-supplied `Rng`, so a run is
 * reproduced by its seed and can resume from a checkpointed Rng state.
 */
import { Rng } from '../tensor/rng.js';
import { createDataset, type Dataset } from './in-memory.js';

/** Batch image storage; the same union as the backend's FloatArray (not imported: data does not depend on backend). */
type FloatArray = Float32Array | Float64Array;

/** The indices 0..n-1 in a random order drawn from `rng`. Reshuffle each epoch with `rng.shuffle(order)`. */
export function shuffledIndices(n: number, rng: Rng): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return rng.shuffle(order);
}

export interface ValidationSplit {
  /** Ascending item indices. */
  readonly train: Uint32Array;
  /** Ascending item indices, disjoint from `train`; together they are 0..count-1. */
  readonly validation: Uint32Array;
}

/**
 * Hold out `round(fraction * count)` items (default 10%) chosen by a seeded shuffle. It takes a seed,
 * not the training Rng, so that the split is the same however much of the training stream has been used.
 */
export function validationSplit(
  count: number,
  options: { seed: number; fraction?: number },
): ValidationSplit {
  const fraction = options.fraction ?? 0.1;
  if (!(fraction >= 0 && fraction < 1))
    throw new RangeError(`validation fraction must be in [0, 1), got ${fraction}`);
  const order = shuffledIndices(count, new Rng(options.seed));
  const nValidation = Math.round(fraction * count);
  const validation = order.slice(0, nValidation).sort();
  const train = order.slice(nValidation).sort();
  return { train, validation };
}

/**
 * The items of the given classes only, relabelled 0..k-1 in the order given (class names follow); the
 * classes left out are what an out-of-distribution test holds back.
 */
export function classSubset(ds: Dataset, classes: readonly number[]): Dataset {
  const remap = new Int16Array(ds.classes).fill(-1);
  classes.forEach((c, i) => (remap[c] = i));
  const indices: number[] = [];
  for (let i = 0; i < ds.count; i++) if (remap[ds.labels[i]] >= 0) indices.push(i);
  const subset = subsetDataset(ds, indices, ds.name);
  const labels = Uint8Array.from(subset.labels, (l) => remap[l]);
  return {
    ...createDataset({
      name: ds.name,
      images: subset.images,
      labels,
      shape: ds.shape,
      classes: classes.length,
    }),
    ...(ds.classNames !== undefined
      ? { classNames: classes.map((c) => ds.classNames?.[c] ?? String(c)) }
      : {}),
    ...(ds.sources !== undefined ? { sources: ds.sources } : {}),
  };
}

/** A new data set holding copies of the given items, in the given order. */
export function subsetDataset(ds: Dataset, indices: ArrayLike<number>, name = ds.name): Dataset {
  const itemSize = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const images = new Uint8Array(indices.length * itemSize);
  const labels = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i];
    if (!(j >= 0 && j < ds.count))
      throw new RangeError(`${ds.name}: item index ${j} out of range 0..${ds.count - 1}`);
    images.set(ds.images.subarray(j * itemSize, (j + 1) * itemSize), i * itemSize);
    labels[i] = ds.labels[j];
  }
  return createDataset({ name, images, labels, shape: ds.shape, classes: ds.classes });
}

/** Per-channel mean and standard deviation of pixel values scaled to [0, 1]. */
export interface ChannelStats {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Mean and (population) standard deviation per channel over the given items (default: all). */
export function channelStats(ds: Dataset, indices?: ArrayLike<number>): ChannelStats {
  const [channels, height, width] = ds.shape;
  const plane = height * width;
  const n = indices === undefined ? ds.count : indices.length;
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < channels; c++) {
    // Exact integer histogram, so the result does not depend on summation order or size.
    const histogram = new Float64Array(256);
    for (let i = 0; i < n; i++) {
      const item = indices === undefined ? i : indices[i];
      const base = (item * channels + c) * plane;
      for (let p = 0; p < plane; p++) histogram[ds.images[base + p]]++;
    }
    let sum = 0;
    let total = 0;
    for (let v = 0; v < 256; v++) {
      sum += histogram[v] * v;
      total += histogram[v];
    }
    const m = sum / total;
    let sq = 0;
    for (let v = 0; v < 256; v++) sq += histogram[v] * (v - m) * (v - m);
    mean.push(m / 255);
    std.push(Math.sqrt(sq / total) / 255);
  }
  return { mean, std };
}

/**
 * Maps pixel bytes to normalised floats, `(v / 255 - mean[c]) / std[c]`, by table lookup, and writes
 * single images (plain, pixel-permuted, or cropped and flipped) into float buffers.
 */
export class Normalizer {
  readonly shape: readonly [number, number, number];
  /** `lut[c * 256 + v]` is the normalised value of byte v in channel c. */
  private readonly lut: Float64Array;

  constructor(shape: readonly [number, number, number], stats: ChannelStats) {
    const channels = shape[0];
    if (stats.mean.length !== channels || stats.std.length !== channels) {
      throw new RangeError(
        `Normalizer: ${channels} channels need ${channels} means and stds, got ${stats.mean.length} and ${stats.std.length}`,
      );
    }
    this.shape = shape;
    this.lut = new Float64Array(channels * 256);
    for (let c = 0; c < channels; c++) {
      const std = stats.std[c];
      if (!(std > 0)) throw new RangeError(`Normalizer: std of channel ${c} must be > 0, got ${std}`);
      for (let v = 0; v < 256; v++) this.lut[c * 256 + v] = (v / 255 - stats.mean[c]) / std;
    }
  }

  /** Plain scaling to [0, 1] (mean 0, std 1). */
  static unit(shape: readonly [number, number, number]): Normalizer {
    const ones = new Array<number>(shape[0]).fill(1);
    return new Normalizer(shape, { mean: ones.map(() => 0), std: ones });
  }

  /** The normalised value of byte `v` in channel `c`. */
  value(c: number, v: number): number {
    return this.lut[c * 256 + v];
  }

  /**
   * Write one image. With `permutation` (a permutation of 0..C*H*W-1), output element i is input element
   * `permutation[i]`, normalised with the statistics of the input element's channel.
   */
  writeImage(
    src: Uint8Array,
    srcOffset: number,
    dst: FloatArray,
    dstOffset: number,
    permutation?: Uint32Array,
  ): void {
    const [channels, height, width] = this.shape;
    const plane = height * width;
    const lut = this.lut;
    if (permutation === undefined) {
      for (let c = 0; c < channels; c++) {
        const base = c * plane;
        const table = c * 256;
        for (let p = 0; p < plane; p++) dst[dstOffset + base + p] = lut[table + src[srcOffset + base + p]];
      }
      return;
    }
    const size = channels * plane;
    for (let i = 0; i < size; i++) {
      const j = permutation[i];
      dst[dstOffset + i] = lut[((j / plane) | 0) * 256 + src[srcOffset + j]];
    }
  }

  /**
   * Write one image randomly cropped from its zero-padded version and optionally mirrored: output pixel
   * (y, x) is padded pixel (y + dy, x' + dx) with x' = flip ? W-1-x : x, where the padded image has
   * `pad` zero bytes (black, as in the usual RandomCrop(padding=4)) on every side and dy, dx are in
   * 0..2*pad. Padding bytes are normalised like any 0 byte.
   */
  writeCropFlip(
    src: Uint8Array,
    srcOffset: number,
    dst: FloatArray,
    dstOffset: number,
    pad: number,
    dy: number,
    dx: number,
    flip: boolean,
  ): void {
    const [channels, height, width] = this.shape;
    const plane = height * width;
    const lut = this.lut;
    for (let c = 0; c < channels; c++) {
      const table = c * 256;
      const zero = lut[table];
      const inBase = srcOffset + c * plane;
      const outBase = dstOffset + c * plane;
      for (let y = 0; y < height; y++) {
        const sy = y + dy - pad;
        const rowInside = sy >= 0 && sy < height;
        for (let x = 0; x < width; x++) {
          const sx = (flip ? width - 1 - x : x) + dx - pad;
          dst[outBase + y * width + x] =
            rowInside && sx >= 0 && sx < width ? lut[table + src[inBase + sy * width + sx]] : zero;
        }
      }
    }
  }
}

/** Random crop with zero padding and horizontal flip with probability 0.5 (the standard CIFAR recipe). */
export interface Augmentation {
  readonly rng: Rng;
  /** Zero padding on each side, in pixels; CIFAR uses 4. */
  readonly pad: number;
  /** Mirror horizontally with probability 0.5. */
  readonly flip: boolean;
}

/** Images (batch x C x H x W floats) and labels for up to `capacity` items, allocated once. */
export interface BatchBuffers {
  readonly images: FloatArray;
  readonly labels: Int32Array;
  readonly capacity: number;
}

export function createBatchBuffers(
  shape: readonly [number, number, number],
  capacity: number,
  dtype: 'float32' | 'float64' = 'float32',
): BatchBuffers {
  if (!Number.isInteger(capacity) || capacity < 1)
    throw new RangeError(`batch capacity must be >= 1, got ${capacity}`);
  const size = capacity * shape[0] * shape[1] * shape[2];
  return {
    images: dtype === 'float32' ? new Float32Array(size) : new Float64Array(size),
    labels: new Int32Array(capacity),
    capacity,
  };
}

export interface FillOptions {
  readonly normalizer: Normalizer;
  /** Random crop and flip for each image; draws dy, dx (and a flip coin when `flip`) per image, in order. */
  readonly augment?: Augmentation;
  /** A fixed pixel permutation applied to every image (permuted-MNIST tasks). Not combined with `augment`. */
  readonly permutation?: Uint32Array;
}

/**
 * Fill `buffers` with items `order[start]`, `order[start+1]`, ... (at most `buffers.capacity`, fewer at
 * the end of `order`) and return how many were written. Allocates nothing.
 */
export function fillBatch(
  ds: Dataset,
  order: ArrayLike<number>,
  start: number,
  buffers: BatchBuffers,
  options: FillOptions,
): number {
  const { normalizer, augment, permutation } = options;
  const [channels, height, width] = ds.shape;
  const itemSize = channels * height * width;
  const [nc, nh, nw] = normalizer.shape;
  if (nc !== channels || nh !== height || nw !== width) {
    throw new RangeError(
      `fillBatch: normalizer shape [${nc}, ${nh}, ${nw}] does not match ${ds.name} [${channels}, ${height}, ${width}]`,
    );
  }
  if (buffers.images.length < buffers.capacity * itemSize) {
    throw new RangeError(
      `fillBatch: image buffer holds ${buffers.images.length} values, ${buffers.capacity} items need ${buffers.capacity * itemSize}`,
    );
  }
  if (augment !== undefined && permutation !== undefined) {
    throw new RangeError('fillBatch: augmentation and pixel permutation cannot be combined');
  }
  if (permutation !== undefined && permutation.length !== itemSize) {
    throw new RangeError(
      `fillBatch: permutation has ${permutation.length} entries, images have ${itemSize} elements`,
    );
  }
  const n = Math.max(0, Math.min(buffers.capacity, order.length - start));
  for (let b = 0; b < n; b++) {
    const item = order[start + b];
    if (!(item >= 0 && item < ds.count))
      throw new RangeError(`fillBatch: item index ${item} out of range 0..${ds.count - 1}`);
    buffers.labels[b] = ds.labels[item];
    if (augment === undefined) {
      normalizer.writeImage(ds.images, item * itemSize, buffers.images, b * itemSize, permutation);
    } else {
      const span = 2 * augment.pad + 1;
      const dy = augment.rng.int(span);
      const dx = augment.rng.int(span);
      const flip = augment.flip && augment.rng.uniform() < 0.5;
      normalizer.writeCropFlip(
        ds.images,
        item * itemSize,
        buffers.images,
        b * itemSize,
        augment.pad,
        dy,
        dx,
        flip,
      );
    }
  }
  return n;
}

/** Number of batches of `batchSize` covering `n` items. */
export function batchCount(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/**
 * Iterate over `order` in batches, filling the same `buffers` each time and yielding the number of items
 * in the batch. Consume each batch before advancing: the next one overwrites it. With `dropLast`, a
 * final partial batch is skipped.
 */
export function* batches(
  ds: Dataset,
  order: ArrayLike<number>,
  buffers: BatchBuffers,
  options: FillOptions & { readonly dropLast?: boolean },
): Generator<number, void, void> {
  const count = batchCount(order.length, buffers.capacity, options.dropLast ?? false);
  for (let i = 0; i < count; i++) yield fillBatch(ds, order, i * buffers.capacity, buffers, options);
}
