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
 *   uncertainty: MC prediction equals mode prediction. A larger tau alone does not fix it (at 1e-2 the
 *   saturated steps are 1e8 times smaller and single-task training stays at chance); the scales below do
 *   (docs/uncertainty.md, "BayesBiNN's posterior").
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
 * Scales without saturation (`scale`, docs/methods.md#bayesbinn): 'exact' computes
 * s = sech^2((lambda + delta) / tau) / (tau sech^2(lambda)) in float64 log space with no epsilon (unbiased,
 * mean -> 1 as tau -> 0, but almost always 0 and rarely huge); 'expected' takes s = 1, that limit, with the
 * samples at the same limit (exact Bernoulli draws, no tau), so the step is
 * lambda <- lambda - alpha (N g + reweight (lambda - lambda0)). Both read the current lambda: the mu lag then
 * only delays the mode by one step. The mean predictor `predictMean` writes w = tanh(lambda); the flip
 * probability of a weight, P(sample sign != mode sign), is sigmoid(-2 |lambda|) (`weightUncertainty`).
 *
 * Only binary parameters enter the Bernoulli vector; real-valued ones are trained by the run's optimizer.
 * State per binary weight: lambda, lambda0, and mu when lagged, plus v when beta > 0 (4 bytes each in float32).
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import { bayesBinnScale, bayesBinnStepLambda } from '../backend/reference/bayes-binn.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import type { Parameter } from '../nn/layer.js';
import type { Rng } from '../tensor/rng.js';
import { ConfigError } from '../errors.js';
import { defineMethod } from './definition.js';
import type { BinaryMethod, MethodContext, MethodStep, PredictionKind, WeightUncertainty } from './method.js';
import { summariseFlipProbabilities } from './weight-uncertainty.js';

export { bayesBinnScale } from '../backend/reference/bayes-binn.js';

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
  /** How the scale s is computed (BAYES_BINN_SCALES). */
  readonly scale: BayesBinnScale;
}

/**
 * How the scale s is computed:
 * - 'float32':  the official expression with its 1e-10 epsilons, rounded to float32 (the paper's numbers);
 * - 'exact':    s = sech^2(x) / (tau sech^2(lambda)), x = (lambda + delta) / tau, in float64 log space with
 *               no epsilon: an unbiased single-sample estimate of a quantity whose mean tends to 1;
 * - 'expected': s = 1, the limit of that mean as tau -> 0 (the estimate with its sampling noise removed).
 */
export const BAYES_BINN_SCALES = ['float32', 'exact', 'expected'] as const;
export type BayesBinnScale = (typeof BAYES_BINN_SCALES)[number];

export const BAYES_BINN_DEFAULTS: BayesBinnOptions = {
  temperature: 1e-10,
  trainSetScale: 1,
  klReweight: 1,
  momentum: 0,
  lambdaInit: 10,
  muLag: true,
  scale: 'float32',
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
    {
      key: 'scaleEstimate',
      flag: '--bb-scale',
      kind: 'choice',
      choices: BAYES_BINN_SCALES,
      default: BAYES_BINN_DEFAULTS.scale,
      help: 'how the scale s is computed: float32 (official, saturates), exact (float64 log space) or expected (s = 1)',
    },
  ],
  check: (v) => {
    if (v.scaleEstimate === 'expected' && v.temperature !== BAYES_BINN_DEFAULTS.temperature) {
      throw new ConfigError(
        '--temperature',
        'no --temperature with --bb-scale expected (its samples are the tau -> 0 limit, exact Bernoulli draws)',
        String(v.temperature),
      );
    }
    if (v.scaleEstimate === 'exact' && v.temperature > 1) {
      throw new ConfigError(
        '--temperature',
        'a temperature <= 1 with --bb-scale exact (above 1 its scale is unbounded)',
        String(v.temperature),
      );
    }
  },
  runDefaults: () => ({ learningRate: BAYES_BINN_LEARNING_RATE }),
  create: (v) =>
    new BayesBinnMethod({
      temperature: v.temperature,
      trainSetScale: v.trainSetScale,
      klReweight: v.klReweight,
      momentum: v.bbMomentum,
      lambdaInit: v.lambdaInit,
      muLag: v.muLag,
      scale: v.scaleEstimate,
    }),
});

/**
 * Continual-learning defaults (docs/methods.md#continual-learning, permuted MNIST): tau, alpha and MC test
 * samples.
 */
export const BAYES_BINN_CONTINUAL_DEFAULTS = { temperature: 1e-2, learningRate: 1e-3, testSamples: 100 };

/**
 * A named BayesBiNN setting (`--posterior`): method options, the learning rate and whether batch-norm
 * statistics are recalibrated, for what the user leaves unset.
 */
export interface BayesBinnPosterior {
  readonly description: string;
  readonly options: Readonly<Record<string, number | string | boolean>>;
  readonly learningRate: number;
  readonly recalibrateBatchNorm?: boolean;
}

/**
 * The posteriors `--posterior` names (docs/uncertainty.md, "BayesBiNN's posterior"): 'paper' is the official
 * single-task setting (the defaults); 'calibrated' is the measured setting whose samples differ from the
 * mode, accurate and uncertain at once.
 */
export const BAYES_BINN_POSTERIORS = {
  paper: {
    description: 'the official single-task setting (float32 scale, tau 1e-10, |lambda| starts at 10)',
    options: {},
    learningRate: BAYES_BINN_LEARNING_RATE,
  },
  calibrated: {
    description:
      'expected scale, lambda from 0, N = 1000 x the training examples, lr 1e-3, batch norm recalibrated',
    options: { scaleEstimate: 'expected', lambdaInit: 0, trainSetScale: 1000 },
    learningRate: 1e-3,
    recalibrateBatchNorm: true,
  },
} as const satisfies Record<string, BayesBinnPosterior>;
export type BayesBinnPosteriorName = keyof typeof BAYES_BINN_POSTERIORS;
export const BAYES_BINN_POSTERIOR_NAMES = Object.keys(BAYES_BINN_POSTERIORS) as BayesBinnPosteriorName[];

const f32 = Math.fround;
/** Largest |delta| = 0.5 |log(u / (1 - u))| for u = rng.uniformOpen() in [2^-53, 1 - 2^-53]. */
const DELTA_BOUND = 18.5;
const TWO_TO_32 = 4294967296;
/** Above this |lambda|, sigmoid(-2 |lambda|) < 2^-32: the limit sample is sign(lambda) (proposeLimit). */
const BERNOULLI_SKIP = 11.1;

/** log(sech^2 x) = log(1 - tanh^2 x), without cancellation or overflow for any finite x. */
export function logSech2(x: number): number {
  const a = Math.abs(x);
  return 2 * (Math.LN2 - a - Math.log1p(Math.exp(-2 * a)));
}

/**
 * The exact scale s = sech^2((lambda + delta) / tau) / (tau sech^2(lambda)) of the relaxed sample drawn with
 * noise delta, in float64 log space: (1 - w^2) / tau / (1 - mu^2) with no epsilon and no rounding of w or mu.
 */
export function exactBayesBinnScale(lambda: number, delta: number, tau: number): number {
  return Math.exp(logSech2((lambda + delta) / tau) - Math.log(tau) - logSech2(lambda));
}

/**
 * Whether the exact scale is 0 in float64 for every noise value (|delta| <= DELTA_BOUND), so the draw can
 * be skipped: log s <= 2 |lambda| - 2 (|lambda| - DELTA_BOUND) / tau - log tau + 2 log 2 < -746.
 */
function exactScaleVanishes(lambda: number, tau: number): boolean {
  const a = Math.abs(lambda);
  return a > DELTA_BOUND && 2 * a - (2 * (a - DELTA_BOUND)) / tau - Math.log(tau) + 2 * Math.LN2 < -746;
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
  /** The noise delta of the last `propose` (float32), which the exact scale reads; only with scale 'exact'. */
  readonly noise: Float32Array | null;
}

function check(name: string, ok: boolean, value: number, expected: string): void {
  if (!ok) throw new RangeError(`bayesbinn: ${name} must be ${expected}, got ${value}`);
}

export class BayesBinnMethod implements BinaryMethod {
  readonly name = 'bayesbinn';
  readonly stochastic = true;
  private backend: Backend | null = null;
  private slots: Slot[] = [];
  /** The weights a backend kernel left to this loop (indices, and their lambda before an update). */
  private pending: Int32Array | null = null;
  private pendingLambda: FloatArray | null = null;
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
        noise: this.options.scale === 'exact' ? new Float32Array(n) : null,
      };
    });
    if (this.options.scale === 'float32') {
      // Scratch of the backend kernels (the float32 scale only): the weights they leave to this loop.
      const largest = Math.max(0, ...params.map((p) => p.value.length));
      this.pending = backend.allocInt32(largest);
      this.pendingLambda = backend.alloc(largest);
    }
    this.task = 0;
  }

  private setContext(context: MethodContext): void {
    const n = context.trainingExamples * this.options.trainSetScale;
    if (!(Number.isFinite(n) && n > 0)) {
      throw new RangeError(`bayesbinn: the training-set size N must be positive, got ${n}`);
    }
    this.trainSetSize = n;
  }

  private pendingBuffers(): { pending: Int32Array; pendingLambda: FloatArray } {
    if (this.pending === null || this.pendingLambda === null)
      throw new Error('bayesbinn: attach() must be called before use');
    return { pending: this.pending, pendingLambda: this.pendingLambda };
  }

  private requireBackend(): Backend {
    if (this.backend === null) throw new Error('bayesbinn: attach() must be called before use');
    return this.backend;
  }

  propose(rng: Rng): void {
    const backend = this.requireBackend();
    for (const s of this.slots) {
      if (this.options.scale === 'expected') this.proposeLimit(s, rng);
      else this.proposeRelaxed(s, rng);
      backend.copy(s.sample, s.param.value, s.lambda.length);
    }
  }

  /** The relaxed (Gumbel-softmax) sample w = tanh((lambda + delta) / tau) of the float32 and exact scales. */
  private proposeRelaxed(s: Slot, rng: Rng): void {
    const { temperature } = this.options;
    const tau = f32(temperature);
    const skip = DELTA_BOUND + 10 * temperature;
    const { lambda, sample, noise } = s;
    if (noise === null) {
      // The backend sets the saturated weights' samples; the draws, in index order, stay here.
      const backend = this.requireBackend();
      const pending = this.pendingBuffers().pending;
      const count = backend.bayesBinnSaturated(lambda, sample, skip, pending, lambda.length);
      for (let j = 0; j < count; j++) {
        const i = pending[j];
        const u = rng.uniformOpen();
        const delta = f32(0.5 * Math.log(u / (1 - u)));
        sample[i] = f32(Math.tanh(f32(f32(lambda[i] + delta) / tau)));
      }
      return;
    }
    for (let i = 0; i < lambda.length; i++) {
      const lam = lambda[i];
      // A saturated weight's sample is sign(lambda) for every noise value; with the exact scale the draw is
      // skipped only where its scale is 0 for every noise value too.
      if ((lam > skip || lam < -skip) && (noise === null || exactScaleVanishes(lam, temperature))) {
        sample[i] = lam > 0 ? 1 : -1;
        if (noise !== null) noise[i] = 0;
      } else {
        const u = rng.uniformOpen();
        const delta = f32(0.5 * Math.log(u / (1 - u)));
        if (noise !== null) {
          noise[i] = delta;
          sample[i] = Math.tanh((lam + delta) / temperature);
        } else {
          sample[i] = f32(Math.tanh(f32(f32(lam + delta) / tau)));
        }
      }
    }
  }

  /**
   * The tau -> 0 limit of the relaxed sample, w = sign(lambda + delta): a Bernoulli draw with
   * P(w = +1) = sigmoid(2 lambda), taken as uint32 >= 2^32 sigmoid(-2 lambda) (exact to 2^-32). The uint32s
   * come from a xorshift128 stream seeded from the run's generator once per layer and step: inline, it
   * costs a few nanoseconds a weight, where a call into the generator costs tens (the draw is per weight
   * and per step). |lambda| > 11.1 gives sigmoid(-2 |lambda|) < 2^-32, so those weights draw nothing.
   */
  private proposeLimit(s: Slot, rng: Rng): void {
    const { lambda, sample } = s;
    let x = rng.nextUint32() | 1;
    let y = rng.nextUint32();
    let z = rng.nextUint32();
    let w = rng.nextUint32();
    for (let i = 0; i < lambda.length; i++) {
      const lam = lambda[i];
      if (lam > BERNOULLI_SKIP) sample[i] = 1;
      else if (lam < -BERNOULLI_SKIP) sample[i] = -1;
      else {
        const t = x ^ (x << 11);
        x = y;
        y = z;
        z = w;
        w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
        sample[i] = w >= TWO_TO_32 / (1 + Math.exp(2 * lam)) ? 1 : -1;
      }
    }
  }

  /** The relaxed sample of the last `propose` for the i-th parameter: what `update` reads. */
  proposal(i: number): FloatArray {
    const slot = this.slots[i];
    if (slot === undefined) throw new RangeError(`bayesbinn: no parameter ${i}`);
    return slot.sample;
  }

  update(step: MethodStep): void {
    const backend = this.requireBackend();
    const { temperature, klReweight, momentum, scale: scaleKind } = this.options;
    const scaleN = f32(this.trainSetSize);
    const lr = step.learningRate;
    const correction = momentum > 0 ? 1 - Math.pow(momentum, step.step) : 1;
    const hp = {
      temperature,
      trainSetSize: this.trainSetSize,
      learningRate: lr,
      klReweight,
      momentum,
      correction,
    };
    for (const s of this.slots) {
      const { lambda, prior, mu, velocity, noise } = s;
      if (scaleKind === 'float32' && mu !== null) {
        // The defaults: the backend runs the loop; the mu of weights whose tanh is not +-1 is set here.
        const { pending, pendingLambda } = this.pendingBuffers();
        const count = backend.bayesBinnUpdate(
          lambda,
          mu,
          prior,
          s.param.grad,
          s.sample,
          velocity,
          hp,
          pending,
          pendingLambda,
          lambda.length,
        );
        for (let j = 0; j < count; j++) mu[pending[j]] = f32(Math.tanh(pendingLambda[j]));
        continue;
      }
      const w = s.sample;
      const grad = s.param.grad;
      const n = lambda.length;
      for (let i = 0; i < n; i++) {
        const lam = lambda[i];
        let gradHat: number;
        if (scaleKind === 'float32') {
          // s, then N * s * g, in float32 as the official code.
          const m = mu !== null ? mu[i] : f32(Math.tanh(lam));
          gradHat = f32(f32(bayesBinnScale(w[i], m, temperature) * grad[i]) * scaleN);
        } else if (noise !== null) {
          // lambda is what propose saw, so a weight whose draw it skipped has scale 0 here too.
          const scale = exactScaleVanishes(lam, temperature)
            ? 0
            : exactBayesBinnScale(lam, noise[i], temperature);
          gradHat = this.trainSetSize * scale * grad[i];
        } else {
          gradHat = this.trainSetSize * grad[i];
        }
        bayesBinnStepLambda(lambda, prior, velocity, i, gradHat, hp);
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

  /** The posterior mean E[w] = tanh(lambda) of every weight (real-valued, in [-1, 1]). */
  predictMean(): void {
    this.requireBackend();
    for (const s of this.slots) {
      const { lambda } = s;
      const value = s.param.value;
      for (let i = 0; i < lambda.length; i++) value[i] = Math.tanh(lambda[i]);
    }
  }

  /** q = P(sample sign != mode sign) = sigmoid(-2 |lambda|) for every weight. */
  weightUncertainty(): WeightUncertainty {
    return summariseFlipProbabilities(
      this.slots.map((s) => s.lambda),
      (lam) => 1 / (1 + Math.exp(2 * Math.abs(lam))),
    );
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
      if (this.pending !== null) this.backend.free(this.pending);
      if (this.pendingLambda !== null) this.backend.free(this.pendingLambda);
    }
    this.pending = null;
    this.pendingLambda = null;
    this.slots = [];
    this.backend = null;
  }
}
