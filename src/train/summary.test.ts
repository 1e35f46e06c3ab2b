import { EVERY_LAYER_SPEC } from '../../test/learners.js';
/**
 * The model summary read from the spec: hand-computed figures for mlp-100 and cnn-small, the per-type table
 * checked against the parameters and state of built layers for every layer type, residual blocks as the sum
 * of their children, and a planned model left as it was.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReferenceBackend } from '../backend/reference/index.js';
import { buildModelFromSpec, namedModelSpec } from '../nn/models.js';
import { batchNorm, binaryConv2d, conv2d, dense, flatten, prelu, residual, sequential } from '../nn/spec.js';
import { Rng } from '../tensor/rng.js';
import { shapeSize } from '../tensor/shape.js';
import { summarizeModel } from './summary.js';

describe('summarizeModel', () => {
  it('mlp-100, real activations: hand-computed figures', () => {
    const s = summarizeModel(namedModelSpec('mlp-100'));
    assert.deepEqual(
      s.layers.map((l) => [l.name, l.kind, l.outputShape]),
      [
        ['flatten', 'flatten', [784]],
        ['fc1', 'binaryDense', [100]],
        ['bn1', 'batchNorm', [100]],
        ['act1', 'relu', [100]],
        ['fc2', 'binaryDense', [100]],
        ['bn2', 'batchNorm', [100]],
        ['act2', 'relu', [100]],
        ['fc3', 'binaryDense', [10]],
        ['bn3', 'batchNorm', [10]],
      ],
    );
    // Binary weights 784*100 + 100*100 + 100*10 = 78,400 + 10,000 + 1,000 = 89,400, each used once per example
    // on a real input (no binarizer). Real values: the batch norms' running mean and variance, 2 * (100 + 100
    // + 10) = 420. Memory 89,400 bits + 32 * 420 = 102,840 bits = 12,855 bytes; float32 4 * 89,820 = 359,280.
    assert.deepEqual(s.totals, {
      binaryParameters: 89_400,
      realParameters: 420,
      memoryBits: 102_840,
      binaryBinaryMacs: 0,
      binaryRealMacs: 89_400,
      realMacs: 0,
    });
    assert.deepEqual(
      s.layers.map((l) => l.binaryParameters),
      [0, 78_400, 0, 0, 10_000, 0, 0, 1_000, 0],
    );
    assert.deepEqual(
      s.layers.map((l) => l.realParameters),
      [0, 0, 200, 0, 0, 200, 0, 0, 20],
    );
    assert.equal(s.memoryBytes, 12_855);
    assert.equal(s.float32Bytes, 359_280);
    assert.equal(s.compressionRatio, 359_280 / 12_855);
    // Kept for backward, float32: fc1's input (the flattened 784), per hidden layer bn's output (read by bn and
    // the ReLU) and the ReLU's output (read by the next dense), and bn3's output: 784 + 2 * 2 * 100 + 10.
    assert.equal(s.activationBytesPerExample, 4 * (784 + 2 * 2 * 100 + 10));
  });

  it('mlp-100, binary activations: XNOR MACs and the signs kept for backward', () => {
    const s = summarizeModel(namedModelSpec('mlp-100', { activations: 'binary' }));
    // fc2 and fc3 binarize their inputs: 10,000 + 1,000 XNOR/popcount MACs; fc1 sees the real image.
    assert.equal(s.totals.binaryBinaryMacs, 11_000);
    assert.equal(s.totals.binaryRealMacs, 78_400);
    // Besides the real run's tensors, fc2 and fc3 keep the signs of their 100 inputs.
    assert.equal(s.activationBytesPerExample, 4 * (784 + 2 * 3 * 100 + 10));
  });

  it('cnn-small: hand-computed figures', () => {
    const s = summarizeModel(namedModelSpec('cnn-small'));
    assert.deepEqual(
      s.layers.map((l) => [l.name, l.outputShape, l.binaryParameters, l.realParameters, l.binaryRealMacs]),
      [
        // 16 filters x 1 channel x 3 x 3 = 144 weights, each used at 28 x 28 = 784 positions: 112,896 MACs.
        ['conv1', [16, 28, 28], 144, 0, 112_896],
        ['bn1', [16, 28, 28], 0, 32, 0],
        ['act1', [16, 28, 28], 0, 0, 0],
        ['pool1', [16, 14, 14], 0, 0, 0],
        // 32 x 16 x 3 x 3 = 4,608 weights at 14 x 14 = 196 positions: 903,168 MACs.
        ['conv2', [32, 14, 14], 4_608, 0, 903_168],
        ['bn2', [32, 14, 14], 0, 64, 0],
        ['act2', [32, 14, 14], 0, 0, 0],
        ['pool2', [32, 7, 7], 0, 0, 0],
        ['flatten', [1_568], 0, 0, 0],
        // 10 x 32 * 7 * 7 = 15,680 weights, once each.
        ['fc3', [10], 15_680, 0, 15_680],
        ['bn3', [10], 0, 20, 0],
      ],
    );
    // 144 + 4,608 + 15,680 = 20,432 binary; 32 + 64 + 20 = 116 real; 20,432 + 32 * 116 = 24,144 bits = 3,018
    // bytes; float32 4 * 20,548 = 82,192 bytes; 112,896 + 903,168 + 15,680 = 1,031,744 MACs (about 1M).
    assert.deepEqual(s.totals, {
      binaryParameters: 20_432,
      realParameters: 116,
      memoryBits: 24_144,
      binaryBinaryMacs: 0,
      binaryRealMacs: 1_031_744,
      realMacs: 0,
    });
    assert.equal(s.memoryBytes, 3_018);
    assert.equal(s.float32Bytes, 82_192);
    // Kept for backward: the image (conv1's input, 784); bn1's output (read by bn1 and the ReLU, 16 * 784 =
    // 12,544); pool1's int32 argmax per output (3,136); pool1's output (conv2's input, 3,136); bn2's output
    // (6,272); pool2's argmax (1,568); the flattened 1,568 (fc3's input; pool2's output itself is not read,
    // flatten's backward reads nothing); bn3's output (10).
    assert.equal(
      s.activationBytesPerExample,
      4 * (784 + 12_544 + 3_136 + 3_136 + 6_272 + 1_568 + 1_568 + 10),
    );
  });

  it("the table agrees with built layers' parameters and state, for every layer type", () => {
    const spec = EVERY_LAYER_SPEC;
    const model = buildModelFromSpec(spec);
    const be = createReferenceBackend('float32');
    model.planFor(be, 1);
    const s = summarizeModel(spec);
    assert.deepEqual(
      s.layers.map((l) => l.name),
      model.layers.map((l) => l.name),
    );
    for (const row of s.layers) {
      const layer = model.get(row.name);
      const size = (ps: { value: ArrayLike<number> }[]): number => ps.reduce((a, p) => a + p.value.length, 0);
      const params = layer.parameters();
      assert.equal(row.binaryParameters, size(params.filter((p) => p.kind === 'binary')), row.name);
      assert.equal(
        row.realParameters,
        size(params.filter((p) => p.kind === 'real')) + size(layer.stateBuffers()),
        row.name,
      );
    }
    model.dispose();
    assert.equal(be.bytesInUse(), 0);
  });

  it('a residual block is the sum of its children', () => {
    const body = [binaryConv2d(8, { padding: 1, binarizer: 'sign' }), batchNorm({ affine: true }), prelu()];
    const shortcut = [conv2d(8, { kernelSize: 1 })];
    const head = { input: [8, 6, 6], classes: 3 } as const;
    const tail = [flatten(), dense(3)];
    const block = summarizeModel(sequential(head, [residual(body, shortcut), ...tail])).layers[0];
    const flat = summarizeModel(sequential(head, [...body, ...shortcut, ...tail])).layers.slice(0, 4);
    assert.equal(block.kind, 'residual');
    assert.equal(block.name, 'block1');
    assert.deepEqual(block.outputShape, [8, 6, 6]);
    for (const key of ['binaryParameters', 'realParameters', 'binaryBinaryMacs', 'realMacs'] as const) {
      assert.equal(
        block[key],
        flat.reduce((a, l) => a + l[key], 0),
        key,
      );
    }
    // 8 x 8 x 3 x 3 = 576 sign-input weights at 36 positions; the 1x1 shortcut 64 real weights at 36 positions.
    assert.equal(block.binaryBinaryMacs, 576 * 36);
    assert.equal(block.realMacs, 64 * 36);
  });

  it('leaves a planned model as it was', () => {
    const model = buildModelFromSpec(namedModelSpec('mlp-100'));
    const be = createReferenceBackend('float32');
    model.planFor(be, 2);
    model.initialize(new Rng(5));
    const before = model.parameters().map((p) => Float32Array.from(p.value));
    const bytes = be.bytesInUse();
    const s = summarizeModel(model);
    assert.equal(s.totals.binaryParameters, 89_400);
    assert.equal(be.bytesInUse(), bytes);
    model.parameters().forEach((p, i) => assert.deepEqual(Float32Array.from(p.value), before[i]));
    // Still planned for batch 2: a forward runs.
    const x = be.alloc(2 * shapeSize(model.inputShape));
    const logits = model.forward(x, 2, { training: false, rng: new Rng(0) });
    assert.ok(logits.length >= 20);
    be.free(x);
    model.dispose();
    assert.equal(be.bytesInUse(), 0);
  });
});
