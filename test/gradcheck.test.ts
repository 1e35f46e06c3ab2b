/**
 * Central finite-difference checks of every layer's backward pass and both losses, in float64 on the
 * reference backend. Each layer is wrapped in the scalar L = sum(r * y) for a fixed random r, so that
 * backward(r) must equal dL/dx and dL/dparam entry by entry.
 *
 * Binary layers are checked with binarizer 'none' (linear given the proposed weights); the sign
 * binarizer's surrogate gradients are checked against an independently written naive formula, with inputs
 * at exactly 0, at the clip edges +-1, between and beyond.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend, FloatArray, SignSurrogate } from '../src/backend/backend.js';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import {
  AvgPool2d,
  BatchNorm,
  BinaryConv2d,
  BinaryDense,
  ChannelScale,
  Conv2d,
  Dense,
  Dropout,
  Flatten,
  Hardtanh,
  MaxPool2d,
  PReLU,
  ReLU,
  Residual,
  Sequential,
  SoftmaxCrossEntropy,
  SquareHinge,
} from '../src/nn/index.js';
import type { ForwardContext, Layer, Loss } from '../src/nn/index.js';
import { Rng } from '../src/tensor/rng.js';
import { shapeSize } from '../src/tensor/shape.js';
import type { Shape } from '../src/tensor/shape.js';

const H = 1e-6;

function assertClose(analytic: number, numeric: number, what: string, tol = 1e-6): void {
  const scale = Math.max(1, Math.abs(analytic), Math.abs(numeric));
  assert.ok(
    Math.abs(analytic - numeric) <= tol * scale,
    `${what}: analytic ${analytic} vs numeric ${numeric}`,
  );
}

interface CheckOptions {
  readonly batch?: number;
  readonly training?: boolean;
  /** Input values; default standard normal. */
  readonly input?: (rng: Rng, n: number) => Float64Array;
  /** Called after initialize, e.g. to set binary weights to +-1. */
  readonly setup?: (layer: Layer) => void;
}

/** Checks dL/dx and every dL/dparam of `layer` against central differences. */
function gradcheck(layer: Layer, inputShape: Shape, options: CheckOptions = {}): void {
  const be = createReferenceBackend('float64');
  const batch = options.batch ?? 3;
  const rng = new Rng(42);
  // Plan for more than the batch we run: running below the planned maximum must work.
  const outShape = layer.plan(be, inputShape, batch + 1);
  layer.initialize(rng);
  options.setup?.(layer);
  const inSize = batch * shapeSize(inputShape);
  const outSize = batch * shapeSize(outShape);
  const x = be.alloc(inSize);
  x.set(
    options.input ? options.input(rng, inSize) : Float64Array.from({ length: inSize }, () => rng.normal()),
  );
  const r = be.alloc(outSize);
  for (let i = 0; i < outSize; i++) r[i] = rng.normal();
  // A fresh generator with the same seed for every forward: dropout draws the same mask each time.
  const ctx = (): ForwardContext => ({ training: options.training ?? true, rng: new Rng(7) });
  const loss = (): number => {
    const y = layer.forward(x, batch, ctx());
    let s = 0;
    for (let i = 0; i < outSize; i++) s += r[i] * y[i];
    return s;
  };
  loss();
  const gx = Float64Array.from(layer.backward(r, batch).subarray(0, inSize));
  const params = layer.parameters().map((p) => ({ p, grad: Float64Array.from(p.grad) }));

  const numeric = (buffer: FloatArray, i: number): number => {
    const old = buffer[i];
    buffer[i] = old + H;
    const plus = loss();
    buffer[i] = old - H;
    const minus = loss();
    buffer[i] = old;
    return (plus - minus) / (2 * H);
  };
  for (let i = 0; i < inSize; i++) assertClose(gx[i], numeric(x, i), `${layer.name} dL/dx[${i}]`);
  for (const { p, grad } of params) {
    for (let i = 0; i < p.value.length; i++)
      assertClose(grad[i], numeric(p.value, i), `${layer.name} dL/d${p.name}[${i}]`);
  }
  layer.dispose();
  be.free(x);
  be.free(r);
  assert.equal(be.bytesInUse(), 0, 'layer freed everything');
}

/** Sets every binary weight to sign(value), as a training method would propose. */
function signWeights(layer: Layer): void {
  for (const p of layer.parameters()) {
    if (p.kind === 'binary') for (let i = 0; i < p.value.length; i++) p.value[i] = p.value[i] >= 0 ? 1 : -1;
  }
}

/** Distinct values 0.1 apart and away from 0 (the kink of ReLU and PReLU): max-pool has no ties. */
function distinct(rng: Rng, n: number): Float64Array {
  const v = Float64Array.from({ length: n }, (_, i) => (i - Math.floor(n / 2)) * 0.1 + 0.05);
  return rng.shuffle(v);
}

describe('gradcheck: layers', () => {
  it('Dense with bias', () => gradcheck(new Dense('fc', { units: 4 }), [5]));
  it('Dense without bias', () => gradcheck(new Dense('fc', { units: 3, bias: false }), [4]));
  it('BinaryDense (binarizer none, +-1 weights)', () =>
    gradcheck(new BinaryDense('bfc', { units: 4 }), [6], { setup: signWeights }));
  it('Conv2d stride 2 padding 1 with bias', () =>
    gradcheck(new Conv2d('conv', { filters: 3, kernelSize: 3, stride: 2, padding: 1 }), [2, 5, 5], {
      batch: 2,
    }));
  it('Conv2d stride 1 no padding, no bias', () =>
    gradcheck(new Conv2d('conv', { filters: 2, kernelSize: 2, bias: false }), [2, 4, 3], { batch: 2 }));
  it('BinaryConv2d (binarizer none, +-1 weights)', () =>
    gradcheck(new BinaryConv2d('bconv', { filters: 3, kernelSize: 3, padding: 1 }), [2, 4, 4], {
      batch: 2,
      setup: signWeights,
    }));
  it('BatchNorm 1-D, affine, training (through the batch statistics)', () =>
    gradcheck(new BatchNorm('bn', { affine: true }), [4], { batch: 5, setup: randomAffine }));
  it('BatchNorm 2-D, affine, training', () =>
    gradcheck(new BatchNorm('bn', { affine: true, eps: 1e-4 }), [3, 2, 2], {
      batch: 2,
      setup: randomAffine,
    }));
  it('BatchNorm 2-D, no affine, training', () =>
    gradcheck(new BatchNorm('bn', { affine: false }), [2, 3, 2]));
  it('BatchNorm 1-D, affine, evaluation (running statistics)', () =>
    gradcheck(new BatchNorm('bn', { affine: true }), [3], { training: false, setup: randomRunningStats }));
  it('ReLU', () => gradcheck(new ReLU('relu'), [7], { input: distinct }));
  it('Hardtanh', () =>
    gradcheck(new Hardtanh('ht'), [9], { input: (rng, n) => distinct(rng, n).map((v) => v * 3) }));
  it('PReLU 1-D incl. slope gradient', () =>
    gradcheck(new PReLU('prelu'), [4], { input: distinct, setup: randomSlopes }));
  it('PReLU 2-D incl. slope gradient', () =>
    gradcheck(new PReLU('prelu'), [2, 2, 3], { input: distinct, setup: randomSlopes }));
  it('ChannelScale 1-D incl. scale gradient', () => gradcheck(new ChannelScale('scale'), [4]));
  it('ChannelScale 2-D incl. scale gradient', () => gradcheck(new ChannelScale('scale'), [3, 2, 2]));
  it('MaxPool2d 2x2 (no ties)', () =>
    gradcheck(new MaxPool2d('pool', { kernelSize: 2 }), [2, 4, 4], { input: distinct }));
  it('MaxPool2d 3x3 stride 2 padding 1 (no ties)', () =>
    gradcheck(new MaxPool2d('pool', { kernelSize: 3, stride: 2, padding: 1 }), [1, 5, 5], {
      input: distinct,
    }));
  it('AvgPool2d 2x2', () => gradcheck(new AvgPool2d('avg', { kernelSize: 2 }), [2, 4, 4]));
  it('AvgPool2d 3x3 stride 2 padding 1', () =>
    gradcheck(new AvgPool2d('avg', { kernelSize: 3, stride: 2, padding: 1 }), [1, 5, 4]));
  it('Dropout (fixed mask)', () => gradcheck(new Dropout('drop', 0.4), [10]));
  it('Dropout in evaluation (identity)', () =>
    gradcheck(new Dropout('drop', 0.4), [10], { training: false }));
  it('Flatten', () => gradcheck(new Flatten('flat'), [2, 2, 3]));
  it('Sequential of several layers', () =>
    gradcheck(
      new Sequential('net', [
        new Conv2d('conv', { filters: 2, kernelSize: 3, padding: 1 }),
        new BatchNorm('bn', { affine: true }),
        new PReLU('act'),
        new AvgPool2d('pool', { kernelSize: 2 }),
        new Flatten('flat'),
        new Dropout('drop', 0.25),
        new Dense('fc', { units: 3 }),
      ]),
      [1, 4, 4],
      { batch: 3 },
    ));
  it('Residual with identity shortcut', () =>
    gradcheck(
      new Residual('block', new Sequential('body', [new Dense('fc', { units: 5 }), new PReLU('act')])),
      [5],
    ));
  it('Residual with a shortcut layer', () =>
    gradcheck(
      new Residual(
        'block',
        new Sequential('body', [new Conv2d('conv', { filters: 3, kernelSize: 3, stride: 2, padding: 1 })]),
        new Conv2d('down', { filters: 3, kernelSize: 1, stride: 2, bias: false }),
      ),
      [2, 4, 4],
      { batch: 2 },
    ));
});

function randomAffine(layer: Layer): void {
  const rng = new Rng(3);
  for (const p of layer.parameters()) for (let i = 0; i < p.value.length; i++) p.value[i] = rng.normal();
}

function randomRunningStats(layer: Layer): void {
  randomAffine(layer);
  const [mean, variance] = layer.stateBuffers();
  const rng = new Rng(4);
  for (let i = 0; i < mean.value.length; i++) {
    mean.value[i] = rng.normal();
    variance.value[i] = 0.5 + rng.uniform();
  }
}

function randomSlopes(layer: Layer): void {
  const rng = new Rng(5);
  for (const p of layer.parameters()) for (let i = 0; i < p.value.length; i++) p.value[i] = rng.normal();
}

describe('gradcheck: losses', () => {
  function checkLoss(loss: Loss, classes: number, batch: number): void {
    const be = createReferenceBackend('float64');
    loss.plan(be, classes, batch + 2);
    const rng = new Rng(11);
    const z = Float64Array.from({ length: batch * classes }, () => rng.normal() * 2);
    const labels = Int32Array.from({ length: batch }, () => rng.int(classes));
    loss.forward(z, labels, batch);
    const g = Float64Array.from(loss.backward().subarray(0, batch * classes));
    for (let i = 0; i < z.length; i++) {
      const old = z[i];
      z[i] = old + H;
      const plus = loss.forward(z, labels, batch);
      z[i] = old - H;
      const minus = loss.forward(z, labels, batch);
      z[i] = old;
      assertClose(g[i], (plus - minus) / (2 * H), `${loss.name} dL/dz[${i}]`);
    }
    loss.dispose();
    assert.equal(be.bytesInUse(), 0);
  }
  it('softmax cross-entropy', () => checkLoss(new SoftmaxCrossEntropy(), 5, 4));
  it('square hinge', () => checkLoss(new SquareHinge(), 4, 3));
});

/** y = v * w^T + surrogate backward, written out longhand, independent of the layer's GEMM and kernels. */
function naiveSurrogate(surrogate: SignSurrogate, x: number): number {
  if (surrogate === 'identity') return 1;
  if (surrogate === 'clipped-identity') return x >= -1 && x <= 1 ? 1 : 0;
  // approx-sign: 2 - 2|x| inside [-1, 1], 0 outside.
  if (x > 1 || x < -1) return 0;
  return x >= 0 ? 2 - 2 * x : 2 + 2 * x;
}

/** Naive direct convolution and its input gradient, over NCHW, for checking the conv surrogate path. */
function naiveConv(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  [n, c, h, wd]: readonly number[],
  o: number,
  k: number,
  pad: number,
  dy: ArrayLike<number>,
): { y: Float64Array; dx: Float64Array; dw: Float64Array } {
  const oh = h + 2 * pad - k + 1;
  const ow = wd + 2 * pad - k + 1;
  const y = new Float64Array(n * o * oh * ow);
  const dx = new Float64Array(n * c * h * wd);
  const dw = new Float64Array(o * c * k * k);
  for (let b = 0; b < n; b++)
    for (let f = 0; f < o; f++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          const yi = ((b * o + f) * oh + oy) * ow + ox;
          for (let ch = 0; ch < c; ch++)
            for (let i = 0; i < k; i++)
              for (let j = 0; j < k; j++) {
                const iy = oy - pad + i;
                const ix = ox - pad + j;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                const xi = ((b * c + ch) * h + iy) * wd + ix;
                const wi = ((f * c + ch) * k + i) * k + j;
                y[yi] += w[wi] * x[xi];
                dx[xi] += w[wi] * dy[yi];
                dw[wi] += x[xi] * dy[yi];
              }
        }
  return { y, dx, dw };
}

describe('surrogate gradients of the sign binarizer (independent formula)', () => {
  // Exactly 0, the clip edges, between, and beyond.
  const special = [0, 1, -1, 0.5, -0.5, 0.25, -0.75, 1.5, -2, 1e-9, 0.999, -1.001];
  const surrogates: SignSurrogate[] = ['identity', 'clipped-identity', 'approx-sign'];

  it('the formula itself: clipped-identity passes at |x| = 1; approx-sign is 2 at 0 and 0 at +-1', () => {
    assert.equal(naiveSurrogate('clipped-identity', 1), 1);
    assert.equal(naiveSurrogate('clipped-identity', -1), 1);
    assert.equal(naiveSurrogate('clipped-identity', 1.001), 0);
    assert.equal(naiveSurrogate('approx-sign', 0), 2);
    assert.equal(naiveSurrogate('approx-sign', 1), 0);
    assert.equal(naiveSurrogate('approx-sign', -1), 0);
    assert.equal(naiveSurrogate('approx-sign', 0.5), 1);
  });

  for (const surrogate of surrogates) {
    it(`BinaryDense with sign binarizer, ${surrogate}`, () => {
      const be = createReferenceBackend('float64');
      const batch = 2;
      const features = special.length / batch;
      const units = 3;
      const layer = new BinaryDense('bfc', { units, binarizer: 'sign', surrogate });
      layer.plan(be, [features], batch);
      const rng = new Rng(9);
      const w = layer.weight.value;
      for (let i = 0; i < w.length; i++) w[i] = rng.uniform() < 0.5 ? -1 : 1;
      const x = Float64Array.from(special);
      const y = layer.forward(x, batch, { training: true, rng });
      const dy = Float64Array.from({ length: batch * units }, () => rng.normal());
      const dx = layer.backward(dy, batch);
      for (let b = 0; b < batch; b++) {
        for (let u = 0; u < units; u++) {
          let s = 0;
          for (let f = 0; f < features; f++) s += (x[b * features + f] >= 0 ? 1 : -1) * w[u * features + f];
          assert.equal(y[b * units + u], s);
        }
        for (let f = 0; f < features; f++) {
          let g = 0;
          for (let u = 0; u < units; u++) g += dy[b * units + u] * w[u * features + f];
          const xi = x[b * features + f];
          assertClose(dx[b * features + f], g * naiveSurrogate(surrogate, xi), `dx at x=${xi}`, 1e-12);
        }
      }
      // dL/dW sees the signs, not the real inputs.
      for (let u = 0; u < units; u++)
        for (let f = 0; f < features; f++) {
          let g = 0;
          for (let b = 0; b < batch; b++) g += dy[b * units + u] * (x[b * features + f] >= 0 ? 1 : -1);
          assertClose(layer.weight.grad[u * features + f], g, 'dW', 1e-12);
        }
      layer.dispose();
    });

    it(`BinaryConv2d with sign binarizer, ${surrogate}`, () => {
      const be = createReferenceBackend('float64');
      const shape = [2, 2, 3, 3] as const; // n, c, h, w
      const layer = new BinaryConv2d('bconv', {
        filters: 2,
        kernelSize: 3,
        padding: 1,
        binarizer: 'sign',
        surrogate,
      });
      layer.plan(be, shape.slice(1), 2);
      const rng = new Rng(10);
      const w = layer.weight.value;
      for (let i = 0; i < w.length; i++) w[i] = rng.uniform() < 0.5 ? -1 : 1;
      const x = Float64Array.from({ length: 36 }, (_, i) => special[i % special.length] * (i < 12 ? 1 : -1));
      const y = Float64Array.from(layer.forward(x, 2, { training: true, rng }).subarray(0, 36));
      const dy = Float64Array.from({ length: 36 }, () => rng.normal());
      const dx = layer.backward(dy, 2);
      const signs = x.map((v) => (v >= 0 ? 1 : -1));
      const ref = naiveConv(signs, w, shape, 2, 3, 1, dy);
      for (let i = 0; i < y.length; i++) assertClose(y[i], ref.y[i], `y[${i}]`, 1e-12);
      for (let i = 0; i < x.length; i++) {
        assertClose(dx[i], ref.dx[i] * naiveSurrogate(surrogate, x[i]), `dx at x=${x[i]}`, 1e-12);
      }
      for (let i = 0; i < w.length; i++) assertClose(layer.weight.grad[i], ref.dw[i], `dW[${i}]`, 1e-12);
      layer.dispose();
    });
  }
});

// Keep the harness honest: a wrong backward must fail the check.
describe('gradcheck harness', () => {
  it('detects a wrong gradient', () => {
    class Broken extends ReLU {
      override backward(g: FloatArray, batch: number): FloatArray {
        const gx = super.backward(g, batch);
        gx[0] += 0.01;
        return gx;
      }
    }
    assert.throws(() => gradcheck(new Broken('broken'), [3], { input: distinct }), /analytic/);
  });
});

export type { Backend };
