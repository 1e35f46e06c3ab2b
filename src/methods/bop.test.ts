/**
 * Bop against hand-worked flips (docs/methods.md#bop): m <- (1 - gamma) m + gamma g; flip iff w m > threshold.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { createReferenceBackend } from '../backend/reference/index.js';
import type { FloatArray } from '../backend/backend.js';
import type { Parameter } from '../nn/layer.js';
import { Rng } from '../tensor/rng.js';
import { BOP_DEFAULTS, BopMethod, type BopOptions } from './bop.js';

function setup(
  options: Partial<BopOptions>,
  init: number[],
  learningRate?: number,
): { method: BopMethod; p: Parameter; w: FloatArray; m: FloatArray } {
  const backend = createReferenceBackend('float32');
  const n = init.length;
  const p: Parameter = {
    name: 'fc.weight',
    shape: [n],
    kind: 'binary',
    value: backend.alloc(n),
    grad: backend.alloc(n),
    decay: false,
  };
  p.value.set(init);
  const method = new BopMethod({ ...BOP_DEFAULTS, ...options });
  method.attach([p], backend, new Rng(1), {
    trainingExamples: 10,
    stepsPerEpoch: 1,
    ...(learningRate !== undefined ? { learningRate } : {}),
  });
  const [w, m] = method.stateTensors().map((t) => t.value as FloatArray);
  return { method, p, w, m };
}

/** Bytes of the method's state tensors per binary weight: measured, not declared. */
function measuredBytes(
  method: { stateTensors(): { value: { byteLength: number } }[] },
  weights: number,
): number {
  return method.stateTensors().reduce((sum, t) => sum + t.value.byteLength, 0) / weights;
}

describe('Bop', () => {
  test('starts from the sign of the layer initialisation (sign(0) = +1), with m = 0', () => {
    const { method, p, w, m } = setup({}, [0.3, -0.01, 0, -2]);
    assert.deepEqual([...w], [1, -1, 1, -1]);
    assert.deepEqual([...m], [0, 0, 0, 0]);
    method.propose();
    assert.deepEqual([...p.value], [1, -1, 1, -1]);
    assert.equal(measuredBytes(method, 4), 8);
  });

  test('flips where w m exceeds the threshold, and only there', () => {
    const { method, p, w, m } = setup({ gamma: 0.5, threshold: 0.1 }, [1, -1, 1, -1]);
    method.propose();
    p.grad.set([0.4, 0.4, -0.4, -0.1]);
    method.update({ step: 1, learningRate: 1e-3 });
    // m = 0.5 * 0 + 0.5 * g = [0.2, 0.2, -0.2, -0.05]; w m = [0.2, -0.2, -0.2, 0.05]:
    // only the first exceeds 0.1 (the loss wants +1 -> -1); the last agrees in sign but is below the threshold.
    assert.deepEqual([...m], [0.2, 0.2, -0.2, -0.05].map(Math.fround));
    assert.deepEqual([...w], [-1, -1, 1, -1]);
    assert.equal(method.flipRatio, 0.25);
    // Step 2 with g = 0: m halves to [0.1, 0.1, -0.1, -0.025]; w m = [-0.1, -0.1, -0.1, 0.025]: no flips.
    p.grad.fill(0);
    method.update({ step: 2, learningRate: 1e-3 });
    assert.deepEqual([...w], [-1, -1, 1, -1]);
    assert.equal(method.flipRatio, 0);
    method.predict();
    assert.deepEqual([...p.value], [-1, -1, 1, -1]);
  });

  test('no flip when w m is below the threshold or of the other sign', () => {
    const { method, p, w, m } = setup({ gamma: 0.5, threshold: 0.25 }, [1, -1]);
    p.grad.set([0.4, 0.4]);
    method.update({ step: 1, learningRate: 1 });
    // m = 0.5 * 0.4 = 0.2 for both; w m = [0.2, -0.2]: 0.2 < 0.25, and -0.2 means the loss wants w as it is.
    assert.deepEqual([...m], [0.2, 0.2].map(Math.fround));
    assert.deepEqual([...w], [1, -1]);
  });

  test("schedule 'gamma' scales gamma by lr_t / lr; 'threshold' scales the threshold", () => {
    // Peak lr 0.01, scheduled lr 0.005: factor 0.5. gamma 0.5 -> 0.25: m = 0.25 * 0.4 = 0.1.
    const g = setup({ gamma: 0.5, threshold: 0.15, schedule: 'gamma' }, [1], 0.01);
    g.p.grad[0] = 0.4;
    g.method.update({ step: 1, learningRate: 0.005 });
    assert.equal(g.m[0], Math.fround(0.1));
    assert.deepEqual([...g.w], [1], 'w m = 0.1 < 0.15: no flip');
    // threshold 0.3 -> 0.15 with the factor 0.5; m = 0.5 * 0.4 = 0.2 > 0.15: flip.
    const t = setup({ gamma: 0.5, threshold: 0.3, schedule: 'threshold' }, [1], 0.01);
    t.p.grad[0] = 0.4;
    t.method.update({ step: 1, learningRate: 0.005 });
    assert.equal(t.m[0], Math.fround(0.2));
    assert.deepEqual([...t.w], [-1]);
  });

  test('rejects bad hyperparameters', () => {
    assert.throws(() => new BopMethod({ ...BOP_DEFAULTS, gamma: 0 }), /gamma/);
    assert.throws(() => new BopMethod({ ...BOP_DEFAULTS, threshold: -1 }), /threshold/);
  });
});
