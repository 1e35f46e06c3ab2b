/**
 * `onebit continual`: train one network on a stream of tasks (permuted or split) and report, after each
 * task, the test accuracy on every task seen so far, their average and the forgetting.
 */
import { Command } from 'commander';
import { BAYES_BINN_CONTINUAL_DEFAULTS } from '../methods/bayes-binn.js';
import { STREAM_KINDS, trainContinual, type StreamKind, type TaskRecord } from '../train/continual.js';
import type { TrainConfig } from '../config/train-config.js';
import { parseChoice, parseInteger, parsePositiveInteger } from './options.js';
import {
  addTrainingFlags,
  checkConfig,
  configFromFlags,
  loadSplits,
  openBackend,
  type TrainFlags,
} from './train-command.js';

interface ContinualFlags extends TrainFlags {
  stream: StreamKind;
  tasks: number;
  epochsPerTask?: number;
  testSamples?: number;
}

/**
 * The config and test samples of a continual run. BayesBiNN gets the continual-learning defaults of the
 * official script (docs/methods.md#continual-learning) for whatever the user did not set: tau 1e-2, lr 1e-3,
 * 100 test samples.
 */
export function continualConfig(flags: ContinualFlags): { config: TrainConfig; testSamples: number } {
  const bayes = flags.method === 'bayesbinn';
  const withDefaults: ContinualFlags = {
    ...flags,
    epochs: flags.epochsPerTask ?? flags.epochs,
    ...(bayes && flags.lr === undefined ? { lr: BAYES_BINN_CONTINUAL_DEFAULTS.learningRate } : {}),
    ...(bayes && flags.temperature === undefined
      ? { temperature: BAYES_BINN_CONTINUAL_DEFAULTS.temperature }
      : {}),
  };
  const testSamples = flags.testSamples ?? (bayes ? BAYES_BINN_CONTINUAL_DEFAULTS.testSamples : 0);
  return { config: configFromFlags(withDefaults), testSamples };
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
      parseInteger('--test-samples'),
    )
    .action(async (flags: ContinualFlags) => {
      const { config, testSamples } = continualConfig(flags);
      checkConfig(config);
      const backend = await openBackend(flags.backend, flags.threads);
      try {
        const data = await loadSplits(config);
        const result = await trainContinual({
          config,
          backend,
          train: data.train,
          test: data.test,
          stream: flags.stream,
          tasks: flags.tasks,
          testSamples,
          callbacks: {
            onEpoch(e) {
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
                    tasks: flags.tasks,
                    trainExamples: r.trainExamples,
                    trainLoss: r.trainLoss,
                    trainAccuracy: r.trainAccuracy,
                    accuracies: r.accuracies,
                    nll: r.evaluations.map((e) => e.nll),
                    averageAccuracy: r.averageAccuracy,
                    forgetting: r.forgetting,
                    trainSeconds: r.trainSeconds,
                    evaluationSeconds: r.evaluationSeconds,
                  })}\n`,
                );
              } else {
                process.stdout.write(`${formatTask(r, flags.tasks)}\n`);
              }
            },
          },
        });
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({
              type: 'result',
              stream: flags.stream,
              tasks: flags.tasks,
              testSamples,
              averageAccuracy: result.averageAccuracy,
              forgetting: result.forgetting,
              accuracy: result.accuracy,
              config,
            })}\n`,
          );
        } else {
          process.stdout.write(
            `after ${flags.tasks} ${flags.stream} tasks (${config.method}, ${testSamples > 0 ? `${testSamples} test samples` : 'mode'}): ` +
              `average accuracy ${result.averageAccuracy.toFixed(4)}  forgetting ${result.forgetting.toFixed(4)}\n`,
          );
        }
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
