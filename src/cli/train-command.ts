/** `onebit train`: flags -> TrainConfig -> library; prints progress, epoch lines or JSON lines. */
import { ConfigError } from '../errors.js';
import { join } from 'node:path';
import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { createBackend } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import { DATASET_NAMES, isDatasetName, loadDataset, type Dataset } from '../data/dataset.js';
import { createMethod, defaultLearningRate, defaultRunSettings, METHOD_NAMES } from '../methods/registry.js';
import { BOP_SCHEDULES } from '../methods/bop.js';
import { FLOAT_FREE_DEFAULTS, FLOAT_FREE_SCHEDULES } from '../methods/float-free.js';
import { isModelName, MODEL_NAMES } from '../nn/models.js';
import { TRAIN_DEFAULTS, validateConfig, type BackendKind, type TrainConfig } from '../train/config.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import {
  CHECKPOINT_FILE,
  train,
  type BatchProgress,
  type EpochRecord,
  type TrainResult,
} from '../train/trainer.js';
import { defaultCacheDir, parseChoice, parseInteger, parseNumber, parsePositiveInteger } from './options.js';

export interface TrainFlags {
  data: string;
  dataDir?: string;
  model: string;
  method: string;
  activations: 'real' | 'binary';
  epochs: number;
  batchSize: number;
  /** Absent: the method's default (defaultLearningRate), else TRAIN_DEFAULTS.learningRate. */
  lr?: number;
  realLr?: number;
  /** Absent (as the next three): the method's default (defaultRunSettings), else TRAIN_DEFAULTS. */
  realOptimizer?: 'adam' | 'sgd';
  weightDecay?: number;
  schedule?: 'constant' | 'cosine' | 'warmup-cosine';
  warmupEpochs?: number;
  seed: number;
  validation: number;
  trainLimit?: number;
  testLimit?: number;
  bnAffine: boolean;
  surrogate?: string;
  temperature?: number;
  trainSetScale?: number;
  klReweight?: number;
  bbMomentum?: number;
  lambdaInit?: number;
  /** false with --no-mu-lag. */
  muLag?: boolean;
  bopThreshold?: number;
  bopGamma?: number;
  bopSchedule?: string;
  rank?: number;
  vispaScale?: number;
  vispaWeightDecay?: number;
  ffShift?: number;
  ffPixelShift?: number;
  ffClip?: number;
  ffInit?: number;
  ffSchedule?: string;
  /** false with --no-ff-center. */
  ffCenter?: boolean;
  /** false with --no-ff-project. */
  ffProject?: boolean;
  /** false with --no-ff-project-hidden. */
  ffProjectHidden?: boolean;
  momentum?: number;
  /** true with --channel-scale, false with --no-channel-scale, absent: the method's default. */
  channelScale?: boolean;
  recalibrateBn?: boolean;
  out?: string;
  resume?: string;
  json: boolean;
  threads?: number;
  backend: BackendKind;
}

export function configFromFlags(flags: TrainFlags): TrainConfig {
  if (!isDatasetName(flags.data))
    throw new ConfigError('--data', `one of ${DATASET_NAMES.join(', ')}`, flags.data);
  const methodOptions: Record<string, string | number | boolean> = {};
  if (flags.surrogate !== undefined) methodOptions.surrogate = flags.surrogate;
  // BayesBiNN and Bop: only the flags given, so configs stay minimal and other methods reject strays.
  if (flags.temperature !== undefined) methodOptions.temperature = flags.temperature;
  if (flags.trainSetScale !== undefined) methodOptions.trainSetScale = flags.trainSetScale;
  if (flags.klReweight !== undefined) methodOptions.klReweight = flags.klReweight;
  if (flags.bbMomentum !== undefined) methodOptions.bbMomentum = flags.bbMomentum;
  if (flags.lambdaInit !== undefined) methodOptions.lambdaInit = flags.lambdaInit;
  if (flags.muLag === false) methodOptions.muLag = false;
  if (flags.bopThreshold !== undefined) methodOptions.bopThreshold = flags.bopThreshold;
  if (flags.bopGamma !== undefined) methodOptions.bopGamma = flags.bopGamma;
  if (flags.bopSchedule !== undefined) methodOptions.bopSchedule = flags.bopSchedule;
  // VISPA: rank, S, momentum and the decay of m and Z only when given (VISPA_DEFAULTS otherwise).
  if (flags.rank !== undefined) methodOptions.rank = flags.rank;
  if (flags.vispaScale !== undefined) methodOptions.scale = flags.vispaScale;
  if (flags.momentum !== undefined) methodOptions.momentum = flags.momentum;
  if (flags.vispaWeightDecay !== undefined) methodOptions.weightDecay = flags.vispaWeightDecay;
  // Float-free: only the flags given.
  if (flags.ffShift !== undefined) methodOptions.ffShift = flags.ffShift;
  if (flags.ffPixelShift !== undefined) methodOptions.ffPixelShift = flags.ffPixelShift;
  if (flags.ffClip !== undefined) methodOptions.ffClip = flags.ffClip;
  if (flags.ffInit !== undefined) methodOptions.ffInit = flags.ffInit;
  if (flags.ffSchedule !== undefined) methodOptions.ffSchedule = flags.ffSchedule;
  if (flags.ffCenter === false) methodOptions.ffCenter = false;
  if (flags.ffProject === false) methodOptions.ffProject = false;
  if (flags.ffProjectHidden === false) methodOptions.ffProjectHidden = false;
  const learningRate = flags.lr ?? defaultLearningRate(flags.method) ?? TRAIN_DEFAULTS.learningRate;
  const run = defaultRunSettings(flags.method, flags.epochs);
  const weightDecay = flags.weightDecay ?? run.realWeightDecay ?? TRAIN_DEFAULTS.realWeightDecay;
  const schedule = flags.schedule ?? run.schedule ?? TRAIN_DEFAULTS.schedule;
  const warmupEpochs =
    flags.warmupEpochs ??
    (schedule === 'warmup-cosine' ? run.warmupEpochs : undefined) ??
    TRAIN_DEFAULTS.warmupEpochs;
  const channelScale = flags.channelScale ?? run.channelScale ?? false;
  const recalibrateBatchNorm = flags.recalibrateBn ?? run.recalibrateBatchNorm ?? false;
  return {
    ...TRAIN_DEFAULTS,
    data: flags.data,
    dataDir: flags.dataDir ?? null,
    model: flags.model,
    method: flags.method,
    activations: flags.activations,
    methodOptions,
    epochs: flags.epochs,
    batchSize: flags.batchSize,
    learningRate,
    realLearningRate: flags.realLr ?? run.realLearningRate ?? flags.lr ?? TRAIN_DEFAULTS.realLearningRate,
    realOptimizer: flags.realOptimizer ?? run.realOptimizer ?? TRAIN_DEFAULTS.realOptimizer,
    realWeightDecay: weightDecay,
    schedule,
    warmupEpochs,
    seed: flags.seed,
    validationFraction: flags.validation,
    trainLimit: flags.trainLimit ?? null,
    testLimit: flags.testLimit ?? null,
    batchNormAffine: flags.bnAffine,
    ...(channelScale ? { channelScale } : {}),
    ...(recalibrateBatchNorm ? { recalibrateBatchNorm } : {}),
  };
}

/** The flags every training command shares (train, demo, continual). */
export function addTrainingFlags(command: Command): Command {
  return command
    .option('--data <name>', `data set (${DATASET_NAMES.join(', ')})`, 'fashion-mnist')
    .option('--data-dir <dir>', 'folder searched first for the data set files')
    .option('--model <name>', `model (${MODEL_NAMES.join(', ')})`, 'mlp-2x2048')
    .option('--method <name>', `training method (${METHOD_NAMES.join(', ')})`, 'ste')
    .option(
      '--activations <kind>',
      'real, or binary: 1-bit activations into every binary layer after the first',
      parseChoice('--activations', ['real', 'binary'] as const),
      'real',
    )
    .option('--epochs <n>', 'epochs', parsePositiveInteger('--epochs'), TRAIN_DEFAULTS.epochs)
    .option(
      '--batch-size <n>',
      'mini-batch size',
      parsePositiveInteger('--batch-size'),
      TRAIN_DEFAULTS.batchSize,
    )
    .option(
      '--lr <x>',
      `learning rate of the method (default: ${TRAIN_DEFAULTS.learningRate}; bayesbinn ${defaultLearningRate('bayesbinn')}; vispa ${defaultLearningRate('vispa')})`,
      parseNumber('--lr'),
    )
    .option(
      '--real-lr <x>',
      `learning rate of the real-valued parameters' optimizer (default: --lr; vispa ${defaultRunSettings('vispa', 1).realLearningRate})`,
      parseNumber('--real-lr'),
    )
    .option(
      '--real-optimizer <kind>',
      `optimizer of real-valued parameters: adam or sgd (momentum 0.9) (default: ${TRAIN_DEFAULTS.realOptimizer}; vispa sgd)`,
      parseChoice('--real-optimizer', ['adam', 'sgd'] as const),
    )
    .option(
      '--weight-decay <x>',
      `weight decay of the real-valued optimizer (default: ${TRAIN_DEFAULTS.realWeightDecay}; vispa ${defaultRunSettings('vispa', 1).realWeightDecay})`,
      parseNumber('--weight-decay'),
    )
    .option(
      '--schedule <kind>',
      `constant, cosine or warmup-cosine (per iteration) (default: ${TRAIN_DEFAULTS.schedule}; vispa warmup-cosine)`,
      parseChoice('--schedule', ['constant', 'cosine', 'warmup-cosine'] as const),
    )
    .option(
      '--warmup-epochs <x>',
      `linear warm-up length for warmup-cosine (default: ${TRAIN_DEFAULTS.warmupEpochs}; vispa min(5, epochs/10))`,
      parseNumber('--warmup-epochs'),
    )
    .option(
      '--seed <n>',
      'seed of the one generator (data order, initialisation, sampling)',
      parseInteger('--seed'),
      TRAIN_DEFAULTS.seed,
    )
    .option(
      '--validation <fraction>',
      'fraction of the training set held out',
      parseNumber('--validation'),
      TRAIN_DEFAULTS.validationFraction,
    )
    .option(
      '--train-limit <n>',
      'use only the first n training examples',
      parsePositiveInteger('--train-limit'),
    )
    .option(
      '--test-limit <n>',
      'evaluate only the first n test examples',
      parsePositiveInteger('--test-limit'),
    )
    .option('--bn-affine', 'learn batch-norm scale and shift (trained by Adam)', false)
    .option('--surrogate <kind>', 'ste: identity or clipped-identity')
    .option(
      '--rank <K>',
      'vispa: rank K of the covariance factor Z (default 4; 0 = the diagonal / LP view, deterministic)',
      parseInteger('--rank'),
    )
    .option(
      '--vispa-scale <S>',
      'vispa: the constant S, r ~ N(0, I/S) and m^2 + |z|^2/S = 1 (default 100)',
      parseNumber('--vispa-scale'),
    )
    .option('--momentum <x>', 'vispa: SGD momentum on m and Z (default 0.9)', parseNumber('--momentum'))
    .option(
      '--vispa-weight-decay <x>',
      'vispa: weight decay on m and Z (default 0; --weight-decay is for the real-valued parameters)',
      parseNumber('--vispa-weight-decay'),
    )
    .option(
      '--channel-scale',
      'learnable per-channel scale after each binary layer (VISPA Alpha; default: on for vispa)',
    )
    .option('--no-channel-scale', 'no per-channel scale')
    .option(
      '--recalibrate-bn',
      'after each epoch, re-estimate batch-norm statistics for the deterministic network (default: on for vispa)',
    )
    .option('--no-recalibrate-bn', 'keep the batch-norm statistics accumulated during training')
    .option(
      '--temperature <tau>',
      'bayesbinn: Gumbel-softmax temperature (default 1e-10)',
      parseNumber('--temperature'),
    )
    .option(
      '--train-set-scale <x>',
      'bayesbinn: N = training examples * x (default 1; 10 with augmentation)',
      parseNumber('--train-set-scale'),
    )
    .option(
      '--kl-reweight <x>',
      'bayesbinn: weight of the prior (KL) term (default 1)',
      parseNumber('--kl-reweight'),
    )
    .option(
      '--bb-momentum <beta>',
      'bayesbinn: momentum with bias correction (default 0)',
      parseNumber('--bb-momentum'),
    )
    .option('--lambda-init <x>', 'bayesbinn: initial |lambda| (default 10)', parseNumber('--lambda-init'))
    .option('--no-mu-lag', 'bayesbinn: use tanh(current lambda) instead of the official one-step-lagged mu')
    .option('--bop-threshold <x>', 'bop: flip threshold (default 1e-8)', parseNumber('--bop-threshold'))
    .option(
      '--bop-gamma <x>',
      'bop: adaptivity rate of the gradient average (default 1e-4)',
      parseNumber('--bop-gamma'),
    )
    .option(
      '--bop-schedule <which>',
      `bop: hyperparameters that follow the learning-rate schedule's shape (${BOP_SCHEDULES.join(', ')}; default none)`,
      parseChoice('--bop-schedule', BOP_SCHEDULES),
    )
    .option(
      '--ff-shift <k>',
      `float-free: right shift of the integer counter update, learning rate 2^-k (default ${FLOAT_FREE_DEFAULTS.shift})`,
      parseInteger('--ff-shift'),
    )
    .option(
      '--ff-pixel-shift <k>',
      `float-free: extra shift of the first layer, whose inputs are 8-bit pixels (default ${FLOAT_FREE_DEFAULTS.pixelShift})`,
      parseInteger('--ff-pixel-shift'),
    )
    .option(
      '--ff-clip <c>',
      `float-free: int16 counters are clamped to [-c, c] (default ${FLOAT_FREE_DEFAULTS.clip})`,
      parseInteger('--ff-clip'),
    )
    .option(
      '--ff-init <c>',
      'float-free: initial counters uniform in [-c, c] (default 0: c = clip * sqrt(6 / (fan_in + fan_out)))',
      parseInteger('--ff-init'),
    )
    .option(
      '--ff-schedule <kind>',
      `float-free: ${FLOAT_FREE_SCHEDULES.join(' or ')}: the shift grows by one each time the remaining steps halve (default ${FLOAT_FREE_DEFAULTS.schedule})`,
      parseChoice('--ff-schedule', FLOAT_FREE_SCHEDULES),
    )
    .option('--no-ff-center', 'float-free: do not backpropagate through the centring (batch-norm mean)')
    .option(
      '--no-ff-project',
      "float-free: keep the output error's component along the logits (batch norm's variance term is on by default)",
    )
    .option('--no-ff-project-hidden', 'float-free: no variance term (sign approximation) for hidden errors')
    .option(
      '--threads <n>',
      'threads of the wasm backend (default: the number of cores)',
      parsePositiveInteger('--threads'),
    )
    .option(
      '--backend <kind>',
      'wasm or reference',
      parseChoice('--backend', ['wasm', 'reference'] as const),
      'wasm',
    )
    .option('--json', 'print one JSON object per epoch and a final result object on stdout', false);
}

export async function openBackend(kind: BackendKind, threads: number | undefined): Promise<Backend> {
  return createBackend(kind === 'wasm' ? { kind, threads } : { kind, dtype: 'float32' });
}

export async function loadSplits(config: TrainConfig): Promise<{ train: Dataset; test: Dataset }> {
  if (!isDatasetName(config.data))
    throw new ConfigError('--data', `one of ${DATASET_NAMES.join(', ')}`, config.data);
  const common = {
    cacheDir: defaultCacheDir(),
    ...(config.dataDir !== null ? { dataDir: config.dataDir } : {}),
  };
  const [trainSet, testSet] = await Promise.all([
    loadDataset(config.data, { ...common, split: 'train' }),
    loadDataset(config.data, { ...common, split: 'test' }),
  ]);
  return { train: trainSet, test: testSet };
}

function formatEpoch(r: EpochRecord, epochs: number): string {
  const val = r.validationAccuracy === null ? '' : `  val acc ${r.validationAccuracy.toFixed(4)}`;
  return (
    `epoch ${r.epoch}/${epochs}  loss ${r.trainLoss.toFixed(4)}  train acc ${r.trainAccuracy.toFixed(4)}${val}` +
    `  ${Math.round(r.samplesPerSecond)} samples/s  ${r.stepMilliseconds.toFixed(1)} ms/step  (${r.seconds.toFixed(1)} s)`
  );
}

/** Progress on a terminal: a bar with ETA, loss, accuracy and samples/s; nothing when stderr is not a TTY. */
function progressReporter(): { onBatch(p: BatchProgress): void; stop(): void } {
  if (!process.stderr.isTTY) return { onBatch: () => undefined, stop: () => undefined };
  const bar = new SingleBar({
    stream: process.stderr,
    format:
      'epoch {epoch} [{bar}] {percentage}% | ETA {eta_formatted} | loss {loss} | acc {acc} | {sps} samples/s',
    hideCursor: true,
    clearOnComplete: true,
  });
  let currentEpoch = -1;
  return {
    onBatch(p) {
      const payload = {
        epoch: `${p.epoch}/${p.epochs}`,
        loss: p.loss.toFixed(4),
        acc: p.accuracy.toFixed(4),
        sps: Math.round(p.samplesPerSecond),
      };
      if (p.epoch !== currentEpoch) {
        if (currentEpoch !== -1) bar.stop();
        bar.start(p.batches, p.batch, payload);
        currentEpoch = p.epoch;
      } else {
        bar.update(p.batch, payload);
      }
    },
    stop() {
      if (currentEpoch !== -1) bar.stop();
      currentEpoch = -1;
    },
  };
}

export interface TrainInvocation {
  readonly config: TrainConfig;
  readonly outDir: string;
  readonly resume: boolean;
  readonly json: boolean;
  readonly backend: BackendKind;
  readonly threads: number | undefined;
}

/** Runs training and prints as the flags ask; returns the result for commands that go on (demo). */
/** Catches unknown names and bad values before any data is read or threads are started. */
export function checkConfig(config: TrainConfig): void {
  validateConfig(config);
  if (!isDatasetName(config.data))
    throw new ConfigError('--data', `one of ${DATASET_NAMES.join(', ')}`, config.data);
  if (!isModelName(config.model))
    throw new ConfigError('--model', `one of ${MODEL_NAMES.join(', ')}`, config.model);
  createMethod(config.method, config.methodOptions).dispose();
}

export async function runTrain(inv: TrainInvocation): Promise<TrainResult> {
  if (!inv.resume) checkConfig(inv.config);
  const backend = await openBackend(inv.backend, inv.threads);
  try {
    let config = inv.config;
    // A resumed run keeps the config it was started with; the checkpoint says which data it needs.
    if (inv.resume) config = loadCheckpoint(join(inv.outDir, CHECKPOINT_FILE)).meta.config;
    const data = await loadSplits(config);
    const progress = progressReporter();
    const result = await train({
      config,
      backend,
      train: data.train,
      test: data.test,
      outDir: inv.outDir,
      resume: inv.resume,
      callbacks: {
        onBatch: progress.onBatch,
        onEpoch(record) {
          progress.stop();
          if (inv.json) process.stdout.write(`${JSON.stringify({ type: 'epoch', ...record })}\n`);
          else process.stderr.write(`${formatEpoch(record, config.epochs)}\n`);
        },
      },
    });
    progress.stop();
    if (inv.json) {
      process.stdout.write(
        `${JSON.stringify({
          type: 'result',
          testAccuracy: result.test.accuracy,
          testNll: result.test.nll,
          testEce: result.test.ece,
          samplesPerSecond: result.samplesPerSecond,
          checkpoint: result.checkpoint,
          config,
        })}\n`,
      );
    } else {
      process.stdout.write(
        `test accuracy ${result.test.accuracy.toFixed(4)}  NLL ${result.test.nll.toFixed(4)}  ECE ${result.test.ece.toFixed(4)}` +
          `  (${result.test.count} examples)\ntraining ${Math.round(result.samplesPerSecond)} samples/s; checkpoint ${result.checkpoint}\n`,
      );
    }
    return result;
  } finally {
    backend.dispose();
  }
}

export function trainCommand(): Command {
  const command = new Command('train').description('train a binary neural network');
  addTrainingFlags(command)
    .option('--out <dir>', 'output folder (checkpoint, metrics.jsonl)')
    .option('--resume <dir>', 'continue the run whose checkpoint is in <dir> (its saved config is used)')
    .action(async (flags: TrainFlags) => {
      const outDir = flags.resume ?? flags.out ?? `runs/${flags.model}-${flags.method}-seed${flags.seed}`;
      await runTrain({
        config: configFromFlags(flags),
        outDir,
        resume: flags.resume !== undefined,
        json: flags.json,
        backend: flags.backend,
        threads: flags.threads,
      });
    });
  return command;
}
