/**
 * The fit API: a spec built in code trained on the user's own data with callbacks, early stopping and an
 * AbortSignal, nothing written without an output folder, and the trained model exported.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '../src/errors.js';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import { syntheticDataset } from '../src/data/dataset.js';
import { createEngine } from '../src/engine/index.js';
import { batchNorm, binaryDense, flatten, hardtanh, sequential } from '../src/nn/spec.js';
import { exportModel, fit } from '../src/train/fit.js';

const SHAPE = [1, 8, 8] as const;
const spec = sequential({ input: [...SHAPE], classes: 4 }, [
  flatten(),
  binaryDense(32),
  batchNorm(),
  hardtanh(),
  binaryDense(4, { binarizer: 'sign' }),
  batchNorm(),
]);
const data = {
  train: syntheticDataset({ shape: SHAPE, count: 400, classes: 4, seed: 1 }),
  test: syntheticDataset({ shape: SHAPE, count: 100, classes: 4, seed: 1, split: 'test' }),
};

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-fit-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('fit', () => {
  test('trains a spec built in code on arrays, writes nothing without outDir, and exports', async () => {
    const backend = createReferenceBackend('float32');
    const batches: number[] = [];
    const result = await fit({
      model: spec,
      data,
      epochs: 2,
      batchSize: 40,
      learningRate: 0.01,
      backend,
      onBatch: (p) => void batches.push(p.step),
    });
    // 400 examples, 40 held out: 9 batches of 40 per epoch, steps numbered through the run.
    assert.deepEqual(
      batches,
      Array.from({ length: 18 }, (_, i) => i + 1),
    );
    assert.equal(result.epochs.length, 2);
    assert.equal(result.checkpointPath, null);
    assert.equal(result.stopped, null);
    assert.ok(result.test.accuracy > 0.8, `accuracy ${result.test.accuracy}`);
    assert.deepEqual(result.model.spec, spec);
    assert.equal(result.model.checkpoint.meta.epoch, 2);
    assert.equal(result.model.checkpoint.meta.step, 18);
    assert.equal(backend.bytesInUse(), 0, 'the learner was disposed; the caller keeps the backend');
    const engine = await createEngine(await exportModel(result.model, 'onebit'), { threads: 1 });
    try {
      const predictions = engine.classify(data.test.images, data.test.count);
      const hits = Array.from(predictions).filter((p, i) => p === data.test.labels[i]).length;
      assert.equal(hits / data.test.count, result.test.accuracy);
    } finally {
      engine.dispose();
    }
  });

  test('writes checkpoints and metrics into outDir when given one', async () => {
    const outDir = join(dir, 'run');
    const result = await fit({
      model: spec,
      data,
      epochs: 1,
      outDir,
      backend: createReferenceBackend('float32'),
    });
    assert.equal(result.checkpointPath, join(outDir, 'checkpoint.ckpt'));
    assert.deepEqual(readdirSync(outDir).sort(), [
      'checkpoint.ckpt',
      'metrics.jsonl',
      'run.json',
      'test.json',
    ]);

    // A second run into the same folder is refused before it writes anything.
    const before = readdirSync(outDir).map((n) => readFileSync(join(outDir, n)));
    await assert.rejects(
      fit({ model: spec, data, epochs: 1, outDir, backend: createReferenceBackend('float32') }),
      (e: unknown) =>
        e instanceof ConfigError && e.field === 'outDir' && /holds checkpoint\.ckpt/.test(e.message),
    );
    assert.deepEqual(
      readdirSync(outDir).map((n) => readFileSync(join(outDir, n))),
      before,
    );
  });

  test("an AbortSignal, or 'stop' from onBatch, ends the run after the current step without a partial epoch", async () => {
    const controller = new AbortController();
    const aborted = await fit({
      model: spec,
      data,
      epochs: 3,
      batchSize: 40,
      backend: createReferenceBackend('float32'),
      signal: controller.signal,
      onBatch: (p) => {
        if (p.step === 12) controller.abort();
      },
    });
    assert.equal(aborted.stopped, 'aborted');
    assert.deepEqual(
      aborted.epochs.map((e) => e.epoch),
      [1],
      'epoch 2 was cut short: no record of it',
    );
    const stopped = await fit({
      model: spec,
      data,
      epochs: 3,
      batchSize: 40,
      backend: createReferenceBackend('float32'),
      onBatch: (p) => (p.step === 5 ? 'stop' : undefined),
    });
    assert.equal(stopped.stopped, 'early-stopping');
    assert.equal(stopped.epochs.length, 0);
  });

  test('early stopping ends the run when the monitored figure stops improving', async () => {
    const result = await fit({
      model: spec,
      data,
      epochs: 6,
      batchSize: 40,
      backend: createReferenceBackend('float32'),
      // No change is ever large enough: the first epoch sets the best, the next one exhausts the patience.
      earlyStopping: { monitor: 'validationNll', patience: 1, minDelta: 1e9 },
    });
    assert.equal(result.stopped, 'early-stopping');
    assert.equal(result.epochs.length, 2);
    await assert.rejects(
      fit({
        model: spec,
        data,
        epochs: 1,
        validationFraction: 0,
        earlyStopping: { monitor: 'validationNll', patience: 1 },
      }),
      /earlyStopping: expected a validation split/,
    );
    assert.ok(!existsSync(join(dir, 'checkpoint.ckpt')));
  });
});
