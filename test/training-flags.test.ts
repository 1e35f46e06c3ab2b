/**
 * No silent flag, for the training commands: every flag of `onebit train` that shapes the run, given a value
 * other than its default, either changes the TrainConfig the run is built from or is refused with a
 * ConfigError naming it. The flags are read from the command itself, so a new flag is covered (or fails
 * here) without editing this file; method flags are given with the method that declares them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Command } from 'commander';
import { ConfigError } from '../src/errors.js';
import { METHODS } from '../src/methods/registry.js';
import type { OptionDeclaration } from '../src/methods/options.js';
import { checkConfig, configFromFlags, trainCommand, type TrainFlags } from '../src/cli/train-command.js';

/**
 * Flags that do not shape the run's config, with the test that shows what each does instead (the flag
 * inventory in the closing note lists them all).
 */
const NOT_IN_CONFIG = new Set([
  'out', // test/run-safety.test.ts: run folders
  'overwrite', // test/run-safety.test.ts: run folders
  'resume', // test/run-safety.test.ts: resume with intent; test/kill-resume.faults.ts
  'json', // test/train.test.ts: JSON contract; test/run-safety.test.ts: JSON errors
  'threads', // test/run-safety.test.ts: refused with the reference backend; backend tests
  'backend', // test/backend-models.test.ts and resume's recorded backend
  'progressEvery', // test/run-safety.test.ts: non-TTY progress lines
]);

/**
 * Values other than the default for each run-level flag (as typed on the command line); where a method's
 * own default may equal the first, the second differs from it.
 */
const RUN_LEVEL_VALUES: Record<string, string[][]> = {
  data: [['--data', 'synthetic-mnist']],
  dataDir: [['--data-dir', '/somewhere']],
  model: [['--model', 'mlp-100']],
  method: [['--method', 'bop']],
  activations: [['--activations', 'binary']],
  epochs: [['--epochs', '7']],
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
};

/** The parsed flags of `onebit train <args>`, without running it. */
async function parseTrain(args: readonly string[]): Promise<TrainFlags> {
  const command: Command = trainCommand();
  let parsed: TrainFlags | null = null;
  command.action((flags: TrainFlags) => {
    parsed = flags;
  });
  await command.parseAsync([...args], { from: 'user' });
  assert.ok(parsed !== null);
  return parsed;
}

/** What the flags make of the run: its checked config, or the ConfigError that refuses them. */
async function outcome(args: readonly string[]): Promise<string | ConfigError> {
  try {
    const config = configFromFlags(await parseTrain(args));
    checkConfig(config); // what train runs before anything else: method options resolved, names known
    return JSON.stringify(config);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
}

/** A value for a method's flag other than its default, as command-line words. */
function methodFlagValue(d: OptionDeclaration): string[] {
  switch (d.kind) {
    case 'boolean':
      return [d.flag];
    case 'choice':
      return [d.flag, d.choices.find((c) => c !== d.default) ?? d.default];
    case 'number':
    case 'integer': {
      const range = d.range !== undefined && 'min' in d.range ? d.range : undefined;
      const min = range?.min ?? -Infinity;
      const max = range?.max ?? Infinity;
      const candidates = [d.default * 2, d.default + 1, d.default - 1, d.default / 2, min, max];
      const ok = candidates.find(
        (v) => v !== d.default && v >= min && v <= max && (d.kind === 'number' || Number.isInteger(v)),
      );
      assert.ok(ok !== undefined, `no test value for ${d.flag}`);
      return [d.flag, String(ok)];
    }
  }
}

/** Base words that make a valid run for `method` (float-free needs 1-bit activations). */
function baseFor(method: string): string[] {
  return ['--method', method, ...(method === 'float-free' ? ['--activations', 'binary'] : [])];
}

describe('every flag of onebit train takes effect or is refused', () => {
  test('run-level flags change the config or are refused with a ConfigError naming them, for every method', async () => {
    const command = trainCommand();
    const methodFlags = new Set<string>(METHODS.flatMap((m) => m.options.map((o) => o.flag)));
    // One entry per attribute: --channel-scale and --no-channel-scale set the same one.
    const runLevel = [
      ...new Set(
        command.options
          .filter((o) => o.long !== undefined && !methodFlags.has(o.long))
          .map((o) => o.attributeName())
          .filter((k) => !NOT_IN_CONFIG.has(k)),
      ),
    ];
    // Every run-level flag has a test value here: a new flag must be added to the table.
    assert.deepEqual(runLevel.filter((k) => !(k in RUN_LEVEL_VALUES)).sort(), []);
    let changed = 0;
    let refused = 0;
    for (const method of METHODS.map((m) => m.name)) {
      const base = baseFor(method);
      const baseline = await outcome(base);
      assert.equal(typeof baseline, 'string', `${method}: the baseline is refused: ${String(baseline)}`);
      for (const key of runLevel) {
        if (key === 'method' || (key === 'activations' && method === 'float-free')) continue;
        // The flag takes effect if some value changes the config (a value may equal the method's default).
        let effect: 'changed' | 'refused' | null = null;
        for (const words of RUN_LEVEL_VALUES[key]) {
          const result = await outcome([...base, ...words]);
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

  test("each method's own flags change its options; another method's flags are refused", async () => {
    for (const definition of METHODS) {
      const baseline = await outcome(baseFor(definition.name));
      for (const declaration of definition.options) {
        const words = methodFlagValue(declaration);
        const mine = await outcome([...baseFor(definition.name), ...words]);
        // A value may break a cross-option constraint (e.g. a float-free shift sum); then it is refused.
        if (mine instanceof ConfigError) assert.match(mine.message, /^--/);
        else assert.notEqual(mine, baseline, `${definition.name} ${words.join(' ')} changed nothing`);
        for (const other of METHODS) {
          if (other.options.some((o) => o.flag === declaration.flag)) continue;
          const foreign = await outcome([...baseFor(other.name), ...words]);
          assert.ok(foreign instanceof ConfigError, `${other.name} accepted ${words.join(' ')}`);
        }
      }
    }
  });
});
