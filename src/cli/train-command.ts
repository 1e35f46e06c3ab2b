/** `onebit train`: flags -> TrainConfig -> library; prints progress, epoch lines or JSON lines. */
import { ConfigError } from '../errors.js';
import { basename, join } from 'node:path';
import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { createBackend } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import { DATASET_NAMES, isDatasetName, loadDataset, type Dataset } from '../data/dataset.js';
import { METHOD_NAMES, resolveMethodConfig } from '../methods/registry.js';
import { trainConfig } from '../train/run-config.js';
import { loadImageFolder } from '../data/image-folder.js';
import { existsSync, statSync } from 'node:fs';
import { checkModelArgument, isSpecPath, readSpecFile } from './model-argument.js';
import { MODEL_NAMES } from '../nn/models.js';
import {
  TRAIN_DEFAULTS,
  validateConfig,
  type BackendKind,
  type TrainConfig,
} from '../config/train-config.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import {
  CHECKPOINT_FILE,
  train,
  type BatchProgress,
  type EpochRecord,
  type TrainResult,
} from '../train/trainer.js';
import { methodFlagOptions, methodOptionsFromFlags, methodRunDefaultsHelp } from './method-flags.js';
import { defaultCacheDir, parseChoice, parseInteger, parseNumber, parsePositiveInteger } from './options.js';

export interface TrainFlags {
  data: string;
  dataDir?: string;
  model: string;
  method: string;
  activations: 'real' | 'binary';
  epochs: number;
  batchSize: number;
  /** Absent: the method's default (its definition's runDefaults), else TRAIN_DEFAULTS.learningRate. */
  lr?: number;
  realLr?: number;
  /** Absent (as the next three): the method's default (its definition's runDefaults), else TRAIN_DEFAULTS. */
  realOptimizer?: 'adam' | 'sgd';
  weightDecay?: number;
  schedule?: 'constant' | 'cosine' | 'warmup-cosine';
  warmupEpochs?: number;
  seed: number;
  validation: number;
  trainLimit?: number;
  testLimit?: number;
  bnAffine: boolean;
  /** true with --channel-scale, false with --no-channel-scale, absent: the method's default. */
  channelScale?: boolean;
  recalibrateBn?: boolean;
  out?: string;
  resume?: string;
  json: boolean;
  threads?: number;
  backend: BackendKind;
  /**
   * The methods' own flags (src/methods/*.ts declare them), under commander's attribute names: `rank`,
   * `vispaScale` for --vispa-scale, `muLag` (false) for --no-mu-lag, ...
   */
  [methodFlag: string]: unknown;
}

/** Whether `--data` names a folder of PNG images (one subfolder per class) rather than a named set. */
function isImageFolder(data: string): boolean {
  return !isDatasetName(data) && existsSync(data) && statSync(data).isDirectory();
}

/** Throws ConfigError unless `--data` names a data set or an image folder. */
function checkDataArgument(data: string): void {
  if (!isDatasetName(data) && !isImageFolder(data))
    throw new ConfigError(
      '--data',
      `one of ${DATASET_NAMES.join(', ')}, or a folder of PNG images in one subfolder per class`,
      data,
    );
}

export function configFromFlags(flags: TrainFlags): TrainConfig {
  checkDataArgument(flags.data);
  checkModelArgument(flags.model);
  const spec = isSpecPath(flags.model) ? readSpecFile(flags.model) : null;
  return trainConfig({
    data: flags.data,
    dataDir: flags.dataDir ?? null,
    model: flags.model,
    ...(spec !== null ? { spec } : {}),
    method: flags.method,
    activations: flags.activations,
    // Only the method flags given, so configs stay minimal and a method rejects another one's options.
    methodOptions: methodOptionsFromFlags(flags),
    epochs: flags.epochs,
    batchSize: flags.batchSize,
    learningRate: flags.lr,
    realLearningRate: flags.realLr,
    realOptimizer: flags.realOptimizer,
    realWeightDecay: flags.weightDecay,
    schedule: flags.schedule,
    warmupEpochs: flags.warmupEpochs,
    seed: flags.seed,
    validationFraction: flags.validation,
    trainLimit: flags.trainLimit ?? null,
    testLimit: flags.testLimit ?? null,
    batchNormAffine: flags.bnAffine,
    channelScale: flags.channelScale,
    recalibrateBatchNorm: flags.recalibrateBn,
  });
}

/** The flags every training command shares (train, demo, continual). */
export function addTrainingFlags(command: Command): Command {
  // The per-method defaults in the help are those of a run of the default length (warm-up depends on it).
  const epochs = TRAIN_DEFAULTS.epochs;
  command
    .option(
      '--data <name|dir>',
      `data set (${DATASET_NAMES.join(', ')}), or a folder of PNGs in one subfolder per class`,
      'fashion-mnist',
    )
    .option('--data-dir <dir>', 'folder searched first for the data set files')
    .option('--model <name|file>', `model (${MODEL_NAMES.join(', ')}) or a spec file (.json)`, 'mlp-2x2048')
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
      `learning rate of the method (default: ${TRAIN_DEFAULTS.learningRate}${methodRunDefaultsHelp('learningRate', epochs)})`,
      parseNumber('--lr'),
    )
    .option(
      '--real-lr <x>',
      `learning rate of the real-valued parameters' optimizer (default: --lr${methodRunDefaultsHelp('realLearningRate', epochs)})`,
      parseNumber('--real-lr'),
    )
    .option(
      '--real-optimizer <kind>',
      `optimizer of real-valued parameters: adam or sgd (momentum 0.9) (default: ${TRAIN_DEFAULTS.realOptimizer}${methodRunDefaultsHelp('realOptimizer', epochs)})`,
      parseChoice('--real-optimizer', ['adam', 'sgd'] as const),
    )
    .option(
      '--weight-decay <x>',
      `weight decay of the real-valued optimizer (default: ${TRAIN_DEFAULTS.realWeightDecay}${methodRunDefaultsHelp('realWeightDecay', epochs)})`,
      parseNumber('--weight-decay'),
    )
    .option(
      '--schedule <kind>',
      `constant, cosine or warmup-cosine (per iteration) (default: ${TRAIN_DEFAULTS.schedule}${methodRunDefaultsHelp('schedule', epochs)})`,
      parseChoice('--schedule', ['constant', 'cosine', 'warmup-cosine'] as const),
    )
    .option(
      '--warmup-epochs <x>',
      `linear warm-up length for warmup-cosine (default: ${TRAIN_DEFAULTS.warmupEpochs}${methodRunDefaultsHelp('warmupEpochs', epochs)})`,
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
    .option(
      '--channel-scale',
      `learnable per-channel scale after each binary layer (VISPA Alpha; default: off${methodRunDefaultsHelp('channelScale', epochs)})`,
    )
    .option('--no-channel-scale', 'no per-channel scale')
    .option(
      '--recalibrate-bn',
      `after each epoch, re-estimate batch-norm statistics for the deterministic network (default: off${methodRunDefaultsHelp('recalibrateBatchNorm', epochs)})`,
    )
    .option('--no-recalibrate-bn', 'keep the batch-norm statistics accumulated during training')
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
  // Each method's own flags, generated from its option declarations (src/methods/*.ts), under its heading.
  for (const option of methodFlagOptions()) command.addOption(option);
  return command;
}

export async function openBackend(kind: BackendKind, threads: number | undefined): Promise<Backend> {
  return createBackend(kind === 'wasm' ? { kind, threads } : { kind, dtype: 'float32' });
}

export async function loadSplits(config: TrainConfig): Promise<{ train: Dataset; test: Dataset }> {
  if (isImageFolder(config.data)) {
    const folder = await loadImageFolder(config.data, { seed: config.seed });
    const { classNames } = folder;
    return { train: { ...folder.train, classNames }, test: { ...folder.test, classNames } };
  }
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

/** Catches unknown names and bad values before any data is read or threads are started. */
export function checkConfig(config: TrainConfig): void {
  validateConfig(config);
  checkDataArgument(config.data);
  if (config.spec === undefined) checkModelArgument(config.model);
  resolveMethodConfig(config.method, config.methodOptions);
}

/** Runs training and prints as the flags ask; returns the result for commands that go on (demo). */
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
      const modelLabel = basename(flags.model).replace(/\.json$/, '');
      const outDir = flags.resume ?? flags.out ?? `runs/${modelLabel}-${flags.method}-seed${flags.seed}`;
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
