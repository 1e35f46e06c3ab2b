/** Layer behaviour beyond gradients: Larq-style equivalence, shape errors, batch-norm semantics, naming. */
import { ShapeError } from '../errors.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend } from '../backend/reference/index.js';
import { Rng } from '../tensor/rng.js';
import { BatchNorm } from './batch-norm.js';
import { BinaryConv2d } from './binary-conv2d.js';
import { BinaryDense } from './binary-dense.js';
import { Conv2d } from './conv2d.js';
import { Dense } from './dense.js';
import { Dropout } from './dropout.js';
import { Flatten } from './flatten.js';
import type { ForwardContext } from './layer.js';
import { SoftmaxCrossEntropy, SquareHinge } from './losses.js';
import { MaxPool2d } from './max-pool2d.js';
import { PReLU } from './prelu.js';
import { ReLU } from './relu.js';
import { Residual } from './residual.js';
import { Sequential } from './sequential.js';

const train = (seed = 1): ForwardContext => ({ training: true, rng: new Rng(seed) });
const evaluate: ForwardContext = { training: false, rng: new Rng(0) };

function sign(v: number): number {
  return v >= 0 ? 1 : -1;
}

describe('Larq-style: a binary layer equals the real layer run on sign(x) with sign(w)', () => {
  it('BinaryDense(sign) == Dense(no bias) on sign(x), forward and weight gradient', () => {
    const be = createReferenceBackend('float64');
    const rng = new Rng(1);
    const binary = new BinaryDense('b', { units: 5, binarizer: 'sign' });
    const real = new Dense('r', { units: 5, bias: false });
    binary.plan(be, [7], 4);
    real.plan(be, [7], 4);
    binary.initialize(rng);
    for (let i = 0; i < 35; i++) {
      binary.weight.value[i] = sign(binary.weight.value[i]);
      real.weight.value[i] = binary.weight.value[i];
    }
    const x = Float64Array.from({ length: 28 }, () => rng.normal());
    x[3] = 0;
    const yb = Float64Array.from(binary.forward(x, 4, train()));
    const yr = Float64Array.from(real.forward(x.map(sign), 4, train()));
    assert.deepEqual(yb, yr);
    const dy = Float64Array.from({ length: 20 }, () => rng.normal());
    binary.backward(dy, 4);
    real.backward(dy, 4);
    assert.deepEqual(Float64Array.from(binary.weight.grad), Float64Array.from(real.weight.grad));
  });

  it('BinaryConv2d(sign) == Conv2d(no bias) on sign(x), with stride and padding', () => {
    const be = createReferenceBackend('float32');
    const rng = new Rng(2);
    const options = { filters: 4, kernelSize: 3, stride: 2, padding: 1 };
    const binary = new BinaryConv2d('b', { ...options, binarizer: 'sign', surrogate: 'approx-sign' });
    const real = new Conv2d('r', { ...options, bias: false });
    binary.plan(be, [3, 6, 5], 2);
    real.plan(be, [3, 6, 5], 2);
    binary.initialize(rng);
    const w = binary.weight.value;
    for (let i = 0; i < w.length; i++) {
      w[i] = sign(w[i]);
      real.weight.value[i] = w[i];
    }
    const x = Float32Array.from({ length: 180 }, () => rng.normal());
    const yb = Float32Array.from(binary.forward(x, 2, train()));
    const yr = Float32Array.from(real.forward(x.map(sign), 2, train()));
    assert.deepEqual(yb, yr);
  });

  it('binary layers own a binary weight and no bias; real layers real parameters', () => {
    const be = createReferenceBackend();
    const b = new BinaryDense('b', { units: 2 });
    b.plan(be, [3], 1);
    assert.deepEqual(
      b.parameters().map((p) => [p.name, p.kind, p.shape]),
      [['weight', 'binary', [2, 3]]],
    );
    const c = new Conv2d('c', { filters: 2, kernelSize: 3 });
    c.plan(be, [1, 3, 3], 1);
    assert.deepEqual(
      c.parameters().map((p) => [p.name, p.kind, p.shape, p.decay]),
      [
        ['weight', 'real', [2, 1, 3, 3], true],
        ['bias', 'real', [2], true],
      ],
    );
  });

  it('binary layers initialize with Glorot-uniform real values', () => {
    const be = createReferenceBackend();
    const b = new BinaryDense('b', { units: 50 });
    b.plan(be, [150], 1);
    b.initialize(new Rng(3));
    const bound = Math.sqrt(6 / 200);
    const v = b.weight.value;
    assert.ok(v.every((x) => Math.abs(x) <= bound));
    assert.ok(v.some((x) => Math.abs(x) > 0.9 * bound) && v.some((x) => x !== sign(x)));
  });
});

describe('shape errors name the layer, the expected and the actual shape', () => {
  const be = createReferenceBackend();
  function expectShapeError(fn: () => unknown, layer: string, expected: RegExp, actual: RegExp): void {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof ShapeError, `not a ShapeError: ${String(e)}`);
      assert.equal(e.layer, layer);
      assert.match(e.expected, expected);
      assert.match(e.actual, actual);
      assert.match(e.message, new RegExp(`^${layer}: `));
      return true;
    });
  }

  it('at plan time', () => {
    expectShapeError(
      () => new Dense('fc1', { units: 3, inFeatures: 784 }).plan(be, [100], 2),
      'fc1',
      /784/,
      /\[100\]/,
    );
    expectShapeError(
      () => new Dense('fc2', { units: 3 }).plan(be, [1, 28, 28], 2),
      'fc2',
      /features/,
      /\[1, 28, 28\]/,
    );
    expectShapeError(
      () => new Conv2d('conv1', { filters: 3, kernelSize: 3, inChannels: 3 }).plan(be, [1, 28, 28], 2),
      'conv1',
      /\[3, H, W\]/,
      /\[1, 28, 28\]/,
    );
    expectShapeError(
      () => new Conv2d('conv2', { filters: 3, kernelSize: 5 }).plan(be, [1, 3, 3], 2),
      'conv2',
      /H, W >= 5/,
      /\[1, 3, 3\]/,
    );
    expectShapeError(
      () => new MaxPool2d('pool', { kernelSize: 2 }).plan(be, [10], 2),
      'pool',
      /C, H, W/,
      /\[10\]/,
    );
    expectShapeError(() => new BatchNorm('bn', { channels: 4 }).plan(be, [3], 2), 'bn', /4/, /\[3\]/);
    expectShapeError(
      () => new Residual('res', new Dense('fc', { units: 4 })).plan(be, [5], 2),
      'res',
      /body gives \[4\]/,
      /\[5\]/,
    );
  });

  it('at forward time: short view, batch above the planned maximum, backward batch', () => {
    const fc = new Dense('fc', { units: 3 });
    fc.plan(be, [4], 2);
    expectShapeError(
      () => fc.forward(new Float64Array(7), 2, evaluate),
      'fc',
      /\[2, 4\] \(8 values\)/,
      /7 values/,
    );
    expectShapeError(() => fc.forward(new Float64Array(12), 3, evaluate), 'fc', /<=2/, /\[3, 4\]/);
    fc.forward(new Float64Array(8), 2, evaluate);
    expectShapeError(() => fc.backward(new Float64Array(3), 1), 'fc', /batch of 2/, /batch 1/);
    expectShapeError(() => fc.backward(new Float64Array(3), 2), 'fc', /gradOutput \[2, 3\]/, /3 values/);
    const net = new Sequential('net', [new Flatten('flat'), new ReLU('relu')]);
    net.plan(be, [2, 2], 2);
    expectShapeError(() => net.forward(new Float64Array(5), 2, evaluate), 'net', /\[2, 2, 2\]/, /5 values/);
  });

  it('losses check their output view and labels', () => {
    const loss = new SoftmaxCrossEntropy('ce');
    loss.plan(be, 3, 2);
    expectShapeError(
      () => loss.forward(new Float64Array(5), new Uint8Array(2), 2),
      'ce',
      /\[2, 3\]/,
      /5 values/,
    );
    assert.throws(() => loss.forward(new Float64Array(6), Uint8Array.from([0, 3]), 2), /label 3 at row 1/);
  });
});

describe('BatchNorm semantics (PyTorch)', () => {
  it('normalises with the biased batch variance and updates running stats with the unbiased one', () => {
    const be = createReferenceBackend();
    const bn = new BatchNorm('bn', { affine: false, eps: 1e-5, momentum: 0.1 });
    bn.plan(be, [1], 4);
    bn.initialize(new Rng(0));
    const x = Float64Array.from([1, 2, 3, 4]); // mean 2.5, biased var 1.25, unbiased 5/3
    const y = bn.forward(x, 4, train());
    const inv = 1 / Math.sqrt(1.25 + 1e-5);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(y[i] - (x[i] - 2.5) * inv) < 1e-12);
    const [mean, variance] = bn.stateBuffers();
    assert.equal(mean.name, 'running_mean');
    assert.equal(variance.name, 'running_var');
    assert.ok(Math.abs(mean.value[0] - 0.25) < 1e-12);
    assert.ok(Math.abs(variance.value[0] - (0.9 + 0.1 * (5 / 3))) < 1e-12);
    // Evaluation uses the running statistics.
    const e = bn.forward(x, 4, evaluate);
    assert.ok(Math.abs(e[0] - (1 - 0.25) / Math.sqrt(variance.value[0] + 1e-5)) < 1e-12);
  });

  it('2-D: statistics per channel over batch and space; affine parameters are decay-free', () => {
    const be = createReferenceBackend();
    const bn = new BatchNorm('bn');
    bn.plan(be, [2, 1, 2], 2);
    bn.initialize(new Rng(0));
    const [gamma, beta] = bn.parameters();
    assert.deepEqual([gamma.name, beta.name, gamma.decay, beta.decay], ['weight', 'bias', false, false]);
    gamma.value.set([2, 1]);
    beta.value.set([0, 10]);
    // channel 0 values: 0, 2, 4, 6 (mean 3); channel 1: 1, 1, 1, 1 (variance 0)
    const y = bn.forward(Float64Array.from([0, 2, 1, 1, 4, 6, 1, 1]), 2, train());
    const inv = 1 / Math.sqrt(5 + 1e-5);
    const expected = [-3 * 2 * inv, -1 * 2 * inv, 10, 10, 1 * 2 * inv, 3 * 2 * inv, 10, 10];
    expected.forEach((v, i) => assert.ok(Math.abs(y[i] - v) < 1e-9, `${i}: ${y[i]} vs ${v}`));
  });

  it('refuses to train on one value per channel', () => {
    const be = createReferenceBackend();
    const bn = new BatchNorm('bn');
    bn.plan(be, [3], 2);
    assert.throws(() => bn.forward(new Float64Array(3), 1, train()), ShapeError);
    bn.forward(new Float64Array(3), 1, evaluate);
  });
});

describe('other layers', () => {
  it('Dropout: identity in evaluation; inverted scaling and mask from ctx.rng in training', () => {
    const be = createReferenceBackend();
    const d = new Dropout('drop', 0.25);
    d.plan(be, [1000], 2);
    const x = new Float64Array(2000).fill(1);
    assert.equal(d.forward(x, 2, evaluate), x);
    const y = Float64Array.from(d.forward(x, 2, train(5)));
    const zeros = y.filter((v) => v === 0).length;
    assert.ok(y.every((v) => v === 0 || Math.abs(v - 4 / 3) < 1e-12));
    assert.ok(zeros > 400 && zeros < 600, `dropped ${zeros} of 2000`);
    assert.deepEqual(Float64Array.from(d.forward(x, 2, train(5))), y, 'same rng state, same mask');
    const g = d.backward(new Float64Array(2000).fill(1), 2);
    for (let i = 0; i < 2000; i++) assert.equal(g[i], y[i]);
  });

  it('MaxPool2d forward by hand', () => {
    const be = createReferenceBackend();
    const pool = new MaxPool2d('pool', { kernelSize: 2 });
    pool.plan(be, [1, 2, 4], 1);
    const y = pool.forward(Float64Array.from([1, 5, 2, 0, 3, -1, 7, 8]), 1, evaluate);
    assert.deepEqual([...y], [5, 8]);
    const g = pool.backward(Float64Array.from([10, 20]), 1);
    assert.deepEqual([...g], [0, 10, 0, 0, 0, 0, 0, 20]);
  });

  it('PReLU slopes start at 0.25 and are decay-free', () => {
    const be = createReferenceBackend();
    const p = new PReLU('act');
    p.plan(be, [2, 2], 1);
    const [slope] = p.parameters();
    assert.deepEqual(
      [slope.name, slope.kind, slope.decay, [...slope.value]],
      ['weight', 'real', false, [0.25, 0.25]],
    );
    assert.deepEqual([...p.forward(Float64Array.from([-4, 2, 3, -8]), 1, evaluate)], [-1, 2, 3, -2]);
  });

  it('containers prefix names with the child name', () => {
    const be = createReferenceBackend();
    const net = new Sequential('net', [
      new Dense('fc1', { units: 4 }),
      new BatchNorm('bn1'),
      new Residual(
        'block',
        new Sequential('body', [new Dense('fc', { units: 4 })]),
        new Dense('skip', { units: 4 }),
      ),
    ]);
    net.plan(be, [3], 2);
    assert.deepEqual(
      net.parameters().map((p) => p.name),
      [
        'fc1.weight',
        'fc1.bias',
        'bn1.weight',
        'bn1.bias',
        'block.body.fc.weight',
        'block.body.fc.bias',
        'block.skip.weight',
        'block.skip.bias',
      ],
    );
    assert.deepEqual(
      net.stateBuffers().map((s) => s.name),
      ['bn1.running_mean', 'bn1.running_var'],
    );
    assert.throws(() => new Sequential('dup', [new ReLU('a'), new ReLU('a')]), /two children/);
  });

  it('re-planning for another batch size keeps parameter and state values', () => {
    const be = createReferenceBackend();
    const net = new Sequential('net', [new Dense('fc', { units: 2 }), new BatchNorm('bn')]);
    net.plan(be, [3], 4);
    net.initialize(new Rng(1));
    const before = net.parameters().map((p) => Float64Array.from(p.value));
    net.stateBuffers()[0].value[0] = 0.5;
    net.plan(be, [3], 16);
    assert.deepEqual(
      net.parameters().map((p) => Float64Array.from(p.value)),
      before,
    );
    assert.equal(net.stateBuffers()[0].value[0], 0.5);
    net.dispose();
    assert.equal(be.bytesInUse(), 0);
  });
});

describe('losses: pinned values', () => {
  it('softmax cross-entropy of equal logits is log(classes); probabilities kept', () => {
    const be = createReferenceBackend();
    const ce = new SoftmaxCrossEntropy();
    ce.plan(be, 4, 2);
    const loss = ce.forward(new Float64Array(8), Int32Array.from([1, 3]), 2);
    assert.ok(Math.abs(loss - Math.log(4)) < 1e-12);
    assert.ok(ce.probabilities.subarray(0, 8).every((p) => Math.abs(p - 0.25) < 1e-12));
    const g = ce.backward();
    assert.ok(Math.abs(g[1] - (0.25 - 1) / 2) < 1e-12 && Math.abs(g[0] - 0.25 / 2) < 1e-12);
    // Large logits stay finite (max-shifted).
    assert.ok(Math.abs(ce.forward(Float64Array.from([1000, 0, 0, 0]), Uint8Array.from([0]), 1)) < 1e-12);
  });

  it('square hinge by hand', () => {
    const be = createReferenceBackend();
    const sh = new SquareHinge();
    sh.plan(be, 2, 1);
    // label 0: t = [+1, -1]; y = [0.5, 0.5]: margins [0.5, 1.5] -> (0.25 + 2.25) / 2 = 1.25
    assert.equal(sh.forward(Float64Array.from([0.5, 0.5]), Uint8Array.from([0]), 1), 1.25);
    // dL/dy = -2 t max(0, 1 - t y) / 2 = [-0.5, 1.5]
    assert.deepEqual([...sh.backward()], [-0.5, 1.5]);
  });
});
