/**
 * `onebit continual`: train one network on a stream of tasks (permuted or split) and report, after each
 * task, the test accuracy on every task seen so far, their average and the forgetting. With `--out DIR`,
 * a checkpoint per task (`task-<t>.ckpt`) and `metrics.jsonl` are written there (train/continual.ts); an
 * existing folder that holds anything is refused unless `--overwrite`.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { BAYES_BINN_CONTINUAL_DEFAULTS } from '../methods/bayes-binn.js';
import {
  continualMeta,
  isTaskCheckpointFile,
  STREAM_KINDS,
  taskCheckpointFile,
  trainContinual,
  type ContinualCheckpointMeta,
  type StreamKind,
  type TaskRecord,
} from '../train/continual.js';
import { loadCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import type { TrainConfig } from '../config/train-config.js';
import { checkDataDirFlag, checkThreadsFlag } from './flag-checks.js';
import { CONTINUAL_RUN_FILES, prepareRunFolder } from './run-folder.js';
import {
  optionGiven,
  parseChoice,
  parseNonNegativeInteger,
  parsePositiveInteger,
  parsePositiveNumber,
} from './options.js';
import {
  addTrainingFlags,
  checkConfig,
  configFromFlags,
  loadSplits,
  openBackend,
  printDataSources,
  progressReporter,
  DEFAULT_PROGRESS_SECONDS,
  type TrainFlags,
} from './train-command.js';

interface ContinualFlags extends TrainFlags {
  stream: StreamKind;
  tasks: number;
  epochsPerTask?: number;
  testSamples?: number;
  overwrite?: boolean;
  progressEvery?: number;
  resume?: string;
}

/**
 * The config and test samples of a continual run. BayesBiNN gets the continual-learning defaults of the
 * official script (docs/methods.md#continual-learning) for whatever the user did not set: tau 1e-2, lr 1e-3,
 * 100 test samples; with --posterior, that named setting instead (and still 100 test samples).
 */
export function continualConfig(flags: ContinualFlags): { config: TrainConfig; testSamples: number } {
  // A named posterior (--posterior) is a whole setting: the continual defaults do not apply over it.
  const bayes = flags.method === 'bayesbinn' && flags.posterior === undefined;
  const withDefaults: ContinualFlags = {
    ...flags,
    epochs: flags.epochsPerTask ?? flags.epochs,
    ...(bayes && flags.lr === undefined ? { lr: BAYES_BINN_CONTINUAL_DEFAULTS.learningRate } : {}),
    // The expected scale has no temperature (its samples are the tau -> 0 limit).
    ...(bayes && flags.temperature === undefined && flags.bbScale !== 'expected'
      ? { temperature: BAYES_BINN_CONTINUAL_DEFAULTS.temperature }
      : {}),
  };
  const testSamples =
    flags.testSamples ?? (flags.method === 'bayesbinn' ? BAYES_BINN_CONTINUAL_DEFAULTS.testSamples : 0);
  return { config: configFromFlags(withDefaults), testSamples };
}

/**
 * Refuses flags that would do nothing here: --epochs next to --epochs-per-task (which wins), a validation
 * split (continual learning evaluates none: the held-out examples would only be dropped), --overwrite
 * without --out, --threads with the reference backend, --data-dir for data that is not read from files.
 */
function checkContinualFlags(flags: ContinualFlags, command: Command): void {
  if (flags.epochsPerTask !== undefined && optionGiven(command, 'epochs')) {
    throw new ConfigError(
      '--epochs',
      'no --epochs with --epochs-per-task (both set the epochs of each task; give one)',
      String(flags.epochs),
    );
  }
  if (flags.validation !== 0) {
    throw new ConfigError(
      '--validation',
      '0 for continual learning (no validation set is evaluated; --train-limit trains on fewer examples)',
      String(flags.validation),
    );
  }
  if (flags.augment === true && flags.stream === 'permuted') {
    throw new ConfigError(
      '--augment',
      "--stream split (crops and flips of a permuted task's scrambled pixels mean nothing)",
      '--stream permuted',
    );
  }
  if (flags.overwrite === true && flags.out === undefined)
    throw new ConfigError('--overwrite', 'an --out folder to write over', 'no --out');
  checkThreadsFlag(flags.backend, flags.threads);
  checkDataDirFlag(flags.data, flags.dataDir);
}

/** Flags a resumed continual run accepts: where the data is now, and how to run and print. */
const RESUME_FLAGS = new Set(['resume', 'dataDir', 'threads', 'backend', 'json', 'progressEvery']);

/** Refuses, on --resume, every typed flag that would change the experiment (the checkpoint's settings are the run). */
function checkResumeFlags(command: Command): void {
  for (const option of command.options) {
    const key = option.attributeName();
    if (RESUME_FLAGS.has(key) || !optionGiven(command, key)) continue;
    const flag = option.long ?? key;
    throw new ConfigError(
      flag,
      `no ${flag} with --resume: a resumed run keeps the settings it was started with (it takes only --data-dir, --threads, --backend, --json and --progress-every)`,
      flag,
    );
  }
}

/** The run's latest task checkpoint and its continual metadata; a folder without one is refused. */
function latestTaskCheckpoint(dir: string): {
  path: string;
  checkpoint: Checkpoint;
  meta: ContinualCheckpointMeta;
} {
  const names = existsSync(dir) ? readdirSync(dir).filter(isTaskCheckpointFile) : [];
  if (names.length === 0) {
    throw new ConfigError(
      '--resume',
      'a continual run folder holding task-<t>.ckpt',
      `${dir}, which holds none (a run stopped during its first task starts again: --out ${dir} --overwrite)`,
    );
  }
  const task = Math.max(...names.map((n) => Number(/\d+/.exec(n)?.[0])));
  const path = join(dir, taskCheckpointFile(task));
  const checkpoint = loadCheckpoint(path);
  const meta = continualMeta(checkpoint);
  if (meta === null) {
    throw new ConfigError(
      '--resume',
      'a task checkpoint with its continual settings',
      `${path}, written by an older onebit without them`,
    );
  }
  return { path, checkpoint, meta };
}

function formatTask(r: TaskRecord, tasks: number): string {
  const accs = r.accuracies.map((a, j) => `T${j + 1} ${a.toFixed(4)}`).join('  ');
  return (
    `task ${r.task + 1}/${tasks}: train loss ${r.trainLoss.toFixed(4)}  train acc ${r.trainAccuracy.toFixed(4)}` +
    `  (${r.trainSeconds.toFixed(1)} s training, ${r.evaluationSeconds.toFixed(1)} s testing)\n` +
    `  test accuracy  ${accs}\n` +
    `  average ${r.averageAccuracy.toFixed(4)}  forgetting ${r.forgetting.toFixed(4)}`
  );
}

export function continualCommand(): Command {
  const command = new Command('continual').description(
    'continual learning: train on a stream of tasks, test on all tasks seen so far after each',
  );
  addTrainingFlags(command)
    .option(
      '--stream <kind>',
      'permuted (a fixed pixel permutation per task) or split (classes in consecutive groups, single-head)',
      parseChoice('--stream', STREAM_KINDS),
      'permuted',
    )
    .option('--tasks <n>', 'number of tasks', parsePositiveInteger('--tasks'), 5)
    .option(
      '--epochs-per-task <n>',
      'epochs on each task (default: --epochs)',
      parsePositiveInteger('--epochs-per-task'),
    )
    .option(
      '--test-samples <T>',
      'sampled networks averaged at test time (methods with a distribution; default 100 for bayesbinn, else 0 = mode)',
      parseNonNegativeInteger('--test-samples'),
    )
    .option('--out <dir>', 'output folder: a checkpoint per task (task-1.ckpt, ...) and metrics.jsonl')
    .option(
      '--progress-every <seconds>',
      `when stderr is not a terminal, a progress line this often (default: ${DEFAULT_PROGRESS_SECONDS})`,
      parsePositiveNumber('--progress-every'),
    )
    .option('--overwrite', "write into an --out folder that holds files (an earlier run's are replaced)")
    .option(
      '--resume <dir>',
      'go on from the latest task checkpoint of the continual run in <dir>, with its settings',
    )
    .action(async (flags: ContinualFlags, command: Command) => {
      let config: TrainConfig;
      let testSamples: number;
      let stream = flags.stream;
      let tasks = flags.tasks;
      let out = flags.out;
      let resume: { path: string; checkpoint: Checkpoint } | undefined;
      if (flags.resume !== undefined) {
        checkResumeFlags(command);
        checkThreadsFlag(flags.backend, flags.threads);
        const saved = latestTaskCheckpoint(flags.resume);
        resume = { path: saved.path, checkpoint: saved.checkpoint };
        config =
          flags.dataDir !== undefined
            ? { ...saved.checkpoint.meta.config, dataDir: flags.dataDir }
            : saved.checkpoint.meta.config;
        ({ testSamples, stream, tasks } = saved.meta);
        out = flags.resume;
      } else {
        checkContinualFlags(flags, command);
        ({ config, testSamples } = continualConfig(flags));
        checkConfig(config);
      }
      const backend = await openBackend(flags.backend, flags.threads);
      // As train's: an --out that holds anything is refused unless --overwrite, which swaps the new run in
      // after its first task's checkpoint; a run that fails before it removes only what it created.
      const folder =
        flags.out === undefined
          ? null
          : prepareRunFolder(flags.out, flags.overwrite === true, CONTINUAL_RUN_FILES);
      try {
        const data = await loadSplits(config);
        printDataSources(data.train, data.test, flags.json);
        const progress = progressReporter(flags.progressEvery ?? DEFAULT_PROGRESS_SECONDS);
        const result = await trainContinual({
          config,
          backend,
          train: data.train,
          test: data.test,
          stream,
          tasks,
          testSamples,
          outDir: folder?.trainIn ?? out ?? null,
          ...(resume !== undefined ? { resume } : {}),
          ...(folder?.onFirstCheckpoint !== undefined ? { onFirstCheckpoint: folder.onFirstCheckpoint } : {}),
          callbacks: {
            onBatch: progress.onBatch,
            onEpoch(e) {
              progress.stop();
              if (!flags.json) {
                process.stderr.write(
                  `  task ${e.task + 1} epoch ${e.epoch}/${config.epochs}  loss ${e.trainLoss.toFixed(4)}  train acc ${e.trainAccuracy.toFixed(4)}  (${e.seconds.toFixed(1)} s)\n`,
                );
              }
            },
            onTask(r) {
              if (flags.json) {
                process.stdout.write(
                  `${JSON.stringify({
                    type: 'task',
                    task: r.task + 1,
                    tasks,
                    trainExamples: r.trainExamples,
                    trainLoss: r.trainLoss,
                    trainAccuracy: r.trainAccuracy,
                    accuracies: r.accuracies,
                    nll: r.evaluations.map((e) => e.nll),
                    averageAccuracy: r.averageAccuracy,
                    forgetting: r.forgetting,
                    trainSeconds: r.trainSeconds,
                    evaluationSeconds: r.evaluationSeconds,
                    checkpoint: r.checkpoint,
                  })}\n`,
                );
              } else {
                process.stdout.write(`${formatTask(r, tasks)}\n`);
              }
            },
          },
        });
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({
              type: 'result',
              stream,
              tasks,
              testSamples,
              averageAccuracy: result.averageAccuracy,
              forgetting: result.forgetting,
              accuracy: result.accuracy,
              config,
            })}\n`,
          );
        } else {
          process.stdout.write(
            `after ${tasks} ${stream} tasks (${config.method}, ${testSamples > 0 ? `${testSamples} test samples` : 'mode'}): ` +
              `average accuracy ${result.averageAccuracy.toFixed(4)}  forgetting ${result.forgetting.toFixed(4)}\n`,
          );
          if (out !== undefined)
            process.stdout.write(
              `checkpoints ${join(out, 'task-1.ckpt')} .. task-${tasks}.ckpt and metrics.jsonl in ${out}\n`,
            );
        }
      } catch (error) {
        throw folder === null ? error : folder.failed(error);
      } finally {
        backend.dispose();
      }
    });
  // Continual-learning defaults differ from `train`: the small MLP of the official script, no validation split.
  for (const [name, value] of [
    ['model', 'mlp-100'],
    ['validation', 0],
  ] as const) {
    const option = command.options.find((o) => o.attributeName() === name);
    if (option !== undefined) option.defaultValue = value;
    command.setOptionValueWithSource(name, value, 'default');
  }
  return command;
}
