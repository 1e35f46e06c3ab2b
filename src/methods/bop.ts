/**
 * Bop, the binary optimizer (Helwegen et al., "Latent Weights Do Not Exist: Rethinking Binarized Neural
 * Network Optimization", NeurIPS 2019); docs/methods.md#bop, defaults as Larq's `Bop`.
 *
 * State per binary weight: the weight w in {-1, +1} and an exponential moving average m of its gradient
 * (m starts at 0). With g = dL/dw at the proposed weights:
 *
 *   m <- (1 - gamma) m + gamma g
 *   w <- -w   iff   w m > threshold        (m agrees in sign with w and is large: the loss wants w flipped)
 *
 * Defaults: threshold 1e-8, gamma 1e-4 (Larq). Both can follow the shape of the run's learning-rate
 * schedule (`schedule`): at each step the scheduled hyperparameter is multiplied by lr_t / lr, where lr_t is
 * the run's scheduled learning rate and lr its peak (`MethodContext.learningRate`, the --lr flag). With the
 * default cosine schedule, 'gamma' decays gamma to 0 over the run (the adaptivity then vanishes and m
 * freezes); 'threshold' lowers the threshold to 0 (flipping becomes easier). Default 'none': constant.
 *
 * Initialisation: w = sign(layer initialisation) (sign(0) = +1), m = 0. Forward and test weights are w.
 * Real-valued parameters are not Bop's: the run's optimizer (Adam by default) trains them.
 * State: w and m, 8 bytes per binary weight in float32.
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import type { Parameter } from '../nn/layer.js';
import { ConfigError } from '../errors.js';
import { defineMethod } from './definition.js';
import type { BinaryMethod, MethodContext, MethodStep } from './method.js';

export const BOP_SCHEDULES = ['none', 'gamma', 'threshold', 'both'] as const;
export type BopSchedule = (typeof BOP_SCHEDULES)[number];

export interface BopOptions {
  readonly threshold: number;
  /** Adaptivity rate of the gradient moving average. */
  readonly gamma: number;
  /** Which hyperparameters follow the run's learning-rate schedule shape. */
  readonly schedule: BopSchedule;
}

export const BOP_DEFAULTS: BopOptions = { threshold: 1e-8, gamma: 1e-4, schedule: 'none' };

/** Bop's options; the real-valued parameters keep the run's defaults (Adam). */
export const BOP = defineMethod({
  name: 'bop',
  description: 'flips where a gradient average passes a threshold',
  options: [
    {
      key: 'bopThreshold',
      flag: '--bop-threshold',
      kind: 'number',
      default: BOP_DEFAULTS.threshold,
      range: { min: 0 },
      help: 'flip threshold',
    },
    {
      key: 'bopGamma',
      flag: '--bop-gamma',
      kind: 'number',
      default: BOP_DEFAULTS.gamma,
      range: { min: 0, max: 1, minOpen: true },
      help: 'adaptivity rate of the gradient average',
    },
    {
      key: 'bopSchedule',
      flag: '--bop-schedule',
      kind: 'choice',
      choices: BOP_SCHEDULES,
      default: BOP_DEFAULTS.schedule,
      placeholder: 'which',
      help: "hyperparameters that follow the learning-rate schedule's shape",
    },
  ],
  checkRun(v, run) {
    // The schedule's shape is lr_t / lr, which a constant schedule keeps at 1.
    if (v.bopSchedule !== 'none' && run.schedule === 'constant') {
      throw new ConfigError(
        '--bop-schedule',
        `none with --schedule constant (${v.bopSchedule} follows the learning-rate schedule's shape, which is flat)`,
        v.bopSchedule,
      );
    }
  },
  create: (v) => new BopMethod({ threshold: v.bopThreshold, gamma: v.bopGamma, schedule: v.bopSchedule }),
});

interface Slot {
  readonly param: Parameter;
  readonly w: FloatArray;
  readonly m: FloatArray;
}

export class BopMethod implements BinaryMethod {
  readonly name = 'bop';
  readonly stochastic = false;
  private backend: Backend | null = null;
  private slots: Slot[] = [];
  private peakLearningRate = 1;
  private flips = 0;
  private weights = 0;

  constructor(readonly options: BopOptions = BOP_DEFAULTS) {
    const { threshold, gamma, schedule } = options;
    if (!(Number.isFinite(threshold) && threshold >= 0))
      throw new RangeError(`bop: threshold must be a number >= 0, got ${threshold}`);
    if (!(gamma > 0 && gamma <= 1)) throw new RangeError(`bop: gamma must be in (0, 1], got ${gamma}`);
    if (!(BOP_SCHEDULES as readonly string[]).includes(schedule))
      throw new RangeError(`bop: schedule must be one of ${BOP_SCHEDULES.join(', ')}, got ${schedule}`);
  }

  attach(params: readonly Parameter[], backend: Backend, _rng: unknown, context: MethodContext): void {
    this.dispose();
    this.backend = backend;
    const peak = context.learningRate ?? 1;
    this.peakLearningRate = peak > 0 ? peak : 1;
    this.weights = 0;
    this.slots = params.map((param) => {
      const n = param.value.length;
      const w = backend.alloc(n);
      backend.sign(param.value, w, n);
      this.weights += n;
      return { param, w, m: backend.alloc(n) };
    });
  }

  private requireBackend(): Backend {
    if (this.backend === null) throw new Error('bop: attach() must be called before use');
    return this.backend;
  }

  propose(): void {
    const backend = this.requireBackend();
    for (const s of this.slots) backend.copy(s.w, s.param.value, s.w.length);
  }

  /** Fraction of binary weights flipped by the last update. */
  get flipRatio(): number {
    return this.weights > 0 ? this.flips / this.weights : 0;
  }

  update(step: MethodStep): void {
    const backend = this.requireBackend();
    const { schedule } = this.options;
    const factor = step.learningRate / this.peakLearningRate;
    const gamma =
      schedule === 'gamma' || schedule === 'both' ? this.options.gamma * factor : this.options.gamma;
    const threshold =
      schedule === 'threshold' || schedule === 'both'
        ? this.options.threshold * factor
        : this.options.threshold;
    let flips = 0;
    for (const s of this.slots)
      flips += backend.bopUpdate(s.w, s.m, s.param.grad, gamma, threshold, s.w.length);
    this.flips = flips;
  }

  predict(): void {
    this.propose();
  }

  stateTensors(): NamedTensor[] {
    return this.slots.flatMap((s) => [
      { name: `${s.param.name}/w`, value: s.w },
      { name: `${s.param.name}/m`, value: s.m },
    ]);
  }

  stateScalars(): Record<string, number> {
    return {};
  }

  loadStateScalars(): void {}

  dispose(): void {
    if (this.backend !== null) {
      for (const s of this.slots) {
        this.backend.free(s.w);
        this.backend.free(s.m);
      }
    }
    this.slots = [];
    this.backend = null;
  }
}
