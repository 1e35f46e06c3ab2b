/**
 * Learning-rate schedules: pure functions from a step index to a learning rate.
 *
 * A step is a 0-based count of whatever unit the caller steps in: iterations (VISPA sets the rate every
 * iteration) or epochs (PyTorch's CosineAnnealingLR is usually stepped per epoch). `totalSteps` is in the
 * same unit. `perIteration` turns a schedule over global iterations into a function of (epoch, iteration).
 *
 * - constant:      lr
 * - cosine:        minLr + (lr - minLr) * (1 + cos(pi * t / T)) / 2            (CosineAnnealingLR closed form,
 *                  Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts); held at minLr for t >= T.
 * - warmup-cosine: lr * t / W for t < W (linear warm-up from 0), then
 *                  minLr + (lr - minLr) * (1 + cos(pi * (t - W) / (T - W))) / 2
 *                  (VISPA, docs/methods.md#schedules; minLr = 0 reproduces its formula exactly, including
 *                  lr = 0 at t = 0).
 */

/** Learning rate as a function of the 0-based step. */
export type Schedule = (step: number) => number;

export type ScheduleKind = 'constant' | 'cosine' | 'warmup-cosine';

export interface ScheduleConfig {
  readonly kind: ScheduleKind;
  /** Peak (and, for 'constant', only) learning rate. */
  readonly lr: number;
  /** Length of the linear warm-up, in steps; 'warmup-cosine' only (default 0). */
  readonly warmupSteps?: number;
  /** Steps in the whole run; the cosine reaches minLr here. */
  readonly totalSteps: number;
  /** Floor of the cosine (PyTorch's eta_min, default 0). */
  readonly minLr?: number;
}

function checkStep(step: number): void {
  if (!(step >= 0) || !Number.isFinite(step)) {
    throw new RangeError(`schedule step must be a finite number >= 0, got ${step}`);
  }
}

function checkRate(name: string, value: number): void {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`schedule: ${name} must be a finite number >= 0, got ${value}`);
  }
}

function checkTotal(totalSteps: number): void {
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new RangeError(`schedule: totalSteps must be a positive integer, got ${totalSteps}`);
  }
}

/** Half-cosine from `hi` at fraction 0 to `lo` at fraction 1. */
function halfCosine(hi: number, lo: number, fraction: number): number {
  return lo + ((hi - lo) * (1 + Math.cos(Math.PI * fraction))) / 2;
}

export function constantSchedule(lr: number): Schedule {
  checkRate('lr', lr);
  return (step) => {
    checkStep(step);
    return lr;
  };
}

export function cosineSchedule(config: { lr: number; totalSteps: number; minLr?: number }): Schedule {
  const { lr, totalSteps } = config;
  const minLr = config.minLr ?? 0;
  checkRate('lr', lr);
  checkRate('minLr', minLr);
  checkTotal(totalSteps);
  return (step) => {
    checkStep(step);
    // PyTorch's closed form is periodic past T_max; a run that overshoots should not warm back up.
    return step >= totalSteps ? minLr : halfCosine(lr, minLr, step / totalSteps);
  };
}

export function warmupCosineSchedule(config: {
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  minLr?: number;
}): Schedule {
  const { lr, warmupSteps, totalSteps } = config;
  const minLr = config.minLr ?? 0;
  checkRate('lr', lr);
  checkRate('minLr', minLr);
  checkTotal(totalSteps);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0 || warmupSteps >= totalSteps) {
    throw new RangeError(
      `schedule: warmupSteps must be an integer in [0, totalSteps = ${totalSteps}), got ${warmupSteps}`,
    );
  }
  return (step) => {
    checkStep(step);
    if (step < warmupSteps) return (lr * step) / warmupSteps;
    if (step >= totalSteps) return minLr;
    return halfCosine(lr, minLr, (step - warmupSteps) / (totalSteps - warmupSteps));
  };
}

/** Builds a schedule from a plain config (as read from a run's config file). */
export function scheduleFromConfig(config: ScheduleConfig): Schedule {
  switch (config.kind) {
    case 'constant':
      checkTotal(config.totalSteps);
      return constantSchedule(config.lr);
    case 'cosine':
      if ((config.warmupSteps ?? 0) !== 0) {
        throw new RangeError(`schedule 'cosine' has no warm-up; use 'warmup-cosine' for warmupSteps`);
      }
      return cosineSchedule(config);
    case 'warmup-cosine':
      return warmupCosineSchedule({ ...config, warmupSteps: config.warmupSteps ?? 0 });
    default: {
      const kind: never = config.kind;
      throw new RangeError(`unknown schedule kind '${String(kind)}'`);
    }
  }
}

/**
 * A schedule over global iterations as a function of (epoch, iteration within the epoch), both 0-based:
 * step = epoch * itersPerEpoch + iteration, as VISPA computes it.
 */
export function perIteration(
  schedule: Schedule,
  itersPerEpoch: number,
): (epoch: number, iteration: number) => number {
  if (!Number.isInteger(itersPerEpoch) || itersPerEpoch < 1) {
    throw new RangeError(`itersPerEpoch must be a positive integer, got ${itersPerEpoch}`);
  }
  return (epoch, iteration) => {
    if (!Number.isInteger(iteration) || iteration < 0 || iteration >= itersPerEpoch) {
      throw new RangeError(`iteration must be an integer in [0, ${itersPerEpoch}), got ${iteration}`);
    }
    return schedule(epoch * itersPerEpoch + iteration);
  };
}
