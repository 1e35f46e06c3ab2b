/**
 * One epoch of training (`trainEpoch`), shared by `train`, continual learning and the in-page training of
 * the web app: it reads and writes no file, so it runs in a browser too.
 */
import type { Dataset } from '../data/dataset.js';
import { TrainingDivergedError } from '../errors.js';
import type { StepProgress } from './run-records.js';
import type { Run } from './run.js';

export interface BatchProgress {
  readonly epoch: number;
  readonly epochs: number;
  readonly batch: number;
  readonly batches: number;
  /** 1-based count of optimisation steps so far in the run. */
  readonly step: number;
  /** This batch's mean loss. */
  readonly batchLoss: number;
  /** Running means over the epoch so far. */
  readonly loss: number;
  readonly accuracy: number;
  readonly samplesPerSecond: number;
}

/** What a callback can ask of the loop: `'stop'` ends training after the current step or epoch. */
export type CallbackAnswer = 'stop' | void;

/** One epoch's totals. */
export interface EpochTotals {
  readonly loss: number;
  readonly accuracy: number;
  readonly seen: number;
  readonly seconds: number;
  /** The learning rate of the epoch's last step. */
  readonly learningRate: number;
  /** Steps taken (fewer than the epoch's when a callback or the signal stopped it). */
  readonly steps: number;
  readonly stopped: 'early-stopping' | 'aborted' | null;
  /** The epoch's order of the examples (recalibration reads its first ones). */
  readonly order: Uint32Array;
}

export interface EpochPlan {
  readonly epoch: number;
  readonly epochs: number;
  readonly batchSize: number;
  /** Steps taken in the run before this epoch. */
  readonly stepsBefore: number;
  /** The 0-based step at which the schedules are read, from the run step (continual learning remaps it). */
  readonly scheduleStep?: (step: number) => number;
  readonly onBatch?: (progress: BatchProgress) => CallbackAnswer;
  /** Called after every step with that step's own figures (the run's step records, run-records.ts). */
  readonly onStep?: (progress: StepProgress) => void;
  readonly signal?: AbortSignal;
  /** The last good checkpoint, for the divergence message. */
  readonly lastCheckpoint: string | null;
}

/**
 * One epoch of training: shuffles the order from the identity with the run's generator, then takes one
 * learner step per batch. Shared by `train` and continual learning. Throws TrainingDivergedError on a loss
 * that is not finite (nothing is updated by that step).
 */
export async function trainEpoch(run: Run, data: Dataset, plan: EpochPlan): Promise<EpochTotals> {
  const order = new Uint32Array(data.count);
  // From the identity each epoch, so an epoch's order depends only on the generator state.
  for (let i = 0; i < order.length; i++) order[i] = i;
  run.rng.shuffle(order);
  const batches = Math.ceil(data.count / plan.batchSize);
  let lossSum = 0;
  let correct = 0;
  let seen = 0;
  let learningRate = 0;
  let steps = 0;
  let stopped: EpochTotals['stopped'] = null;
  const started = performance.now();
  for (let b = 0; b < batches; b++) {
    if (plan.signal?.aborted === true) {
      stopped = 'aborted';
      break;
    }
    const first = b * plan.batchSize;
    const n = Math.min(plan.batchSize, data.count - first);
    const step = plan.stepsBefore + steps;
    const scheduleStep = plan.scheduleStep?.(step) ?? step;
    learningRate = run.schedule(scheduleStep);
    const result = run.learner.trainBatch(data, order, first, n, {
      step: step + 1,
      learningRate,
      scheduleStep,
    });
    if (!Number.isFinite(result.loss))
      throw new TrainingDivergedError(plan.epoch, step + 1, plan.lastCheckpoint);
    steps++;
    lossSum += result.loss * n;
    correct += result.correct;
    seen += n;
    plan.onStep?.({
      epoch: plan.epoch,
      step: step + 1,
      batch: b + 1,
      batches,
      batchLoss: result.loss,
      examples: n,
      correct: result.correct,
      learningRate,
    });
    const answer = plan.onBatch?.({
      epoch: plan.epoch,
      epochs: plan.epochs,
      batch: b + 1,
      batches,
      step: step + 1,
      batchLoss: result.loss,
      loss: lossSum / seen,
      accuracy: correct / seen,
      samplesPerSecond: seen / Math.max((performance.now() - started) / 1000, 1e-9),
    });
    if (answer === 'stop') {
      stopped = 'early-stopping';
      break;
    }
    // Let signals and progress rendering through now and then.
    if (b % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return {
    loss: seen > 0 ? lossSum / seen : NaN,
    accuracy: seen > 0 ? correct / seen : NaN,
    seen,
    seconds: (performance.now() - started) / 1000,
    learningRate,
    steps,
    stopped,
    order,
  };
}
