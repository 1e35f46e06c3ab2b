/**
 * BayesBiNN and Bop inside the training pipeline: the MC ensemble on a network whose answer is known,
 * probability averaging, and byte-identical resumption of the method state (tensors and scalars) after an
 * interrupted run.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import { syntheticDataset } from '../src/data/dataset.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../src/config/train-config.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { evaluate, sampleRecalibration } from '../src/train/evaluate.js';
import { createRun, disposeRun } from '../src/train/run.js';
import { CHECKPOINT_FILE, train } from '../src/train/trainer.js';

const SHAPE = [1, 28, 28] as const;

function config(method: string, methodOptions: TrainConfig['methodOptions'] = {}): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data: 'synthetic-mnist',
    model: 'mlp-100',
    method,
    methodOptions,
    epochs: 2,
    batchSize: 50,
    learningRate: 1e-3,
    seed: 5,
  };
}

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-bayes-bop-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('MC prediction of BayesBiNN through evaluate()', () => {
  test('with |lambda| huge every sample is the mode, so the ensemble equals the mode', () => {
    const backend = createReferenceBackend('float32');
    const run = createRun(
      config('bayesbinn'),
      backend,
      { inputShape: SHAPE, classes: 10, stepsPerEpoch: 1, trainingExamples: 100 },
      40,
    );
    const data = syntheticDataset({ shape: SHAPE, count: 60, classes: 10, seed: 2, split: 'test' });
    try {
      for (const t of run.learner.stateTensors()) {
        if ((t.name.startsWith('method/') && t.name.endsWith('/lambda')) || t.name.endsWith('/mu')) {
          const huge = t.name.startsWith('method/') && t.name.endsWith('/lambda') ? 1e6 : 1;
          for (let i = 0; i < t.value.length; i++) t.value[i] = (i * 7919) % 3 === 0 ? -huge : huge;
        }
      }
      const mode = evaluate(run, data, { kind: 'mode', seed: 1 });
      const ensemble = evaluate(run, data, { kind: 'ensemble', samples: 4, seed: 1 });
      assert.deepEqual(ensemble, mode);
      const averaged = evaluate(run, data, {
        kind: 'ensemble',
        samples: 4,
        seed: 1,
        average: 'probabilities',
      });
      assert.equal(averaged.accuracy, mode.accuracy);
      assert.ok(Math.abs(averaged.nll - mode.nll) < 1e-12);
      assert.ok(Math.abs(averaged.ece - mode.ece) < 1e-12);
    } finally {
      disposeRun(run);
    }
  });

  test('with lambda = 0 sampled networks differ from each other and the ensemble is less confident', () => {
    const backend = createReferenceBackend('float32');
    const run = createRun(
      config('bayesbinn'),
      backend,
      { inputShape: SHAPE, classes: 10, stepsPerEpoch: 1, trainingExamples: 100 },
      40,
    );
    const data = syntheticDataset({ shape: SHAPE, count: 40, classes: 10, seed: 2, split: 'test' });
    try {
      for (const t of run.learner.stateTensors())
        if (t.name.startsWith('method/') && t.name.endsWith('/lambda')) t.value.fill(0);
      const sample = (seed: number): ReturnType<typeof evaluate> =>
        evaluate(run, data, { kind: 'ensemble', samples: 1, seed, keepEntropies: true });
      const one = sample(1);
      const other = sample(2);
      assert.notDeepEqual(one.entropies, other.entropies);
      // Averaging the probabilities of many random networks moves every prediction towards the average
      // distribution: the mean entropy of the mixture is at least the mean entropy of its members
      // (concavity of entropy), so it exceeds that of a single network by a margin here.
      const many = evaluate(run, data, {
        kind: 'ensemble',
        samples: 16,
        seed: 1,
        average: 'probabilities',
      });
      assert.ok(many.meanEntropy > one.meanEntropy, `${many.meanEntropy} <= ${one.meanEntropy}`);
    } finally {
      disposeRun(run);
    }
  });
});

describe('checkpoint and resume of the method state', () => {
  const trainSet = syntheticDataset({ shape: SHAPE, count: 300, classes: 10, seed: 3 });
  const testSet = syntheticDataset({ shape: SHAPE, count: 100, classes: 10, seed: 3, split: 'test' });

  for (const [method, options] of [
    ['bayesbinn', { bbMomentum: 0.5 }],
    ['bop', { bopSchedule: 'gamma' }],
  ] as const) {
    test(`${method}: an interrupted run resumed from its checkpoint ends byte-identical`, async () => {
      const cfg = config(method, options);
      const whole = join(dir, `${method}-whole`);
      const straight = await train({
        config: cfg,
        backend: createReferenceBackend('float32'),
        train: trainSet,
        test: testSet,
        outDir: whole,
        resume: false,
      });
      assert.ok(straight.test.accuracy > 0.5, `test accuracy ${straight.test.accuracy}`);

      const broken = join(dir, `${method}-broken`);
      await assert.rejects(
        train({
          config: cfg,
          backend: createReferenceBackend('float32'),
          train: trainSet,
          test: testSet,
          outDir: broken,
          resume: false,
          callbacks: {
            onEpoch(record) {
              if (record.epoch === 1) throw new Error('interrupted');
            },
          },
        }),
        /interrupted/,
      );
      await train({
        config: cfg,
        backend: createReferenceBackend('float32'),
        train: trainSet,
        test: testSet,
        outDir: broken,
        resume: true,
      });
      const a = loadCheckpoint(join(whole, CHECKPOINT_FILE));
      const b = loadCheckpoint(join(broken, CHECKPOINT_FILE));
      assert.deepEqual(b.meta.methodScalars, a.meta.methodScalars);
      const methodTensors = [...a.tensors.keys()].filter((k) => k.startsWith('method/'));
      assert.ok(methodTensors.length >= (method === 'bayesbinn' ? 12 : 6), methodTensors.join());
      assert.deepEqual([...b.tensors.keys()], [...a.tensors.keys()]);
      for (const [name, value] of a.tensors) {
        const other = b.tensors.get(name)!;
        assert.ok(Buffer.from(value.buffer).equals(Buffer.from(other.buffer)), `tensor ${name} differs`);
      }
      if (method === 'bayesbinn') {
        // lambda, prior, mu and momentum for each of the 3 binary layers; N = 270 training examples.
        assert.deepEqual(a.meta.methodScalars, { task: 0, trainSetSize: 270 });
      }
    });
  }
});

describe('the mean network and recalibrated samples through evaluate()', () => {
  test("an ensemble whose samples recalibrate batch norm puts the mode's statistics back; the mean is tanh(lambda)", () => {
    const backend = createReferenceBackend('float32');
    const run = createRun(
      { ...config('bayesbinn', { scaleEstimate: 'expected', lambdaInit: 0 }), recalibrateBatchNorm: true },
      backend,
      { inputShape: SHAPE, classes: 10, stepsPerEpoch: 1, trainingExamples: 100 },
      40,
    );
    const train = syntheticDataset({ shape: SHAPE, count: 200, classes: 10, seed: 3, split: 'train' });
    const data = syntheticDataset({ shape: SHAPE, count: 60, classes: 10, seed: 2, split: 'test' });
    try {
      // lambda = +-0.3: every sampled network differs from the mode, and so do its statistics.
      for (const t of run.learner.stateTensors()) {
        if (t.name.startsWith('method/') && t.name.endsWith('/lambda'))
          for (let i = 0; i < t.value.length; i++) t.value[i] = i % 3 === 0 ? -0.3 : 0.3;
      }
      // Every model tensor: the weights (which predict rewrites anyway) and the batch-norm statistics.
      const statistics = () =>
        run.learner
          .stateTensors()
          .filter((t) => t.name.startsWith('model/'))
          .map((t) => Array.from(t.value));
      const recalibrate = sampleRecalibration(run, train, 7);
      assert.ok(recalibrate !== undefined, 'the run recalibrates');
      const before = evaluate(run, data, { kind: 'mode', seed: 1 });
      const stateBefore = statistics();
      evaluate(run, data, { kind: 'ensemble', samples: 3, seed: 1, prepareSample: recalibrate });
      const mean = evaluate(run, data, { kind: 'mean', seed: 1, prepareSample: recalibrate });
      assert.deepEqual(statistics(), stateBefore);
      assert.deepEqual(evaluate(run, data, { kind: 'mode', seed: 1 }), before);
      // The mean network's weights are tanh(+-0.3) = +-0.2913, not +-1: another network than the mode.
      run.learner.predictMean();
      const weights = run.learner
        .stateTensors()
        .find((t) => t.name.startsWith('model/') && t.value.some((v) => v !== 0 && Math.abs(v) < 1));
      assert.ok(weights !== undefined);
      for (const v of weights.value) assert.ok(Math.abs(Math.abs(v) - Math.tanh(0.3)) < 1e-6, String(v));
      assert.notDeepEqual(mean, before);
    } finally {
      disposeRun(run);
    }
  });
});
