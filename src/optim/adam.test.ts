import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../backend/backend.js';
import { createReferenceBackend } from '../backend/reference/index.js';
import type { Parameter } from '../nn/layer.js';
import { Rng } from '../tensor/rng.js';
import { adam } from './adam.js';
import { cosineSchedule } from './schedules.js';

function param(b: Backend, name: string, values: number[], decay = true): Parameter {
  const value = b.alloc(values.length);
  value.set(values);
  return { name, shape: [values.length], kind: 'real', value, grad: b.alloc(values.length), decay };
}

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (tol ${tol})`);
}

test('adam: two steps worked by hand (lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8)', () => {
  const b = createReferenceBackend('float64');
  const p = param(b, 'w', [1, -2]);
  const opt = adam(b, { learningRate: 0.1 });
  const s = opt.init([p]);

  // Step 1, gradient g = [0.5, -0.2].
  // Entry 0: m = 0.1 * 0.5 = 0.05; v = 0.001 * 0.25 = 0.00025;
  //          mhat = 0.05 / (1 - 0.9) = 0.5; vhat = 0.00025 / (1 - 0.999) = 0.25; sqrt(vhat) = 0.5;
  //          p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 1 - 0.1 * (1 - 2e-8 + ...) = 0.900000002.
  // Entry 1: m = -0.02; v = 0.001 * 0.04 = 0.00004; mhat = -0.2; vhat = 0.04; sqrt = 0.2;
  //          p = -2 + 0.1 * 0.2 / (0.2 + 1e-8) = -2 + 0.1 * (1 - 5e-8) = -1.900000005.
  p.grad.set([0.5, -0.2]);
  opt.update(s, [p], { step: 0 });
  close(s.m[0]![0]!, 0.05, 1e-15, 'm[0] after step 1');
  close(s.v[0]![0]!, 0.00025, 1e-15, 'v[0] after step 1');
  close(p.value[0]!, 0.900000002, 1e-12, 'p[0] after step 1');
  close(p.value[1]!, -1.900000005, 1e-12, 'p[1] after step 1');
  assert.equal(s.count, 1);

  // Step 2, gradient g = [-1, -0.2].
  // Entry 0: m = 0.9 * 0.05 + 0.1 * (-1) = -0.055;
  //          v = 0.999 * 0.00025 + 0.001 * 1 = 0.00124975;
  //          mhat = -0.055 / (1 - 0.81) = -0.055 / 0.19 = -11/38 = -0.28947368421...;
  //          vhat = 0.00124975 / (1 - 0.998001) = 0.00124975 / 0.001999 = 0.62518759379...;
  //          sqrt(vhat) = 0.79068805087...; mhat / (sqrt(vhat) + 1e-8) = -0.36610352240...;
  //          p = 0.900000002 + 0.036610352240... = 0.93661035424...
  // Entry 1: a constant gradient makes mhat = g and vhat = g^2 exactly (that is what bias correction is
  //          for), so each step moves by lr * 0.2 / (0.2 + 1e-8): p = -1.900000005 + 0.099999995 = -1.80000001.
  p.grad.set([-1, -0.2]);
  opt.update(s, [p], { step: 1 });
  close(s.m[0]![0]!, -0.055, 1e-15, 'm[0] after step 2');
  close(s.v[0]![0]!, 0.00124975, 1e-15, 'v[0] after step 2');
  const step2 = -0.055 / 0.19 / (Math.sqrt(0.00124975 / 0.001999) + 1e-8);
  close(p.value[0]!, 0.900000002 - 0.1 * step2, 1e-12, 'p[0] after step 2 (formula)');
  close(p.value[0]!, 0.9366103542405654, 1e-12, 'p[0] after step 2 (value)');
  close(p.value[1]!, -1.80000001, 1e-12, 'p[1] after step 2');
  assert.equal(s.count, 2);
  opt.dispose(s);
});

test('adam: decoupled weight decay applies only to parameters with decay = true', () => {
  const b = createReferenceBackend('float64');
  const decayed = param(b, 'fc.weight', [1], true);
  const kept = param(b, 'bn.gamma', [1], false);
  const opt = adam(b, { learningRate: 0.1, weightDecay: 0.01 });
  const s = opt.init([decayed, kept]);

  // Same gradients as entry 0 of the test above. With decay, each step first shrinks p by lr * wd * p:
  // Step 1: p = 1 - 0.1 * (0.99999998 + 0.01 * 1) = 0.899000002.
  // Step 2: p = 0.899000002 - 0.1 * (-0.36610352240... + 0.01 * 0.899000002) = 0.93471135424...
  // Without decay (decay = false) the parameter follows the plain Adam path: 0.900000002, 0.93661035424...
  decayed.grad.set([0.5]);
  kept.grad.set([0.5]);
  opt.update(s, [decayed, kept], { step: 0 });
  close(decayed.value[0]!, 0.899000002, 1e-12, 'decayed after step 1');
  close(kept.value[0]!, 0.900000002, 1e-12, 'kept after step 1');

  decayed.grad.set([-1]);
  kept.grad.set([-1]);
  opt.update(s, [decayed, kept], { step: 1 });
  const step2 = -0.055 / 0.19 / (Math.sqrt(0.00124975 / 0.001999) + 1e-8);
  close(decayed.value[0]!, 0.899000002 - 0.1 * (step2 + 0.01 * 0.899000002), 1e-12, 'decayed after step 2');
  close(decayed.value[0]!, 0.9347113542385653, 1e-12, 'decayed after step 2 (value)');
  close(kept.value[0]!, 0.9366103542405654, 1e-12, 'kept after step 2');
  opt.dispose(s);
});

test('adam: minimises ||Ax - b||^2 to the known solution (cosine-decayed learning rate)', () => {
  const b = createReferenceBackend('float64');
  const rng = new Rng(7);
  const rows = 12;
  const cols = 5;
  const A = Array.from({ length: rows * cols }, () => rng.normal());
  const xStar = Array.from({ length: cols }, () => rng.normal());
  // b = A x*, so x* is the exact minimiser (A has full column rank with probability 1).
  const target = Array.from({ length: rows }, (_, i) => {
    let s = 0;
    for (let j = 0; j < cols; j++) s += A[i * cols + j]! * xStar[j]!;
    return s;
  });
  const x = param(b, 'x', new Array<number>(cols).fill(0));
  const steps = 3000;
  const opt = adam(b, { learningRate: cosineSchedule({ lr: 0.05, totalSteps: steps }) });
  const s = opt.init([x]);

  const residual = new Float64Array(rows);
  const loss = (): number => {
    let l = 0;
    for (let i = 0; i < rows; i++) {
      let r = -target[i]!;
      for (let j = 0; j < cols; j++) r += A[i * cols + j]! * x.value[j]!;
      residual[i] = r;
      l += r * r;
    }
    return l;
  };
  const initialLoss = loss();
  for (let t = 0; t < steps; t++) {
    loss();
    // grad = 2 A^T (A x - b)
    for (let j = 0; j < cols; j++) {
      let g = 0;
      for (let i = 0; i < rows; i++) g += 2 * A[i * cols + j]! * residual[i]!;
      x.grad[j] = g;
    }
    opt.update(s, [x], { step: t });
  }
  const finalLoss = loss();
  assert.ok(finalLoss < 1e-16 * initialLoss, `loss ${initialLoss} -> ${finalLoss}`);
  for (let j = 0; j < cols; j++) close(x.value[j]!, xStar[j]!, 1e-8, `x[${j}]`);
  opt.dispose(s);
});

test('adam: rejects bad hyperparameters', () => {
  const b = createReferenceBackend('float64');
  assert.throws(() => adam(b, { beta1: 1 }), /beta1/);
  assert.throws(() => adam(b, { beta2: -0.1 }), /beta2/);
  assert.throws(() => adam(b, { learningRate: -1 }), /learningRate/);
  assert.throws(() => adam(b, { weightDecay: Number.NaN }), /weightDecay/);
});
