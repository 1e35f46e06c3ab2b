/**
 * No silent flag, for the training commands (`onebit train` and `onebit continual`): every flag that shapes
 * the run, given a value other than its default, either changes the config the run is built from or is
 * refused with a ConfigError naming it, for every method. The flags are read from the commands themselves,
 * so a new flag is covered (or fails here) without editing this file; method flags are given with the
 * method that declares them, and refused by every other method. What each config field then does is the
 * business of the trainer's and the methods' own tests (docs/cli-flags.md lists them).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Command } from 'commander';
import { methodBase, methodFlagValue, parseFlags } from './flags.js';
import { continualCommand, continualConfig } from '../src/cli/continual-command.js';
import { checkConfig, configFromFlags, trainCommand, type TrainFlags } from '../src/cli/train-command.js';
import { ConfigError } from '../src/errors.js';
import { METHODS, resolveMethodConfig } from '../src/methods/registry.js';
import { BAYES_BINN_CONTINUAL_DEFAULTS, BAYES_BINN_POSTERIORS } from '../src/methods/bayes-binn.js';

/** Runs `make` and returns what it made of the flags as JSON, or the ConfigError that refuses them. */
function outcomeOf(make: () => unknown): string | ConfigError {
  try {
    return JSON.stringify(make());
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
}

/** Values other than the defaults of the run-level flags (as typed); a second where a method's own default may equal the first. */
const RUN_LEVEL_VALUES: Record<string, string[][]> = {
  data: [['--data', 'synthetic-mnist']],
  dataDir: [['--data-dir', '/somewhere']],
  model: [
    ['--model', 'mlp-100'],
    ['--model', 'mlp-2x2048'],
  ],
  method: [['--method', 'bop']],
  activations: [['--activations', 'binary']],
  epochs: [['--epochs', '7']],
  epochsPerTask: [['--epochs-per-task', '2']],
  batchSize: [['--batch-size', '64']],
  lr: [
    ['--lr', '0.01'],
    ['--lr', '0.02'],
  ],
  realLr: [
    ['--real-lr', '0.02'],
    ['--real-lr', '0.03'],
  ],
  realOptimizer: [
    ['--real-optimizer', 'sgd'],
    ['--real-optimizer', 'adam'],
  ],
  weightDecay: [
    ['--weight-decay', '0.001'],
    ['--weight-decay', '0.002'],
  ],
  schedule: [
    ['--schedule', 'constant'],
    ['--schedule', 'cosine'],
  ],
  warmupEpochs: [
    ['--warmup-epochs', '1'],
    ['--warmup-epochs', '2'],
  ],
  seed: [['--seed', '5']],
  validation: [['--validation', '0.2']],
  trainLimit: [['--train-limit', '100']],
  testLimit: [['--test-limit', '100']],
  bnAffine: [['--bn-affine']],
  channelScale: [['--channel-scale'], ['--no-channel-scale']],
  recalibrateBn: [['--recalibrate-bn'], ['--no-recalibrate-bn']],
  augment: [['--augment']],
  calibrate: [['--no-calibrate']],
  classes: [['--classes', '0-4']],
  posterior: [['--posterior', 'calibrated']],
};

interface TrainingCommand {
  readonly name: string;
  command(): Command;
  /** The checked config (and whatever else the command derives from its flags) for `args`. */
  outcome(args: readonly string[]): Promise<string | ConfigError>;
  /**
   * Flags that do not shape the config, each with the test that shows what it does instead
   * (docs/cli-flags.md cites them).
   */
  readonly notInConfig: ReadonlySet<string>;
}

const COMMANDS: readonly TrainingCommand[] = [
  {
    name: 'train',
    command: trainCommand,
    async outcome(args) {
      const flags = await parseFlags<TrainFlags>(trainCommand(), args);
      return outcomeOf(() => {
        const config = configFromFlags(flags);
        checkConfig(config); // what train runs before anything else: method options resolved, names known
        return config;
      });
    },
    // test/run-safety.test.ts (run folders, resume, JSON errors, --threads refused with reference, progress
    // lines), test/train.test.ts (the JSON contract), test/kill-resume.faults.ts.
    notInConfig: new Set(['out', 'overwrite', 'resume', 'json', 'threads', 'backend', 'progressEvery']),
  },
  {
    name: 'continual',
    command: continualCommand,
    async outcome(args) {
      const flags = await parseFlags<Parameters<typeof continualConfig>[0]>(continualCommand(), args);
      return outcomeOf(() => {
        const { config, testSamples } = continualConfig(flags);
        checkConfig(config);
        return { config, testSamples };
      });
    },
    // test/continual-cli.test.ts: --out/--overwrite, --stream/--tasks (the task lines), --validation (refused
    // unless 0, before the config), --test-samples (refused without a distribution), progress lines, --resume.
    notInConfig: new Set([
      'out',
      'overwrite',
      'resume',
      'json',
      'threads',
      'backend',
      'stream',
      'tasks',
      'validation',
      'testSamples',
      'progressEvery',
    ]),
  },
];

for (const c of COMMANDS) {
  describe(`every flag of onebit ${c.name} takes effect or is refused`, () => {
    test(`${c.name}: run-level flags change the config or are refused with a ConfigError naming them, for every method`, async () => {
      const methodFlags = new Set<string>(METHODS.flatMap((m) => m.options.map((o) => o.flag)));
      // One entry per attribute: --channel-scale and --no-channel-scale set the same one.
      const runLevel = [
        ...new Set(
          c
            .command()
            .options.filter((o) => o.long !== undefined && !methodFlags.has(o.long))
            .map((o) => o.attributeName())
            .filter((k) => !c.notInConfig.has(k)),
        ),
      ];
      // Every run-level flag has a test value here: a new flag must be added to the table.
      assert.deepEqual(runLevel.filter((k) => !(k in RUN_LEVEL_VALUES)).sort(), []);
      let changed = 0;
      let refused = 0;
      for (const method of METHODS.map((m) => m.name)) {
        const base = methodBase(method);
        const baseline = await c.outcome(base);
        assert.equal(typeof baseline, 'string', `${method}: the baseline is refused: ${String(baseline)}`);
        for (const key of runLevel) {
          if (key === 'method' || (key === 'activations' && method === 'float-free')) continue;
          // The flag takes effect if some value changes the config (a value may equal the method's default).
          let effect: 'changed' | 'refused' | null = null;
          for (const words of RUN_LEVEL_VALUES[key]) {
            const result = await c.outcome([...base, ...words]);
            if (result instanceof ConfigError) {
              assert.equal(
                result.field,
                words[0],
                `${method} ${words.join(' ')}: refused naming ${result.field}`,
              );
              effect ??= 'refused';
            } else if (result !== baseline) {
              effect = 'changed';
            }
          }
          assert.ok(effect !== null, `${method} ${key}: no value changed anything in the config`);
          if (effect === 'changed') changed++;
          else refused++;
        }
      }
      // Both outcomes occur (float-free refuses the learning-rate flags; the others take them).
      assert.ok(changed > 50 && refused > 5, `changed ${changed}, refused ${refused}`);
    });

    test(`${c.name}: each method's own flags change its options; another method's flags are refused`, async () => {
      for (const definition of METHODS) {
        const base = methodBase(definition.name);
        const baseline = await c.outcome(base);
        for (const declaration of definition.options) {
          const words = methodFlagValue(declaration);
          const mine = await c.outcome([...base, ...words]);
          // A value that would do nothing with the method's defaults is refused, naming the flag (for
          // example --surrogate clipped-identity while the latent clip is on).
          if (mine instanceof ConfigError) assert.equal(mine.field, declaration.flag);
          else assert.notEqual(mine, baseline, `${definition.name} ${words.join(' ')} changed nothing`);
          for (const other of METHODS) {
            if (other.options.some((o) => o.flag === declaration.flag)) continue;
            const foreign = await c.outcome([...methodBase(other.name), ...words]);
            assert.ok(foreign instanceof ConfigError, `${other.name} accepted ${words.join(' ')}`);
            assert.equal(foreign.field, declaration.flag);
          }
        }
      }
    });
  });
}

describe('--posterior: a named BayesBiNN setting', () => {
  const configOf = async (args: readonly string[]) =>
    configFromFlags(await parseFlags<TrainFlags>(trainCommand(), args));

  test('--posterior calibrated fills the BayesBiNN flags and --lr not given; given flags win; paper is the defaults', async () => {
    const calibrated = BAYES_BINN_POSTERIORS.calibrated;
    const preset = await configOf(['--method', 'bayesbinn', '--posterior', 'calibrated']);
    checkConfig(preset); // the preset's options are valid BayesBiNN options
    assert.deepEqual(preset.methodOptions, calibrated.options);
    assert.equal(preset.learningRate, calibrated.learningRate);
    assert.equal(preset.recalibrateBatchNorm, calibrated.recalibrateBatchNorm);
    const kept = await configOf([
      '--method',
      'bayesbinn',
      '--posterior',
      'calibrated',
      '--no-recalibrate-bn',
    ]);
    // Off is BayesBiNN's own default, which a config stores as no value.
    assert.notEqual(kept.recalibrateBatchNorm, true);
    const overridden = await configOf([
      ...['--method', 'bayesbinn', '--posterior', 'calibrated', '--lambda-init', '3', '--lr', '0.02'],
    ]);
    assert.deepEqual(overridden.methodOptions, { ...calibrated.options, lambdaInit: 3 });
    assert.equal(overridden.learningRate, 0.02);
    const paper = await configOf(['--method', 'bayesbinn', '--posterior', 'paper']);
    const plain = await configOf(['--method', 'bayesbinn']);
    assert.deepEqual(
      resolveMethodConfig('bayesbinn', paper.methodOptions),
      resolveMethodConfig('bayesbinn', plain.methodOptions),
    );
    assert.equal(paper.learningRate, BAYES_BINN_POSTERIORS.paper.learningRate);
  });

  test('another method refuses --posterior; continual keeps its BayesBiNN defaults only without it', async () => {
    await assert.rejects(
      configOf(['--method', 'ste', '--posterior', 'calibrated']),
      (e: unknown) =>
        e instanceof ConfigError && e.field === '--posterior' && /--method bayesbinn/.test(e.message),
    );
    const continual = async (args: readonly string[]) =>
      continualConfig(await parseFlags<Parameters<typeof continualConfig>[0]>(continualCommand(), args));
    const official = await continual(['--method', 'bayesbinn']);
    assert.equal(official.config.methodOptions.temperature, BAYES_BINN_CONTINUAL_DEFAULTS.temperature);
    const named = await continual(['--method', 'bayesbinn', '--posterior', 'calibrated']);
    assert.deepEqual(named.config.methodOptions, BAYES_BINN_POSTERIORS.calibrated.options);
    assert.equal(named.config.learningRate, BAYES_BINN_POSTERIORS.calibrated.learningRate);
    assert.equal(named.testSamples, BAYES_BINN_CONTINUAL_DEFAULTS.testSamples);
  });
});
