/** Continual learning: the metrics against a hand-worked matrix, and tiny synthetic streams end to end. */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { runCli } from '../../test/cli.js';
import { createReferenceBackend } from '../backend/reference/index.js';
import { createDataset, syntheticDataset, type Dataset } from '../data/dataset.js';
import { Rng } from '../tensor/rng.js';
import { continualConfig } from '../cli/continual-command.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../config/train-config.js';
import { buildStream, continualMetrics, trainContinual, type TaskRecord } from './continual.js';

const SHAPE = [1, 28, 28] as const;

describe('continual metrics', () => {
  test('average accuracy and forgetting (best earlier accuracy minus current), by hand', () => {
    const a = [[0.9], [0.7, 0.8], [0.6, 0.75, 0.85]];
    assert.deepEqual(continualMetrics(a, 0), { averageAccuracy: 0.9, forgetting: 0 });
    // After task 2: average (0.7 + 0.8) / 2 = 0.75; forgetting of task 1: 0.9 - 0.7 = 0.2.
    const two = continualMetrics(a, 1);
    assert.ok(Math.abs(two.averageAccuracy - 0.75) < 1e-12);
    assert.ok(Math.abs(two.forgetting - 0.2) < 1e-12);
    // After task 3: average (0.6 + 0.75 + 0.85) / 3 = 0.733333; forgetting: task 1 max(0.9, 0.7) - 0.6 = 0.3,
    // task 2 0.8 - 0.75 = 0.05; mean 0.175.
    const three = continualMetrics(a, 2);
    assert.ok(Math.abs(three.averageAccuracy - 2.2 / 3) < 1e-12);
    assert.ok(Math.abs(three.forgetting - 0.175) < 1e-12);
    // A task that got better later counts as negative forgetting (backward transfer).
    assert.ok(Math.abs(continualMetrics([[0.5], [0.6, 0.9]], 1).forgetting - -0.1) < 1e-12);
  });
});

describe('task streams', () => {
  const train = syntheticDataset({ shape: SHAPE, count: 100, classes: 10, seed: 1 });
  const testSet = syntheticDataset({ shape: SHAPE, count: 50, classes: 10, seed: 1, split: 'test' });

  test('split: tasks of consecutive classes, single-head labels', () => {
    const stream = buildStream('split', 5, train, testSet, 1);
    assert.equal(stream.count, 5);
    for (let t = 0; t < 5; t++) {
      const labels = new Set([...stream.train(t).labels, ...stream.tests[t].labels]);
      assert.deepEqual([...labels].sort(), [2 * t, 2 * t + 1]);
    }
    assert.throws(() => buildStream('split', 3, train, testSet, 1), /divisor/);
  });

  test('permuted: task 1 is the data as is; each later task moves the pixels by a fixed permutation of its own', () => {
    // Images 0 and 1 spell out each pixel's position (low byte, high byte), so where every pixel went can
    // be read off a permuted image; image 2 is noise, to check that the same permutation moved it.
    const size = SHAPE[0] * SHAPE[1] * SHAPE[2];
    const noiseRng = new Rng(9);
    const tagged = (name: string): { ds: Dataset; noise: Uint8Array } => {
      const noise = Uint8Array.from({ length: size }, () => noiseRng.int(256));
      const images = new Uint8Array(3 * size);
      for (let i = 0; i < size; i++) {
        images[i] = i & 255;
        images[size + i] = i >>> 8;
      }
      images.set(noise, 2 * size);
      return {
        ds: createDataset({ name, images, labels: Uint8Array.of(3, 1, 4), shape: SHAPE, classes: 10 }),
        noise,
      };
    };
    const trainSet = tagged('train');
    const testData = tagged('test');
    /** Where each pixel of a permuted tagged set came from: image element i = original element from[i]. */
    const from = (ds: Dataset): number[] =>
      Array.from({ length: size }, (_, i) => ds.images[i] + 256 * ds.images[size + i]);
    const identity = Array.from({ length: size }, (_, i) => i);
    const permutationsOf = (seed: number): number[][] => {
      const stream = buildStream('permuted', 3, trainSet.ds, testData.ds, seed);
      assert.equal(stream.count, 3);
      assert.equal(stream.tests.length, 3);
      const perms: number[][] = [];
      for (let t = 0; t < 3; t++) {
        const taskTrain = stream.train(t);
        const taskTest = stream.tests[t];
        const p = from(taskTrain);
        assert.deepEqual(
          [...p].sort((a, b) => a - b),
          identity,
          `task ${t + 1}: a permutation of the pixels`,
        );
        assert.deepEqual(
          from(stream.train(t)),
          p,
          `task ${t + 1}: the same permutation each time it is asked for`,
        );
        assert.deepEqual(from(taskTest), p, `task ${t + 1}: the test set is permuted the same way`);
        for (let i = 0; i < size; i++) {
          if (
            taskTrain.images[2 * size + i] !== trainSet.noise[p[i]] ||
            taskTest.images[2 * size + i] !== testData.noise[p[i]]
          )
            assert.fail(`task ${t + 1}: pixel ${i} of the third image does not follow the permutation`);
        }
        assert.deepEqual([...taskTrain.labels], [3, 1, 4], `task ${t + 1}: labels stay`);
        assert.deepEqual([...taskTest.labels], [3, 1, 4], `task ${t + 1}: test labels stay`);
        perms.push(p);
      }
      return perms;
    };
    const [first, second, third] = permutationsOf(1);
    assert.deepEqual(first, identity, 'task 1 is the data as is');
    // A random permutation of 784 pixels fixes one pixel on average; two independent ones agree at about one.
    const agree = (a: number[], b: number[]): number => a.filter((x, i) => x === b[i]).length;
    assert.ok(agree(second, identity) < 20, `task 2 leaves ${agree(second, identity)} pixels in place`);
    assert.ok(agree(third, identity) < 20, `task 3 leaves ${agree(third, identity)} pixels in place`);
    assert.ok(agree(second, third) < 20, `tasks 2 and 3 agree on ${agree(second, third)} pixels`);
    // The permutations depend on the seed only: the same seed gives them again, another seed others.
    const again = permutationsOf(1);
    assert.deepEqual(again, [first, second, third]);
    const other = permutationsOf(2);
    assert.ok(agree(other[1], second) < 20, 'another seed, another permutation');
  });
});

function config(method: string, methodOptions: TrainConfig['methodOptions'] = {}): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data: 'synthetic-mnist',
    model: 'mlp-100',
    method,
    methodOptions,
    epochs: 1,
    batchSize: 50,
    validationFraction: 0,
    seed: 3,
  };
}

describe('trainContinual on a tiny synthetic stream', () => {
  const train = syntheticDataset({ shape: SHAPE, count: 200, classes: 10, seed: 4 });
  const testSet = syntheticDataset({ shape: SHAPE, count: 50, classes: 10, seed: 4, split: 'test' });

  for (const [method, stream, tasks, samples] of [
    ['bayesbinn', 'split', 5, 3],
    ['ste', 'permuted', 2, 0],
    ['bop', 'permuted', 2, 0],
  ] as const) {
    test(`${method} on a ${stream} stream of ${tasks} tasks reports every field`, async () => {
      const seen: TaskRecord[] = [];
      const epochs: number[] = [];
      const backend = createReferenceBackend('float32');
      const result = await trainContinual({
        config: config(method, method === 'bayesbinn' ? { temperature: 1e-2 } : {}),
        backend,
        train,
        test: testSet,
        stream,
        tasks,
        testSamples: samples,
        evaluationBatch: 100,
        callbacks: { onTask: (r) => seen.push(r), onEpoch: (e) => epochs.push(e.task) },
      });
      assert.equal(seen.length, tasks);
      assert.deepEqual(epochs, [...Array(tasks).keys()]);
      for (const r of seen) {
        assert.equal(r.accuracies.length, r.task + 1);
        assert.equal(r.evaluations.length, r.task + 1);
        for (const a of r.accuracies) assert.ok(a >= 0 && a <= 1);
        const check = continualMetrics(result.accuracy, r.task);
        assert.equal(r.averageAccuracy, check.averageAccuracy);
        assert.equal(r.forgetting, check.forgetting);
        assert.ok(Number.isFinite(r.trainLoss) && r.trainSeconds >= 0 && r.evaluationSeconds >= 0);
      }
      assert.equal(result.averageAccuracy, seen[tasks - 1].averageAccuracy);
      assert.equal(result.forgetting, seen[tasks - 1].forgetting);
      for (const r of seen) {
        // Split: the examples of the task's two classes; permuted: the whole training set, every task.
        const own = stream === 'split' ? train.labels.filter((l) => l >>> 1 === r.task).length : train.count;
        assert.equal(r.trainExamples, own, `examples trained on in task ${r.task + 1}`);
      }
      assert.equal(backend.bytesInUse(), 0, 'every buffer is freed');
    });
  }
});

describe('onebit continual', () => {
  test('bayesbinn gets the continual-learning defaults unless flags say otherwise', () => {
    const flags = {
      data: 'synthetic-mnist',
      model: 'mlp-100',
      method: 'bayesbinn',
      activations: 'real' as const,
      epochs: 5,
      batchSize: 100,
      schedule: 'cosine' as const,
      seed: 1,
      validation: 0,
      bnAffine: false,
      json: false,
      backend: 'reference' as const,
      stream: 'permuted' as const,
      tasks: 5,
      epochsPerTask: 3,
    };
    const d = continualConfig(flags);
    assert.equal(d.config.learningRate, 1e-3);
    assert.deepEqual(d.config.methodOptions, { temperature: 1e-2 });
    assert.equal(d.testSamples, 100);
    assert.equal(d.config.epochs, 3);
    const given = continualConfig({ ...flags, lr: 5e-4, temperature: 1e-3, testSamples: 7 });
    assert.equal(given.config.learningRate, 5e-4);
    assert.deepEqual(given.config.methodOptions, { temperature: 1e-3 });
    assert.equal(given.testSamples, 7);
    const ste = continualConfig({ ...flags, method: 'ste' });
    assert.deepEqual(ste.config.methodOptions, {});
    assert.equal(ste.testSamples, 0);
  });

  test('--json prints one line per task and a result line with averageAccuracy and forgetting', async () => {
    const args = [
      ...['continual', '--data', 'synthetic-mnist', '--stream', 'split', '--tasks', '5'],
      ...['--epochs-per-task', '1', '--method', 'bayesbinn', '--test-samples', '2', '--train-limit', '250'],
      ...['--batch-size', '50', '--test-limit', '100', '--backend', 'reference', '--json'],
    ];
    const { code, stdout, stderr } = await runCli(args);
    assert.equal(code, 0, stderr);
    const all = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    // First the data line (generated data: no files), then the tasks and the result.
    assert.equal(all[0].type, 'data');
    const lines = all.slice(1);
    assert.equal(lines.length, 6);
    lines.slice(0, 5).forEach((l, t) => {
      assert.equal(l.type, 'task');
      assert.equal(l.task, t + 1);
      assert.equal((l.accuracies as number[]).length, t + 1);
      assert.equal(typeof l.averageAccuracy, 'number');
      assert.equal(typeof l.forgetting, 'number');
    });
    const last = lines[5];
    assert.equal(last.type, 'result');
    assert.equal(last.averageAccuracy, lines[4].averageAccuracy);
    assert.equal(last.forgetting, lines[4].forgetting);
    assert.equal(last.testSamples, 2);
  });
});
