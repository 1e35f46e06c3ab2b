/**
 * The command-line side of the methods' option declarations (src/methods/options.ts): one commander
 * Option per declared flag, grouped by method in `--help`, the values the user gave copied back into
 * `methodOptions` under their stored keys, and the per-method defaults shown in the run-level flags' help.
 */
import { Option } from 'commander';
import type { RunDefaults } from '../methods/definition.js';
import type { OptionDeclaration, OptionValue } from '../methods/options.js';
import { METHODS } from '../methods/registry.js';
import {
  BAYES_BINN,
  BAYES_BINN_POSTERIOR_NAMES,
  BAYES_BINN_POSTERIORS,
  type BayesBinnPosterior,
  type BayesBinnPosteriorName,
} from '../methods/bayes-binn.js';
import { ConfigError } from '../errors.js';
import { parseChoice, parseInteger, parseNumber } from './options.js';

/** Each declared flag once, with the methods that declare it (a flag several methods share is one flag). */
function declaredFlags(): { declaration: OptionDeclaration; methods: string[] }[] {
  const byFlag = new Map<string, { declaration: OptionDeclaration; methods: string[] }>();
  for (const method of METHODS) {
    for (const declaration of method.options) {
      const entry = byFlag.get(declaration.flag);
      if (entry === undefined) byFlag.set(declaration.flag, { declaration, methods: [method.name] });
      else entry.methods.push(method.name);
    }
  }
  return [...byFlag.values()];
}

function helpText(d: OptionDeclaration): string {
  switch (d.kind) {
    case 'boolean':
      // The flag itself changes the default, so there is nothing else to show.
      return d.help;
    case 'choice':
      return `${d.help} (${d.choices.join(', ')}; default: ${d.default})`;
    case 'number':
    case 'integer':
      return `${d.help} (default: ${d.default})`;
  }
}

function commanderOption(d: OptionDeclaration, methods: readonly string[]): Option {
  const shared = methods.length > 1 ? `${methods.join(', ')}: ` : '';
  const help = `${shared}${helpText(d)}`;
  switch (d.kind) {
    case 'boolean':
      return new Option(d.flag, help);
    case 'choice':
      return new Option(`${d.flag} <${d.placeholder ?? 'kind'}>`, help).argParser(
        parseChoice(d.flag, d.choices),
      );
    case 'number':
      return new Option(`${d.flag} <${d.placeholder ?? 'x'}>`, help).argParser(parseNumber(d.flag));
    case 'integer':
      return new Option(`${d.flag} <${d.placeholder ?? 'n'}>`, help).argParser(parseInteger(d.flag));
  }
}

/**
 * One commander Option per flag the methods declare, in METHODS order, each under the help heading of the
 * (first) method that declares it. Numbers are only parsed here; ranges are checked with the whole config
 * (resolveMethodConfig, from checkConfig), so a config from a file and one from flags get the same errors.
 */
export function methodFlagOptions(): Option[] {
  const options = declaredFlags().map(({ declaration, methods }) =>
    commanderOption(declaration, methods).helpGroup(helpGroup(methods[0])),
  );
  // BayesBiNN's named settings, first among its flags.
  const at = options.findIndex((o) => o.helpGroupHeading === helpGroup(BAYES_BINN.name));
  const posterior = new Option(
    '--posterior <name>',
    `a named setting of BayesBiNN's posterior, for the method flags and --lr not given: ${BAYES_BINN_POSTERIOR_NAMES.map(
      (name) => `${name} (${BAYES_BINN_POSTERIORS[name].description})`,
    ).join('; ')} (default: paper)`,
  )
    .argParser(parseChoice('--posterior', BAYES_BINN_POSTERIOR_NAMES))
    .helpGroup(helpGroup(BAYES_BINN.name));
  options.splice(at < 0 ? options.length : at, 0, posterior);
  return options;
}

function helpGroup(methodName: string): string {
  const method = METHODS.find((m) => m.name === methodName);
  return `Options of --method ${methodName}${method === undefined ? '' : ` (${method.description})`}:`;
}

/**
 * The named BayesBiNN setting of `--posterior`, or null without the flag; refused with another method. Its
 * options and learning rate apply where the user gave no flag of their own.
 */
export function posteriorPreset(flags: {
  method: string;
  posterior?: BayesBinnPosteriorName;
}): BayesBinnPosterior | null {
  if (flags.posterior === undefined) return null;
  if (flags.method !== BAYES_BINN.name) {
    throw new ConfigError(
      '--posterior',
      `--method ${BAYES_BINN.name} (it names a setting of BayesBiNN's posterior)`,
      `--method ${flags.method}`,
    );
  }
  return BAYES_BINN_POSTERIORS[flags.posterior];
}

/**
 * The method options the user gave, under their stored keys: values commander parsed from the declared
 * flags (found under commander's attribute name, e.g. `vispaScale` for --vispa-scale, `muLag` for
 * --no-mu-lag). Only what was given, so a config stays minimal and a method refuses another one's options.
 */
export function methodOptionsFromFlags(
  flags: Readonly<Record<string, unknown>>,
): Record<string, OptionValue> {
  const options: Record<string, OptionValue> = {};
  for (const { declaration } of declaredFlags()) {
    const value = flags[new Option(declaration.flag).attributeName()];
    if (value === undefined) continue;
    // A switch is given when it differs from the default commander fills in for '--no-x' (true).
    if (declaration.kind === 'boolean' && value === declaration.default) continue;
    options[declaration.key] = value as OptionValue;
  }
  return options;
}

/**
 * The methods' own defaults of a run setting, to follow the general default in a run-level flag's help:
 * e.g. "; bayesbinn 0.0001; vispa 400", or "" when no method sets it. Epoch-dependent ones read as their
 * definition describes them (runDefaultsHelp).
 */
export function methodRunDefaultsHelp(field: keyof RunDefaults, epochs: number): string {
  return METHODS.flatMap((m) => {
    const value = m.runDefaults(epochs)[field];
    if (value === undefined) return [];
    const shown =
      m.runDefaultsHelp[field] ?? (typeof value === 'boolean' ? (value ? 'on' : 'off') : String(value));
    return [`; ${m.name} ${shown}`];
  }).join('');
}
