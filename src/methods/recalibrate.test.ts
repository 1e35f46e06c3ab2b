import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend } from '../backend/reference/index.js';
import { createDataset, syntheticDataset } from '../data/dataset.js';
import { createBatchBuffers, Normalizer } from '../data/pipeline.js';
import { BatchNorm } from '../nn/batch-norm.js';
import { Rng } from '../tensor/rng.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../config/train-config.js';
import { evaluate } from '../train/evaluate.js';
import { recalibrateBatchNorm } from './recalibrate.js';
import { createRun, disposeRun } from '../train/run.js';

describe('batch-norm recalibration', () => {
  // 2 channels of 2x1 pixels; 7 images, read in the order below.
  const shape = [2, 2, 1] as const;
  const rng = new Rng(5);
  const images = Uint8Array.from({ length: 7 * 4 }, () => rng.int(256));
  const data = createDataset({ name: 'tiny', images, labels: new Uint8Array(7), shape, classes: 1 });
  const order = [6, 2, 0, 5, 3, 1, 4];
  const normalizer = Normalizer.unit(shape);
  const pixel = (item: number, c: number, p: number): number => images[item * 4 + c * 2 + p] / 255;

  /** The average over batches of each channel's batch mean and unbiased batch variance, by hand. */
  function expectedStatistics(batches: number[][], c: number): { mean: number; variance: number } {
    const stats = batches.map((items) => {
      const values = items.flatMap((item) => [pixel(item, c, 0), pixel(item, c, 1)]);
      const mu = values.reduce((a, b) => a + b, 0) / values.length;
      const unbiased = values.reduce((a, v) => a + (v - mu) ** 2, 0) / (values.length - 1);
      return { mu, unbiased };
    });
    return {
      mean: stats.reduce((a, s) => a + s.mu, 0) / stats.length,
      variance: stats.reduce((a, s) => a + s.unbiased, 0) / stats.length,
    };
  }

  function recalibrated(examples: number, capacity: number): { mean: Float64Array; variance: Float64Array } {
    const be = createReferenceBackend('float64');
    const bn = new BatchNorm('bn', { affine: false, momentum: 0.1 });
    bn.plan(be, shape, capacity);
    bn.initialize(new Rng(0));
    const [mean, variance] = bn.stateBuffers();
    mean.value.fill(123); // stale statistics from training: must not survive
    variance.value.fill(456);
    const batch = createBatchBuffers(shape, capacity, 'float64');
    recalibrateBatchNorm(bn, data, order, normalizer, batch, { examples, seed: 1 });
    return { mean: Float64Array.from(mean.value), variance: Float64Array.from(variance.value) };
  }

  const cases: [string, number, number, number[][]][] = [
    ['two full batches', 6, 3, [order.slice(0, 3), order.slice(3, 6)]],
    ['full batches only: the remainder is left out', 5, 2, [order.slice(0, 2), order.slice(2, 4)]],
    ['fewer examples than a batch: one smaller batch', 2, 3, [order.slice(0, 2)]],
  ];
  for (const [title, examples, capacity, batches] of cases) {
    it(`running statistics = plain average of batch statistics: ${title}`, () => {
      const { mean, variance } = recalibrated(examples, capacity);
      for (let c = 0; c < 2; c++) {
        const expected = expectedStatistics(batches, c);
        assert.ok(Math.abs(mean[c] - expected.mean) < 1e-12, `mean ${c}: ${mean[c]} vs ${expected.mean}`);
        assert.ok(
          Math.abs(variance[c] - expected.variance) < 1e-12,
          `variance ${c}: ${variance[c]} vs ${expected.variance}`,
        );
      }
    });
  }

  it('one example is no batch: the statistics stay as they were', () => {
    const { mean, variance } = recalibrated(1, 3);
    assert.deepEqual([...mean, ...variance], [123, 123, 456, 456]);
  });
});

describe('evaluate(): prepareSample, where each sampled network gets its batch-norm statistics', () => {
  it('runs once per sampled network, after its weights are drawn, and never for the mode', () => {
    const backend = createReferenceBackend('float32');
    const config: TrainConfig = {
      ...TRAIN_DEFAULTS,
      data: 'synthetic-mnist',
      model: 'mlp-100',
      method: 'vispa',
      methodOptions: { rank: 2 },
    };
    const shape = [1, 28, 28] as const;
    const run = createRun(
      config,
      backend,
      { inputShape: shape, classes: 10, stepsPerEpoch: 1, trainingExamples: 1 },
      20,
    );
    const test = syntheticDataset({ shape, count: 20, classes: 10, seed: 3, split: 'test' });
    try {
      // A wide distribution: samples sign(m + Z^T r) differ from sign(m) in many weights.
      for (const t of run.learner.stateTensors()) if (t.name.endsWith('/z')) t.value.fill(30);
      const fc1 = run.learner.stateTensors().find((t) => t.name === 'model/fc1.weight')!;
      run.learner.predict('mode', new Rng(1));
      const mode = Float32Array.from(fc1.value);
      const seen: Float32Array[] = [];
      const prepareSample = (): void => void seen.push(Float32Array.from(fc1.value));
      evaluate(run, test, { kind: 'mode', seed: 1, prepareSample });
      assert.equal(seen.length, 0, 'not for the mode');
      evaluate(run, test, { kind: 'ensemble', samples: 3, seed: 1, prepareSample });
      assert.equal(seen.length, 3, 'once per sample');
      for (const weights of seen)
        assert.ok(
          weights.some((w, i) => w !== mode[i]),
          'a drawn sample, not sign(m)',
        );
      assert.ok(
        seen[0].some((w, i) => w !== seen[1][i]),
        'a fresh sample each time',
      );
    } finally {
      disposeRun(run);
    }
  });
});
