/** `onebit train`: flags -> TrainConfig -> library; prints progress, epoch lines or JSON lines. */
import { ConfigError } from '../errors.js';
import { basename, join } from 'node:path';
import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { createBackend } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import { classSubset } from '../data/pipeline.js';
import { DATASET_NAMES, isDatasetName, loadDataset, type DataSource, type Dataset } from '../data/dataset.js';
import { METHOD_NAMES, methodDefinition, resolveMethodConfig } from '../methods/registry.js';
import type { RunDefaults } from '../methods/definition.js';
import type { LayerSpec } from '../nn/spec.js';
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
import { nextRunFolder, prepareRunFolder } from './run-folder.js';
import { checkDataDirFlag, checkThreadsFlag } from './flag-checks.js';
import {
  METRICS_FILE,
  dataRecord,
  readMetrics,
  readSavedRun,
  resumedConfig,
  type SavedRun,
  recordedBackend,
  RUN_FILE,
  train,
  type EpochRecord,
  type TrainResult,
} from '../train/trainer.js';
import type { BatchProgress } from '../train/epoch.js';
import {
  methodFlagOptions,
  methodOptionsFromFlags,
  methodRunDefaultsHelp,
  posteriorPreset,
} from './method-flags.js';
import type { BayesBinnPosteriorName } from '../methods/bayes-binn.js';
import { checkNativeChoice, describeWhere } from './native-choice.js';
import {
  defaultCacheDir,
  parseChoice,
  parseInteger,
  parseNumber,
  parsePositiveInteger,
  parsePositiveNumber,
  parseClassList,
  optionGiven,
  backendOption,
} from './options.js';

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
  augment?: boolean;
  /** false with --no-calibrate. */
  calibrate?: boolean;
  /** --classes: the class indices kept. */
  classes?: number[];
  /** --posterior: a named BayesBiNN setting, for the method flags and --lr not given. */
  posterior?: BayesBinnPosteriorName;
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

/** Flags that shape a named model; a spec file says all of it itself. */
function checkNamedModelFlags(flags: TrainFlags): void {
  const shaping: [string, boolean][] = [
    ['--activations', flags.activations !== 'real'],
    ['--bn-affine', flags.bnAffine],
    ['--channel-scale', flags.channelScale === true],
    ['--no-channel-scale', flags.channelScale === false],
  ];
  for (const [flag, given] of shaping) {
    if (given) {
      throw new ConfigError(
        flag,
        `no ${flag} with a spec file (--model ${flags.model}): it shapes the named models only; set it per layer in the spec`,
        flag,
      );
    }
  }
}

/**
 * Each run setting a method can leave unused (methods/definition.ts, unusedRunSettings): the flag as the
 * user typed it, or null when not given.
 */
const RUN_SETTING_FLAGS: Record<keyof RunDefaults, (f: TrainFlags) => string | null> = {
  learningRate: (f) => (f.lr !== undefined ? '--lr' : null),
  schedule: (f) => (f.schedule !== undefined ? '--schedule' : null),
  warmupEpochs: (f) => (f.warmupEpochs !== undefined ? '--warmup-epochs' : null),
  realLearningRate: (f) => (f.realLr !== undefined ? '--real-lr' : null),
  realOptimizer: (f) => (f.realOptimizer !== undefined ? '--real-optimizer' : null),
  realWeightDecay: (f) => (f.weightDecay !== undefined ? '--weight-decay' : null),
  channelScale: (f) =>
    f.channelScale === undefined ? null : f.channelScale ? '--channel-scale' : '--no-channel-scale',
  recalibrateBatchNorm: (f) =>
    f.recalibrateBn === undefined ? null : f.recalibrateBn ? '--recalibrate-bn' : '--no-recalibrate-bn',
};

/** Whether a spec has real-valued parameters (what --real-lr, --real-optimizer and --weight-decay train). */
function specHasRealParameters(layers: readonly LayerSpec[]): boolean {
  return layers.some(
    (l) =>
      l.type === 'dense' ||
      l.type === 'conv2d' ||
      l.type === 'prelu' ||
      l.type === 'channelScale' ||
      (l.type === 'batchNorm' && l.affine === true) ||
      (l.type === 'residual' && (specHasRealParameters(l.body) || specHasRealParameters(l.shortcut ?? []))),
  );
}

/** Refuses run-setting flags the method does not read, and real-optimizer flags with nothing to train. */
function checkRunSettingFlags(flags: TrainFlags, config: TrainConfig): void {
  const unused = methodDefinition(config.method).unusedRunSettings;
  for (const setting of unused.settings) {
    const flag = RUN_SETTING_FLAGS[setting](flags);
    if (flag !== null) {
      throw new ConfigError(flag, `no ${flag} with --method ${config.method}`, `${flag} (${unused.reason})`);
    }
  }
  const hasReal =
    config.spec !== undefined
      ? specHasRealParameters(config.spec.layers)
      : config.batchNormAffine || config.channelScale === true;
  for (const setting of ['realLearningRate', 'realOptimizer', 'realWeightDecay'] as const) {
    const flag = RUN_SETTING_FLAGS[setting](flags);
    if (flag !== null && !hasReal) {
      throw new ConfigError(
        flag,
        'a model with real-valued parameters for it to train (--bn-affine, --channel-scale, or a spec with dense, conv2d, prelu, channelScale or affine batchNorm layers)',
        `--model ${flags.model}, whose parameters are all binary`,
      );
    }
  }
}

export function configFromFlags(flags: TrainFlags): TrainConfig {
  checkDataArgument(flags.data);
  checkModelArgument(flags.model);
  const spec = isSpecPath(flags.model) ? readSpecFile(flags.model) : null;
  if (spec !== null) checkNamedModelFlags(flags);
  checkDataDirFlag(flags.data, flags.dataDir);
  const posterior = posteriorPreset(flags);
  const config = trainConfig({
    data: flags.data,
    dataDir: flags.dataDir ?? null,
    model: flags.model,
    ...(spec !== null ? { spec } : {}),
    method: flags.method,
    activations: flags.activations,
    // Only the method flags given, so configs stay minimal and a method rejects another one's options.
    methodOptions: { ...posterior?.options, ...methodOptionsFromFlags(flags) },
    epochs: flags.epochs,
    batchSize: flags.batchSize,
    learningRate: flags.lr ?? posterior?.learningRate,
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
    recalibrateBatchNorm: flags.recalibrateBn ?? posterior?.recalibrateBatchNorm,
    // Stored only when on (off), so configs of runs without them stay as they were.
    ...(flags.augment === true ? { augment: true } : {}),
    ...(flags.calibrate === false ? { calibrate: false } : {}),
    ...(flags.classes !== undefined ? { classes: flags.classes } : {}),
  });
  checkRunSettingFlags(flags, config);
  if (flags.warmupEpochs !== undefined && config.schedule !== 'warmup-cosine') {
    throw new ConfigError(
      '--warmup-epochs',
      `--schedule warmup-cosine with --warmup-epochs (this run's schedule is ${config.schedule})`,
      `--warmup-epochs ${flags.warmupEpochs}`,
    );
  }
  return config;
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
    .option(
      '--data-dir <dir>',
      "folder holding the data set's files (the only place looked in; default: ~/.cache/onebit, then the system copy)",
    )
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
      '--augment',
      'augment training images: random crop with 4 pixels of zero padding and a horizontal flip (the CIFAR recipe)',
      false,
    )
    .option(
      '--threads <n>',
      'threads of the wasm or native backend (default: the number of cores)',
      parsePositiveInteger('--threads'),
    )
    .addOption(backendOption())
    .option('--json', 'print one JSON object per epoch and a final result object on stdout', false);
  // Each method's own flags, generated from its option declarations (src/methods/*.ts), under its heading.
  for (const option of methodFlagOptions()) command.addOption(option);
  return command;
}

/** "native (avx512), 2 threads": the backend a run trains on, for its log. */
export function describeBackend(backend: Backend): string {
  return describeWhere(backend.name, backend.level, backend.threads);
}

export async function openBackend(kind: BackendKind, threads: number | undefined): Promise<Backend> {
  checkThreadsFlag(kind, threads);
  checkNativeChoice(kind, 'wasm or reference');
  return createBackend(kind === 'reference' ? { kind, dtype: 'float32' } : { kind, threads });
}

/**
 * The training and test sets of a config: its data set (or image folder), restricted to `config.classes`
 * when it names some (relabelled 0..k-1; a class the data does not have is refused).
 */
export async function loadSplits(config: TrainConfig): Promise<{ train: Dataset; test: Dataset }> {
  const all = await loadAllClasses(config);
  const classes = config.classes;
  if (classes === undefined) return all;
  const missing = classes.filter((c) => c >= all.train.classes);
  if (missing.length > 0) {
    throw new ConfigError(
      '--classes',
      `class indices below ${all.train.classes} (the classes of ${config.data})`,
      classes.join(','),
    );
  }
  return { train: classSubset(all.train, classes), test: classSubset(all.test, classes) };
}

/** Every class of the config's data (what --classes chooses from; eval --ood holds the rest out). */
export async function loadAllClasses(config: TrainConfig): Promise<{ train: Dataset; test: Dataset }> {
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
  // Both splits load at once; when both fail, the training split's error is the one reported (whichever
  // failed first in time would make the message depend on the race).
  const [trainSet, testSet] = await Promise.allSettled([
    loadDataset(config.data, { ...common, split: 'train' }),
    loadDataset(config.data, { ...common, split: 'test' }),
  ]);
  if (trainSet.status === 'rejected') throw trainSet.reason;
  if (testSet.status === 'rejected') throw testSet.reason;
  return { train: trainSet.value, test: testSet.value };
}

function formatEpoch(r: EpochRecord, epochs: number): string {
  const val = r.validationAccuracy === null ? '' : `  val acc ${r.validationAccuracy.toFixed(4)}`;
  return (
    `epoch ${r.epoch}/${epochs}  loss ${r.trainLoss.toFixed(4)}  train acc ${r.trainAccuracy.toFixed(4)}${val}` +
    `  ${Math.round(r.samplesPerSecond)} samples/s  ${r.stepMilliseconds.toFixed(1)} ms/step  (${r.seconds.toFixed(1)} s)`
  );
}

/**
 * Progress while an epoch runs: on a terminal, a bar with ETA, loss, accuracy and samples/s; elsewhere (a
 * log file, CI), one plain line on stderr every `everySeconds`, so a long epoch is never silent.
 */
export function progressReporter(everySeconds: number): { onBatch(p: BatchProgress): void; stop(): void } {
  if (!process.stderr.isTTY) {
    let last = performance.now();
    return {
      onBatch(p) {
        const now = performance.now();
        if (now - last < everySeconds * 1000) return;
        last = now;
        process.stderr.write(
          `epoch ${p.epoch}/${p.epochs}  batch ${p.batch}/${p.batches}  loss ${p.loss.toFixed(4)}  acc ${p.accuracy.toFixed(4)}  ${Math.round(p.samplesPerSecond)} samples/s\n`,
        );
      },
      stop: () => undefined,
    };
  }
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

/** Seconds between progress lines when stderr is not a terminal. */
export const DEFAULT_PROGRESS_SECONDS = 5;

export interface TrainInvocation {
  /** The config of a new run; null on resume (a resumed run uses the one saved in its folder). */
  readonly config: TrainConfig | null;
  readonly outDir: string;
  readonly resume: boolean;
  /**
   * A new run into a folder that holds another run: train in a new folder beside it and swap it in once
   * the first checkpoint is written (the old run stays whole until then; see run-folder.ts).
   */
  readonly overwrite?: boolean;
  /** With resume: extend (or finish) the run to this many epochs. */
  readonly epochs?: number;
  /** With resume: where the data files are now (checked against the SHA-256 the run recorded). */
  readonly dataDir?: string;
  readonly json: boolean;
  readonly backend: BackendKind;
  readonly threads: number | undefined;
  /** Seconds between progress lines on a non-TTY (default DEFAULT_PROGRESS_SECONDS). */
  readonly progressEvery?: number;
}

/** Catches unknown names and bad values before any data is read or threads are started. */
export function checkConfig(config: TrainConfig): void {
  validateConfig(config);
  checkDataArgument(config.data);
  if (config.spec === undefined) checkModelArgument(config.model);
  resolveMethodConfig(config.method, config.methodOptions, { schedule: config.schedule });
}

/** Prints which files a run loaded (path and SHA-256), as its metrics record them. */
export function printDataSources(train: Dataset, test: Dataset, json: boolean): void {
  const files = (d: Dataset) => d.sources ?? [];
  if (json) {
    process.stdout.write(`${JSON.stringify(dataRecord(train, test))}\n`);
    return;
  }
  for (const [split, d] of [
    ['train', train],
    ['test', test],
  ] as const) {
    for (const f of files(d)) process.stderr.write(`${split} data: ${f.path} (sha256 ${f.sha256})\n`);
    if (files(d).length === 0) process.stderr.write(`${split} data: ${d.name} (generated)\n`);
  }
}

/** Runs training and prints as the flags ask; returns the result for commands that go on (demo). */
export async function runTrain(inv: TrainInvocation): Promise<TrainResult> {
  let config: TrainConfig;
  // A resumed run keeps the config it was started with (read once, here, and handed to the trainer); its
  // folder says which data it needs.
  let saved: SavedRun | null = null;
  if (inv.resume || inv.config === null) {
    saved = readSavedRun(inv.outDir);
    config = resumedConfig(saved, inv.epochs);
    if (inv.dataDir !== undefined) config = { ...config, dataDir: inv.dataDir };
  } else {
    config = inv.config;
    checkConfig(config);
  }
  const savedEpoch = saved?.epoch ?? 0;
  const target = config.epochs;
  const backend = await openBackend(inv.backend, inv.threads);
  const folder = inv.resume ? null : prepareRunFolder(inv.outDir, inv.overwrite === true);
  try {
    const data = await loadSplits(config);
    if (inv.resume) checkRecordedData(inv.outDir, data.train, data.test);
    printDataSources(data.train, data.test, inv.json);
    if (!inv.json) process.stderr.write(`backend: ${describeBackend(backend)}\n`);
    if (inv.resume && savedEpoch >= target) {
      process.stderr.write(
        `${inv.outDir}: the run has done all ${savedEpoch} of its epochs; evaluating its checkpoint (pass --epochs N to extend it)\n`,
      );
    }
    const progress = progressReporter(inv.progressEvery ?? DEFAULT_PROGRESS_SECONDS);
    const result = await train({
      config,
      backend,
      train: data.train,
      test: data.test,
      outDir: folder?.trainIn ?? inv.outDir,
      resume: inv.resume,
      ...(saved !== null ? { saved } : {}),
      ...(inv.resume && inv.epochs !== undefined ? { epochs: inv.epochs } : {}),
      ...(folder?.onFirstCheckpoint !== undefined ? { onFirstCheckpoint: folder.onFirstCheckpoint } : {}),
      callbacks: {
        onBatch: progress.onBatch,
        onEpoch(record) {
          progress.stop();
          if (inv.json) process.stdout.write(`${JSON.stringify({ type: 'epoch', ...record })}\n`);
          else process.stderr.write(`${formatEpoch(record, target)}\n`);
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
          temperature: result.test.temperature,
          ...(result.test.uncalibrated !== null
            ? {
                uncalibrated: {
                  testNll: result.test.uncalibrated.nll,
                  testEce: result.test.uncalibrated.ece,
                },
              }
            : {}),
          samplesPerSecond: result.samplesPerSecond,
          checkpoint: result.checkpoint,
          config,
        })}\n`,
      );
    } else {
      process.stdout.write(
        `test accuracy ${result.test.accuracy.toFixed(4)}  NLL ${result.test.nll.toFixed(4)}  ECE ${result.test.ece.toFixed(4)}` +
          `  (${result.test.count} examples)\n` +
          (result.test.uncalibrated !== null
            ? `calibrated: temperature ${result.test.temperature.toFixed(3)} fitted on the validation split; ` +
              `at temperature 1, NLL ${result.test.uncalibrated.nll.toFixed(4)}  ECE ${result.test.uncalibrated.ece.toFixed(4)}\n`
            : config.calibrate !== false
              ? 'not calibrated: no validation split (--validation 0)\n'
              : '') +
          (result.epochs.length > 0 ? `training ${Math.round(result.samplesPerSecond)} samples/s; ` : '') +
          `checkpoint ${result.checkpoint}\n`,
      );
    }
    return result;
  } catch (error) {
    // A new run that failed removes what it created (nothing, once it has a checkpoint).
    throw folder === null ? error : folder.failed(error);
  } finally {
    backend.dispose();
  }
}

/** Flags a resumed run accepts: how long, where the data is now, and how to run and print. */
const RESUME_FLAGS = new Set(['resume', 'epochs', 'dataDir', 'threads', 'backend', 'json', 'progressEvery']);

/** The flags given on the command line (not defaults), as commander attribute names and as typed. */
function givenFlags(command: Command): Map<string, string> {
  const given = new Map<string, string>();
  for (const option of command.options) {
    const key = option.attributeName();
    if (optionGiven(command, key)) given.set(key, option.long ?? key);
  }
  return given;
}

/** Refuses, on --resume, every flag that would change the experiment (the saved config is the run). */
function checkResumeFlags(given: Map<string, string>): void {
  for (const [key, flag] of given) {
    if (RESUME_FLAGS.has(key)) continue;
    throw new ConfigError(
      flag,
      `no ${flag} with --resume: a resumed run keeps the settings it was started with (it takes only --epochs, --data-dir, --threads, --backend, --json and --progress-every)`,
      flag,
    );
  }
}

/** On resume, the data must be the files the run recorded (metrics.jsonl's first data line). */
function checkRecordedData(outDir: string, train: Dataset, test: Dataset): void {
  const first = readMetrics(join(outDir, METRICS_FILE)).find((r) => r.type === 'data') as
    ReturnType<typeof dataRecord> | undefined;
  if (first === undefined) return;
  for (const [split, now, then] of [
    ['training', train.sources ?? [], first.train.files],
    ['test', test.sources ?? [], first.test.files],
  ] as const) {
    const digests = (files: readonly DataSource[]) => files.map((f) => f.sha256).join(',');
    if (now.length > 0 && then.length > 0 && digests(now) !== digests(then)) {
      throw new ConfigError(
        '--data-dir',
        `the ${split} files the run started with (${then.map((f) => `${f.path} sha256 ${f.sha256.slice(0, 12)}`).join(', ')})`,
        now.map((f) => `${f.path} sha256 ${f.sha256.slice(0, 12)}`).join(', '),
      );
    }
  }
}

interface TrainCommandFlags extends TrainFlags {
  overwrite: boolean;
  progressEvery?: number;
}

export function trainCommand(): Command {
  const command = new Command('train').description('train a binary neural network');
  addTrainingFlags(command)
    .option('--out <dir>', 'output folder (checkpoint, metrics.jsonl); refused if it holds anything')
    .option(
      '--classes <list>',
      'train and test on these classes only (e.g. 0-4 or 0,2,4), relabelled 0..k-1; the others are held out for eval --ood',
      parseClassList('--classes'),
    )
    .option(
      '--no-calibrate',
      'keep temperature 1 (by default the temperature is fitted on the validation split when training ends)',
    )
    .option(
      '--overwrite',
      'replace the run in --out (the old run stays whole until the new one has written its first checkpoint)',
      false,
    )
    .option(
      '--resume <dir>',
      'continue the run in <dir> with its saved settings; with --epochs N, extend it to N epochs',
    )
    .option(
      '--progress-every <seconds>',
      `when stderr is not a terminal, a progress line this often (default: ${DEFAULT_PROGRESS_SECONDS})`,
      parsePositiveNumber('--progress-every'),
    )
    .action(async (flags: TrainCommandFlags, cmd: Command) => {
      const given = givenFlags(cmd);
      const common = {
        json: flags.json,
        backend: flags.backend,
        threads: flags.threads,
        ...(flags.progressEvery !== undefined ? { progressEvery: flags.progressEvery } : {}),
      };
      if (flags.resume !== undefined) {
        checkResumeFlags(given);
        // The backend the run started on, unless told otherwise: another one gives other numbers.
        const recorded = recordedBackend(join(flags.resume, RUN_FILE));
        const backend = given.has('backend') ? flags.backend : (recorded ?? flags.backend);
        if (recorded !== null && backend !== recorded) {
          process.stderr.write(
            `note: ${flags.resume} started on the ${recorded} backend; resuming on ${backend} gives other numbers than an uninterrupted run\n`,
          );
        }
        await runTrain({
          ...common,
          backend,
          config: null,
          outDir: flags.resume,
          resume: true,
          ...(given.has('epochs') ? { epochs: flags.epochs } : {}),
          ...(flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {}),
        });
        return;
      }
      const config = configFromFlags(flags);
      const modelLabel = basename(flags.model).replace(/\.json$/, '');
      const outDir =
        flags.out ?? nextRunFolder(join('runs', `${modelLabel}-${flags.method}-seed${flags.seed}`));
      if (flags.overwrite && flags.out === undefined)
        throw new ConfigError('--overwrite', 'an --out folder to replace', 'no --out');
      await runTrain({ ...common, config, outDir, resume: false, overwrite: flags.overwrite });
    });
  return command;
}
