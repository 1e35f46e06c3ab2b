/**
 * `onebit calibrate CKPT`: fits the checkpoint's temperatures on its run's validation split
 * (train/calibrate-checkpoint.ts) and writes it back, atomically, or to --out. `onebit train` already
 * calibrates the deterministic network when it ends; this command adds an ensemble's temperature
 * (--test-samples L) or calibrates a run trained with --no-calibrate.
 */
import { Command } from 'commander';
import { calibrateCheckpoint } from '../train/calibrate-checkpoint.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { CHECKPOINT_FILE } from '../train/trainer.js';
import type { BackendKind } from '../config/train-config.js';
import { checkpointArgument } from './file-kind.js';
import { checkDataDirFlag } from './flag-checks.js';
import { outputPathError, prepareOutputFile } from './output-path.js';
import {
  parseChoice,
  parseInteger,
  parseNonNegativeInteger,
  parsePositiveInteger,
  backendOption,
} from './options.js';
import { loadSplits, openBackend } from './train-command.js';
import { ConfigError } from '../errors.js';

interface CalibrateFlags {
  out?: string;
  dataDir?: string;
  testSamples: number;
  average?: 'logits' | 'probabilities';
  seed?: number;
  backend: BackendKind;
  threads?: number;
  json: boolean;
}

export function calibrateCommand(): Command {
  return new Command('calibrate')
    .description(
      "fit a checkpoint's temperature on its validation split (and an ensemble's, with --test-samples)",
    )
    .argument('<checkpoint>', `a checkpoint file, or a run folder (for ${CHECKPOINT_FILE} in it)`)
    .option('--out <file>', 'where to write the calibrated checkpoint (default: in place, atomically)')
    .option('--data-dir <dir>', "folder holding the data set's files (the only place looked in)")
    .option(
      '--test-samples <L>',
      'sampled networks whose averaged prediction gets its own temperature (methods with a weight distribution; eval uses it for the same L)',
      parseNonNegativeInteger('--test-samples'),
      0,
    )
    .option(
      '--average <kind>',
      'how the ensemble combines sampled networks: logits or probabilities (default: logits; only with --test-samples > 0)',
      parseChoice('--average', ['logits', 'probabilities'] as const),
    )
    .option('--seed <n>', 'seed of the sampling stream (default: 1)', parseInteger('--seed'))
    .addOption(backendOption())
    .option('--threads <n>', 'threads of the wasm or native backend', parsePositiveInteger('--threads'))
    .option('--json', 'print one JSON object', false)
    .action(async (given: string, flags: CalibrateFlags) => {
      const path = checkpointArgument(given, 'calibrate');
      for (const [flag, value] of [
        ['--average', flags.average],
        ['--seed', flags.seed],
      ] as const) {
        if (value !== undefined && flags.testSamples === 0)
          throw new ConfigError(
            flag,
            `no ${flag} without --test-samples > 0 (the mode draws nothing)`,
            String(value),
          );
      }
      const out = flags.out ?? path;
      if (flags.out !== undefined) prepareOutputFile('--out', out);
      const config = loadCheckpoint(path).meta.config;
      checkDataDirFlag(config.data, flags.dataDir);
      const backend = await openBackend(flags.backend, flags.threads);
      try {
        const { train } = await loadSplits({
          ...config,
          ...(flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {}),
        });
        let calibration;
        try {
          calibration = calibrateCheckpoint(path, out, {
            backend,
            train,
            samples: flags.testSamples,
            average: flags.average ?? 'logits',
            seed: flags.seed ?? 1,
          });
        } catch (error) {
          throw outputPathError(flags.out === undefined ? '<checkpoint>' : '--out', out, error);
        }
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ type: 'calibrate', checkpoint: out, calibration })}\n`);
          return;
        }
        const show = (
          label: string,
          r: { temperature: number; nllBefore: number; nllAfter: number; examples: number },
        ) =>
          `${label}: temperature ${r.temperature.toFixed(4)}; validation NLL ${r.nllBefore.toFixed(4)} -> ${r.nllAfter.toFixed(4)} (${r.examples} examples)\n`;
        process.stdout.write(show('mode', calibration.mode));
        if (calibration.ensemble !== undefined)
          process.stdout.write(
            show(
              `ensemble of ${calibration.ensemble.samples} (${calibration.ensemble.average})`,
              calibration.ensemble,
            ),
          );
        process.stdout.write(`calibrated checkpoint ${out}\n`);
      } finally {
        backend.dispose();
      }
    });
}
