/**
 * VISPA (docs/methods.md#vispa): the projection, the gradients of m and Z (with the sqrt(S) factor), the
 * rank-0 (LP) view against STE, seeded sampling, and a checkpoint round trip. The small numbers are worked
 * by hand in the comments.
 */
import { ConfigError } from '../errors.js';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Backend, FloatArray } from '../backend/backend.js';
import { createReferenceBackend } from '../backend/reference/index.js';
import { syntheticDataset } from '../data/dataset.js';
import type { Parameter } from '../nn/layer.js';
import { Rng } from '../tensor/rng.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../config/train-config.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { CHECKPOINT_FILE, train } from '../train/trainer.js';
import { createLearner, resolveMethodConfig } from './registry.js';
import { tinySetup } from '../../test/learners.js';
import { SteMethod } from './ste.js';
import { projectVispa, VispaMethod, type VispaOptions } from './vispa.js';

function param(be: Backend, shape: readonly number[], name = 'fc.weight'): Parameter {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, shape: [...shape], kind: 'binary', decay: true, value: be.alloc(n), grad: be.alloc(n) };
}

/** A generator whose normal() returns the given values in turn: r = values / sqrt(S), known by hand. */
function fixedNormals(values: readonly number[]): Rng {
  let i = 0;
  const stub = {
    normal(): number {
      if (i >= values.length) throw new Error('fixedNormals: out of values');
      return values[i++];
    },
  };
  return stub as unknown as Rng;
}

/** The method's named state tensor. */
function state(method: VispaMethod, suffix: string): FloatArray {
  const t = method.stateTensors().find((s) => s.name.endsWith(`/${suffix}`));
  assert.ok(t !== undefined, `state tensor ${suffix}`);
  return t.value as FloatArray;
}

function assertAllClose(
  actual: ArrayLike<number>,
  expected: readonly number[],
  what: string,
  tol = 1e-12,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i])),
      `${what}[${i}]: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

function attached(options: Partial<VispaOptions>, shape: readonly number[], seed = 1) {
  const be = createReferenceBackend('float64');
  const p = param(be, shape);
  const method = new VispaMethod({ rank: 2, scale: 100, momentum: 0, weightDecay: 0, ...options });
  method.attach([p], be, new Rng(seed));
  return { be, p, method };
}

describe('vispa: projection onto m_i^2 + ||z_i||^2 / S = 1', () => {
  // K = 2, S = 100, four weights (z is K x n, row k holds z_{k,i}):
  //   i=0: m = 1.2,  z = (16, 0):  A = 1.44 + 256/100 = 4      -> m = 0.6,  z = (8, 0)
  //   i=1: m = -3,   z = (0, 40):  A = 9 + 1600/100 = 25       -> m = -0.6, z = (0, 8)
  //   i=2: m = 0,    z = (0, 0):   A = 0, no direction         -> m = 1,    z = (0, 0)   (the guard)
  //   i=3: m = 1.5,  z = (12, 16): A = 2.25 + 400/100 = 6.25   -> m = 0.6,  z = (4.8, 6.4)
  const m0 = [1.2, -3, 0, 1.5];
  const z0 = [16, 0, 0, 12, /* row 1 */ 0, 40, 0, 16];
  const m1 = [0.6, -0.6, 1, 0.6];
  const z1 = [8, 0, 0, 4.8, /* row 1 */ 0, 8, 0, 6.4];

  it('the reference loop, by hand', () => {
    const m = Float64Array.from(m0);
    const z = Float64Array.from(z0);
    projectVispa(m, z, 2, 100, 4);
    assertAllClose(m, m1, 'm');
    assertAllClose(z, z1, 'z');
  });

  it("the method's kernel path after an update (lr 0, zero gradient), by hand", () => {
    const { be, p, method } = attached({}, [2, 2]);
    state(method, 'm').set(m0);
    state(method, 'z').set(z0);
    p.grad.fill(0);
    method.propose(new Rng(3));
    method.update({ step: 1, learningRate: 0 });
    assertAllClose(state(method, 'm'), m1, 'm');
    assertAllClose(state(method, 'z'), z1, 'z');
    method.dispose();
    be.free(p.value);
    be.free(p.grad);
    assert.equal(be.bytesInUse(), 0, 'everything freed');
  });

  it('kernel path equals the reference loop on random values; initial state is on the constraint', () => {
    const { p, method } = attached({ rank: 3, scale: 7 }, [5, 6]);
    const m = state(method, 'm');
    const z = state(method, 'z');
    // After attach (xavier normal, then projection) every weight satisfies the constraint.
    for (let i = 0; i < 30; i++) {
      let a = m[i] * m[i];
      for (let k = 0; k < 3; k++) a += (z[k * 30 + i] * z[k * 30 + i]) / 7;
      assert.ok(Math.abs(a - 1) < 1e-12, `A[${i}] = ${a}`);
    }
    const rng = new Rng(9);
    for (let i = 0; i < 30; i++) m[i] = rng.normal() * 3;
    for (let i = 0; i < 90; i++) z[i] = rng.normal() * 3;
    m[4] = 0;
    z[4] = 0;
    z[34] = 0;
    z[64] = 0;
    const mRef = Float64Array.from(m);
    const zRef = Float64Array.from(z);
    projectVispa(mRef, zRef, 3, 7, 30);
    p.grad.fill(0);
    method.propose(new Rng(3));
    method.update({ step: 1, learningRate: 0 });
    assertAllClose(m, Array.from(mRef), 'm', 1e-14);
    assertAllClose(z, Array.from(zRef), 'z', 1e-14);
    assert.equal(m[4], 1);
  });
});

describe('vispa: forward sample and the gradients of m and Z', () => {
  // K = 2, S = 100, three weights on the constraint (0.36 + 64/100 = 1 each):
  //   m = (0.6, -0.6, 0.6),  z_0 = (8, 0, -8),  z_1 = (0, 8, 0).
  // The generator's normals are (2, -1), so r = (2, -1) / sqrt(100) = (0.2, -0.1) and sqrt(S) r = (2, -1).
  //   w = m + r_0 z_0 + r_1 z_1 = (0.6 + 1.6, -0.6 - 0.8, 0.6 - 1.6) = (2.2, -1.4, -1.0) -> signs (+1, -1, -1)
  //   mode sign(m) = (+1, -1, +1): the third weight is flipped by the noise.
  // With g = dL/dw = (0.5, -2, 0.25), momentum 0.9 (buffers start at 0, so after one step they hold
  // grad + wd * p) and wd = 0.1:
  //   grad_m   = g                          -> m buffer   = (0.5 + 0.06, -2 - 0.06, 0.25 + 0.06) = (0.56, -2.06, 0.31)
  //   grad_z_0 = sqrt(S) r_0 g = 2 g        -> z_0 buffer = (1 + 0.8, -4 + 0, 0.5 - 0.8)   = (1.8, -4, -0.3)
  //   grad_z_1 = sqrt(S) r_1 g = -g         -> z_1 buffer = (-0.5 + 0, 2 + 0.8, -0.25 + 0) = (-0.5, 2.8, -0.25)
  // (Without the sqrt(S) factor of the official code, grad_z_0 would be 0.2 g.)
  function setup() {
    const ctx = attached({ momentum: 0.9, weightDecay: 0.1 }, [1, 3]);
    state(ctx.method, 'm').set([0.6, -0.6, 0.6]);
    state(ctx.method, 'z').set([8, 0, -8, 0, 8, 0]);
    return ctx;
  }

  it('propose writes sign(m + Z^T r) with one r for the layer; predict(mode) writes sign(m)', () => {
    const { p, method } = setup();
    method.propose(fixedNormals([2, -1]));
    assert.deepEqual(Array.from(p.value), [1, -1, -1]);
    method.predict('mode', new Rng(1));
    assert.deepEqual(Array.from(p.value), [1, -1, 1]);
    method.predict('sample', fixedNormals([2, -1]));
    assert.deepEqual(Array.from(p.value), [1, -1, -1]);
  });

  it('grad_m = g and grad_Z = sqrt(S) r (outer) g, with weight decay, read from the momentum buffers', () => {
    const { p, method } = setup();
    method.propose(fixedNormals([2, -1]));
    p.grad.set([0.5, -2, 0.25]);
    // lr 0 leaves m and Z where they are (on the constraint), so only the buffers change.
    method.update({ step: 1, learningRate: 0 });
    assertAllClose(state(method, 'm_momentum'), [0.56, -2.06, 0.31], 'm buffer');
    assertAllClose(state(method, 'z_momentum'), [1.8, -4, -0.3, -0.5, 2.8, -0.25], 'z buffer');
    assertAllClose(state(method, 'm'), [0.6, -0.6, 0.6], 'm unchanged');
  });

  // K = 1, S = 100, no decay, one weight m = 0.8, z = 6 (0.64 + 36/100 = 1).
  // Normal 4 -> r = 0.4, sqrt(S) r = 4. g = 0.5, lr = 1 (a first step: a momentum buffer starts at 0, so
  // it holds the gradient and the step is the same with or without momentum):
  //   m' = 0.8 - 1 * 0.5 = 0.3;  z' = 6 - 1 * 4 * 0.5 = 4;  A = 0.09 + 16/100 = 0.25, sqrt(A) = 0.5
  //   -> m = 0.6, z = 8.
  for (const momentum of [0, 0.9]) {
    it(`a full step: SGD on m and Z, then the projection (momentum ${momentum})`, () => {
      const { p, method } = attached({ rank: 1, momentum }, [1, 1]);
      state(method, 'm').set([0.8]);
      state(method, 'z').set([6]);
      method.propose(fixedNormals([4]));
      assert.deepEqual(Array.from(p.value), [1]); // 0.8 + 0.4 * 6 = 3.2
      p.grad.set([0.5]);
      method.update({ step: 1, learningRate: 1 });
      assertAllClose(state(method, 'm'), [0.6], 'm');
      assertAllClose(state(method, 'z'), [8], 'z');
    });
  }
});

describe('vispa: rank 0 is the diagonal (LP) view', () => {
  it('forward equals STE for the same latent values; SGD on m then clipping to [-1, 1]', () => {
    const be = createReferenceBackend('float32');
    const latent = [0.5, -0.25, 0, 0.9, -1];
    const pv = param(be, [1, 5], 'a.weight');
    const ps = param(be, [1, 5], 'b.weight');
    const vispa = new VispaMethod({ rank: 0, scale: 100, momentum: 0, weightDecay: 0 });
    vispa.attach([pv], be, new Rng(1));
    assert.equal(vispa.stochastic, false);
    assert.equal(vispa.stateTensors().length, 1, 'm only');
    state(vispa, 'm').set(latent);
    ps.value.set(latent);
    const ste = new SteMethod();
    ste.attach([ps], be);
    vispa.propose(new Rng(2));
    ste.propose();
    assert.deepEqual(Array.from(pv.value), [1, -1, 1, 1, -1]); // sign(0) = +1
    assert.deepEqual(Array.from(pv.value), Array.from(ps.value));
    vispa.predict('sample', new Rng(3));
    assert.deepEqual(Array.from(pv.value), Array.from(ps.value), 'sample = mode when K = 0');
    // g = (0.1, 0.1, -0.2, -0.3, 0.5), lr 1: m - g = (0.4, -0.35, 0.2, 1.2, -1.5) -> clip -> (0.4, -0.35, 0.2, 1, -1)
    pv.grad.set([0.1, 0.1, -0.2, -0.3, 0.5]);
    vispa.update({ step: 1, learningRate: 1 });
    assertAllClose(state(vispa, 'm'), [0.4, -0.35, 0.2, 1, -1], 'm', 1e-6);
    vispa.dispose();
    ste.dispose();
  });
});

describe('vispa: state, seeds, registry', () => {
  it('training state per weight is 4 (1 + K) bytes for m and Z, doubled by momentum', () => {
    // Measured from the state tensors of a learner on a small model.
    const bytes = (rank: number, momentum = 0.9): number => {
      const learner = createLearner(
        'vispa',
        { rank, momentum },
        tinySetup({ backend: createReferenceBackend('float32') }),
      );
      try {
        return learner.stateBytesPerWeight();
      } finally {
        learner.dispose();
      }
    };
    assert.equal(bytes(0), 8);
    assert.equal(bytes(1), 16);
    assert.equal(bytes(4), 40);
    assert.equal(bytes(8), 72);
    assert.equal(bytes(4, 0), 20);
    assert.equal(new VispaMethod({ rank: 3, scale: 100, momentum: 0.9, weightDecay: 0 }).stochastic, true);
  });

  it('initialisation and sampling are deterministic under a seed', () => {
    const run = (initSeed: number, sampleSeed: number) => {
      const { p, method } = attached({ rank: 4, scale: 1 }, [16, 8], initSeed);
      const rng = new Rng(sampleSeed);
      method.propose(rng);
      const proposed = Array.from(p.value);
      method.predict('sample', rng);
      const sampled = Array.from(p.value);
      method.predict('mode', rng);
      const mode = Array.from(p.value);
      return {
        proposed,
        sampled,
        mode,
        m: Array.from(state(method, 'm')),
        z: Array.from(state(method, 'z')),
      };
    };
    const a = run(5, 11);
    assert.deepEqual(run(5, 11), a);
    const otherSamples = run(5, 12);
    assert.deepEqual(otherSamples.m, a.m);
    assert.deepEqual(otherSamples.mode, a.mode);
    // With S = 1 the noise is large: another sampling seed gives other networks.
    assert.notDeepEqual(otherSamples.proposed, a.proposed);
    assert.notDeepEqual(run(6, 11).m, a.m);
  });

  it('the registry reads rank, scale, momentum and weight decay and rejects bad values', () => {
    const options = resolveMethodConfig('vispa', { rank: 3, scale: 25, momentum: 0.5, weightDecay: 1e-5 });
    assert.deepEqual(options, { rank: 3, scale: 25, momentum: 0.5, weightDecay: 1e-5 });
    assert.throws(() => resolveMethodConfig('vispa', { rank: -1 }), ConfigError);
    assert.throws(() => resolveMethodConfig('vispa', { rank: 1.5 }), ConfigError);
    assert.throws(() => resolveMethodConfig('vispa', { scale: 0 }), ConfigError);
    assert.throws(() => resolveMethodConfig('vispa', { momentum: 1 }), ConfigError);
    assert.throws(() => resolveMethodConfig('vispa', { rank: '2' }), ConfigError);
  });
});

describe('vispa: checkpoint round trip', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onebit-vispa-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const trainSet = syntheticDataset({
    name: 'synthetic-mnist',
    shape: [1, 28, 28],
    count: 200,
    classes: 10,
    seed: 4,
  });
  const testSet = syntheticDataset({
    name: 'synthetic-mnist',
    shape: [1, 28, 28],
    count: 50,
    classes: 10,
    seed: 4,
    split: 'test',
  });
  const config: TrainConfig = {
    ...TRAIN_DEFAULTS,
    data: 'synthetic-mnist',
    model: 'mlp-100',
    method: 'vispa',
    methodOptions: { rank: 2, scale: 100, momentum: 0.9, weightDecay: 5e-4 },
    epochs: 2,
    batchSize: 50,
    learningRate: 5,
    realLearningRate: 0.1,
    realOptimizer: 'sgd',
    realWeightDecay: 5e-4,
    schedule: 'warmup-cosine',
    warmupEpochs: 1,
    channelScale: true,
    recalibrateBatchNorm: true,
  };

  it('an interrupted run resumed from its checkpoint ends byte-identical to an uninterrupted one (with batch-norm recalibration)', async () => {
    const backend = createReferenceBackend('float32');
    const whole = join(dir, 'whole');
    const resumed = join(dir, 'resumed');
    await train({ config, backend, train: trainSet, test: testSet, outDir: whole, resume: false });
    await assert.rejects(
      train({
        config,
        backend,
        train: trainSet,
        test: testSet,
        outDir: resumed,
        resume: false,
        callbacks: {
          onEpoch(record) {
            if (record.epoch === 1) throw new Error('stop after epoch 1');
          },
        },
      }),
      /stop after epoch 1/,
    );
    assert.equal(loadCheckpoint(join(resumed, CHECKPOINT_FILE)).meta.epoch, 1);
    await train({ config, backend, train: trainSet, test: testSet, outDir: resumed, resume: true });
    const a = readFileSync(join(whole, CHECKPOINT_FILE));
    const b = readFileSync(join(resumed, CHECKPOINT_FILE));
    assert.ok(a.equals(b), 'final checkpoints differ');
    const names = [...loadCheckpoint(join(whole, CHECKPOINT_FILE)).tensors.keys()];
    for (const suffix of ['fc1.weight/m', 'fc1.weight/z', 'fc1.weight/m_momentum', 'fc1.weight/z_momentum']) {
      assert.ok(names.includes(`method/${suffix}`), `checkpoint holds method/${suffix}`);
    }
    assert.ok(names.includes('model/scale1.weight'), 'checkpoint holds the channel scale');
    assert.equal(backend.bytesInUse(), 0, 'every kernel buffer freed');
  });
});
