/**
 * A `Dataset` from the caller's own arrays: the library's way in for data that is neither a named set nor a
 * folder of PNGs. Pixels are bytes (0..255) in the same item-major C x H x W order as every other data set,
 * so normalisation, augmentation and batching treat them like Fashion-MNIST or CIFAR. The checks happen here,
 * once, with errors that name the argument, what it should be and what came, because a wrong length or a
 * label out of range would otherwise surface much later as a shape error or a silent wrong answer.
 */
import { ConfigError } from '../errors.js';
import { createDataset, type Dataset } from './dataset.js';

/** The largest number of classes a data set can have: labels are stored as bytes. */
export const MAX_CLASSES = 256;

export interface DatasetArrays {
  /**
   * `count * C * H * W` pixel bytes, item-major, each item channel-major (all of channel 0, then 1, ...).
   * Not copied: the data set reads this array, so leave it unchanged while the data set is in use.
   */
  readonly images: Uint8Array;
  /** One class index per item, integers in `0 .. classes - 1`; copied into bytes. */
  readonly labels: ArrayLike<number>;
  /** Per-item [C, H, W]. */
  readonly shape: readonly number[];
  /** Number of classes, 1..256; the model's output width. Not inferred from the labels, because a split may lack the last class. */
  readonly classes: number;
  /** Default 'arrays'. */
  readonly name?: string;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

/** Validate the caller's arrays and wrap them as a `Dataset`; throws ConfigError naming the field at fault. */
export function datasetFromArrays(arrays: DatasetArrays): Dataset {
  const { images, labels, shape, classes } = arrays;
  const name = arrays.name ?? 'arrays';
  // Runtime checks for JavaScript callers and casts: a Float32Array of [0, 1] values would otherwise be
  // read as garbage bytes by every batch.
  if (!(images instanceof Uint8Array)) {
    const hint = ArrayBuffer.isView(images)
      ? ' (for floats in [0, 1]: multiply by 255, round, store as bytes)'
      : '';
    throw new ConfigError('images', `a Uint8Array of pixel bytes 0..255${hint}`, describe(images));
  }
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new ConfigError(
      'shape',
      '[C, H, W], three positive integers',
      Array.isArray(shape) ? `[${shape.join(', ')}]` : describe(shape),
    );
  }
  if (!Number.isInteger(classes) || classes < 1 || classes > MAX_CLASSES)
    throw new ConfigError('classes', `an integer in 1..${MAX_CLASSES} (labels are bytes)`, String(classes));
  if (labels === null || typeof labels !== 'object' || typeof labels.length !== 'number')
    throw new ConfigError('labels', 'an array or typed array of class indices', describe(labels));
  const count = labels.length;
  if (count < 1) throw new ConfigError('labels', 'at least one item', 'an empty array');
  const itemSize = shape[0] * shape[1] * shape[2];
  if (images.length !== count * itemSize) {
    const fits = images.length % itemSize === 0 ? ` (enough for ${images.length / itemSize} items)` : '';
    throw new ConfigError(
      'images',
      `${count} labels x ${itemSize} bytes per [${shape.join(', ')}] item = ${count * itemSize} bytes`,
      `${images.length} bytes${fits}`,
    );
  }
  const bytes = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const label = labels[i];
    if (!Number.isInteger(label) || label < 0 || label >= classes)
      throw new ConfigError(`labels[${i}]`, `an integer in 0..${classes - 1}`, String(label));
    bytes[i] = label;
  }
  return createDataset({ name, images, labels: bytes, shape, classes });
}
