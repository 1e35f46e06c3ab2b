/**
 * `onebit eval <checkpoint|run folder>`: accuracy, NLL, ECE and entropy of a trained run; reliability-diagram
 * data. Flags that would do nothing for the run given (sampling flags for a method without a weight
 * distribution) are refused, as are outputs that cannot be written, before anything is evaluated.
 */
import { Command } from 'commander';
import { createDataset, type Dataset } from '../data/dataset.js';
import { classSubset, subsetDataset } from '../data/pipeline.js';
import { auroc, selectivePrediction } from '../train/uncertainty.js';
import { ConfigError } from '../errors.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { type BackendKind, type TrainConfig } from '../config/train-config.js';
import { evaluate, sampleRecalibration, type Evaluation } from '../train/evaluate.js';
import { checkSpecFitsData, createRun, disposeRun, restoreRun } from '../train/run.js';
import { CHECKPOINT_FILE } from '../train/trainer.js';
import { Rng } from '../tensor/rng.js';
import type { WeightUncertainty } from '../methods/method.js';
import { checkpointArgument } from './file-kind.js';
import { checkDataDirFlag, checkDistinctOutputs, checkNotInput, checkThreadsFlag } from './flag-checks.js';
import { prepareOutputFile, writeOutputFile } from './output-path.js';
import {
  parseChoice,
  parseInteger,
  parseNonNegativeInteger,
  parsePositiveInteger,
  backendOption,
} from './options.js';
import { loadAllClasses, loadSplits, openBackend } from './train-command.js';

interface EvalFlags {
  data?: string;
  dataDir?: string;
  testSamples: number;
  testLimit?: number;
  reliability?: string;
  entropies?: string;
  average?: 'logits' | 'probabilities';
  seed?: number;
  json: boolean;
  ood: boolean;
  backend: BackendKind;
  threads?: number;
}

/** The metrics of an evaluation; with a temperature, also the same predictions at temperature 1. */
function summarize(e: Evaluation): Record<string, unknown> {
  return {
    accuracy: e.accuracy,
    nll: e.nll,
    ece: e.ece,
    meanEntropy: e.meanEntropy,
    count: e.count,
    temperature: e.temperature,
    ...(e.uncalibrated !== null
      ? {
          uncalibrated: {
            nll: e.uncalibrated.nll,
            ece: e.uncalibrated.ece,
            meanEntropy: e.uncalibrated.meanEntropy,
          },
        }
      : {}),
    ...(e.confidences !== null && e.outcomes !== null && e.count > 0
      ? { selective: selectivePrediction(e.confidences, e.outcomes) }
      : {}),
  };
}

/** The share of examples on which two evaluations predict different classes. */
function disagreement(a: Evaluation, b: Evaluation): number {
  const pa = a.predictions ?? [];
  const pb = b.predictions ?? [];
  if (pa.length === 0 || pa.length !== pb.length) return 0;
  let differ = 0;
  for (let i = 0; i < pa.length; i++) if (pa[i] !== pb[i]) differ++;
  return differ / pa.length;
}

/** Selective prediction in a line: accuracy at each coverage, and the area under the curve. */
function selectiveLine(e: Evaluation): string {
  if (e.confidences === null || e.outcomes === null || e.count === 0) return '';
  const s = selectivePrediction(e.confidences, e.outcomes);
  const at = Object.entries(s.accuracyAtCoverage)
    .map(([c, a]) => `${Math.round(Number(c) * 100)}% ${a.toFixed(4)}`)
    .join('  ');
  return `${''.padEnd(22)} accuracy at coverage ${at}  AUC ${s.auc.toFixed(4)}`;
}

function line(label: string, e: Evaluation): string {
  const before =
    e.uncalibrated === null
      ? ''
      : `  (temperature ${e.temperature.toFixed(3)}; at 1: NLL ${e.uncalibrated.nll.toFixed(4)}  ECE ${e.uncalibrated.ece.toFixed(4)})`;
  return `${label.padEnd(22)} accuracy ${e.accuracy.toFixed(4)}  NLL ${e.nll.toFixed(4)}  ECE ${e.ece.toFixed(4)}  mean entropy ${e.meanEntropy.toFixed(4)}${before}`;
}

export interface EvalReport {
  readonly mode: Evaluation;
  /** Ensemble of sampled networks, when the method has a distribution and samples were asked for. */
  readonly ensemble: Evaluation | null;
  readonly sample: Evaluation | null;
  /** The posterior-mean network (real-valued weights E[w]), for a method that has one; temperature 1. */
  readonly mean: Evaluation | null;
  /** How uncertain the method's distribution is about its weights' signs, for a method that has one. */
  readonly weightUncertainty: WeightUncertainty | null;
  /**
   * True when the run recalibrated its batch-norm statistics for the deterministic network
   * (`--recalibrate-bn`): then every sampled network (and the mean network) is evaluated with statistics
   * recalibrated for it, on the training set, as it would be deployed.
   */
  readonly samplesRecalibrated: boolean;
  /** With --ood: how well the predictive entropy and the top probability tell each set from the test set. */
  readonly ood: Readonly<Record<string, OodScores>> | null;
}

/** AUROC of the predictive entropy and of minus the top probability, for the mode and the ensemble. */
interface OodScores {
  readonly count: number;
  readonly mode: { readonly entropy: number; readonly maxProbability: number };
  readonly ensemble: { readonly entropy: number; readonly maxProbability: number } | null;
}

/** The AUROCs of an out-of-distribution evaluation against the in-distribution one. */
function oodAurocs(inside: Evaluation, outside: Evaluation): { entropy: number; maxProbability: number } {
  const minus = (v: readonly number[] | null) => (v ?? []).map((x) => -x);
  return {
    entropy: auroc(inside.entropies ?? [], outside.entropies ?? []),
    maxProbability: auroc(minus(inside.confidences), minus(outside.confidences)),
  };
}

/**
 * The out-of-distribution sets of --ood, each as many images as the test set evaluated (inputs only; their
 * labels mean nothing): the test images inverted (255 - v), seeded uniform noise, and, for a run trained
 * on some classes (--classes), the test images of the classes held out.
 */
function oodSets(test: Dataset, heldOut: Dataset | null, seed: number): Record<string, Dataset> {
  const labelsOf = (n: number) => new Uint8Array(n);
  const inverted = createDataset({
    name: `${test.name}-inverted`,
    images: test.images.map((v) => 255 - v),
    labels: labelsOf(test.count),
    shape: test.shape,
    classes: test.classes,
  });
  const rng = new Rng(seed);
  const noise = createDataset({
    name: 'uniform-noise',
    images: Uint8Array.from(test.images, () => rng.int(256)),
    labels: labelsOf(test.count),
    shape: test.shape,
    classes: test.classes,
  });
  return { inverted, noise, ...(heldOut !== null ? { heldOutClasses: heldOut } : {}) };
}

/** The seed of the sampling stream when none is given. */
const DEFAULT_SEED = 1;

/**
 * Refuses the sampling flags when nothing is sampled: `--test-samples` > 0 for a method without a weight
 * distribution, `--average` and `--seed` unless sampled networks are evaluated (the mode draws nothing).
 */
function checkSamplingFlags(
  method: string,
  stochastic: boolean,
  options: { testSamples: number; average?: string; seed?: number },
): void {
  if (options.testSamples > 0 && !stochastic) {
    throw new ConfigError(
      '--test-samples',
      `no --test-samples for this run: ${method} has no weight distribution to sample (only its deterministic network is evaluated)`,
      String(options.testSamples),
    );
  }
  const sampling = stochastic && options.testSamples > 0;
  for (const [flag, value] of [
    ['--average', options.average],
    ['--seed', options.seed],
  ] as const) {
    if (value !== undefined && !sampling) {
      throw new ConfigError(
        flag,
        `no ${flag} without sampled networks (it applies to --test-samples > 0 with a method that has a weight distribution; ` +
          `this run: ${method}${stochastic ? '' : ', no distribution'}, --test-samples ${options.testSamples})`,
        String(value),
      );
    }
  }
}

/** Evaluates a checkpoint on the test split of its (or the given) data set. */
export async function evaluateCheckpoint(
  path: string,
  options: {
    data?: string;
    dataDir?: string;
    testSamples: number;
    testLimit?: number;
    /** Seed of the sampling stream (default 1); refused when nothing is sampled. */
    seed?: number;
    backend: BackendKind;
    threads?: number;
    /** How the ensemble combines sampled networks (default 'logits', as the official code); refused when nothing is sampled. */
    average?: 'logits' | 'probabilities';
    /** Also evaluate out-of-distribution inputs (oodSets). */
    ood?: boolean;
  },
): Promise<{ report: EvalReport; config: TrainConfig; test: Dataset }> {
  const checkpoint = loadCheckpoint(path);
  const config: TrainConfig = {
    ...checkpoint.meta.config,
    ...(options.data !== undefined ? { data: options.data } : {}),
    ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
  };
  checkDataDirFlag(config.data, options.dataDir);
  const seed = options.seed ?? DEFAULT_SEED;
  const { train, test } = await loadSplits(config);
  const backend = await openBackend(options.backend, options.threads);
  try {
    const batchSize = Math.max(config.batchSize, 100);
    // Evaluating on other data than the run's: the data must fit the checkpoint's network.
    if (checkpoint.meta.config.spec !== undefined) {
      checkSpecFitsData(
        checkpoint.meta.config.spec,
        { inputShape: test.shape, classes: test.classes },
        '--data',
      );
    }
    const run = createRun(
      config,
      backend,
      { inputShape: test.shape, classes: test.classes, stepsPerEpoch: 1, trainingExamples: 1 },
      batchSize,
      checkpoint.meta.normalization,
    );
    try {
      restoreRun(run, path, checkpoint);
      checkSamplingFlags(config.method, run.learner.stochastic, options);
      const limit = options.testLimit ?? null;
      // The temperatures the run was calibrated with (train/calibration.ts): the mode's always; the
      // ensemble's only for the number of samples and the averaging it was fitted for.
      const calibration = checkpoint.meta.calibration;
      const average = options.average ?? 'logits';
      const ensembleCalibration =
        calibration?.ensemble !== undefined &&
        calibration.ensemble.samples === options.testSamples &&
        calibration.ensemble.average === average
          ? calibration.ensemble
          : undefined;
      const stochastic = run.learner.stochastic && options.testSamples > 0;
      // Sampled networks and the mean network each get batch-norm statistics of their own where the run
      // recalibrates its mode's (evaluate puts the mode's back afterwards).
      const recalibration = sampleRecalibration(run, train, seed);
      const prepareSample = stochastic ? recalibration : undefined;
      const samplesRecalibrated = prepareSample !== undefined;
      // The mode's and the ensemble's evaluation, on the test set and on each out-of-distribution set.
      const modeOptions = {
        kind: 'mode',
        seed,
        keepEntropies: true,
        limit,
        temperature: calibration?.mode.temperature ?? 1,
      } as const;
      const ensembleOptions = {
        kind: 'ensemble',
        samples: options.testSamples,
        average,
        seed,
        keepEntropies: true,
        limit,
        prepareSample,
        temperature: ensembleCalibration?.temperature ?? 1,
      } as const;
      const mode = evaluate(run, test, modeOptions);
      const ensemble = stochastic ? evaluate(run, test, ensembleOptions) : null;
      const sample = stochastic
        ? evaluate(run, test, {
            kind: 'ensemble',
            samples: 1,
            seed,
            limit,
            prepareSample,
            keepEntropies: true,
          })
        : null;
      const mean = run.learner.hasMean
        ? evaluate(run, test, {
            kind: 'mean',
            seed,
            limit,
            keepEntropies: true,
            prepareSample: recalibration,
          })
        : null;
      const weightUncertainty = run.learner.weightUncertainty();
      let ood: Record<string, OodScores> | null = null;
      if (options.ood === true) {
        // Held-out classes: the test images of the classes the run did not train on (--classes).
        let heldOut: Dataset | null = null;
        const trained = config.classes;
        if (trained !== undefined) {
          const all = (await loadAllClasses(config)).test;
          const rest = Array.from({ length: all.classes }, (_, c) => c).filter((c) => !trained.includes(c));
          if (rest.length > 0) heldOut = classSubset(all, rest);
        }
        ood = {};
        const limited =
          limit === null
            ? test
            : subsetDataset(
                test,
                Array.from({ length: Math.min(limit, test.count) }, (_, i) => i),
              );
        for (const [name, set] of Object.entries(oodSets(limited, heldOut, seed))) {
          const outMode = evaluate(run, set, modeOptions);
          const outEnsemble = ensemble === null ? null : evaluate(run, set, ensembleOptions);
          ood[name] = {
            count: outMode.count,
            mode: oodAurocs(mode, outMode),
            ensemble: ensemble === null || outEnsemble === null ? null : oodAurocs(ensemble, outEnsemble),
          };
        }
      }
      return {
        report: { mode, ensemble, sample, mean, weightUncertainty, samplesRecalibrated, ood },
        config,
        test,
      };
    } finally {
      disposeRun(run);
    }
  } finally {
    backend.dispose();
  }
}

/** Per-example predictive entropies of the mode (and the ensemble, when there is one), with the labels. */
function writeEntropies(path: string, report: EvalReport, test: Dataset): void {
  const mode = report.mode.entropies ?? [];
  const ensemble = report.ensemble?.entropies ?? null;
  if (path.toLowerCase().endsWith('.csv')) {
    const rows = [`index,label,mode_entropy${ensemble !== null ? ',ensemble_entropy' : ''}`];
    for (let i = 0; i < mode.length; i++) {
      rows.push(`${i},${test.labels[i]},${mode[i]}${ensemble !== null ? `,${ensemble[i]}` : ''}`);
    }
    writeOutputFile('--entropies', path, `${rows.join('\n')}\n`);
    return;
  }
  const labels = Array.from(test.labels.subarray(0, mode.length));
  writeOutputFile(
    '--entropies',
    path,
    `${JSON.stringify({ labels, mode, ...(ensemble !== null ? { ensemble } : {}) })}\n`,
  );
}

export function evalCommand(): Command {
  return new Command('eval')
    .description('evaluate a checkpoint: accuracy, NLL, ECE (15 bins), predictive entropy')
    .argument(
      '<checkpoint>',
      `a checkpoint file written by onebit train, or its run folder (for ${CHECKPOINT_FILE} in it)`,
    )
    .option('--data <name>', 'data set (default: the one the run trained on)')
    .option(
      '--data-dir <dir>',
      "folder holding the data set's files (the only place looked in; default: ~/.cache/onebit, then the system copy)",
    )
    .option(
      '--test-samples <T>',
      'sampled networks to average (methods with a weight distribution; refused for others)',
      parseNonNegativeInteger('--test-samples'),
      0,
    )
    .option(
      '--test-limit <n>',
      'evaluate only the first n test examples',
      parsePositiveInteger('--test-limit'),
    )
    .option(
      '--reliability <file>',
      'write reliability-diagram data (bin confidence, accuracy, count) as JSON',
    )
    .option(
      '--entropies <file>',
      'write per-example predictive entropies (nats): CSV if the name ends in .csv, else JSON',
    )
    .option(
      '--average <kind>',
      'how the ensemble combines sampled networks: logits (official BayesBiNN/VISPA) or probabilities ' +
        '(default: logits; only with --test-samples > 0)',
      parseChoice('--average', ['logits', 'probabilities'] as const),
    )
    .option(
      '--seed <n>',
      `seed of the sampling stream (default: ${DEFAULT_SEED}; only with --test-samples > 0)`,
      parseInteger('--seed'),
    )
    .addOption(backendOption())
    .option('--threads <n>', 'threads of the wasm or native backend', parsePositiveInteger('--threads'))
    .option(
      '--ood',
      'out-of-distribution detection: AUROC of the entropy and of the top probability on inverted and noise images, and on the classes held out by train --classes',
      false,
    )
    .option('--json', 'print one JSON object', false)
    .action(async (given: string, flags: EvalFlags) => {
      checkThreadsFlag(flags.backend, flags.threads);
      const path = checkpointArgument(given, 'eval');
      // Outputs are checked before the evaluation, so a bad path costs nothing.
      checkDistinctOutputs([
        ['--reliability', flags.reliability],
        ['--entropies', flags.entropies],
      ]);
      for (const [flag, out] of [
        ['--reliability', flags.reliability],
        ['--entropies', flags.entropies],
      ] as const) {
        if (out === undefined) continue;
        checkNotInput(flag, out, path, 'checkpoint');
        prepareOutputFile(flag, out);
      }
      const { report, config, test } = await evaluateCheckpoint(path, flags);
      if (flags.entropies !== undefined) writeEntropies(flags.entropies, report, test);
      if (flags.reliability !== undefined) {
        // The diagrams as predicted (calibrated where the run is), and at temperature 1 beside them.
        const diagrams = {
          mode: report.mode.bins,
          ...(report.mode.uncalibrated !== null ? { modeUncalibrated: report.mode.uncalibrated.bins } : {}),
          ...(report.ensemble !== null ? { ensemble: report.ensemble.bins } : {}),
          ...(report.ensemble?.uncalibrated != null
            ? { ensembleUncalibrated: report.ensemble.uncalibrated.bins }
            : {}),
        };
        writeOutputFile('--reliability', flags.reliability, `${JSON.stringify(diagrams, null, 2)}\n`);
      }
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({
            type: 'eval',
            checkpoint: path,
            method: config.method,
            data: config.data,
            mode: summarize(report.mode),
            ...(report.ensemble !== null
              ? {
                  ensemble: {
                    samples: flags.testSamples,
                    average: flags.average ?? 'logits',
                    ...summarize(report.ensemble),
                  },
                }
              : {}),
            ...(report.sample !== null
              ? {
                  sample: {
                    ...summarize(report.sample),
                    disagreementWithMode: disagreement(report.sample, report.mode),
                  },
                }
              : {}),
            ...(report.mean !== null
              ? {
                  mean: {
                    ...summarize(report.mean),
                    disagreementWithMode: disagreement(report.mean, report.mode),
                  },
                }
              : {}),
            ...(report.weightUncertainty !== null ? { weightUncertainty: report.weightUncertainty } : {}),
            ...(report.sample !== null ? { samplesRecalibrated: report.samplesRecalibrated } : {}),
            ...(report.ood !== null ? { ood: report.ood } : {}),
          })}\n`,
        );
        return;
      }
      process.stdout.write(`${config.method} on ${config.data} (${report.mode.count} test examples)\n`);
      process.stdout.write(`${line('mode (deterministic)', report.mode)}\n${selectiveLine(report.mode)}\n`);
      if (report.sample !== null)
        process.stdout.write(
          `${line('one sampled network', report.sample)}\n` +
            `${''.padEnd(22)} predicts another class than the mode on ${(100 * disagreement(report.sample, report.mode)).toFixed(2)}% of the examples\n`,
        );
      if (report.ensemble !== null)
        process.stdout.write(
          `${line(`ensemble of ${flags.testSamples}`, report.ensemble)}\n${selectiveLine(report.ensemble)}\n`,
        );
      if (report.mean !== null)
        process.stdout.write(
          `${line('mean weights E[w]', report.mean)}\n` +
            `${''.padEnd(22)} predicts another class than the mode on ${(100 * disagreement(report.mean, report.mode)).toFixed(2)}% of the examples\n`,
        );
      const weights = report.weightUncertainty;
      if (weights !== null)
        process.stdout.write(
          `weights whose sampled sign differs from the mode's with probability >= 1%: ` +
            `${(100 * weights.shareFlipAtLeast1Percent).toFixed(2)}% (>= 10%: ${(100 * weights.shareFlipAtLeast10Percent).toFixed(2)}%; ` +
            `mean ${(100 * weights.meanFlipProbability).toFixed(3)}% of ${weights.weights} binary weights)\n`,
        );
      for (const [name, o] of Object.entries(report.ood ?? {})) {
        const pair = (a: { entropy: number; maxProbability: number }) =>
          `entropy ${a.entropy.toFixed(4)}  top probability ${a.maxProbability.toFixed(4)}`;
        process.stdout.write(
          `OOD ${name} (${o.count} images), AUROC: mode ${pair(o.mode)}` +
            (o.ensemble !== null ? `; ensemble ${pair(o.ensemble)}` : '') +
            '\n',
        );
      }
      if (report.samplesRecalibrated)
        process.stdout.write(
          `(each sampled network${report.mean !== null ? ', and the mean network,' : ''} with batch-norm statistics recalibrated for it)\n`,
        );
      if (flags.reliability !== undefined)
        process.stdout.write(`reliability diagram data written to ${flags.reliability}\n`);
      if (flags.entropies !== undefined)
        process.stdout.write(`per-example entropies written to ${flags.entropies}\n`);
    });
}
