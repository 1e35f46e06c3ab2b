/**
 * `onebit model show NAME|FILE`: a model's spec as JSON, to start a custom model from, and `model list`.
 * The builder flags (--activations, --classes, --channel-scale, --bn-affine) shape named models; with a spec
 * file, which sets all of that itself, they are refused.
 */
import { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { MODEL_NAMES, modelSpecByName } from '../nn/models.js';
import { checkModelArgument, isSpecPath, readSpecFile } from './model-argument.js';
import { optionGiven, parseChoice, parsePositiveInteger } from './options.js';

interface ShowFlags {
  activations: 'real' | 'binary';
  classes?: number;
  channelScale?: boolean;
  bnAffine?: boolean;
  json: boolean;
}

export function modelCommand(): Command {
  const command = new Command('model').description('show the spec of a model (architecture as data)');
  command
    .command('show')
    .description(
      'print the spec of a named model (or check a spec file); edit it and train it with --model FILE',
    )
    .argument('<model>', `a named model (${MODEL_NAMES.join(', ')}) or a spec file (.json)`)
    .option(
      '--activations <kind>',
      'named models: real, or binary (1-bit activations into every binary layer after the first)',
      parseChoice('--activations', ['real', 'binary'] as const),
      'real',
    )
    .option(
      '--classes <n>',
      'named models: number of classes (default 10)',
      parsePositiveInteger('--classes'),
    )
    .option('--channel-scale', 'named models: a learnable per-channel scale after each binary layer')
    .option('--bn-affine', 'named models: learnable batch-norm scale and shift')
    .option('--json', 'print the spec on one line (default: indented)', false)
    .action((model: string, flags: ShowFlags, show: Command) => {
      checkModelArgument(model);
      if (isSpecPath(model)) {
        for (const [key, flag] of [
          ['activations', '--activations'],
          ['classes', '--classes'],
          ['channelScale', '--channel-scale'],
          ['bnAffine', '--bn-affine'],
        ] as const) {
          if (optionGiven(show, key)) {
            throw new ConfigError(
              flag,
              `no ${flag} with a spec file (it shapes named models; a spec sets its layers itself)`,
              String(show.getOptionValue(key)),
            );
          }
        }
      }
      const spec = isSpecPath(model)
        ? readSpecFile(model)
        : modelSpecByName(model, {
            activations: flags.activations,
            ...(flags.classes !== undefined ? { classes: flags.classes } : {}),
            channelScale: flags.channelScale === true,
            batchNormAffine: flags.bnAffine === true,
          });
      process.stdout.write(`${flags.json ? JSON.stringify(spec) : JSON.stringify(spec, null, 2)}\n`);
    });
  command
    .command('list')
    .description('the named models')
    .option('--json', 'one JSON object', false)
    .action((flags: { json: boolean }) => {
      process.stdout.write(
        flags.json ? `${JSON.stringify({ models: MODEL_NAMES })}\n` : `${MODEL_NAMES.join('\n')}\n`,
      );
    });
  return command;
}
