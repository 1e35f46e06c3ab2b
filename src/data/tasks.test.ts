import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { syntheticDataset } from './dataset.js';
import { createBatchBuffers, fillBatch, Normalizer } from './pipeline.js';
import { permutedTasks, permuteDataset, splitTasks } from './tasks.js';

function isIdentity(p: Uint32Array): boolean {
  return p.every((v, i) => v === i);
}

describe('permuted task stream', () => {
  test('every task is a permutation; task 0 is the identity unless permuteFirst', () => {
    const perms = permutedTasks({ tasks: 4, size: 784, seed: 11 });
    assert.equal(perms.length, 4);
    for (const p of perms) assert.ok(isIdentity(Uint32Array.from(p).sort()), 'is a permutation of 0..783');
    assert.ok(isIdentity(perms[0]));
    for (const p of perms.slice(1)) assert.ok(!isIdentity(p));
    assert.notDeepEqual(perms[1], perms[2]);
    const permuted = permutedTasks({ tasks: 2, size: 784, seed: 11, permuteFirst: true });
    assert.ok(!isIdentity(permuted[0]));
    assert.deepEqual(permuted[1], perms[1], 'later tasks do not depend on permuteFirst');
  });

  test('permutations are fixed by the seed, whatever the number of tasks', () => {
    const a = permutedTasks({ tasks: 3, size: 100, seed: 5 });
    const b = permutedTasks({ tasks: 6, size: 100, seed: 5 });
    assert.deepEqual(b.slice(0, 3), a);
    assert.notDeepEqual(permutedTasks({ tasks: 3, size: 100, seed: 6 })[1], a[1]);
  });

  test('permuteDataset matches filling with the permutation', () => {
    const ds = syntheticDataset({ shape: [1, 6, 6], count: 4, classes: 2, seed: 1 });
    const [, perm] = permutedTasks({ tasks: 2, size: 36, seed: 3 });
    const norm = Normalizer.unit(ds.shape);
    const viaFill = createBatchBuffers(ds.shape, 4, 'float64');
    fillBatch(ds, [0, 1, 2, 3], 0, viaFill, { normalizer: norm, permutation: perm });
    const materialised = permuteDataset(ds, perm);
    const viaCopy = createBatchBuffers(ds.shape, 4, 'float64');
    fillBatch(materialised, [0, 1, 2, 3], 0, viaCopy, { normalizer: norm });
    assert.deepEqual(viaFill.images, viaCopy.images);
    assert.deepEqual(materialised.labels, ds.labels);
  });
});

describe('split task stream', () => {
  test('five tasks of two classes, single-head labels, covering every item once', () => {
    const ds = syntheticDataset({ shape: [1, 4, 4], count: 103, classes: 10, seed: 2 });
    const tasks = splitTasks(ds);
    assert.deepEqual(
      tasks.map((t) => t.classes),
      [
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
        [8, 9],
      ],
    );
    const seen = new Uint8Array(ds.count);
    for (const t of tasks) {
      for (const i of t.indices) {
        assert.ok(t.classes.includes(ds.labels[i]), `item ${i} label ${ds.labels[i]} in task ${t.index}`);
        seen[i]++;
      }
    }
    assert.ok(seen.every((s) => s === 1));
    // Labels are the original classes: filling a batch from task 3 yields labels 6 and 7 only.
    const buffers = createBatchBuffers(ds.shape, tasks[3].indices.length);
    const n = fillBatch(ds, tasks[3].indices, 0, buffers, { normalizer: Normalizer.unit(ds.shape) });
    assert.deepEqual([...new Set(buffers.labels.subarray(0, n))].sort(), [6, 7]);
  });

  test('other task sizes, and class counts that do not divide', () => {
    const ds = syntheticDataset({ shape: [1, 2, 2], count: 30, classes: 6, seed: 0 });
    assert.deepEqual(
      splitTasks(ds, { classesPerTask: 3 }).map((t) => t.classes),
      [
        [0, 1, 2],
        [3, 4, 5],
      ],
    );
    assert.throws(() => splitTasks(ds, { classesPerTask: 4 }), /cannot be split/);
  });
});
