/** `onebit demo`: the README's first command — a short STE training run on Fashion-MNIST, then evaluation. */
import { Command } from 'commander';
import { TRAIN_DEFAULTS, type BackendKind } from '../config/train-config.js';
import { checkThreadsFlag } from './flag-checks.js';
import { nextRunFolder } from './run-folder.js';
import { backendOption, parsePositiveInteger } from './options.js';
import { runTrain } from './train-command.js';

interface DemoFlags {
  out?: string;
  threads?: number;
  backend: BackendKind;
}

export function demoCommand(): Command {
  return new Command('demo')
    .description(
      'train a binary MLP on Fashion-MNIST for one epoch (about a minute on 2 free cores), then evaluate it',
    )
    .option('--out <dir>', 'output folder, new or empty (default: runs/demo, or runs/demo-2, ... when taken)')
    .option('--threads <n>', 'threads of the wasm or native backend', parsePositiveInteger('--threads'))
    .addOption(backendOption())
    .action(async (flags: DemoFlags) => {
      checkThreadsFlag(flags.backend, flags.threads);
      // Like train: a new folder each time (the README's first command may run more than once), and an
      // --out that holds anything is refused before training.
      const out = flags.out ?? nextRunFolder('runs/demo');
      const config = {
        ...TRAIN_DEFAULTS,
        data: 'fashion-mnist',
        model: 'mlp-2x2048',
        method: 'ste',
        epochs: 1,
      };
      process.stdout.write(
        `onebit demo: training ${config.model} (binary weights, real activations) with the straight-through\n` +
          `estimator and Adam on Fashion-MNIST for ${config.epochs} epoch(s), batch ${config.batchSize}, lr ${config.learningRate} (cosine), seed ${config.seed}.\n`,
      );
      const result = await runTrain({
        config,
        outDir: out,
        resume: false,
        json: false,
        backend: flags.backend,
        threads: flags.threads,
      });
      process.stdout.write(
        `\nresults in ${out}/: checkpoint.ckpt (the trained run), metrics.jsonl (one line per epoch).\n` +
          `next: npx onebit eval ${result.checkpoint}    npx onebit summary ${result.checkpoint}\n`,
      );
    });
}
