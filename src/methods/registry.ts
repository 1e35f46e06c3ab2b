/**
 * Training methods by name. Every method describes itself (definition.ts): its options, their validation
 * and its run defaults come from its definition, so adding a method is its file plus one entry in METHODS.
 */
import { ConfigError } from '../errors.js';
import type { Learner, LearnerSetup } from './learner.js';
import type { OptionValues } from './options.js';
import type { MethodDefinition, RunDefaults, RunView } from './definition.js';
import { BAYES_BINN } from './bayes-binn.js';
import { BOP } from './bop.js';
import { FLOAT_FREE } from './float-free.js';
import { STE } from './ste.js';
import { VISPA } from './vispa.js';

/** Every method, in the order listings and `--help` show them. */
export const METHODS = [STE, VISPA, BAYES_BINN, BOP, FLOAT_FREE] as const;

export type MethodName = (typeof METHODS)[number]['name'];
export const METHOD_NAMES: readonly MethodName[] = METHODS.map((m) => m.name);

/** The named method's definition, or undefined for a name no method has. */
export function findMethod(name: string): MethodDefinition | undefined {
  return METHODS.find((m) => m.name === name);
}

/** The named method's definition; ConfigError on '--method' for a name no method has. */
export function methodDefinition(name: string): MethodDefinition {
  const definition = findMethod(name);
  if (definition === undefined) {
    throw new ConfigError('--method', `one of ${METHOD_NAMES.join(', ')}`, JSON.stringify(name));
  }
  return definition;
}

/**
 * Validates a config's method and methodOptions: defaults filled in, every value checked (ConfigError naming
 * the flag), options of other methods refused, and with `run`, options that would do nothing under the
 * run's settings refused. Returns the complete options.
 */
export function resolveMethodConfig(
  name: string,
  options: Readonly<Record<string, number | string | boolean>>,
  run?: RunView,
): OptionValues {
  return methodDefinition(name).resolve(options, METHODS, run);
}

/** The named method bound to the model of `setup` (methods/learner.ts), its options validated as above. */
export function createLearner(
  name: string,
  options: Readonly<Record<string, number | string | boolean>>,
  setup: LearnerSetup,
): Learner {
  const definition = methodDefinition(name);
  return definition.createLearner(definition.resolve(options, METHODS), setup);
}

/** Run settings a method asks for where the user gives none; the same as runDefaults of its definition. */
export type MethodRunSettings = RunDefaults;

/** The learning rate a method asks for when `--lr` is absent; undefined: TRAIN_DEFAULTS.learningRate. */
export function defaultLearningRate(method: string): number | undefined {
  return findMethod(method)?.runDefaults(1).learningRate;
}

/** The run settings a method asks for in a run of `epochs` epochs (none for an unknown name). */
export function defaultRunSettings(method: string, epochs: number): MethodRunSettings {
  return findMethod(method)?.runDefaults(epochs) ?? {};
}
