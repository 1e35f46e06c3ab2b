/** Training methods by name, with their hyperparameters read from a config's methodOptions. */
import { ConfigError } from '../errors.js';
import { type TrainConfig } from '../train/config.js';
import type { BinaryMethod } from './method.js';
import { BAYES_BINN_DEFAULTS, BAYES_BINN_LEARNING_RATE, BayesBinnMethod } from './bayes-binn.js';
import { BOP_DEFAULTS, BOP_SCHEDULES, BopMethod, type BopSchedule } from './bop.js';
import { STE_DEFAULTS, SteMethod } from './ste.js';
import {
  FLOAT_FREE_DEFAULTS,
  FLOAT_FREE_SCHEDULES,
  FloatFreeMethod,
  type FloatFreeSchedule,
} from './float-free.js';
import { VISPA_DEFAULTS, VISPA_RUN_DEFAULTS, VispaMethod, vispaWarmupEpochs } from './vispa.js';

export const METHOD_NAMES = ['ste', 'vispa', 'bayesbinn', 'bop', 'float-free'] as const;
export type MethodName = (typeof METHOD_NAMES)[number];

type Options = Readonly<Record<string, number | string | boolean>>;

/**
 * Default learning rate of a method's `--lr` when the user gives none: the paper's alpha 1e-4 for BayesBiNN
 * (MNIST, with the cosine schedule); the run default (TRAIN_DEFAULTS.learningRate) otherwise.
 */
export function defaultLearningRate(method: string): number | undefined {
  if (method === 'bayesbinn') return BAYES_BINN_LEARNING_RATE;
  if (method === 'vispa') return VISPA_RUN_DEFAULTS.learningRate;
  return undefined;
}

/** Run settings besides the learning rate that a method asks for when the user gives none. */
export type MethodRunSettings = Partial<
  Pick<
    TrainConfig,
    | 'realLearningRate'
    | 'realOptimizer'
    | 'realWeightDecay'
    | 'schedule'
    | 'warmupEpochs'
    | 'channelScale'
    | 'recalibrateBatchNorm'
  >
>;

/**
 * The run settings the CLI fills in for a method when their flags are absent (TRAIN_DEFAULTS otherwise).
 * VISPA trains as its official code does (SGD with momentum 0.9 and weight decay on the real parameters,
 * a cosine schedule with linear warm-up, a learnable per-channel scale after each binary layer) with the
 * learning rate, decay of m and Z and batch-norm recalibration of vispa.ts (VISPA_RUN_DEFAULTS).
 */
export function defaultRunSettings(method: string, epochs: number): MethodRunSettings {
  if (method === 'vispa') {
    const { realLearningRate, realOptimizer, realWeightDecay, schedule, channelScale, recalibrateBatchNorm } =
      VISPA_RUN_DEFAULTS;
    return {
      realLearningRate,
      realOptimizer,
      realWeightDecay,
      schedule,
      warmupEpochs: vispaWarmupEpochs(epochs),
      channelScale,
      recalibrateBatchNorm,
    };
  }
  return {};
}

/** Rejects options that belong to the named method family but were given to another method. */
function rejectForeign(
  method: string,
  options: Options,
  prefixOwners: Readonly<Record<string, string>>,
): void {
  for (const [key, owner] of Object.entries(prefixOwners)) {
    if (owner !== method && options[key] !== undefined) {
      throw new ConfigError(
        key,
        `no ${key} option for method ${method} (it is a ${owner} option)`,
        JSON.stringify(options[key]),
      );
    }
  }
}

/** Method options only one method reads; giving them to another method is a mistake worth reporting. */
const OWNED_OPTIONS: Readonly<Record<string, string>> = {
  temperature: 'bayesbinn',
  trainSetScale: 'bayesbinn',
  klReweight: 'bayesbinn',
  bbMomentum: 'bayesbinn',
  lambdaInit: 'bayesbinn',
  muLag: 'bayesbinn',
  bopThreshold: 'bop',
  bopGamma: 'bop',
  bopSchedule: 'bop',
  rank: 'vispa',
  scale: 'vispa',
  momentum: 'vispa',
  weightDecay: 'vispa',
  ffShift: 'float-free',
  ffPixelShift: 'float-free',
  ffClip: 'float-free',
  ffInit: 'float-free',
  ffSchedule: 'float-free',
  ffCenter: 'float-free',
  ffProject: 'float-free',
  ffProjectHidden: 'float-free',
};

function option<T extends number | string | boolean>(options: Options, name: string, fallback: T): T {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== typeof fallback) {
    throw new ConfigError(name, `a ${typeof fallback}`, JSON.stringify(value));
  }
  return value as T;
}

export function createMethod(name: string, options: Options): BinaryMethod {
  rejectForeign(name, options, OWNED_OPTIONS);
  switch (name) {
    case 'ste': {
      const surrogate = option(options, 'surrogate', STE_DEFAULTS.surrogate as string);
      if (surrogate !== 'identity' && surrogate !== 'clipped-identity') {
        throw new ConfigError('surrogate', 'identity or clipped-identity', surrogate);
      }
      return new SteMethod({
        ...STE_DEFAULTS,
        surrogate,
        clipLatent: option(options, 'clipLatent', STE_DEFAULTS.clipLatent),
      });
    }
    case 'vispa': {
      const rank = option(options, 'rank', VISPA_DEFAULTS.rank);
      if (!Number.isInteger(rank) || rank < 0) throw new ConfigError('rank', 'an integer >= 0', String(rank));
      const scale = option(options, 'scale', VISPA_DEFAULTS.scale);
      if (!(Number.isFinite(scale) && scale > 0))
        throw new ConfigError('vispa-scale', 'a number > 0', String(scale));
      const momentum = option(options, 'momentum', VISPA_DEFAULTS.momentum);
      if (!(momentum >= 0 && momentum < 1))
        throw new ConfigError('momentum', 'a number in [0, 1)', String(momentum));
      const weightDecay = option(options, 'weightDecay', VISPA_DEFAULTS.weightDecay);
      if (!(Number.isFinite(weightDecay) && weightDecay >= 0)) {
        throw new ConfigError('vispa-weight-decay', 'a number >= 0', String(weightDecay));
      }
      return new VispaMethod({ rank, scale, momentum, weightDecay });
    }
    case 'bayesbinn': {
      const d = BAYES_BINN_DEFAULTS;
      const opts = {
        temperature: option(options, 'temperature', d.temperature),
        trainSetScale: option(options, 'trainSetScale', d.trainSetScale),
        klReweight: option(options, 'klReweight', d.klReweight),
        momentum: option(options, 'bbMomentum', d.momentum),
        lambdaInit: option(options, 'lambdaInit', d.lambdaInit),
        muLag: option(options, 'muLag', d.muLag),
      };
      if (!(Number.isFinite(opts.temperature) && opts.temperature > 0))
        throw new ConfigError('temperature', 'a number > 0', String(opts.temperature));
      if (!(Number.isFinite(opts.trainSetScale) && opts.trainSetScale > 0))
        throw new ConfigError('train-set-scale', 'a number > 0', String(opts.trainSetScale));
      if (!(Number.isFinite(opts.klReweight) && opts.klReweight >= 0))
        throw new ConfigError('kl-reweight', 'a number >= 0', String(opts.klReweight));
      if (!(opts.momentum >= 0 && opts.momentum < 1))
        throw new ConfigError('bb-momentum', 'a number in [0, 1)', String(opts.momentum));
      if (!(Number.isFinite(opts.lambdaInit) && opts.lambdaInit >= 0))
        throw new ConfigError('lambda-init', 'a number >= 0', String(opts.lambdaInit));
      return new BayesBinnMethod(opts);
    }
    case 'bop': {
      const threshold = option(options, 'bopThreshold', BOP_DEFAULTS.threshold);
      if (!(Number.isFinite(threshold) && threshold >= 0))
        throw new ConfigError('bop-threshold', 'a number >= 0', String(threshold));
      const gamma = option(options, 'bopGamma', BOP_DEFAULTS.gamma);
      if (!(gamma > 0 && gamma <= 1)) throw new ConfigError('bop-gamma', 'a number in (0, 1]', String(gamma));
      const schedule = option(options, 'bopSchedule', BOP_DEFAULTS.schedule as string);
      if (!(BOP_SCHEDULES as readonly string[]).includes(schedule))
        throw new ConfigError('bop-schedule', `one of ${BOP_SCHEDULES.join(', ')}`, schedule);
      return new BopMethod({ threshold, gamma, schedule: schedule as BopSchedule });
    }
    case 'float-free': {
      const d = FLOAT_FREE_DEFAULTS;
      const shift = option(options, 'ffShift', d.shift);
      const pixelShift = option(options, 'ffPixelShift', d.pixelShift);
      const clip = option(options, 'ffClip', d.clip);
      const init = option(options, 'ffInit', d.init);
      const schedule = option(options, 'ffSchedule', d.schedule as string);
      if (!Number.isInteger(shift) || shift < 0 || shift > 20)
        throw new ConfigError('ff-shift', 'an integer in 0..20', String(shift));
      if (!Number.isInteger(pixelShift) || pixelShift < 0 || shift + pixelShift > 24)
        throw new ConfigError(
          'ff-pixel-shift',
          `an integer in 0..${24 - shift} (ff-shift + ff-pixel-shift <= 24)`,
          String(pixelShift),
        );
      if (!Number.isInteger(clip) || clip < 1 || clip > 32767)
        throw new ConfigError('ff-clip', 'an integer in 1..32767', String(clip));
      if (!Number.isInteger(init) || init < 0 || init > clip)
        throw new ConfigError('ff-init', `an integer in 0..ff-clip (${clip}); 0 = Glorot-like`, String(init));
      if (!(FLOAT_FREE_SCHEDULES as readonly string[]).includes(schedule))
        throw new ConfigError('ff-schedule', `one of ${FLOAT_FREE_SCHEDULES.join(', ')}`, schedule);
      return new FloatFreeMethod({
        ...d,
        shift,
        pixelShift,
        clip,
        init,
        schedule: schedule as FloatFreeSchedule,
        center: option(options, 'ffCenter', d.center),
        project: option(options, 'ffProject', d.project),
        projectHidden: option(options, 'ffProjectHidden', d.projectHidden),
      });
    }
    default:
      throw new ConfigError('method', `one of ${METHOD_NAMES.join(', ')}`, JSON.stringify(name));
  }
}
