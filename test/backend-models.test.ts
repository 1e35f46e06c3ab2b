/**
 * Whole models on each backend under test (test/backends.ts) against the same models on the float32
 * reference backend: identical parameters and inputs must give the same logits, loss and gradients within
 * float tolerance, in the backend's serial setup and its most parallel one; and kernel memory in use returns
 * to its starting value after planning, stepping and disposing.
 */
import { strict as assert } from 'node:assert';
import { after, describe, test } from 'node:test';
import type { Backend, FloatArray } from '../src/backend/backend.js';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import { SoftmaxCrossEntropy } from '../src/nn/losses.js';
import { buildModel, type ModelName } from '../src/nn/models.js';
import { Rng } from '../src/tensor/rng.js';
import { shapeSize, type Shape } from '../src/tensor/shape.js';
import { BACKENDS_UNDER_TEST, describeSetup } from './backends.js';

interface StepOutput {
  readonly logits: Float64Array;
  readonly loss: number;
  readonly grads: Float64Array[];
}

const BATCH = 7;

/** Builds, initialises from one seed, and runs two training steps (so batch-norm running stats move too). */
function runSteps(
  backend: Backend,
  name: ModelName,
  inputShape: Shape,
  activations: 'real' | 'binary',
): StepOutput {
  const model = buildModel(name, { activations, inputShape, batchNormAffine: true });
  model.plan(backend, inputShape, BATCH);
  model.initialize(new Rng(11));
  for (const p of model.binaryParameters()) backend.sign(p.value, p.value, p.value.length);
  const loss = new SoftmaxCrossEntropy('loss');
  loss.plan(backend, 10, BATCH);
  const x = backend.alloc(BATCH * shapeSize(inputShape));
  const inputRng = new Rng(5);
  for (let i = 0; i < x.length; i++) x[i] = inputRng.normal();
  const labels = Int32Array.from({ length: BATCH }, (_, i) => (i * 3) % 10);
  let logits: FloatArray = x;
  let value = 0;
  for (let s = 0; s < 2; s++) {
    // Dropout draws from this generator; both backends get the same stream.
    logits = model.forward(x, BATCH, { training: true, rng: new Rng(100 + s) });
    value = loss.forward(logits, labels, BATCH);
    model.backward(loss.backward(), BATCH);
  }
  const out = {
    logits: Float64Array.from(logits.subarray(0, BATCH * 10)),
    loss: value,
    grads: model.parameters().map((p) => Float64Array.from(p.grad)),
  };
  backend.free(x);
  loss.dispose();
  model.dispose();
  return out;
}

function assertClose(actual: Float64Array, expected: Float64Array, tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    assert.ok(
      err <= tolerance * Math.max(1, scale),
      `${what}[${i}]: ${actual[i]} vs reference ${expected[i]}`,
    );
  }
}

const CASES: { name: ModelName; shape: Shape; activations: 'real' | 'binary' }[] = [
  { name: 'mlp-100', shape: [1, 28, 28], activations: 'real' },
  { name: 'mlp-100', shape: [1, 28, 28], activations: 'binary' },
  { name: 'mlp-3x2048', shape: [1, 28, 28], activations: 'real' },
  { name: 'cnn-small', shape: [1, 28, 28], activations: 'binary' },
  { name: 'vgg-small', shape: [3, 8, 8], activations: 'real' },
];

describe('models on each backend under test match the reference backend', () => {
  const backends: Backend[] = [];
  after(() => backends.forEach((b) => b.dispose()));
  const reference = createReferenceBackend('float32');
  // The reference result depends on neither the backend under test nor its setup: compute it once per case.
  const expected = new Map<(typeof CASES)[number], StepOutput>();

  for (const backend of BACKENDS_UNDER_TEST) {
    // Whole models are slow on the reference: the serial setup and the most parallel one cover both paths.
    const setups = [...new Set([backend.setups[0], backend.setups[backend.setups.length - 1]])];
    for (const setup of setups) {
      for (const c of CASES) {
        test(`${c.name} (${c.activations} activations), ${describeSetup(backend, setup)}`, async () => {
          const be = await backend.create(setup);
          backends.push(be);
          const before = be.bytesInUse();
          const got = runSteps(be, c.name, c.shape, c.activations);
          assert.equal(be.bytesInUse(), before, 'kernel memory leaked');
          const want = expected.get(c) ?? runSteps(reference, c.name, c.shape, c.activations);
          expected.set(c, want);
          // Sign binarizers can flip on float-rounding differences only for inputs within ~1e-6 of 0; with
          // normal inputs none are that close, so everything downstream agrees to float32 accuracy.
          assertClose(got.logits, want.logits, 1e-3, 'logits');
          assert.ok(Math.abs(got.loss - want.loss) <= 1e-4, `loss ${got.loss} vs ${want.loss}`);
          got.grads.forEach((g, i) => assertClose(g, want.grads[i], 2e-3, `gradient ${i}`));
        });
      }
    }
  }
});
