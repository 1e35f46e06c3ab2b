/** `onebit train`: flags -> TrainConfig -> library; prints progress, epoch lines or JSON lines. */
import { join } from 'node:path';
import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { createBackend } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import { DATASET_NAMES, isDatasetName, loadDataset, type Dataset } from '../data/dataset.js';
import { createMethod, METHOD_NAMES } from '../methods/registry.js';
import { isModelName, MODEL_NAMES } from '../nn/models.js';
import {
  ConfigError,
  TRAIN_DEFAULTS,
  validateConfig,
  type BackendKind,
  type TrainConfig,
} from '../train/config.js';
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
  lr: number;
  realLr?: number;
  realOptimizer: 'adam' | 'sgd';
  weightDecay: number;
  schedule: 'constant' | 'cosine' | 'warmup-cosine';
  warmupEpochs: number;
  seed: number;
  validation: number;
  trainLimit?: number;
  testLimit?: number;
  bnAffine: boolean;
  surrogate?: string;
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
    learningRate: flags.lr,
    realLearningRate: flags.realLr ?? flags.lr,
    realOptimizer: flags.realOptimizer,
    realWeightDecay: flags.weightDecay,
    schedule: flags.schedule,
    warmupEpochs: flags.warmupEpochs,
    seed: flags.seed,
    validationFraction: flags.validation,
    trainLimit: flags.trainLimit ?? null,
    testLimit: flags.testLimit ?? null,
    batchNormAffine: flags.bnAffine,
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
    .option('--lr <x>', 'learning rate of the method', parseNumber('--lr'), TRAIN_DEFAULTS.learningRate)
    .option(
      '--real-lr <x>',
      'learning rate of Adam on real-valued parameters (default: --lr)',
      parseNumber('--real-lr'),
    )
    .option(
      '--real-optimizer <kind>',
      'optimizer of real-valued parameters: adam or sgd (momentum 0.9)',
      parseChoice('--real-optimizer', ['adam', 'sgd'] as const),
      TRAIN_DEFAULTS.realOptimizer,
    )
    .option(
      '--weight-decay <x>',
      'weight decay of the real-valued optimizer',
      parseNumber('--weight-decay'),
      TRAIN_DEFAULTS.realWeightDecay,
    )
    .option(
      '--schedule <kind>',
      'constant, cosine or warmup-cosine (per iteration)',
      parseChoice('--schedule', ['constant', 'cosine', 'warmup-cosine'] as const),
      TRAIN_DEFAULTS.schedule,
    )
    .option(
      '--warmup-epochs <x>',
      'linear warm-up length for warmup-cosine',
      parseNumber('--warmup-epochs'),
      TRAIN_DEFAULTS.warmupEpochs,
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
