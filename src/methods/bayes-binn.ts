/**
 * BayesBiNN (Meng, Bachmann & Khan, "Training Binary Neural Networks using the Bayesian Learning Rule",
 * ICML 2020): a mean-field Bernoulli distribution over the +-1 weights, learned with the Bayesian learning
 * rule. See docs/methods.md#bayesbinn; the update follows the official code, team-approx-bayes/BayesBiNN.
 *
 * Per binary weight, with natural parameter lambda, P(w = +1) = sigmoid(2 lambda), mean mu = tanh(lambda):
 *
 *   relaxed sample   eps ~ U(0,1) (open),  delta = 0.5 log(eps / (1 - eps)),  w = tanh((lambda + delta) / tau)
 *   scale            s = (1 - w^2 + 1e-10) / tau / (1 - mu^2 + 1e-10)            (computed in float32)
 *   gradient         g_hat = N * s * dL/dw            (L the minibatch-mean loss, one sample: M_s = 1)
 *   momentum         v <- beta v + (1 - beta) (g_hat + reweight (lambda - lambda0))
 *   update           lambda <- lambda - alpha v / (1 - beta^t)
 *   mean             mu <- tanh(lambda before this update)                     (the official lag, below)
 *
 * With beta = 0 and reweight = 1 this is the paper's rule lambda <- (1 - alpha) lambda - alpha (N s g - lambda0).
 *
 * Faithfulness choices (docs/methods.md#bayesbinn), all defaults reproduce the official code:
 * - Float32 scale. s is computed with float32 rounding after every operation and the official epsilons.
 *   With lambda = +-10 and tau = 1e-10, tanh(10) is exactly 1 in float32 and the relaxed sample is exactly
 *   +-1, so s = (0 + 1e-10) / 1e-10 / (0 + 1e-10) = 1e10 (in float64 it would be about 1.2e8). This
 *   saturation sets the effective step size of the published runs: with the paper defaults lambda grows to
 *   millions within an epoch, almost every mu is exactly +-1, samples equal the mode, and the rule acts like
 *   Bop with threshold 0. Single-task BayesBiNN with tau = 1e-10 therefore gives (almost) no usable
 *   uncertainty: MC prediction equals mode prediction. Uncertainty needs a larger tau (the continual-learning
 *   setting uses 1e-2).
 * - mu lag (`muLag`, default true). The official step sets mu = tanh(lambda) from the lambda *before* the
 *   update, so mu (used in s and in mode prediction) lags lambda by one step. `muLag: false` uses
 *   tanh(current lambda) and keeps no mu array.
 * - N = trainingExamples (after the validation split) * trainSetScale (10 in the augmented CIFAR runs).
 * - Only M_s = 1 training sample per step (the official default); the point-estimate variant
 *   (num_samples = 0) is not implemented.
 * - Relaxation noise: eps from `rng.uniformOpen()` (53-bit, never 0 or 1), so |delta| <= 18.37. A weight with
 *   |lambda| > 18.5 + 10 tau gives w = sign(lambda) for every possible eps (and tanh saturates in float32), so
 *   its draw is skipped: the sample is the same, only the generator's position differs. This keeps the
 *   saturated regime cheap.
 * - lambda init: +-lambdaInit (10) with equal probability, from the run's generator (lamda_std = 0).
 *
 * Prediction:
 * - 'mode':   w = +1 if mu > 0 else -1 (ties at mu = 0 go to -1, as the official code), with the lagged mu.
 * - 'sample': an exact Bernoulli draw, P(w = +1) = sigmoid(2 lambda) with the current lambda (no relaxation).
 *   An ensemble of samples averages logits (evaluate.ts), as the official code does.
 *
 * Continual learning: `beginTask(t)` for t > 0 copies lambda into the prior lambda0 (the official script sets
 * prior_lamda = lamda before each task after the first); the momentum and the step count carry over.
 * With tau = 1e-2 the float32 scale has a second regime: s = (1e-10 / tau) / 1e-10 = 1 / tau = 100 while
 * |lambda| > 8.66 (where tanh(lambda) rounds to 1), but about 1e-8 / (1 - mu^2) (tiny) once |lambda| drops
 * below that, except on the rare draws where the relaxed sample is not saturated. A weight pushed towards
 * zero from +-10 therefore stalls near +-8.66 unless one step carries it across, so sign changes come in
 * large jumps and few epochs per task learn each task slowly (measured on permuted Fashion-MNIST, mlp-100,
 * 3 epochs per task: 0.73-0.77 test accuracy on the task just trained, against 0.86 for STE, but less
 * forgetting); the official script trains 100 epochs per task.
 *
 * Only binary parameters enter the Bernoulli vector; real-valued ones are trained by the run's optimizer.
 * State per binary weight: lambda, lambda0, and mu when lagged, plus v when beta > 0 (4 bytes each in float32).
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import type { Parameter } from '../nn/layer.js';
import type { Rng } from '../tensor/rng.js';
import { defineMethod } from './definition.js';
import type { BinaryMethod, MethodContext, MethodStep, PredictionKind } from './method.js';

export interface BayesBinnOptions {
  /** Gumbel-softmax temperature tau (paper: 1e-10 for MNIST/CIFAR-10, 1e-8 CIFAR-100, 1e-2 continual). */
  readonly temperature: number;
  /** N = training examples * trainSetScale (official: 1, or 10 with data augmentation). */
  readonly trainSetScale: number;
  /** Weight of the KL (prior) term, `reweight` in the official code. */
  readonly klReweight: number;
  /** Momentum beta of the update, with Adam-style bias correction (official default 0). */
  readonly momentum: number;
  /** Initial |lambda|; each weight starts at +-lambdaInit with equal probability. */
  readonly lambdaInit: number;
  /** Keep the official one-step lag of mu behind lambda. */
  readonly muLag: boolean;
}

export const BAYES_BINN_DEFAULTS: BayesBinnOptions = {
  temperature: 1e-10,
  trainSetScale: 1,
  klReweight: 1,
  momentum: 0,
  lambdaInit: 10,
  muLag: true,
};

/** Default learning rate alpha (the paper's MNIST value, with the cosine schedule). */
export const BAYES_BINN_LEARNING_RATE = 1e-4;

/** BayesBiNN's options and its learning rate (the cosine schedule is the run's default). */
export const BAYES_BINN = defineMethod({
  name: 'bayesbinn',
  description: 'Bernoulli weights, Bayesian learning rule',
  options: [
    {
      key: 'temperature',
      flag: '--temperature',
      kind: 'number',
      default: BAYES_BINN_DEFAULTS.temperature,
      range: { min: 0, minOpen: true },
      placeholder: 'tau',
      help: 'Gumbel-softmax temperature',
    },
    {
      key: 'trainSetScale',
      flag: '--train-set-scale',
      kind: 'number',
      default: BAYES_BINN_DEFAULTS.trainSetScale,
      range: { min: 0, minOpen: true },
      help: 'N = training examples * x (the paper uses 10 for its CIFAR runs with --augment)',
    },
    {
      key: 'klReweight',
      flag: '--kl-reweight',
      kind: 'number',
      default: BAYES_BINN_DEFAULTS.klReweight,
      range: { min: 0 },
      help: 'weight of the prior (KL) term',
    },
    {
      key: 'bbMomentum',
      flag: '--bb-momentum',
      kind: 'number',
      default: BAYES_BINN_DEFAULTS.momentum,
      range: { min: 0, max: 1, maxOpen: true },
      placeholder: 'beta',
      help: 'momentum with bias correction',
    },
    {
      key: 'lambdaInit',
      flag: '--lambda-init',
      kind: 'number',
      default: BAYES_BINN_DEFAULTS.lambdaInit,
      range: { min: 0 },
      help: 'initial |lambda|',
    },
    {
      key: 'muLag',
      flag: '--no-mu-lag',
      kind: 'boolean',
      default: BAYES_BINN_DEFAULTS.muLag,
      help: 'use tanh(current lambda) instead of the official one-step-lagged mu',
    },
  ],
  runDefaults: () => ({ learningRate: BAYES_BINN_LEARNING_RATE }),
  create: (v) =>
    new BayesBinnMethod({
      temperature: v.temperature,
      trainSetScale: v.trainSetScale,
      klReweight: v.klReweight,
      momentum: v.bbMomentum,
      lambdaInit: v.lambdaInit,
      muLag: v.muLag,
    }),
});

/**
 * Continual-learning defaults (docs/methods.md#continual-learning, permuted MNIST): tau, alpha and MC test
 * samples.
 */
export const BAYES_BINN_CONTINUAL_DEFAULTS = { temperature: 1e-2, learningRate: 1e-3, testSamples: 100 };

const f32 = Math.fround;
/** The official epsilon 1e-10, as float32. */
const EPSILON = f32(1e-10);
/** Largest |delta| = 0.5 |log(u / (1 - u))| for u = rng.uniformOpen() in [2^-53, 1 - 2^-53]. */
const DELTA_BOUND = 18.5;

/**
 * The BayesBiNN scale s = (1 - w^2 + 1e-10) / tau / (1 - mu^2 + 1e-10), rounded to float32 after every
 * operation, exactly as the official float32 PyTorch expression evaluates it.
 */
export function bayesBinnScale(w: number, mu: number, tau: number): number {
  const numerator = f32(f32(1 - f32(w * w)) + EPSILON);
  const denominator = f32(f32(1 - f32(mu * mu)) + EPSILON);
  return f32(f32(numerator / f32(tau)) / denominator);
}

interface Slot {
  readonly param: Parameter;
  readonly lambda: FloatArray;
  readonly prior: FloatArray;
  /** tanh(previous lambda), when muLag. */
  readonly mu: FloatArray | null;
  /** Momentum v, when beta > 0. */
  readonly velocity: FloatArray | null;
  /**
   * The relaxed sample w of the last `propose`, which `update` reads: kept by the method, so whatever
   * happens to the parameter's value between the two (an evaluation's predict, say) cannot change the step.
   * Working memory of one step, not state: checkpoints do not store it.
   */
  readonly sample: FloatArray;
}

function check(name: string, ok: boolean, value: number, expected: string): void {
  if (!ok) throw new RangeError(`bayesbinn: ${name} must be ${expected}, got ${value}`);
}

export class BayesBinnMethod implements BinaryMethod {
  readonly name = 'bayesbinn';
  readonly stochastic = true;
  private backend: Backend | null = null;
  private slots: Slot[] = [];
  /** N, the effective training-set size the gradient is scaled by. */
  private trainSetSize = 1;
  /** Index of the task being trained (continual learning); 0 for ordinary runs. */
  private task = 0;

  constructor(readonly options: BayesBinnOptions = BAYES_BINN_DEFAULTS) {
    const { temperature, trainSetScale, klReweight, momentum, lambdaInit } = options;
    check('temperature', Number.isFinite(temperature) && temperature > 0, temperature, 'a positive number');
    check(
      'trainSetScale',
      Number.isFinite(trainSetScale) && trainSetScale > 0,
      trainSetScale,
      'a positive number',
    );
    check('klReweight', Number.isFinite(klReweight) && klReweight >= 0, klReweight, 'a number >= 0');
    check('momentum', momentum >= 0 && momentum < 1, momentum, 'in [0, 1)');
    check('lambdaInit', Number.isFinite(lambdaInit) && lambdaInit >= 0, lambdaInit, 'a number >= 0');
  }

  /** The effective training-set size N (examples * trainSetScale). */
  get trainingSetSize(): number {
    return this.trainSetSize;
  }

  attach(params: readonly Parameter[], backend: Backend, rng: Rng, context: MethodContext): void {
    this.dispose();
    this.backend = backend;
    this.setContext(context);
    const { lambdaInit, muLag, momentum } = this.options;
    const init = f32(lambdaInit);
    const muInit = f32(Math.tanh(init));
    this.slots = params.map((param) => {
      const n = param.value.length;
      const lambda = backend.alloc(n);
      const mu = muLag ? backend.alloc(n) : null;
      for (let i = 0; i < n; i++) {
        const positive = rng.nextUint32() >>> 31 === 1;
        lambda[i] = positive ? init : -init;
        if (mu !== null) mu[i] = positive ? muInit : -muInit;
      }
      return {
        param,
        lambda,
        prior: backend.alloc(n),
        mu,
        velocity: momentum > 0 ? backend.alloc(n) : null,
        sample: backend.alloc(n),
      };
    });
    this.task = 0;
  }

  private setContext(context: MethodContext): void {
    const n = context.trainingExamples * this.options.trainSetScale;
    if (!(Number.isFinite(n) && n > 0)) {
      throw new RangeError(`bayesbinn: the training-set size N must be positive, got ${n}`);
    }
    this.trainSetSize = n;
  }

  private requireBackend(): Backend {
    if (this.backend === null) throw new Error('bayesbinn: attach() must be called before use');
    return this.backend;
  }

  propose(rng: Rng): void {
    this.requireBackend();
    const tau = f32(this.options.temperature);
    const skip = DELTA_BOUND + 10 * this.options.temperature;
    for (const s of this.slots) {
      const { lambda, sample } = s;
      const n = lambda.length;
      for (let i = 0; i < n; i++) {
        const lam = lambda[i];
        if (lam > skip) sample[i] = 1;
        else if (lam < -skip) sample[i] = -1;
        else {
          const u = rng.uniformOpen();
          const delta = f32(0.5 * Math.log(u / (1 - u)));
          sample[i] = f32(Math.tanh(f32(f32(lam + delta) / tau)));
        }
      }
      this.requireBackend().copy(sample, s.param.value, n);
    }
  }

  /** The relaxed sample of the last `propose` for the i-th parameter: what `update` reads. */
  proposal(i: number): FloatArray {
    const slot = this.slots[i];
    if (slot === undefined) throw new RangeError(`bayesbinn: no parameter ${i}`);
    return slot.sample;
  }

  update(step: MethodStep): void {
    this.requireBackend();
    const { temperature, klReweight, momentum } = this.options;
    const tau = f32(temperature);
    const scaleN = f32(this.trainSetSize);
    const lr = step.learningRate;
    const correction = momentum > 0 ? 1 - Math.pow(momentum, step.step) : 1;
    for (const s of this.slots) {
      const { lambda, prior, mu, velocity } = s;
      const w = s.sample;
      const grad = s.param.grad;
      const n = lambda.length;
      for (let i = 0; i < n; i++) {
        const lam = lambda[i];
        const m = mu !== null ? mu[i] : f32(Math.tanh(lam));
        // s, then N * s * g, in float32 as the official code.
        const wi = w[i];
        const num = f32(f32(1 - f32(wi * wi)) + EPSILON);
        const den = f32(f32(1 - f32(m * m)) + EPSILON);
        const scale = f32(f32(num / tau) / den);
        const gradHat = f32(f32(scale * grad[i]) * scaleN);
        let direction = gradHat + klReweight * (lam - prior[i]);
        if (velocity !== null) {
          const v = momentum * velocity[i] + (1 - momentum) * direction;
          velocity[i] = v;
          direction = v / correction;
        }
        lambda[i] = lam - lr * direction;
        if (mu !== null) mu[i] = f32(Math.tanh(lam));
      }
    }
  }

  predict(kind: PredictionKind, rng: Rng): void {
    this.requireBackend();
    for (const s of this.slots) {
      const { lambda, mu } = s;
      const value = s.param.value;
      const n = lambda.length;
      if (kind === 'mode') {
        // mu <= 0 -> -1 (the official tie rule); tanh keeps the sign of lambda.
        for (let i = 0; i < n; i++) value[i] = (mu !== null ? mu[i] : lambda[i]) > 0 ? 1 : -1;
      } else {
        for (let i = 0; i < n; i++) {
          const p = 1 / (1 + Math.exp(-2 * lambda[i]));
          value[i] = rng.uniform() < p ? 1 : -1;
        }
      }
    }
  }

  beginTask(task: number, context: MethodContext): void {
    const backend = this.requireBackend();
    this.setContext(context);
    if (task > 0) for (const s of this.slots) backend.copy(s.lambda, s.prior, s.lambda.length);
    this.task = task;
  }

  stateTensors(): NamedTensor[] {
    return this.slots.flatMap((s) => [
      { name: `${s.param.name}/lambda`, value: s.lambda },
      { name: `${s.param.name}/prior_lambda`, value: s.prior },
      ...(s.mu !== null ? [{ name: `${s.param.name}/mu`, value: s.mu }] : []),
      ...(s.velocity !== null ? [{ name: `${s.param.name}/momentum`, value: s.velocity }] : []),
    ]);
  }

  stateScalars(): Record<string, number> {
    return { task: this.task, trainSetSize: this.trainSetSize };
  }

  loadStateScalars(scalars: Record<string, number>): void {
    if (scalars.task !== undefined) this.task = scalars.task;
    if (scalars.trainSetSize !== undefined) this.trainSetSize = scalars.trainSetSize;
  }

  dispose(): void {
    if (this.backend !== null) {
      for (const s of this.slots) {
        this.backend.free(s.lambda);
        this.backend.free(s.prior);
        if (s.mu !== null) this.backend.free(s.mu);
        if (s.velocity !== null) this.backend.free(s.velocity);
        this.backend.free(s.sample);
      }
    }
    this.slots = [];
    this.backend = null;
  }
}
