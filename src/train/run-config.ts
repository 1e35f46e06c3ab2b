/**
 * A complete TrainConfig from what the user gave: each absent setting takes the method's run default
 * (methods declare them: VISPA's SGD recipe, BayesBiNN's learning rate), then TRAIN_DEFAULTS. Shared by the
 * CLI (`onebit train` flags) and the library (`fit`), so both give one run the same settings.
 */
import { TRAIN_DEFAULTS, type TrainConfig } from '../config/train-config.js';
import { defaultRunSettings } from '../methods/registry.js';

/** The identity of a run plus any settings the user gave. */
export type TrainConfigInput = Pick<TrainConfig, 'data' | 'model' | 'method'> &
  Partial<Omit<TrainConfig, 'data' | 'model' | 'method' | 'channelScale' | 'recalibrateBatchNorm'>> & {
    /** Absent: the method's default (on for VISPA), else off. */
    readonly channelScale?: boolean;
    readonly recalibrateBatchNorm?: boolean;
  };

export function trainConfig(input: TrainConfigInput): TrainConfig {
  const epochs = input.epochs ?? TRAIN_DEFAULTS.epochs;
  const run = defaultRunSettings(input.method, epochs);
  const learningRate = input.learningRate ?? run.learningRate ?? TRAIN_DEFAULTS.learningRate;
  const schedule = input.schedule ?? run.schedule ?? TRAIN_DEFAULTS.schedule;
  const channelScale = input.channelScale ?? run.channelScale ?? false;
  const recalibrateBatchNorm = input.recalibrateBatchNorm ?? run.recalibrateBatchNorm ?? false;
  // Settings given as undefined are absent: they must not hide a default.
  const given = Object.fromEntries(
    Object.entries(input).filter(
      ([key, value]) => value !== undefined && key !== 'channelScale' && key !== 'recalibrateBatchNorm',
    ),
  ) as TrainConfigInput;
  return {
    ...TRAIN_DEFAULTS,
    ...given,
    epochs,
    learningRate,
    schedule,
    // The method's warm-up only with the schedule that has one.
    warmupEpochs:
      input.warmupEpochs ??
      (schedule === 'warmup-cosine' ? run.warmupEpochs : undefined) ??
      TRAIN_DEFAULTS.warmupEpochs,
    // The real parameters follow the method's recipe, else the method's own learning rate.
    realLearningRate:
      input.realLearningRate ?? run.realLearningRate ?? input.learningRate ?? TRAIN_DEFAULTS.realLearningRate,
    realOptimizer: input.realOptimizer ?? run.realOptimizer ?? TRAIN_DEFAULTS.realOptimizer,
    realWeightDecay: input.realWeightDecay ?? run.realWeightDecay ?? TRAIN_DEFAULTS.realWeightDecay,
    // Stored only when on, so configs of runs without them stay as they were.
    ...(channelScale ? { channelScale } : {}),
    ...(recalibrateBatchNorm ? { recalibrateBatchNorm } : {}),
  };
}
