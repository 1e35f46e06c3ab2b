/** Model builders: every model plans and trains a step on a tiny batch; no leaks, no allocation per step. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '../backend/backend.js';
import { createReferenceBackend } from '../backend/reference/index.js';
import { Rng } from '../tensor/rng.js';
import { shapeSize } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';
import { BatchNorm } from './batch-norm.js';
import { Conv2dBase } from './conv2d.js';
import { DenseBase } from './dense.js';
import { Dropout } from './dropout.js';
import { Hardtanh } from './hardtanh.js';
import { SoftmaxCrossEntropy } from './losses.js';
import { MODEL_NAMES, buildModel } from './models.js';
import type { Model, ModelName } from './models.js';
import { ReLU } from './relu.js';

/** Small inputs where the default would be slow on the reference backend. */
const TINY_INPUT: Partial<Record<ModelName, Shape>> = { 'vgg-small': [3, 8, 8] };

/**
 * Stands in for a training method's proposal: deterministic +-1 binary weights. Cheaper than
 * initialize() on the 10M-weight MLPs (the generator dominates the test time there).
 */
function proposeSigns(model: Model): void {
  for (const p of model.binaryParameters()) {
    for (let i = 0; i < p.value.length; i++) p.value[i] = (i * 7) % 3 === 0 ? -1 : 1;
  }
}

/** Models with more than a million weights skip initialize() in tests (speed). */
const LARGE = new Set<ModelName>(['mlp-2x2048', 'mlp-3x2048', 'vgg-small']);

/** One training step: forward, loss, backward; returns the loss. */
function step(
  model: Model,
  be: Backend,
  batch: number,
  rng: Rng,
  loss: SoftmaxCrossEntropy,
  x: Float32Array | Float64Array,
): number {
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const logits = model.forward(x, batch, { training: true, rng });
  const value = loss.forward(logits, labels, batch);
  model.backward(loss.backward(), batch);
  void be;
  return value;
}

function inputFor(
  be: Backend,
  model: Model,
  shape: Shape,
  batch: number,
  rng: Rng,
): Float32Array | Float64Array {
  const x = be.alloc(batch * shapeSize(shape));
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  void model;
  return x;
}

describe('model builders', () => {
  for (const name of MODEL_NAMES) {
    for (const activations of ['real', 'binary'] as const) {
      it(`${name} (${activations} activations) plans, runs forward+backward, right output shape`, () => {
        const be = createReferenceBackend('float32');
        const rng = new Rng(1);
        const model = buildModel(name, { activations, classes: 10, inputShape: TINY_INPUT[name] });
        const batch = 2;
        assert.deepEqual(model.plan(be, model.inputShape, batch), [10]);
        if (LARGE.has(name)) proposeSigns(model);
        else model.initialize(rng);
        const loss = new SoftmaxCrossEntropy();
        loss.plan(be, 10, batch);
        const x = inputFor(be, model, model.inputShape, batch, rng);
        const value = step(model, be, batch, rng, loss, x);
        assert.ok(Number.isFinite(value) && value > 0);
        // Every binary weight got a finite gradient; all linear/conv weights are binary; no biases.
        assert.ok(model.binaryParameters().length > 0);
        assert.equal(model.realParameters().length, 0, 'batch norm affine is off by default');
        for (const p of model.binaryParameters()) {
          assert.match(p.name, /^(fc|conv)\d+\.weight$/);
          for (let i = 0; i < p.grad.length; i += 97) assert.ok(Number.isFinite(p.grad[i]), p.name);
        }
        // Batch norm after every linear/conv layer, the logits included.
        const layers = model.layers;
        layers.forEach((l, i) => {
          if (l instanceof DenseBase || l instanceof Conv2dBase) {
            const next = layers
              .slice(i + 1)
              .find((m) => m instanceof BatchNorm || m instanceof DenseBase || m instanceof Conv2dBase);
            assert.ok(next instanceof BatchNorm, `${l.name} is followed by batch norm`);
          }
        });
        assert.ok(layers[layers.length - 1] instanceof BatchNorm);
        // Activation rules.
        const linear = layers.filter(
          (l): l is DenseBase | Conv2dBase => l instanceof DenseBase || l instanceof Conv2dBase,
        );
        linear.forEach((l, i) => {
          const expected = activations === 'binary' && i > 0 ? 'sign' : 'none';
          assert.equal(l.config.binarizer, expected, `${l.name} binarizer`);
        });
        const acts = layers.filter((l) => l instanceof ReLU || l instanceof Hardtanh);
        assert.ok(
          acts.length > 0 &&
            acts.every((l) => (activations === 'binary' ? l instanceof Hardtanh : l instanceof ReLU)),
        );
        model.dispose();
        loss.dispose();
        be.free(x);
        assert.equal(be.bytesInUse(), 0);
      });
    }
  }

  it('mlp architectures: widths, dropout, MLP batch-norm settings', () => {
    const widths = (m: Model): number[] =>
      m.layers.filter((l) => l instanceof DenseBase).map((l) => (l as DenseBase).config.units);
    assert.deepEqual(widths(buildModel('mlp-100')), [100, 100, 10]);
    assert.deepEqual(widths(buildModel('mlp-2x2048')), [2048, 2048, 10]);
    const bayes = buildModel('mlp-3x2048', { classes: 7 });
    assert.deepEqual(widths(bayes), [2048, 2048, 2048, 7]);
    assert.deepEqual(
      bayes.layers.filter((l) => l instanceof Dropout).map((l) => [l.name, (l as Dropout).p]),
      [
        ['drop0', 0.2],
        ['drop1', 0.2],
        ['drop2', 0.2],
        ['drop3', 0.2],
      ],
    );
    assert.equal(bayes.layers[1].name, 'drop0', 'dropout on the input');
    assert.equal(buildModel('mlp-100').layers.filter((l) => l instanceof Dropout).length, 0);
    const bn = bayes.get('bn1') as BatchNorm;
    assert.deepEqual([bn.eps, bn.momentum, bn.affine], [1e-4, 0.15, false]);
    const affine = buildModel('mlp-100', { batchNormAffine: true });
    const be = createReferenceBackend('float32');
    affine.plan(be, affine.inputShape, 2);
    assert.deepEqual(
      affine.realParameters().map((p) => p.name),
      ['bn1.weight', 'bn1.bias', 'bn2.weight', 'bn2.bias', 'bn3.weight', 'bn3.bias'],
    );
    affine.dispose();
  });

  it('vgg-small plans at 3x32x32 with the BinaryConnect VGG shapes', () => {
    const be = createReferenceBackend('float32');
    const model = buildModel('vgg-small', { classes: 100 });
    assert.deepEqual(model.inputShape, [3, 32, 32]);
    assert.deepEqual(model.plan(be, model.inputShape, 1), [100]);
    assert.deepEqual(
      model.binaryParameters().map((p) => [p.name, ...p.shape]),
      [
        ['conv1.weight', 128, 3, 3, 3],
        ['conv2.weight', 128, 128, 3, 3],
        ['conv3.weight', 256, 128, 3, 3],
        ['conv4.weight', 256, 256, 3, 3],
        ['conv5.weight', 512, 256, 3, 3],
        ['conv6.weight', 512, 512, 3, 3],
        ['fc7.weight', 1024, 8192],
        ['fc8.weight', 1024, 1024],
        ['fc9.weight', 100, 1024],
      ],
    );
    model.dispose();
    assert.equal(be.bytesInUse(), 0);
  });

  it('cnn-small shapes', () => {
    const be = createReferenceBackend('float32');
    const model = buildModel('cnn-small');
    model.plan(be, model.inputShape, 1);
    assert.deepEqual(
      model.binaryParameters().map((p) => [p.name, ...p.shape]),
      [
        ['conv1.weight', 16, 1, 3, 3],
        ['conv2.weight', 32, 16, 3, 3],
        ['fc3.weight', 10, 1568],
      ],
    );
    model.dispose();
  });
});

describe('memory discipline', () => {
  it('leak test: bytes in use before building == after training steps and dispose', () => {
    const be = createReferenceBackend('float64');
    const baseline = be.bytesInUse();
    const rng = new Rng(2);
    const model = buildModel('cnn-small', { inputShape: [1, 8, 8], batchNormAffine: true });
    model.plan(be, model.inputShape, 4);
    model.initialize(rng);
    const loss = new SoftmaxCrossEntropy();
    loss.plan(be, 10, 4);
    const x = inputFor(be, model, model.inputShape, 4, rng);
    for (let s = 0; s < 3; s++) step(model, be, 4, rng, loss, x);
    model.plan(be, model.inputShape, 2); // re-plan for evaluation batches
    model.forward(x, 2, { training: false, rng });
    model.dispose();
    loss.dispose();
    be.free(x);
    assert.equal(be.bytesInUse(), baseline);
  });

  it('no allocation in the step: bytes in use unchanged, same planned buffers returned', () => {
    for (const name of ['mlp-3x2048', 'cnn-small'] as const) {
      const be = createReferenceBackend('float32');
      const rng = new Rng(3);
      const model = buildModel(name, {
        activations: 'binary',
        inputShape: name === 'cnn-small' ? [1, 12, 12] : [784],
      });
      model.plan(be, model.inputShape, 3);
      proposeSigns(model);
      const loss = new SoftmaxCrossEntropy();
      loss.plan(be, 10, 3);
      const x = inputFor(be, model, model.inputShape, 3, rng);
      const planned = be.bytesInUse();
      const first = model.forward(x, 3, { training: true, rng });
      loss.forward(first, Int32Array.from([0, 1, 2]), 3);
      const g1 = model.backward(loss.backward(), 3);
      assert.equal(be.bytesInUse(), planned, `${name} step 1`);
      const second = model.forward(x, 2, { training: true, rng }); // a smaller batch than planned
      loss.forward(second, Int32Array.from([0, 1]), 2);
      const g2 = model.backward(loss.backward(), 2);
      assert.equal(be.bytesInUse(), planned, `${name} step 2`);
      assert.equal(first, second);
      assert.equal(g1, g2);
      model.dispose();
      loss.dispose();
      be.free(x);
      assert.equal(be.bytesInUse(), 0);
    }
  });
});
