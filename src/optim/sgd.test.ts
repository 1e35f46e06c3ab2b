import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend } from '../backend/backend.js';
import { createReferenceBackend } from '../backend/reference/index.js';
import type { Parameter } from '../nn/layer.js';
import { Rng } from '../tensor/rng.js';
import { sgd } from './sgd.js';

function param(b: Backend, name: string, values: number[], decay = true): Parameter {
  const value = b.alloc(values.length);
  value.set(values);
  return { name, shape: [values.length], kind: 'real', value, grad: b.alloc(values.length), decay };
}

function close(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected} (tol ${tol})`);
}

// All hand-worked cases: lr 0.1, momentum 0.9, p0 = 1, gradients 0.5 then -1.

test('sgd: two momentum steps with weight decay, worked by hand', () => {
  const b = createReferenceBackend('float64');
  const p = param(b, 'w', [1]);
  const opt = sgd(b, { learningRate: 0.1, momentum: 0.9, weightDecay: 0.01 });
  const s = opt.init([p]);

  // Step 1: g' = 0.5 + 0.01 * 1 = 0.51; buf = g' = 0.51 (first step, no damping);
  //         p = 1 - 0.1 * 0.51 = 0.949.
  p.grad[0] = 0.5;
  opt.update(s, [p], { step: 0 });
  close(s.momentum[0]![0]!, 0.51, 1e-15, 'buf after step 1');
  close(p.value[0]!, 0.949, 1e-15, 'p after step 1');

  // Step 2: g' = -1 + 0.01 * 0.949 = -0.99051; buf = 0.9 * 0.51 + (-0.99051) = 0.459 - 0.99051 = -0.53151;
  //         p = 0.949 - 0.1 * (-0.53151) = 1.002151.
  p.grad[0] = -1;
  opt.update(s, [p], { step: 1 });
  close(s.momentum[0]![0]!, -0.53151, 1e-15, 'buf after step 2');
  close(p.value[0]!, 1.002151, 1e-15, 'p after step 2');
  opt.dispose(s);
});

test('sgd: weight decay is skipped for parameters with decay = false', () => {
  const b = createReferenceBackend('float64');
  const p = param(b, 'bn.beta', [1], false);
  const opt = sgd(b, { learningRate: 0.1, momentum: 0.9, weightDecay: 0.01 });
  const s = opt.init([p]);

  // g' = g: step 1: buf = 0.5, p = 1 - 0.05 = 0.95;
  //         step 2: buf = 0.45 - 1 = -0.55, p = 0.95 + 0.055 = 1.005.
  p.grad[0] = 0.5;
  opt.update(s, [p], { step: 0 });
  close(p.value[0]!, 0.95, 1e-15, 'p after step 1');
  p.grad[0] = -1;
  opt.update(s, [p], { step: 1 });
  close(p.value[0]!, 1.005, 1e-15, 'p after step 2');
  opt.dispose(s);
});

test('sgd: nesterov momentum, worked by hand', () => {
  const b = createReferenceBackend('float64');
  const p = param(b, 'w', [1]);
  const opt = sgd(b, { learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true });
  const s = opt.init([p]);

  // Step 1: g' = 0.51; buf = 0.51; d = g' + 0.9 * buf = 0.51 + 0.459 = 0.969; p = 1 - 0.0969 = 0.9031.
  p.grad[0] = 0.5;
  opt.update(s, [p], { step: 0 });
  close(p.value[0]!, 0.9031, 1e-15, 'p after step 1');

  // Step 2: g' = -1 + 0.01 * 0.9031 = -0.990969; buf = 0.459 - 0.990969 = -0.531969;
  //         d = -0.990969 + 0.9 * (-0.531969) = -0.990969 - 0.4787721 = -1.4697411;
  //         p = 0.9031 + 0.14697411 = 1.05007411.
  p.grad[0] = -1;
  opt.update(s, [p], { step: 1 });
  close(s.momentum[0]![0]!, -0.531969, 1e-15, 'buf after step 2');
  close(p.value[0]!, 1.05007411, 1e-15, 'p after step 2');
  opt.dispose(s);
});

test('sgd: momentum 0 is plain gradient descent and keeps no buffer', () => {
  const b = createReferenceBackend('float64');
  const p = param(b, 'w', [1]);
  const opt = sgd(b, { learningRate: 0.1, momentum: 0, weightDecay: 0.01 });
  const s = opt.init([p]);
  assert.equal(s.buffers.length, 0);

  // Step 1: p = 1 - 0.1 * (0.5 + 0.01) = 0.949.  Step 2: p = 0.949 - 0.1 * (-1 + 0.00949) = 1.048051.
  p.grad[0] = 0.5;
  opt.update(s, [p], { step: 0 });
  close(p.value[0]!, 0.949, 1e-15, 'p after step 1');
  p.grad[0] = -1;
  opt.update(s, [p], { step: 1 });
  close(p.value[0]!, 1.048051, 1e-15, 'p after step 2');
});

for (const nesterov of [false, true]) {
  test(`sgd: minimises ||Ax - b||^2 to the known solution (nesterov ${nesterov})`, () => {
    const b = createReferenceBackend('float64');
    const rng = new Rng(11);
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
    // The Hessian is 2 A^T A with largest eigenvalue about 2 * (sqrt(12) + sqrt(5))^2 ~ 65, so heavy-ball
    // SGD with momentum 0.9 is stable for lr < 2 * 1.9 / 65 ~ 0.06; 0.005 is comfortably inside.
    const opt = sgd(b, { learningRate: 0.005, momentum: 0.9, nesterov });
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
    for (let t = 0; t < 2000; t++) {
      loss();
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
}

test('sgd: rejects bad hyperparameters', () => {
  const b = createReferenceBackend('float64');
  assert.throws(() => sgd(b, { learningRate: 0.1, momentum: 1 }), /momentum/);
  assert.throws(() => sgd(b, { learningRate: 0.1, momentum: 0, nesterov: true }), /nesterov/);
  assert.throws(() => sgd(b, { learningRate: -0.1 }), /learningRate/);
  assert.throws(() => sgd(b, { learningRate: 0.1, weightDecay: -1 }), /weightDecay/);
});
