/**
 * STE against hand-worked numbers: the clip of the initial latent weights, two Adam steps on them
 * (beta1 = 0.9, beta2 = 0.999, eps = 1e-8, lr = 0.1), the clip to [-1, 1] after each, the forward sign
 * (sign(0) = +1) and where the surrogate gradient applies. The reference backend in float64 carries the
 * arithmetic, so the expected values below (worked out by hand, to 1e-12) are compared to 1e-12.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import type { FloatArray } from '../backend/backend.js';
import { createReferenceBackend } from '../backend/reference/index.js';
import type { Parameter } from '../nn/layer.js';
import { Rng } from '../tensor/rng.js';
import type { BinaryMethod } from './method.js';
import { STE_DEFAULTS, SteMethod, type SteOptions } from './ste.js';

const LR = 0.1;

function setup(
  options: Partial<SteOptions>,
  init: number[],
): { method: BinaryMethod; p: Parameter; latent: FloatArray; m: FloatArray; v: FloatArray } {
  const backend = createReferenceBackend('float64');
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
  // Driven through the method contract, as the trainer drives it.
  const method: BinaryMethod = new SteMethod({ ...STE_DEFAULTS, ...options });
  method.attach([p], backend, new Rng(1), { trainingExamples: 10, stepsPerEpoch: 1 });
  const tensors = new Map(method.stateTensors().map((t) => [t.name, t.value as FloatArray]));
  const get = (name: string): FloatArray => {
    const t = tensors.get(`fc.weight/${name}`);
    assert.ok(t !== undefined, `state tensor fc.weight/${name}`);
    return t;
  };
  return { method, p, latent: get('latent'), m: get('adam_m'), v: get('adam_v') };
}

function close(actual: ArrayLike<number>, expected: number[], what: string, tol = 1e-12): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tol,
      `${what}[${i}]: ${actual[i]}, expected ${expected[i]}`,
    );
  }
}

describe('STE (latent weights, Adam, clip, sign)', () => {
  test('attach clips the initial latent weights to [-1, 1]; propose writes their sign, sign(0) = +1', () => {
    const { method, p, latent, m, v } = setup({}, [0.05, 0, 0.95, -3]);
    assert.deepEqual([...latent], [0.05, 0, 0.95, -1]);
    assert.deepEqual([...m], [0, 0, 0, 0]);
    assert.deepEqual([...v], [0, 0, 0, 0]);
    p.value.fill(7); // propose must overwrite, whatever is there
    method.propose(new Rng(1));
    assert.deepEqual([...p.value], [1, 1, 1, -1]);
  });

  test('two Adam steps on the latent weights, each followed by the clip, then the sign', () => {
    const { method, p, latent, m, v } = setup({}, [0.05, 0, 0.95, -3]);
    method.propose(new Rng(1));

    // Step 1, g = [0.2, -0.4, -0.1, 0.3] (dL/dw_b, passed to the latent unchanged by the identity surrogate).
    //   m = 0.1 g = [0.02, -0.04, -0.01, 0.03];  v = 0.001 g^2 = [4e-5, 1.6e-4, 1e-5, 9e-5]
    //   bias-corrected: mhat = m / 0.1 = g, vhat = v / 0.001 = g^2, so the step is g / (|g| + 1e-8):
    //     0.2 / 0.20000001 = 0.99999995,  -0.4 / 0.40000001 = -0.999999975,
    //     -0.1 / 0.10000001 = -0.9999999,  0.3 / 0.30000001 = 0.99999996667
    //   latent - 0.1 * step = [0.05 - 0.099999995, 0 + 0.0999999975, 0.95 + 0.09999999, -1 - 0.099999996667]
    //                       = [-0.049999995, 0.0999999975, 1.04999999, -1.099999996667]
    //   clip to [-1, 1]      = [-0.049999995, 0.0999999975, 1, -1]
    p.grad.set([0.2, -0.4, -0.1, 0.3]);
    method.update({ step: 1, learningRate: LR });
    close(m, [0.02, -0.04, -0.01, 0.03], 'm after step 1');
    close(v, [4e-5, 1.6e-4, 1e-5, 9e-5], 'v after step 1');
    close(latent, [-0.049999995, 0.0999999975, 1, -1], 'latent after step 1');
    method.propose(new Rng(1));
    assert.deepEqual([...p.value], [-1, 1, 1, -1], 'weight 0 crossed zero');

    // Step 2, g = [-0.6, 0.2, 0, -0.3]; corrections 1 - 0.9^2 = 0.19 and 1 - 0.999^2 = 0.001999.
    //   m = 0.9 m + 0.1 g = [0.018 - 0.06, -0.036 + 0.02, -0.009 + 0, 0.027 - 0.03] = [-0.042, -0.016, -0.009, -0.003]
    //   v = 0.999 v + 0.001 g^2 = [3.996e-5 + 3.6e-4, 1.5984e-4 + 4e-5, 9.99e-6 + 0, 8.991e-5 + 9e-5]
    //     = [3.9996e-4, 1.9984e-4, 9.99e-6, 1.7991e-4]
    //   mhat = m / 0.19    = [-0.221052631579, -0.084210526316, -0.047368421053, -0.015789473684]
    //   vhat = v / 0.001999 = [0.200080040020, 0.099969984992, 0.004997498749, 0.09]
    //   sqrt(vhat)         = [0.447303074011, 0.316180304561, 0.070692989393, 0.3]
    //   step = mhat / (sqrt(vhat) + 1e-8) = [-0.494189822249, -0.266337031237, -0.670058159352, -0.052631577193]
    //   latent - 0.1 * step = [-0.049999995 + 0.0494189822249, 0.0999999975 + 0.0266337031237,
    //                          1 + 0.0670058159352, -1 + 0.0052631577193]
    //                       = [-0.000581012775, 0.126633700624, 1.067005815935, -0.994736842281]
    //   clip: weight 2 (g = 0, but its momentum still pushes up) goes back to 1. Weight 3 comes off the bound
    //   at once because step 1's clip held it at -1 (unclipped it would be at -1.0947).
    p.grad.set([-0.6, 0.2, 0, -0.3]);
    method.update({ step: 2, learningRate: LR });
    close(m, [-0.042, -0.016, -0.009, -0.003], 'm after step 2');
    close(v, [3.9996e-4, 1.9984e-4, 9.99e-6, 1.7991e-4], 'v after step 2');
    close(latent, [-0.000581012775, 0.126633700624, 1, -0.994736842281], 'latent after step 2');
    method.propose(new Rng(1));
    assert.deepEqual([...p.value], [-1, 1, 1, -1]);
    // The mode is the same sign; STE has no distribution, so a 'sample' is the mode too.
    p.value.fill(0);
    method.predict('mode', new Rng(1));
    assert.deepEqual([...p.value], [-1, 1, 1, -1]);
    p.value.fill(0);
    method.predict('sample', new Rng(2));
    assert.deepEqual([...p.value], [-1, 1, 1, -1]);
    assert.equal(method.stochastic, false);
    method.dispose();
  });

  test('with the latent clip on, the identity and clipped-identity surrogates agree', () => {
    // Every latent weight is in [-1, 1] when the gradient arrives, where clipped-identity is the identity.
    const runs = (['identity', 'clipped-identity'] as const).map((surrogate) => {
      const { method, p, latent } = setup({ surrogate }, [0.05, 0, 0.95, -3]);
      for (const [step, g] of [
        [1, [0.2, -0.4, -0.1, 0.3]],
        [2, [-0.6, 0.2, 0, -0.3]],
        [3, [1, -1, -1, 1]],
      ] as const) {
        method.propose(new Rng(1));
        p.grad.set(g);
        method.update({ step, learningRate: LR });
      }
      return [...latent];
    });
    assert.deepEqual(runs[0], runs[1]);
  });

  test('without the clip, clipped-identity stops latent weights outside [-1, 1]; identity moves them', () => {
    // Latent [1.5, -2, 0.5, 1] (not clipped at attach); g = [0.1, -0.1, 0.1, 0.1], one step.
    // clipped-identity: dL/dw_r = g * 1[|w_r| <= 1] = [0, 0, 0.1, 0.1] (|1| <= 1 still passes).
    //   Where the gradient is 0, m = v = 0 and the step is 0 / (0 + 1e-8) = 0: those weights stay.
    //   Elsewhere the step is 0.1 / 0.10000001 = 0.9999999: 0.5 -> 0.40000001, 1 -> 0.90000001.
    const clipped = setup({ surrogate: 'clipped-identity', clipLatent: false }, [1.5, -2, 0.5, 1]);
    assert.deepEqual([...clipped.latent], [1.5, -2, 0.5, 1]);
    clipped.method.propose(new Rng(1));
    clipped.p.grad.set([0.1, -0.1, 0.1, 0.1]);
    clipped.method.update({ step: 1, learningRate: LR });
    close(clipped.m, [0, 0, 0.01, 0.01], 'clipped-identity m');
    close(clipped.latent, [1.5, -2, 0.40000001, 0.90000001], 'clipped-identity latent');

    // identity: every weight takes the step 0.1 * (+-0.9999999) against its gradient, and nothing clips:
    //   [1.5 - 0.09999999, -2 + 0.09999999, 0.5 - 0.09999999, 1 - 0.09999999]
    const identity = setup({ surrogate: 'identity', clipLatent: false }, [1.5, -2, 0.5, 1]);
    identity.method.propose(new Rng(1));
    identity.p.grad.set([0.1, -0.1, 0.1, 0.1]);
    identity.method.update({ step: 1, learningRate: LR });
    close(identity.latent, [1.40000001, -1.90000001, 0.40000001, 0.90000001], 'identity latent');
  });
});
