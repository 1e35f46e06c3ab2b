/**
 * Method options declared once (options.ts, definition.ts): defaults filled in, every error naming the flag
 * the user typed, options of another method refused with the method that owns them, cross-option checks,
 * and every registered method's declarations well-formed.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { ConfigError } from '../errors.js';
import { BAYES_BINN_DEFAULTS } from './bayes-binn.js';
import {
  expectedText,
  isValidValue,
  resolveMethodOptions,
  type NumberDeclaration,
  type OptionDeclaration,
} from './options.js';
import { resolveMethodConfig, METHOD_NAMES, METHODS, methodDefinition } from './registry.js';

const DECLARATIONS: readonly OptionDeclaration[] = [
  {
    key: 'alpha',
    flag: '--alpha',
    kind: 'number',
    default: 0.5,
    range: { min: 0, max: 1, minOpen: true },
    help: 'a',
  },
  { key: 'count', flag: '--count', kind: 'integer', default: 3, range: { min: 1, max: 9 }, help: 'c' },
  { key: 'mode', flag: '--mode', kind: 'choice', choices: ['fast', 'slow'], default: 'fast', help: 'm' },
  { key: 'lag', flag: '--no-lag', kind: 'boolean', default: true, help: 'l' },
  {
    key: 'even',
    flag: '--even',
    kind: 'integer',
    default: 2,
    range: { test: (v) => v % 2 === 0, expected: 'an even integer' },
    help: 'e',
  },
];

/** Asserts that `run` throws a ConfigError with exactly this field and message. */
function throwsConfig(run: () => unknown, field: string, message: string): void {
  assert.throws(run, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${String(e)}`);
    assert.equal(e.field, field);
    assert.equal(e.message, message);
    assert.equal(e.code, 'config');
    return true;
  });
}

describe('resolveMethodOptions', () => {
  test('absent options take their defaults; given ones are kept', () => {
    assert.deepEqual(resolveMethodOptions(DECLARATIONS, {}), {
      alpha: 0.5,
      count: 3,
      mode: 'fast',
      lag: true,
      even: 2,
    });
    assert.deepEqual(resolveMethodOptions(DECLARATIONS, { alpha: 1, mode: 'slow', lag: false, even: 8 }), {
      alpha: 1,
      count: 3,
      mode: 'slow',
      lag: false,
      even: 8,
    });
  });

  test('a bad value is a ConfigError on the flag, with what was expected and what came', () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ alpha: 0 }, '--alpha', '--alpha: expected a number in (0, 1], got 0'],
      [{ alpha: 1.5 }, '--alpha', '--alpha: expected a number in (0, 1], got 1.5'],
      [{ alpha: Number.NaN }, '--alpha', '--alpha: expected a number in (0, 1], got NaN'],
      [{ alpha: '0.5' }, '--alpha', '--alpha: expected a number in (0, 1], got "0.5"'],
      [{ count: 2.5 }, '--count', '--count: expected an integer in 1..9, got 2.5'],
      [{ count: 10 }, '--count', '--count: expected an integer in 1..9, got 10'],
      [{ mode: 'medium' }, '--mode', '--mode: expected one of fast, slow, got "medium"'],
      [{ lag: 'no' }, '--no-lag', '--no-lag: expected true or false, got "no"'],
      [{ even: 3 }, '--even', '--even: expected an even integer, got 3'],
    ];
    for (const [given, field, message] of cases) {
      throwsConfig(() => resolveMethodOptions(DECLARATIONS, given), field, message);
    }
  });

  test('the ends of a range: closed by default, open where marked', () => {
    const number = (range: NumberDeclaration['range']): OptionDeclaration => ({
      key: 'x',
      flag: '--x',
      kind: 'number',
      default: 0.5,
      range,
      help: '',
    });
    const closed = number({ min: 0, max: 1 });
    assert.equal(expectedText(closed), 'a number in [0, 1]');
    assert.ok(isValidValue(closed, 0) && isValidValue(closed, 1));
    const halfOpen = number({ min: 0, max: 1, maxOpen: true });
    assert.equal(expectedText(halfOpen), 'a number in [0, 1)');
    assert.ok(isValidValue(halfOpen, 0) && !isValidValue(halfOpen, 1));
    const positive = number({ min: 0, minOpen: true });
    assert.equal(expectedText(positive), 'a number > 0');
    assert.ok(!isValidValue(positive, 0) && isValidValue(positive, 1e-300));
    assert.ok(!isValidValue(positive, Number.POSITIVE_INFINITY), 'numbers are finite');
    const atMost = number({ max: 2 });
    assert.equal(expectedText(atMost), 'a number <= 2');
    assert.ok(isValidValue(atMost, 2) && !isValidValue(atMost, 2.0001));
  });

  test('an option of another method names its flag and the method that owns it', () => {
    const others = [
      { name: 'one', options: DECLARATIONS },
      {
        name: 'two',
        options: [{ key: 'beta', flag: '--beta', kind: 'number', default: 1, help: '' } as const],
      },
    ];
    throwsConfig(
      () => resolveMethodOptions(DECLARATIONS, { beta: 2 }, { method: 'one', methods: others }),
      '--beta',
      '--beta: expected no such option with --method one (it is an option of two), got 2',
    );
    // A key no method declares has no flag: the key itself is named, with the options there are.
    throwsConfig(
      () => resolveMethodOptions(DECLARATIONS, { gamma: true }, { method: 'one', methods: others }),
      'gamma',
      'gamma: expected an option of method one (alpha, count, mode, lag, even), got true',
    );
  });
});

describe('the registered methods', () => {
  test('resolveMethodConfig validates against the declarations and names the flag', () => {
    throwsConfig(
      () => resolveMethodConfig('float-free', { ffClip: 0 }),
      '--ff-clip',
      '--ff-clip: expected an integer in 1..32767, got 0',
    );
    throwsConfig(
      () => resolveMethodConfig('vispa', { rank: '2' }),
      '--rank',
      '--rank: expected an integer >= 0, got "2"',
    );
    throwsConfig(
      () => resolveMethodConfig('bop', { bopGamma: 0 }),
      '--bop-gamma',
      '--bop-gamma: expected a number in (0, 1], got 0',
    );
    throwsConfig(
      () => resolveMethodConfig('bayesbinn', { bbMomentum: 1 }),
      '--bb-momentum',
      '--bb-momentum: expected a number in [0, 1), got 1',
    );
    throwsConfig(
      () => resolveMethodConfig('ste', { surrogate: 'approx-sign' }),
      '--surrogate',
      '--surrogate: expected one of identity, clipped-identity, got "approx-sign"',
    );
  });

  test("another method's option is refused, naming the flag and its owner", () => {
    throwsConfig(
      () => resolveMethodConfig('ste', { ffShift: 1 }),
      '--ff-shift',
      '--ff-shift: expected no such option with --method ste (it is an option of float-free), got 1',
    );
    throwsConfig(
      () => resolveMethodConfig('bop', { muLag: false }),
      '--no-mu-lag',
      '--no-mu-lag: expected no such option with --method bop (it is an option of bayesbinn), got false',
    );
    throwsConfig(
      () => resolveMethodConfig('vispa', { surrogate: 'identity' }),
      '--surrogate',
      '--surrogate: expected no such option with --method vispa (it is an option of ste), got "identity"',
    );
  });

  test('float-free: the cross-option limits (shift sum <= 24, init <= clip)', () => {
    resolveMethodConfig('float-free', { ffShift: 20, ffPixelShift: 4 });
    throwsConfig(
      () => resolveMethodConfig('float-free', { ffShift: 20, ffPixelShift: 5 }),
      '--ff-pixel-shift',
      '--ff-pixel-shift: expected an integer in 0..4 (--ff-shift + --ff-pixel-shift <= 24), got 5',
    );
    resolveMethodConfig('float-free', { ffClip: 100, ffInit: 100 });
    throwsConfig(
      () => resolveMethodConfig('float-free', { ffClip: 100, ffInit: 101 }),
      '--ff-init',
      '--ff-init: expected an integer in 0..--ff-clip (100); 0 = Glorot-like, got 101',
    );
  });

  test('an unknown method is a ConfigError on --method', () => {
    throwsConfig(
      () => methodDefinition('magic'),
      '--method',
      `--method: expected one of ${METHOD_NAMES.join(', ')}, got "magic"`,
    );
    assert.throws(
      () => resolveMethodConfig('magic', {}),
      (e: unknown) => e instanceof ConfigError && e.field === '--method',
    );
  });

  test('given values are kept, the others take their declared defaults', () => {
    assert.deepEqual(resolveMethodConfig('ste', { surrogate: 'clipped-identity', clipLatent: false }), {
      surrogate: 'clipped-identity',
      clipLatent: false,
    });
    assert.deepEqual(resolveMethodConfig('bayesbinn', { bbMomentum: 0.5, muLag: false }), {
      temperature: BAYES_BINN_DEFAULTS.temperature,
      trainSetScale: BAYES_BINN_DEFAULTS.trainSetScale,
      klReweight: BAYES_BINN_DEFAULTS.klReweight,
      bbMomentum: 0.5,
      lambdaInit: BAYES_BINN_DEFAULTS.lambdaInit,
      muLag: false,
      scaleEstimate: BAYES_BINN_DEFAULTS.scale,
    });
  });

  test('checkpoints store these keys: each method declares exactly them', () => {
    // Renaming a key would make every checkpoint that stores it unreadable; this list is that contract.
    const stored: Record<string, string[]> = {
      ste: ['surrogate', 'clipLatent'],
      vispa: ['rank', 'scale', 'momentum', 'weightDecay'],
      bayesbinn: [
        'temperature',
        'trainSetScale',
        'klReweight',
        'bbMomentum',
        'lambdaInit',
        'muLag',
        'scaleEstimate',
      ],
      bop: ['bopThreshold', 'bopGamma', 'bopSchedule'],
      'float-free': [
        ...['ffShift', 'ffPixelShift', 'ffClip', 'ffInit', 'ffSchedule'],
        ...['ffCenter', 'ffProject', 'ffProjectHidden'],
      ],
    };
    assert.deepEqual(Object.fromEntries(METHODS.map((m) => [m.name, m.options.map((o) => o.key)])), stored);
  });

  test('declarations are well-formed: unique flags and keys, defaults that pass their own validation', () => {
    assert.equal(new Set(METHOD_NAMES).size, METHOD_NAMES.length, 'method names are unique');
    const flagOwner = new Map<string, string>();
    const keyOwner = new Map<string, string>();
    for (const method of METHODS) {
      assert.ok(method.description.length > 0 && !method.description.includes('\n'), method.name);
      for (const d of method.options) {
        const where = `${method.name} ${d.flag}`;
        // No option is shared between methods today: one flag, one key, one method.
        assert.equal(
          flagOwner.get(d.flag),
          undefined,
          `${where}: flag also declared by ${flagOwner.get(d.flag)}`,
        );
        assert.equal(
          keyOwner.get(d.key),
          undefined,
          `${where}: key ${d.key} also declared by ${keyOwner.get(d.key)}`,
        );
        flagOwner.set(d.flag, method.name);
        keyOwner.set(d.key, method.name);
        assert.match(d.flag, /^--[a-z][a-z0-9]*(-[a-z0-9]+)*$/, where);
        assert.match(d.key, /^[a-z][A-Za-z0-9]*$/, where);
        assert.ok(d.help.length > 0 && !d.help.includes('\n'), `${where}: one line of help`);
        if (d.kind === 'boolean') {
          // A switch moves away from its default: '--no-x' turns off what is on, '--x' turns on what is off.
          assert.equal(d.flag.startsWith('--no-'), d.default, `${where}: flag and default agree`);
        }
        if (d.kind === 'choice') assert.equal(new Set(d.choices).size, d.choices.length, where);
        assert.ok(isValidValue(d, d.default), `${where}: default ${String(d.default)} is ${expectedText(d)}`);
      }
      // The defaults together pass the method's own cross-option check too.
      const defaults = method.resolve({});
      assert.deepEqual(defaults, Object.fromEntries(method.options.map((d) => [d.key, d.default])));
    }
  });

  test('run defaults are valid run settings', () => {
    for (const method of METHODS) {
      for (const epochs of [1, 5, 100]) {
        const r = method.runDefaults(epochs);
        for (const key of ['learningRate', 'realLearningRate', 'realWeightDecay', 'warmupEpochs'] as const) {
          const value = r[key];
          if (value !== undefined) assert.ok(Number.isFinite(value) && value >= 0, `${method.name} ${key}`);
        }
        if (r.warmupEpochs !== undefined) assert.ok(r.warmupEpochs <= epochs, `${method.name} warm-up fits`);
        if (r.realOptimizer !== undefined) assert.ok(['adam', 'sgd'].includes(r.realOptimizer));
      }
    }
  });
});
