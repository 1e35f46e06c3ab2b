/**
 * Task streams for continual learning, built on an ordinary `Dataset`.
 *
 * - Permuted (e.g. permuted MNIST): every task is the same data under its own fixed pixel permutation.
 *   Task 0 is the identity (the unpermuted data set) by default, as in most of the literature; pass
 *   `permuteFirst: true` to permute it too. Task t's permutation depends only on the seed and t.
 * - Split (e.g. split MNIST): the classes are cut into consecutive groups ({0,1}, {2,3}, ...), one task
 *   per group. The setting is single-head: labels keep their original class values, so the model keeps
 *   one output per class over the whole stream.
 * Tasks are index lists and permutations rather than copies: batches are filled straight from the base
 * data set (`fillBatch` with `permutation`, or with the task's `indices` as the order).
 */
import { Rng } from '../tensor/rng.js';
import { createDataset, type Dataset } from './dataset.js';

/**
 * Pixel permutations for `tasks` permuted tasks over images of `size` elements (C*H*W). Each task draws
 * from its own sub-stream of `new Rng(seed)`, so task t is the same whatever `tasks` is.
 */
export function permutedTasks(options: {
  readonly tasks: number;
  readonly size: number;
  readonly seed: number;
  readonly permuteFirst?: boolean;
}): Uint32Array[] {
  const { tasks, size, seed } = options;
  if (!Number.isInteger(tasks) || tasks < 1)
    throw new RangeError(`permutedTasks: tasks must be >= 1, got ${tasks}`);
  const root = new Rng(seed);
  const permutations: Uint32Array[] = [];
  for (let t = 0; t < tasks; t++) {
    const rng = root.fork(); // always fork, so later tasks do not depend on permuteFirst
    const permutation = new Uint32Array(size);
    for (let i = 0; i < size; i++) permutation[i] = i;
    if (t > 0 || options.permuteFirst === true) rng.shuffle(permutation);
    permutations.push(permutation);
  }
  return permutations;
}

/** A copy of `ds` whose every image has element i = original element `permutation[i]`. */
export function permuteDataset(ds: Dataset, permutation: Uint32Array, name = `${ds.name}-permuted`): Dataset {
  const itemSize = ds.shape[0] * ds.shape[1] * ds.shape[2];
  if (permutation.length !== itemSize) {
    throw new RangeError(
      `permuteDataset: permutation has ${permutation.length} entries, images have ${itemSize}`,
    );
  }
  const images = new Uint8Array(ds.images.length);
  for (let n = 0; n < ds.count; n++) {
    const base = n * itemSize;
    for (let i = 0; i < itemSize; i++) images[base + i] = ds.images[base + permutation[i]];
  }
  return createDataset({ name, images, labels: ds.labels.slice(), shape: ds.shape, classes: ds.classes });
}

/** One task of a split stream: its classes and the (ascending) indices of its items in the base set. */
export interface SplitTask {
  readonly index: number;
  readonly classes: readonly number[];
  readonly indices: Uint32Array;
}

/**
 * Split `ds` into tasks of `classesPerTask` consecutive classes (default 2: five tasks for ten classes).
 * Labels are not remapped (single-head).
 */
export function splitTasks(ds: Dataset, options: { readonly classesPerTask?: number } = {}): SplitTask[] {
  const per = options.classesPerTask ?? 2;
  if (!Number.isInteger(per) || per < 1 || ds.classes % per !== 0) {
    throw new RangeError(`splitTasks: ${ds.classes} classes cannot be split into tasks of ${per}`);
  }
  const tasks: SplitTask[] = [];
  for (let t = 0; t < ds.classes / per; t++) {
    const first = t * per;
    let n = 0;
    for (let i = 0; i < ds.count; i++) if (ds.labels[i] >= first && ds.labels[i] < first + per) n++;
    const indices = new Uint32Array(n);
    let k = 0;
    for (let i = 0; i < ds.count; i++)
      if (ds.labels[i] >= first && ds.labels[i] < first + per) indices[k++] = i;
    tasks.push({ index: t, classes: Array.from({ length: per }, (_, j) => first + j), indices });
  }
  return tasks;
}
