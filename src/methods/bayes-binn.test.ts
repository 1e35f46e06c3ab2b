/**
 * BayesBiNN against numbers worked out by hand (docs/methods.md#bayesbinn), not by the code under test:
 * the float32 saturation of the scale s at lambda = +-10, two full saturated steps with the official mu
 * lag, a non-saturated step with a prior, momentum with bias correction, the exact Bernoulli sampler and
 * the continual-learning hook.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { createReferenceBackend } from '../backend/reference/index.js';
import type { Backend, FloatArray } from '../backend/backend.js';
import type { Parameter } from '../nn/layer.js';
import { Rng } from '../tensor/rng.js';
import {
  BAYES_BINN,
  BAYES_BINN_DEFAULTS,
  BayesBinnMethod,
  bayesBinnScale,
  exactBayesBinnScale,
  logSech2,
  type BayesBinnOptions,
} from './bayes-binn.js';

function param(backend: Backend, name: string, n: number): Parameter {
  return { name, shape: [n], kind: 'binary', value: backend.alloc(n), grad: backend.alloc(n), decay: false };
}

/** A method bound to one parameter of `n` weights, with its state arrays by name. */
function setup(
  options: Partial<BayesBinnOptions>,
  n: number,
  trainingExamples: number,
): { method: BayesBinnMethod; p: Parameter; state: Map<string, FloatArray>; backend: Backend } {
  const backend = createReferenceBackend('float32');
  const p = param(backend, 'w', n);
  const method = new BayesBinnMethod({ ...BAYES_BINN_DEFAULTS, ...options });
  method.attach([p], backend, new Rng(3), { trainingExamples, stepsPerEpoch: 1 });
  const state = new Map(method.stateTensors().map((t) => [t.name.replace('w/', ''), t.value as FloatArray]));
  return { method, p, state, backend };
}

function close(actual: number, expected: number, relative: number, what: string): void {
  const scale = Math.max(Math.abs(expected), 1e-30);
  assert.ok(Math.abs(actual - expected) / scale <= relative, `${what}: expected ${expected}, got ${actual}`);
}

/** Bytes of the method's state tensors per binary weight: measured, not declared. */
function measuredBytes(
  method: { stateTensors(): { value: { byteLength: number } }[] },
  weights: number,
): number {
  return method.stateTensors().reduce((sum, t) => sum + t.value.byteLength, 0) / weights;
}

describe('BayesBiNN scale s in float32', () => {
  test('saturates to 1e10 at lambda = +-10 with tau = 1e-10 (float64 would give about 1.2e8)', () => {
    // mu = tanh(10) = 1 - 4.1e-9 rounds to exactly 1 in float32 (the spacing below 1 is 6e-8), and the
    // relaxed sample is exactly +-1, so numerator = (1 - 1) + 1e-10 and denominator = (1 - 1) + 1e-10:
    // s = (1e-10f / 1e-10f) / 1e-10f = 1 / 1.00000001335e-10 = 9999999866.5, and the nearest float32
    // (spacing 1024 there) is 1e10 itself.
    assert.equal(bayesBinnScale(1, Math.tanh(10), 1e-10), 1e10);
    assert.equal(bayesBinnScale(-1, Math.tanh(-10), 1e-10), 1e10);
    // In float64: 1 - tanh(10)^2 = 8.2446e-9, so s = 1 / (8.2446e-9 + 1e-10) = 1.198e8.
    const float64 = (1 - 1 + 1e-10) / 1e-10 / (1 - Math.tanh(10) ** 2 + 1e-10);
    close(float64, 1.1984e8, 1e-3, 'float64 s');
    // tau = 1e-8 (CIFAR-100): the numerator becomes 1e-10 / 1e-8 = 0.01 when the sample saturates.
    close(bayesBinnScale(1, 1, 1e-8), 1e8, 1e-6, 's at tau 1e-8');
  });

  test('a non-saturated value: w = 0.6, mu = tanh(0.5), tau = 0.5', () => {
    // (1 - 0.36) / 0.5 = 1.28; 1 - tanh(0.5)^2 = 1 - 0.4621171573^2 = 1 - 0.2135522670 = 0.7864477330;
    // 1.28 / 0.7864477330 = 1.6275716 (0.786447733 * 1.62757 = 1.2799987, remainder 1.26e-6 / 0.786 = 1.6e-6).
    close(bayesBinnScale(0.6, Math.tanh(0.5), 0.5), 1.6275716, 1e-6, 's');
  });
});

describe('BayesBiNN update', () => {
  test('two saturated steps at tau = 1e-10, with the official one-step lag of mu', () => {
    // N = 1024 training examples, lr = 1e-3, prior 0, reweight 1, momentum 0.
    const { method, p, state, backend } = setup({}, 2, 1024);
    const lambda = state.get('lambda')!;
    const mu = state.get('mu')!;
    lambda.set([10, -10]);
    mu.set([Math.fround(Math.tanh(10)), Math.fround(Math.tanh(-10))]);
    assert.deepEqual([...mu], [1, -1], 'tanh(+-10) is exactly +-1 in float32');

    // Step 1. The relaxed sample tanh((+-10 + delta) / 1e-10) is exactly +-1 (a sign change would need
    // |delta| > 10, i.e. eps < 2e-9).
    const rng = new Rng(11);
    method.propose(rng);
    assert.deepEqual([...p.value], [1, -1]);
    p.grad.set([0.5, -0.25]);
    method.update({ step: 1, learningRate: 1e-3 });
    // s = 1e10 for both. g_hat = N s g = 1024 * 1e10 * 0.5 = 5.12e12 and 1024 * 1e10 * -0.25 = -2.56e12.
    // lambda1 = 10 - 1e-3 (5.12e12 + 10) = -5119999990.01 -> float32 (spacing 512) -5.12e9;
    // lambda1 = -10 - 1e-3 (-2.56e12 - 10) = 2559999990.01 -> float32 (spacing 256) 2.56e9.
    assert.deepEqual([...lambda], [-5.12e9, 2.56e9]);
    // mu lags: tanh of the lambda before the update, so still +-1, and the mode is still the old sign.
    assert.deepEqual([...mu], [1, -1]);
    method.predict('mode', rng);
    assert.deepEqual([...p.value], [1, -1]);

    // Step 2. |lambda| >> 18.5: the sample is sign(lambda) for any eps, so no draw is made.
    const before = rng.getState();
    method.propose(rng);
    assert.deepEqual([...p.value], [-1, 1]);
    assert.deepEqual(rng.getState(), before, 'saturated weights draw no noise');
    p.grad.set([0.25, 0.5]);
    method.update({ step: 2, learningRate: 1e-3 });
    // s is again 1e10 (w = +-1, lagged mu = +-1). g_hat = 1024 * 1e10 * 0.25 = 2.56e12 and 5.12e12.
    // lambda2 = -5.12e9 - 1e-3 (2.56e12 - 5.12e9) = -5.12e9 - 2.55488e9 = -7.67488e9;
    // lambda2 = 2.56e9 - 1e-3 (5.12e12 + 2.56e9) = 2.56e9 - 5.12256e9 = -2.56256e9.
    close(lambda[0], -7.67488e9, 1e-7, 'lambda2[0]');
    close(lambda[1], -2.56256e9, 1e-7, 'lambda2[1]');
    assert.deepEqual([...mu], [-1, 1], 'mu = tanh(lambda1)');
    method.predict('mode', rng);
    assert.deepEqual([...p.value], [-1, 1]);
    method.dispose();
    assert.equal(backend.bytesInUse(), 16, 'only the parameter buffers remain');
  });

  test('without the lag, mu follows lambda at once', () => {
    const { method, p, state } = setup({ muLag: false }, 2, 1024);
    assert.equal(state.has('mu'), false);
    assert.equal(measuredBytes(method, 2), 8);
    state.get('lambda')!.set([10, -10]);
    method.propose(new Rng(11));
    p.grad.set([0.5, -0.25]);
    method.update({ step: 1, learningRate: 1e-3 });
    method.predict('mode', new Rng(0));
    assert.deepEqual([...p.value], [-1, 1]);
  });

  test('a non-saturated step with a prior: tau 0.5, N 100, lr 0.1, lambda0 0.2', () => {
    const { method, p, state } = setup({ temperature: 0.5 }, 1, 100);
    state.get('lambda')![0] = 0.5;
    state.get('mu')![0] = Math.tanh(0.5);
    state.get('prior_lambda')![0] = 0.2;
    // The update reads the weight the method proposed (its own record of the sample): set it to 0.6 by
    // hand. The parameter's value is not read: an evaluation between propose and update may overwrite it.
    method.proposal(0)[0] = 0.6;
    p.value[0] = -1;
    p.grad[0] = 0.1;
    method.update({ step: 1, learningRate: 0.1 });
    // s = 1.6275716 (above); g_hat = 100 * 1.6275716 * 0.1 = 16.275716; prior term 0.5 - 0.2 = 0.3;
    // lambda = 0.5 - 0.1 * (16.275716 + 0.3) = 0.5 - 1.6575716 = -1.1575716.
    close(state.get('lambda')![0], -1.1575716, 1e-6, 'lambda');
    close(state.get('mu')![0], 0.4621172, 1e-6, 'mu = tanh(0.5), the lagged value');
  });

  test('momentum with Adam-style bias correction, and the KL reweight', () => {
    // g = 0, so only the prior term acts: d = reweight (lambda - 0).
    const { method, state } = setup({ momentum: 0.5 }, 1, 100);
    assert.equal(measuredBytes(method, 1), 16);
    const lambda = state.get('lambda')!;
    lambda[0] = 10;
    // step 1: d = 10, v = 0.5 * 10 = 5, lambda = 10 - 0.1 * 5 / (1 - 0.5) = 9.
    method.update({ step: 1, learningRate: 0.1 });
    close(lambda[0], 9, 1e-7, 'lambda1');
    close(state.get('momentum')![0], 5, 1e-7, 'v1');
    // step 2: d = 9, v = 0.5 * 5 + 0.5 * 9 = 7, lambda = 9 - 0.1 * 7 / (1 - 0.25) = 8.0666667.
    method.update({ step: 2, learningRate: 0.1 });
    close(lambda[0], 8.0666667, 1e-7, 'lambda2');

    const half = setup({ klReweight: 0.5 }, 1, 100);
    half.state.get('lambda')![0] = 10;
    // d = 0.5 * 10 = 5: lambda = 10 - 0.1 * 5 = 9.5.
    half.method.update({ step: 1, learningRate: 0.1 });
    close(half.state.get('lambda')![0], 9.5, 1e-7, 'reweighted lambda');
  });
});

describe('BayesBiNN initialisation and sampling', () => {
  test('lambda starts at +-lambdaInit with equal probability', () => {
    const { state } = setup({}, 4000, 10);
    const lambda = state.get('lambda')!;
    let positive = 0;
    for (const l of lambda) {
      assert.ok(l === 10 || l === -10);
      if (l > 0) positive++;
    }
    // Binomial(4000, 1/2): sd 31.6; 4 sd.
    assert.ok(Math.abs(positive - 2000) < 127, `positive ${positive}`);
  });

  test('a huge |lambda| makes every sample the mode', () => {
    const { method, p, state } = setup({}, 1000, 10);
    const lambda = state.get('lambda')!;
    const mu = state.get('mu')!;
    for (let i = 0; i < lambda.length; i++) {
      lambda[i] = i % 3 === 0 ? 1e6 : -1e6;
      mu[i] = Math.sign(lambda[i]);
    }
    const rng = new Rng(5);
    method.predict('mode', rng);
    const mode = [...p.value];
    for (let k = 0; k < 5; k++) {
      method.predict('sample', rng);
      assert.deepEqual([...p.value], mode);
    }
  });

  test('lambda = 0 gives fair, independent coins', () => {
    const n = 10000;
    const { method, p, state } = setup({}, n, 10);
    state.get('lambda')!.fill(0);
    state.get('mu')!.fill(0);
    const rng = new Rng(17);
    method.predict('mode', rng);
    assert.ok(
      p.value.every((v) => v === -1),
      'mu = 0 ties go to -1',
    );
    method.predict('sample', rng);
    const first = [...p.value];
    method.predict('sample', rng);
    let plus = 0;
    let agree = 0;
    for (let i = 0; i < n; i++) {
      assert.ok(p.value[i] === 1 || p.value[i] === -1);
      if (first[i] === 1) plus++;
      if (first[i] === p.value[i]) agree++;
    }
    // Both counts are Binomial(10000, 1/2) under the claim: mean 5000, sd 50; allow 4 sd.
    assert.ok(Math.abs(plus - 5000) < 200, `+1 count ${plus}`);
    assert.ok(Math.abs(agree - 5000) < 200, `agreements ${agree}`);
  });

  test('P(+1) = sigmoid(2 lambda): lambda = 0.5 gives +1 with probability 0.7311', () => {
    const n = 20000;
    const { method, p, state } = setup({}, n, 10);
    state.get('lambda')!.fill(0.5);
    method.predict('sample', new Rng(23));
    let plus = 0;
    for (const v of p.value) if (v > 0) plus++;
    // sigmoid(1) = 0.731059; sd = sqrt(20000 * 0.731 * 0.269) = 62.7; 4 sd = 251.
    assert.ok(Math.abs(plus - 0.731059 * n) < 251, `+1 count ${plus}`);
  });

  test('relaxed samples with a large tau are strictly inside (-1, 1) and centred on tanh-ish values', () => {
    const { method, p, state } = setup({ temperature: 1 }, 5000, 10);
    state.get('lambda')!.fill(0);
    method.propose(new Rng(29));
    let sum = 0;
    for (const w of p.value) {
      assert.ok(w > -1 && w < 1 && Number.isFinite(w));
      sum += w;
    }
    // tanh(delta) with delta = logistic / 2 is symmetric around 0; the sd of tanh(delta) is below 1,
    // so the mean of 5000 is within 4 / sqrt(5000) = 0.057 of 0.
    assert.ok(Math.abs(sum / 5000) < 0.057, `mean ${sum / 5000}`);
  });
});

describe('BayesBiNN continual-learning hook and state', () => {
  test('beginTask makes the posterior the prior (after the first task) and resets N', () => {
    const { method, state } = setup({}, 3, 1000);
    const lambda = state.get('lambda')!;
    const prior = state.get('prior_lambda')!;
    lambda.set([1, -2, 3]);
    method.beginTask(0, { trainingExamples: 500, stepsPerEpoch: 5 });
    assert.deepEqual([...prior], [0, 0, 0], 'task 0 keeps the uniform prior');
    assert.equal(method.trainingSetSize, 500);
    method.beginTask(1, { trainingExamples: 700, stepsPerEpoch: 7 });
    assert.deepEqual([...prior], [1, -2, 3]);
    lambda[0] = 5;
    assert.equal(prior[0], 1, 'the prior is a copy, not a view');
    assert.deepEqual(method.stateScalars(), { task: 1, trainSetSize: 700 });
  });

  test('state tensors and scalars restore into a fresh method, which then continues identically', () => {
    const a = setup({ momentum: 0.9, temperature: 0.01 }, 50, 200);
    const b = setup({ momentum: 0.9, temperature: 0.01 }, 50, 999);
    const rng = new Rng(41);
    for (let k = 1; k <= 3; k++) {
      a.method.propose(rng);
      for (let i = 0; i < 50; i++) a.p.grad[i] = Math.sin(i + k) * 1e-3;
      a.method.update({ step: k, learningRate: 1e-3 });
    }
    a.method.beginTask(1, { trainingExamples: 300, stepsPerEpoch: 3 });
    const saved = a.method.stateTensors().map((t) => ({ name: t.name, value: Float32Array.from(t.value) }));
    const bTensors = b.method.stateTensors();
    assert.deepEqual(
      bTensors.map((t) => t.name),
      saved.map((t) => t.name),
    );
    for (let i = 0; i < saved.length; i++) bTensors[i].value.set(saved[i].value);
    b.method.loadStateScalars(a.method.stateScalars());
    assert.deepEqual(b.method.stateScalars(), { task: 1, trainSetSize: 300 });
    const ra = new Rng(7);
    const rb = new Rng(7);
    for (const m of [a, b]) {
      m.method.propose(m === a ? ra : rb);
      for (let i = 0; i < 50; i++) m.p.grad[i] = Math.cos(i) * 1e-3;
      m.method.update({ step: 4, learningRate: 1e-3 });
    }
    const after = (m: typeof a): number[][] => m.method.stateTensors().map((t) => [...t.value]);
    assert.deepEqual(after(b), after(a));
  });
});

describe('BayesBiNN scales without saturation (--bb-scale exact | expected)', () => {
  /** sech^2 x = 1 / cosh^2 x, written directly (accurate until cosh overflows near |x| = 710). */
  const sech2 = (x: number) => 1 / Math.cosh(x) ** 2;

  test('logSech2 is log(1 / cosh^2) where that is computable, and stays finite far beyond', () => {
    for (const x of [0, 0.3, -1.7, 4, -9.5]) close(logSech2(x), Math.log(sech2(x)), 1e-12, `x = ${x}`);
    // 1 - tanh(400)^2 underflows to 0; log sech^2(400) = 2 log 2 - 800 - 2 log1p(e^-800) = -798.6137...
    close(logSech2(400), 2 * Math.LN2 - 800, 1e-15, 'x = 400');
    close(logSech2(-1e12), 2 * Math.LN2 - 2e12, 1e-15, 'x = -1e12');
  });

  test('the exact scale equals the formula (1 - w^2) / tau / (1 - mu^2) with no epsilon', () => {
    // lambda 0.5, delta -0.2, tau 0.5: w = tanh(0.6), s = (1 - tanh(0.6)^2) / 0.5 / (1 - tanh(0.5)^2).
    close(exactBayesBinnScale(0.5, -0.2, 0.5), sech2(0.6) / 0.5 / sech2(0.5), 1e-12, 's');
    // Where float32 saturates, the exact value is still there: lambda 12, delta -11.99, tau 0.01 gives
    // x = 1 and s = sech^2(1) / 0.01 / sech^2(12) = 0.419974 / 0.01 / 1.5101e-10 = 2.781e11.
    close(exactBayesBinnScale(12, -11.99, 0.01), sech2(1) / 0.01 / (4 * Math.exp(-24)), 1e-6, 'large lambda');
  });

  test('its mean over the relaxation noise tends to 1 as tau -> 0 (so s = 1 is its limit)', () => {
    // E_delta[s] = integral of s(lambda, delta, tau) p(delta), with the noise density p(delta) =
    // sech^2(delta) / 2 of delta = 0.5 log(u / (1 - u)); substituting x = (lambda + delta) / tau gives
    // integral sech^2(x) sech^2(tau x - lambda) / (2 sech^2(lambda)) dx -> 2 / 2 = 1. Midpoint rule in x.
    for (const lambda of [0, 1.5, -4]) {
      for (const [tau, tolerance] of [
        [1e-2, 1e-3],
        [1e-4, 1e-6],
      ] as const) {
        let sum = 0;
        const h = 1e-3;
        for (let x = -40 + h / 2; x < 40; x += h) {
          const delta = tau * x - lambda;
          sum += exactBayesBinnScale(lambda, delta, tau) * (sech2(delta) / 2) * tau * h;
        }
        close(sum, 1, tolerance, `E[s] at lambda ${lambda}, tau ${tau}`);
      }
    }
  });

  test('exact: a saturated weight at tau 1e-10 gets scale 0 (only the prior moves it); float32 gets 1e10', () => {
    const exact = setup({ scale: 'exact' }, 2, 1000);
    const lambda = exact.state.get('lambda')!;
    lambda.set([10, -10]);
    exact.method.propose(new Rng(5));
    assert.deepEqual([...exact.p.value], [1, -1]);
    exact.p.grad.set([0.5, -0.25]);
    exact.method.update({ step: 1, learningRate: 1e-3 });
    // lambda <- lambda - lr * (0 + (lambda - 0)) = 10 * (1 - 1e-3) = 9.99.
    close(lambda[0], 9.99, 1e-7, 'lambda0');
    close(lambda[1], -9.99, 1e-7, 'lambda1');
  });

  test('exact: a weight near zero draws its noise and moves by N s g with that noise', () => {
    const { method, p, state } = setup({ scale: 'exact', temperature: 0.5 }, 1, 100);
    const lambda = state.get('lambda')!;
    lambda[0] = 0.25;
    // The draw the method makes: the same generator, read the same way (uniformOpen, then the logit).
    const rng = new Rng(9);
    const u = new Rng(9).uniformOpen();
    const delta = Math.fround(0.5 * Math.log(u / (1 - u)));
    method.propose(rng);
    close(p.value[0], Math.tanh((0.25 + delta) / 0.5), 1e-6, 'relaxed sample');
    p.grad[0] = 0.2;
    method.update({ step: 1, learningRate: 0.01 });
    const s = sech2((0.25 + delta) / 0.5) / 0.5 / sech2(0.25);
    close(lambda[0], 0.25 - 0.01 * (100 * s * 0.2 + 0.25), 1e-6, 'lambda');
  });

  test('expected: two steps of lambda <- lambda - lr (N g + reweight (lambda - lambda0)), by hand', () => {
    const { method, p, state } = setup({ scale: 'expected', klReweight: 2 }, 1, 50);
    const lambda = state.get('lambda')!;
    lambda[0] = 1;
    // Step 1: g = 0.01: lambda = 1 - 0.1 (50 * 0.01 + 2 * 1) = 1 - 0.25 = 0.75.
    method.propose(new Rng(1));
    p.grad[0] = 0.01;
    method.update({ step: 1, learningRate: 0.1 });
    close(lambda[0], 0.75, 1e-7, 'lambda1');
    // Step 2: g = -0.04: lambda = 0.75 - 0.1 (-2 + 1.5) = 0.75 + 0.05 = 0.8.
    method.propose(new Rng(2));
    p.grad[0] = -0.04;
    method.update({ step: 2, learningRate: 0.1 });
    close(lambda[0], 0.8, 1e-6, 'lambda2');
  });

  test('expected: on a toy problem the posterior concentrates on the right signs, and stays uncertain where the data says nothing', () => {
    // Loss L(w) = -sum_i t_i w_i over weights 0..3 (targets +1, -1, +1, -1), and no signal for weight 4:
    // dL/dw = -t. With N = 10, lr 0.05, reweight 1, lambda converges to N t = +-10 and stays 0 for weight 4.
    const { method, p, state } = setup({ scale: 'expected', lambdaInit: 0 }, 5, 10);
    const targets = [1, -1, 1, -1, 0];
    const rng = new Rng(4);
    for (let k = 1; k <= 400; k++) {
      method.propose(rng);
      for (let i = 0; i < 5; i++) p.grad[i] = -targets[i];
      method.update({ step: k, learningRate: 0.05 });
    }
    const lambda = state.get('lambda')!;
    for (let i = 0; i < 4; i++) close(lambda[i], 10 * targets[i], 1e-6, `lambda ${i}`);
    assert.equal(lambda[4], 0);
    const u = method.weightUncertainty();
    // q = sigmoid(-2 |lambda|): 2e-9 for the four, 1/2 for the fifth.
    assert.equal(u.weights, 5);
    close(u.meanFlipProbability, (4 / (1 + Math.exp(20)) + 0.5) / 5, 1e-6, 'mean q');
    assert.equal(u.shareFlipAtLeast1Percent, 0.2);
    assert.equal(u.shareFlipAtLeast10Percent, 0.2);
  });

  test('the mean predictor writes tanh(lambda); the shares of uncertain weights use q = sigmoid(-2 |lambda|)', () => {
    const { method, p, state } = setup({}, 4, 10);
    // atanh(0.98) = 2.2976 and atanh(0.8) = 1.0986 are the 1% and 10% lines.
    state.get('lambda')!.set([0.5, -2.2, 2.4, -30]);
    method.predictMean();
    for (const [i, lam] of [0.5, -2.2, 2.4, -30].entries()) close(p.value[i], Math.tanh(lam), 1e-6, `w${i}`);
    const u = method.weightUncertainty();
    assert.equal(u.shareFlipAtLeast1Percent, 0.5);
    assert.equal(u.shareFlipAtLeast10Percent, 0.25);
    const q = (lam: number) => 1 / (1 + Math.exp(2 * Math.abs(lam)));
    close(u.meanFlipProbability, (q(0.5) + q(2.2) + q(2.4) + q(30)) / 4, 1e-6, 'mean q');
  });

  test('--bb-scale exact refuses a temperature above 1, naming the flag', () => {
    assert.throws(
      () => BAYES_BINN.resolve({ scaleEstimate: 'exact', temperature: 2 }),
      /--temperature: expected a temperature <= 1 with --bb-scale exact.*got 2/,
    );
    assert.doesNotThrow(() => BAYES_BINN.resolve({ scaleEstimate: 'exact', temperature: 1 }));
    assert.doesNotThrow(() => BAYES_BINN.resolve({ scaleEstimate: 'float32', temperature: 2 }));
  });
});

describe('BayesBiNN limit samples (--bb-scale expected)', () => {
  test('P(w = +1) = sigmoid(2 lambda), weights independent; |lambda| > 11.1 gives the mode; the same seed, the same draws', () => {
    const n = 40000;
    const { method, p, state } = setup({ scale: 'expected' }, n, 10);
    const lambda = state.get('lambda')!;
    for (let i = 0; i < n; i++) lambda[i] = i % 4 === 0 ? 0.5 : i % 4 === 1 ? -1.2 : i % 4 === 2 ? 12 : -40;
    method.propose(new Rng(21));
    const first = Float32Array.from(p.value);
    const share = (k: number) => {
      let plus = 0;
      for (let i = k; i < n; i += 4) if (p.value[i] === 1) plus++;
      return plus / (n / 4);
    };
    // 10,000 draws each: standard error <= 0.005, so 0.02 is four of them.
    assert.ok(Math.abs(share(0) - 1 / (1 + Math.exp(-1))) < 0.02, `lambda 0.5: ${share(0)}`);
    assert.ok(Math.abs(share(1) - 1 / (1 + Math.exp(2.4))) < 0.02, `lambda -1.2: ${share(1)}`);
    assert.equal(share(2), 1);
    assert.equal(share(3), 0);
    for (const v of p.value) assert.ok(v === 1 || v === -1);
    // Neighbouring weights with lambda 0.5 agree as often as independent coins would: p^2 + (1 - p)^2.
    let agree = 0;
    for (let i = 0; i + 4 < n; i += 4) if (p.value[i] === p.value[i + 4]) agree++;
    const q = 1 / (1 + Math.exp(-1));
    assert.ok(Math.abs(agree / (n / 4 - 1) - (q * q + (1 - q) * (1 - q))) < 0.02);
    method.propose(new Rng(21));
    assert.deepEqual(p.value, first);
  });

  test('--bb-scale expected refuses a --temperature (its samples are the tau -> 0 limit)', () => {
    assert.throws(
      () => BAYES_BINN.resolve({ scaleEstimate: 'expected', temperature: 0.5 }),
      /--temperature: expected no --temperature with --bb-scale expected/,
    );
  });
});
