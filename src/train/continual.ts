/**
 * Continual learning: one run trained on a stream of tasks, one after another, and tested after each task
 * on every task seen so far (docs/methods.md#continual-learning, BayesBiNN's `main_permute_mnist_CL.py`).
 *
 * Streams (src/data/tasks.ts):
 * - 'permuted': every task is the whole data set under its own fixed pixel permutation (task 1 unpermuted);
 * - 'split':    the classes cut into `tasks` consecutive groups (10 classes, 5 tasks: {0,1}, {2,3}, ...),
 *               single-head: the model keeps one output per class and is tested on all of them.
 *
 * Per task, as the official script: the method's `beginTask` hook runs first (BayesBiNN: the posterior of
 * the previous task becomes the prior, lambda0 <- lambda); the learning-rate schedule restarts (the
 * schedule of the run, over `config.epochs` epochs of this task); everything else carries over (method
 * state, momentum and step count, the real-valued optimizer, batch-norm statistics, the generator).
 *
 * Metrics after task t (1-based), with a[t][j] the test accuracy on task j after training task t:
 * - average accuracy: mean over j <= t of a[t][j];
 * - forgetting (Chaudhry et al. 2018, "Riemannian Walk"): mean over j < t of
 *   (max over l in j..t-1 of a[l][j]) - a[t][j], i.e. the best accuracy task j ever had before now minus its
 *   accuracy now; 0 after the first task. Negative values mean backward transfer.
 *
 * The training examples are the training split after `config.validationFraction` and `config.trainLimit`
 * (the continual command defaults the fraction to 0, as the official script); the normalisation statistics
 * are those of that whole training set, shared by all tasks. Test accuracy uses the mode, or an ensemble of
 * `testSamples` sampled networks (averaged logits) for methods with a weight distribution; with
 * `recalibrateBatchNorm` the network evaluated (mode or each sample) first gets batch-norm statistics of its
 * own on the current task's data.
 *
 * With an output folder, after each task (once it is evaluated) the run is set to its deployed network, as
 * the trainer does before a checkpoint (the mode; with `recalibrateBatchNorm`, batch-norm statistics
 * recalibrated for it), and saved atomically as `task-<t>.ckpt` in the trainer's checkpoint format, so
 * `onebit eval`, `summary` and `export` take it; its metadata adds `continual: { stream, task, tasks,
 * testSamples }`. `resume` goes on from such a checkpoint: the run's state (weights, method and optimizer
 * state, step, generator) is restored and training continues with the next task, exactly as if it had
 * never stopped; the accuracy history comes from metrics.jsonl, whose lines of later tasks (a run killed
 * mid-task) are dropped.
 * `metrics.jsonl` gets one JSON line per epoch (`type: 'epoch'`) and one per task's evaluation
 * (`type: 'task'`, with the checkpoint's file name). The run is set to its deployed network after every
 * task whether or not there is an output folder, so writing one changes no result.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import { subsetDataset } from '../data/pipeline.js';
import { permuteDataset, permutedTasks, splitTasks } from '../data/tasks.js';
import { validateConfig, type TrainConfig } from '../config/train-config.js';
import { evaluate, type Evaluation } from './evaluate.js';
import { createRun, disposeRun, restoreRun, runCheckpointMeta, runTensors } from './run.js';
import { Rng } from '../tensor/rng.js';
import { saveCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { METRICS_FILE, dataRecord, prepareData, readMetrics } from './trainer.js';
import { trainEpoch, type BatchProgress } from './epoch.js';

export const STREAM_KINDS = ['permuted', 'split'] as const;
export type StreamKind = (typeof STREAM_KINDS)[number];

/** The checkpoint file written after task `task` (1-based) in the output folder. */
export function taskCheckpointFile(task: number): string {
  return `task-${task}.ckpt`;
}

/** Whether `name` is a task checkpoint's file name (taskCheckpointFile). */
export function isTaskCheckpointFile(name: string): boolean {
  return /^task-\d+\.ckpt$/.test(name);
}

/** The files a continual run writes in its output folder (an earlier run's, to replace). */
export function isContinualOutputFile(name: string): boolean {
  return name === METRICS_FILE || isTaskCheckpointFile(name);
}

export interface ContinualOptions {
  /** The run's config; `epochs` is the number of epochs per task. */
  readonly config: TrainConfig;
  readonly backend: Backend;
  /** The base training and test sets the tasks are made from. */
  readonly train: Dataset;
  readonly test: Dataset;
  readonly stream: StreamKind;
  readonly tasks: number;
  /** Sampled networks averaged at test time (methods with a distribution); 0 = the mode. */
  readonly testSamples: number;
  /** Largest batch evaluation runs at (default 500; at least the training batch size). */
  readonly evaluationBatch?: number;
  readonly callbacks?: ContinualCallbacks;
  /** Output folder: a checkpoint per task and metrics.jsonl (see the top of this file); absent: nothing is written. */
  readonly outDir?: string | null;
  /**
   * Called once, right after the first task's checkpoint is written, with the output folder; the run goes
   * on in the folder it returns (the CLI's --overwrite swaps a new run in there, as train's does).
   */
  readonly onFirstCheckpoint?: (outDir: string) => string;
  /** Go on from this task checkpoint of the run in `outDir` (its latest); the config must be its config. */
  readonly resume?: { readonly path: string; readonly checkpoint: Checkpoint };
}

/** What a task checkpoint's metadata adds (see the top of this file). */
export interface ContinualCheckpointMeta {
  readonly stream: StreamKind;
  /** 1-based: the task just trained. */
  readonly task: number;
  readonly tasks: number;
  readonly testSamples: number;
}

/** The continual metadata of a task checkpoint, or null when it has none (or lacks a field). */
export function continualMeta(checkpoint: Checkpoint): ContinualCheckpointMeta | null {
  const value = (checkpoint.meta as unknown as { continual?: unknown }).continual;
  if (typeof value !== 'object' || value === null) return null;
  const c = value as Record<string, unknown>;
  const positive = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
  if (
    !(STREAM_KINDS as readonly unknown[]).includes(c.stream) ||
    !positive(c.task) ||
    !positive(c.tasks) ||
    !(Number.isInteger(c.testSamples) && (c.testSamples as number) >= 0)
  )
    return null;
  return {
    stream: c.stream as StreamKind,
    task: c.task,
    tasks: c.tasks,
    testSamples: c.testSamples as number,
  };
}

export interface ContinualEpoch {
  /** 0-based task index and 1-based epoch within the task. */
  readonly task: number;
  readonly epoch: number;
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  readonly seconds: number;
}

export interface TaskRecord {
  /** 0-based index of the task just trained. */
  readonly task: number;
  readonly trainExamples: number;
  /** Loss and accuracy over the task's last epoch. */
  readonly trainLoss: number;
  readonly trainAccuracy: number;
  /** Test accuracy on tasks 0..task, after training this task. */
  readonly accuracies: readonly number[];
  /** Full test metrics on tasks 0..task. */
  readonly evaluations: readonly Evaluation[];
  readonly averageAccuracy: number;
  readonly forgetting: number;
  /** Wall time of this task's training (evaluation excluded) and of its evaluation. */
  readonly trainSeconds: number;
  readonly evaluationSeconds: number;
  /** The checkpoint written after this task; null without an output folder. */
  readonly checkpoint: string | null;
}

export interface ContinualResult {
  readonly tasks: readonly TaskRecord[];
  /** After the final task. */
  readonly averageAccuracy: number;
  readonly forgetting: number;
  /** accuracy[t][j]: test accuracy on task j after training task t (j <= t). */
  readonly accuracy: readonly (readonly number[])[];
}

export interface ContinualCallbacks {
  /** After each step, as train's (the epoch and its batches are the current task's). */
  onBatch?(progress: BatchProgress): void;
  onEpoch?(record: ContinualEpoch): void;
  onTask?(record: TaskRecord): void;
}

/** One task's training and test data. */
export interface StreamTask {
  readonly name: string;
  readonly train: Dataset;
  readonly test: Dataset;
}

/**
 * The tasks of a stream, built lazily (a permuted task is a full copy of the data set, so only the
 * current task's training copy needs to live). Test sets are built once, up front.
 */
export function buildStream(
  kind: StreamKind,
  tasks: number,
  train: Dataset,
  test: Dataset,
  seed: number,
): { readonly count: number; train(t: number): Dataset; readonly tests: readonly Dataset[] } {
  if (!Number.isInteger(tasks) || tasks < 1)
    throw new ConfigError('--tasks', 'a positive integer', String(tasks));
  if (kind === 'permuted') {
    const [c, h, w] = train.shape;
    const permutations = permutedTasks({ tasks, size: c * h * w, seed });
    return {
      count: tasks,
      train: (t) => (t === 0 ? train : permuteDataset(train, permutations[t], `${train.name}-task${t + 1}`)),
      tests: permutations.map((p, t) =>
        t === 0 ? test : permuteDataset(test, p, `${test.name}-task${t + 1}`),
      ),
    };
  }
  if (train.classes % tasks !== 0) {
    throw new ConfigError(
      '--tasks',
      `a divisor of the ${train.classes} classes for a split stream`,
      String(tasks),
    );
  }
  const classesPerTask = train.classes / tasks;
  const trainSplit = splitTasks(train, { classesPerTask });
  const testSplit = splitTasks(test, { classesPerTask });
  for (const t of [...trainSplit, ...testSplit]) {
    if (t.indices.length === 0) {
      throw new ConfigError('--data', `examples of classes ${t.classes.join(', ')}`, 'none');
    }
  }
  return {
    count: tasks,
    train: (t) =>
      subsetDataset(train, trainSplit[t].indices, `${train.name}-classes${trainSplit[t].classes.join('')}`),
    tests: testSplit.map((t) => subsetDataset(test, t.indices, `${test.name}-classes${t.classes.join('')}`)),
  };
}

/** Average accuracy and forgetting after task `t` from the accuracy matrix (rows 0..t filled). */
export function continualMetrics(
  accuracy: readonly (readonly number[])[],
  t: number,
): { averageAccuracy: number; forgetting: number } {
  const row = accuracy[t];
  let sum = 0;
  for (let j = 0; j <= t; j++) sum += row[j];
  let forgetting = 0;
  for (let j = 0; j < t; j++) {
    let best = -Infinity;
    for (let l = j; l < t; l++) best = Math.max(best, accuracy[l][j]);
    forgetting += best - row[j];
  }
  return { averageAccuracy: sum / (t + 1), forgetting: t > 0 ? forgetting / t : 0 };
}

export async function trainContinual(options: ContinualOptions): Promise<ContinualResult> {
  const { config, backend, callbacks } = options;
  let outDir = options.outDir ?? null;
  validateConfig(config);
  if (!(Number.isInteger(options.testSamples) && options.testSamples >= 0)) {
    throw new ConfigError('--test-samples', 'an integer >= 0', String(options.testSamples));
  }
  const { train: trainData, normalization } = prepareData(config, options.train);
  if (trainData.classes !== options.test.classes) {
    throw new ConfigError(
      '--data',
      `a test set with ${trainData.classes} classes`,
      String(options.test.classes),
    );
  }
  const testData =
    config.testLimit !== null && config.testLimit < options.test.count
      ? subsetDataset(
          options.test,
          Array.from({ length: config.testLimit }, (_, i) => i),
          options.test.name,
        )
      : options.test;
  const stream = buildStream(options.stream, options.tasks, trainData, testData, config.seed);

  let current = stream.train(0);
  const stepsOf = (d: Dataset): number => Math.ceil(d.count / config.batchSize);
  const evaluationBatch = Math.max(config.batchSize, options.evaluationBatch ?? 500);
  const run = createRun(
    config,
    backend,
    {
      inputShape: trainData.shape,
      classes: trainData.classes,
      stepsPerEpoch: stepsOf(current),
      trainingExamples: current.count,
    },
    evaluationBatch,
    normalization,
  );
  try {
    if (options.testSamples > 0 && !run.learner.stochastic) {
      throw new ConfigError(
        '--test-samples',
        `0 for ${config.method}, which has no weight distribution to sample (its deterministic network is tested)`,
        String(options.testSamples),
      );
    }
    let metricsPath = outDir === null ? null : join(outDir, METRICS_FILE);
    const accuracy: number[][] = [];
    let step = 0;
    let startTask = 0;
    const resume = options.resume;
    if (resume !== undefined) {
      if (metricsPath === null)
        throw new ConfigError('resume', 'the output folder of the run to resume', 'none');
      const saved = continualMeta(resume.checkpoint);
      const expected = `a task checkpoint of a ${options.stream} stream of ${stream.count} tasks with ${options.testSamples} test samples`;
      if (saved === null)
        throw new ConfigError(
          '--resume',
          expected,
          `${resume.path}, which has no continual metadata (written by an older onebit?)`,
        );
      if (
        saved.stream !== options.stream ||
        saved.tasks !== stream.count ||
        saved.testSamples !== options.testSamples
      ) {
        throw new ConfigError(
          '--resume',
          expected,
          `${resume.path}: ${saved.stream}, ${saved.tasks} tasks, ${saved.testSamples} test samples`,
        );
      }
      restoreRun(run, resume.path, resume.checkpoint);
      step = resume.checkpoint.meta.step;
      startTask = saved.task;
      // Lines up to the checkpoint's task; a run killed mid-task left lines of the next one.
      const kept = readMetrics(metricsPath).filter(
        (r) => r.type === 'data' || (typeof r.task === 'number' && r.task <= startTask),
      );
      for (const r of kept)
        if (r.type === 'task' && Array.isArray(r.accuracies)) accuracy.push(r.accuracies as number[]);
      if (accuracy.length !== startTask) {
        throw new ConfigError(
          '--resume',
          `the task lines of tasks 1..${startTask} in ${metricsPath}`,
          `${accuracy.length} of them`,
        );
      }
      writeFileSync(metricsPath, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    } else if (outDir !== null && metricsPath !== null) {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(metricsPath, '');
    }
    const appendMetrics = (line: Record<string, unknown>): void => {
      if (metricsPath !== null) appendFileSync(metricsPath, `${JSON.stringify(line)}\n`);
    };
    // Which files the tasks are made from, as train records them.
    appendMetrics({
      ...dataRecord(options.train, options.test),
      ...(resume !== undefined ? { resumedAtTask: startTask } : {}),
    });
    await run.learner.prepare();
    // The last task checkpoint written, for the message if a later task diverges.
    let lastCheckpoint: string | null = resume?.path ?? null;
    const runStepsPerTask = config.epochs * run.shape.stepsPerEpoch;
    const ensemble = options.testSamples > 0;
    const records: TaskRecord[] = [];
    for (let t = startTask; t < stream.count; t++) {
      if (t > 0) current = stream.train(t);
      const stepsPerEpoch = stepsOf(current);
      const taskSteps = config.epochs * stepsPerEpoch;
      const taskStart = step;
      run.learner.beginTask(t, {
        trainingExamples: current.count,
        stepsPerEpoch,
        learningRate: config.learningRate,
      });
      let trainLoss = 0;
      let trainAccuracy = 0;
      let order: Uint32Array = new Uint32Array(0);
      const taskStarted = performance.now();
      for (let epoch = 1; epoch <= config.epochs; epoch++) {
        const totals = await trainEpoch(run, current, {
          epoch,
          epochs: config.epochs,
          batchSize: config.batchSize,
          stepsBefore: step,
          // The task's progress mapped onto the run's schedule: the schedule restarts every task and ends
          // with it, whatever the task's size.
          scheduleStep: (s) => Math.floor(((s - taskStart) * runStepsPerTask) / taskSteps),
          ...(callbacks?.onBatch !== undefined ? { onBatch: callbacks.onBatch } : {}),
          lastCheckpoint,
        });
        step += totals.steps;
        trainLoss = totals.loss;
        trainAccuracy = totals.accuracy;
        order = totals.order;
        const epochRecord = { task: t, epoch, trainLoss, trainAccuracy, seconds: totals.seconds };
        appendMetrics({ type: 'epoch', ...epochRecord, task: t + 1 });
        callbacks?.onEpoch?.(epochRecord);
      }
      const trainSeconds = (performance.now() - taskStarted) / 1000;
      const evalStart = performance.now();
      // --recalibrate-bn: batch-norm statistics for the network evaluated (the mode, or each sample), on
      // the current task's data (trainer.ts, methods/recalibrate.ts).
      const recalibrate = (): void => run.learner.recalibrate(current, order, config.seed + t);
      const recalibrating = config.recalibrateBatchNorm === true;
      if (recalibrating && !ensemble) {
        run.learner.predict('mode', new Rng(config.seed));
        recalibrate();
      }
      const evaluations: Evaluation[] = [];
      for (let j = 0; j <= t; j++) {
        evaluations.push(
          evaluate(run, stream.tests[j], {
            kind: ensemble ? 'ensemble' : 'mode',
            samples: options.testSamples,
            seed: config.seed,
            ...(recalibrating && ensemble ? { prepareSample: recalibrate } : {}),
          }),
        );
        await new Promise((resolve) => setImmediate(resolve));
      }
      accuracy.push(evaluations.map((e) => e.accuracy));
      const { averageAccuracy, forgetting } = continualMetrics(accuracy, t);
      const evaluationSeconds = (performance.now() - evalStart) / 1000;
      // The deployed network, as the trainer leaves it before a checkpoint: the mode (draws nothing), with
      // batch-norm statistics of its own under --recalibrate-bn (the mode's were computed above unless the
      // ensemble's samples replaced them). Done with or without an output folder, so results are the same.
      run.learner.predict('mode', new Rng(config.seed));
      if (recalibrating && ensemble) recalibrate();
      let checkpoint: string | null = null;
      if (outDir !== null) {
        checkpoint = join(outDir, taskCheckpointFile(t + 1));
        const meta = {
          ...runCheckpointMeta(run, (t + 1) * config.epochs, step),
          continual: {
            stream: options.stream,
            task: t + 1,
            tasks: stream.count,
            testSamples: options.testSamples,
          },
        };
        saveCheckpoint(checkpoint, meta, runTensors(run));
        if (t === 0 && options.onFirstCheckpoint !== undefined) {
          outDir = options.onFirstCheckpoint(outDir);
          metricsPath = join(outDir, METRICS_FILE);
          checkpoint = join(outDir, taskCheckpointFile(t + 1));
        }
      }
      lastCheckpoint = checkpoint ?? lastCheckpoint;
      const record: TaskRecord = {
        task: t,
        trainExamples: current.count,
        trainLoss,
        trainAccuracy,
        accuracies: accuracy[t],
        evaluations,
        averageAccuracy,
        forgetting,
        trainSeconds,
        evaluationSeconds,
        checkpoint,
      };
      appendMetrics({
        type: 'task',
        task: t + 1,
        tasks: stream.count,
        trainExamples: record.trainExamples,
        trainLoss,
        trainAccuracy,
        accuracies: record.accuracies,
        nll: evaluations.map((e) => e.nll),
        averageAccuracy,
        forgetting,
        trainSeconds,
        evaluationSeconds,
        checkpoint: checkpoint === null ? null : taskCheckpointFile(t + 1),
      });
      records.push(record);
      callbacks?.onTask?.(record);
    }
    const { averageAccuracy, forgetting } = continualMetrics(accuracy, accuracy.length - 1);
    return { tasks: records, averageAccuracy, forgetting, accuracy };
  } finally {
    disposeRun(run);
  }
}
