/**
 * The methods' flags as commander sees them: every declared flag parses and lands in methodOptions under
 * its stored key (and only when given), bad syntax is refused by the flag's parser, and the help shows
 * each flag with its default and the methods' run defaults.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { Command, CommanderError } from 'commander';
import { BAYES_BINN_LEARNING_RATE } from '../methods/bayes-binn.js';
import { isValidValue, type OptionDeclaration, type OptionValue } from '../methods/options.js';
import { METHODS } from '../methods/registry.js';
import { VISPA_RUN_DEFAULTS } from '../methods/vispa.js';
import { methodFlagOptions, methodOptionsFromFlags, methodRunDefaultsHelp } from './method-flags.js';

function command(): Command {
  const c = new Command('train').exitOverride().configureOutput({ writeErr: () => undefined });
  for (const option of methodFlagOptions()) c.addOption(option);
  return c;
}

function parse(args: string[]): Record<string, unknown> {
  return command().parse(args, { from: 'user' }).opts();
}

/** A valid value other than the default, and the arguments that give it. */
function another(d: OptionDeclaration): { value: OptionValue; args: string[] } {
  if (d.kind === 'boolean') return { value: !d.default, args: [d.flag] };
  if (d.kind === 'choice') {
    const value = d.choices.find((c) => c !== d.default);
    assert.ok(value !== undefined, `${d.flag} has a second choice`);
    return { value, args: [d.flag, value] };
  }
  const value = [d.default + 1, d.default / 2, d.default - 1, 0.5, 1, 0].find(
    (v) => v !== d.default && isValidValue(d, v),
  );
  assert.ok(value !== undefined, `${d.flag}: a second valid value`);
  return { value, args: [d.flag, String(value)] };
}

describe('method flags', () => {
  test('no method flag given: no method options', () => {
    assert.deepEqual(methodOptionsFromFlags(parse([])), {});
  });

  test('each declared flag lands under its stored key', () => {
    for (const method of METHODS) {
      for (const d of method.options) {
        const { value, args } = another(d);
        assert.deepEqual(methodOptionsFromFlags(parse(args)), { [d.key]: value }, args.join(' '));
        // And the method accepts what the flag produced (clipped-identity only without the latent clip).
        const context = d.key === 'surrogate' ? { clipLatent: false } : {};
        method.resolve({ [d.key]: value, ...context });
      }
    }
  });

  test('several flags of one method together', () => {
    const flags = parse([
      '--rank',
      '0',
      '--vispa-scale',
      '25',
      '--momentum',
      '0.5',
      '--vispa-weight-decay',
      '1e-6',
    ]);
    assert.deepEqual(methodOptionsFromFlags(flags), { rank: 0, scale: 25, momentum: 0.5, weightDecay: 1e-6 });
  });

  test("a value the flag's parser cannot read is refused, naming the flag", () => {
    for (const [args, pattern] of [
      [['--rank', 'x'], /--rank expects an integer, got "x"/],
      [['--rank', '1.5'], /--rank expects an integer, got "1.5"/],
      [['--temperature', ''], /--temperature expects a number/],
      [['--bop-schedule', 'sometimes'], /--bop-schedule expects one of none, gamma, threshold, both/],
    ] as const) {
      assert.throws(
        () => parse([...args]),
        (e: unknown) => e instanceof CommanderError && pattern.test(e.message),
        args.join(' '),
      );
    }
  });

  test('help lists every flag under its method, with its default', () => {
    const help = command().helpInformation();
    for (const method of METHODS) {
      const heading = help.indexOf(`Options of --method ${method.name} (${method.description}):`);
      assert.ok(heading >= 0, `heading of ${method.name}`);
      for (const d of method.options) {
        const at = help.indexOf(`  ${d.flag}`);
        assert.ok(at > heading, `${d.flag} under ${method.name}`);
        if (d.kind !== 'boolean') {
          const entry = help.slice(
            at,
            help.indexOf('\n  --', at + 1) === -1 ? undefined : help.indexOf('\n  --', at + 1),
          );
          assert.match(entry.replace(/\s+/g, ' '), new RegExp(`default: ${String(d.default)}\\)`), d.flag);
        }
      }
    }
  });

  test("the run-level flags' help lists the methods' own defaults", () => {
    const lr = methodRunDefaultsHelp('learningRate', 5);
    assert.ok(lr.includes(`; vispa ${VISPA_RUN_DEFAULTS.learningRate}`), lr);
    assert.ok(lr.includes(`; bayesbinn ${BAYES_BINN_LEARNING_RATE}`), lr);
    assert.ok(!lr.includes('ste') && !lr.includes('bop'), lr);
    assert.equal(methodRunDefaultsHelp('warmupEpochs', 5), '; vispa min(5, epochs/10)');
    assert.equal(methodRunDefaultsHelp('channelScale', 5), '; vispa on');
  });
});
