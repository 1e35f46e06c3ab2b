/**
 * `onebit calibrate`: fits a checkpoint's temperatures again (train/calibration.ts) on its run's validation
 * split: the deterministic network's, and for a method with a weight distribution, the ensemble's averaged
 * prediction for a given number of samples (calibrated apart from the mode, whose probabilities differ).
 * The checkpoint's tensors are written back unchanged; only `calibration` in its metadata is new.
 */
import type { Backend } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import { ConfigError } from '../errors.js';
import { loadCheckpoint, saveCheckpoint, type Calibration } from '../io/checkpoint.js';
import { sampleRecalibration } from './evaluate.js';
import { createRun, disposeRun, restoreRun } from './run.js';
import { calibrateOn, prepareData } from './trainer.js';

export interface CalibrateOptions {
  readonly backend: Backend;
  /** The run's training set (the validation split is taken from it as in training). */
  readonly train: Dataset;
  /** Sampled networks whose averaged prediction gets its own temperature; 0: the mode only. */
  readonly samples: number;
  readonly average: 'logits' | 'probabilities';
  readonly seed: number;
}

/** Fits the temperatures of the checkpoint at `path` and writes it, so calibrated, to `out`. */
export function calibrateCheckpoint(path: string, out: string, options: CalibrateOptions): Calibration {
  const checkpoint = loadCheckpoint(path);
  if (checkpoint.meta.inference === 'stale') {
    throw new ConfigError(
      '<checkpoint>',
      `a current checkpoint (run onebit upgrade ${path} first)`,
      'a version-1 checkpoint',
    );
  }
  const config = checkpoint.meta.config;
  const { validation } = prepareData(config, options.train);
  if (validation === null) {
    throw new ConfigError(
      '<checkpoint>',
      'a run with a validation split to fit the temperature on',
      `${path}, trained with --validation 0`,
    );
  }
  const run = createRun(
    config,
    options.backend,
    {
      inputShape: validation.shape,
      classes: validation.classes,
      stepsPerEpoch: 1,
      trainingExamples: 1,
    },
    Math.max(config.batchSize, 100),
    checkpoint.meta.normalization,
  );
  try {
    restoreRun(run, path, checkpoint);
    if (options.samples > 0 && !run.learner.stochastic) {
      throw new ConfigError(
        '--test-samples',
        `0 for ${config.method}, which has no weight distribution to sample`,
        String(options.samples),
      );
    }
    const mode = calibrateOn(run, validation, { kind: 'mode', seed: options.seed });
    let calibration: Calibration = { mode };
    if (options.samples > 0) {
      // As eval does: a run whose statistics were recalibrated for its mode recalibrates them per sample.
      const ensemble = calibrateOn(run, validation, {
        kind: 'ensemble',
        samples: options.samples,
        average: options.average,
        seed: options.seed,
        prepareSample: sampleRecalibration(run, options.train, options.seed),
      });
      calibration = {
        mode,
        ensemble: {
          ...ensemble,
          samples: options.samples,
          average: options.average,
        },
      };
    }
    // The saved tensors as they were (the live ones may hold the last sample).
    saveCheckpoint(
      out,
      { ...checkpoint.meta, calibration },
      [...checkpoint.tensors].map(([name, value]) => ({ name, value })),
    );
    return calibration;
  } finally {
    disposeRun(run);
  }
}
