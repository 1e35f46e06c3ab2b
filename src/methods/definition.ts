/**
 * What a training method says about itself: its name, a one-line description, its options (options.ts)
 * and the run settings it asks for when the user gives none. The registry, the command-line flags, their
 * help and the validation of a config's `methodOptions` are all generated from these definitions, so adding
 * a method is one file that exports `defineMethod({...})` plus its entry in the registry's METHODS list.
 */
import type { ScheduleKind } from '../optim/schedules.js';
import { createFloatModelLearner } from './float-model.js';
import type { Learner, LearnerSetup } from './learner.js';
import type { BinaryMethod } from './method.js';
import {
  resolveMethodOptions,
  type DeclaredOptions,
  type DeclaredValues,
  type OptionDeclaration,
  type OptionValues,
} from './options.js';

/**
 * Run settings a method asks for where the user gives no flag (TRAIN_DEFAULTS otherwise): the fields of
 * TrainConfig of the same names.
 */
export interface RunDefaults {
  readonly learningRate?: number;
  readonly realLearningRate?: number;
  readonly realOptimizer?: 'adam' | 'sgd';
  readonly realWeightDecay?: number;
  readonly schedule?: ScheduleKind;
  readonly warmupEpochs?: number;
  readonly channelScale?: boolean;
  readonly recalibrateBatchNorm?: boolean;
}

/** What every method declaration has, with its option values typed by its declarations. */
interface DeclarationBase<N extends string, Ds extends readonly OptionDeclaration[]> {
  readonly name: N;
  /** One line, for `--help` and listings. */
  readonly description: string;
  readonly options: Ds;
  /** The run settings this method asks for in a run of `epochs` epochs. */
  runDefaults?(epochs: number): RunDefaults;
  /**
   * How a run default that depends on the epochs reads in `--help` (e.g. warmupEpochs 'min(5, epochs/10)');
   * others show their value.
   */
  readonly runDefaultsHelp?: Partial<Record<keyof RunDefaults, string>>;
  /** Constraints between options (each option's own range is checked before); throws ConfigError. */
  check?(values: DeclaredValues<Ds>): void;
  /**
   * Constraints between options and the run's settings (an option that would do nothing under them is
   * refused); throws ConfigError.
   */
  checkRun?(values: DeclaredValues<Ds>, run: RunView): void;
  /**
   * Run settings this method never reads, with why: a user who sets one is told instead of ignored
   * (float-free has no learning rate, schedule or real-valued optimizer).
   */
  readonly unusedRunSettings?: UnusedRunSettings;
}

/** The run settings a method's options may depend on. */
export interface RunView {
  readonly schedule: ScheduleKind;
}

/** Run settings (TrainConfig fields) a method does not read, and the reason shown to the user. */
export interface UnusedRunSettings {
  readonly settings: readonly (keyof RunDefaults)[];
  readonly reason: string;
}

/**
 * A method definition as written in its file: exactly one of
 * - `create`: a fresh method over a model's binary weights with these (complete, validated) options, which
 *   the run binds to the model in a float-model learner (float-model.ts);
 * - `createLearner`: a learner of the method's own (float-free's integer network) for these options.
 */
export type MethodDeclaration<N extends string, Ds extends readonly OptionDeclaration[]> = DeclarationBase<
  N,
  Ds
> &
  (
    | { create(values: DeclaredValues<Ds>): BinaryMethod; readonly createLearner?: never }
    | { createLearner(values: DeclaredValues<Ds>, setup: LearnerSetup): Learner; readonly create?: never }
  );

/** A method definition as the registry and the CLI see it. */
export interface MethodDefinition<N extends string = string> extends DeclaredOptions {
  readonly name: N;
  readonly description: string;
  readonly options: readonly OptionDeclaration[];
  runDefaults(epochs: number): RunDefaults;
  readonly runDefaultsHelp: Partial<Record<keyof RunDefaults, string>>;
  readonly unusedRunSettings: UnusedRunSettings;
  /**
   * Fills defaults and validates `given` (a config's methodOptions), including the cross-option check;
   * `methods` names the owner of an option given to the wrong method.
   */
  resolve(
    given: Readonly<Record<string, unknown>>,
    methods?: readonly DeclaredOptions[],
    run?: RunView,
  ): OptionValues;
  /** The method bound to the model of `setup`, from resolved options (`resolve`'s result). */
  createLearner(values: OptionValues, setup: LearnerSetup): Learner;
}

/** Makes a method's definition from its declaration; the option types come from the declarations. */
export function defineMethod<const N extends string, const Ds extends readonly OptionDeclaration[]>(
  declaration: MethodDeclaration<N, Ds>,
): MethodDefinition<N> {
  const { name, description, options } = declaration;
  // The one cast: `resolve` builds exactly the object DeclaredValues<Ds> describes (every declared key,
  // each valid for its declaration), which the type system cannot follow through the loop.
  const typed = (values: OptionValues): DeclaredValues<Ds> => values as DeclaredValues<Ds>;
  return {
    name,
    description,
    options,
    runDefaults: (epochs) => declaration.runDefaults?.(epochs) ?? {},
    runDefaultsHelp: declaration.runDefaultsHelp ?? {},
    unusedRunSettings: declaration.unusedRunSettings ?? { settings: [], reason: '' },
    resolve(given, methods, run) {
      const values = resolveMethodOptions(options, given, { method: name, methods });
      declaration.check?.(typed(values));
      if (run !== undefined) declaration.checkRun?.(typed(values), run);
      return values;
    },
    createLearner(values, setup) {
      if (declaration.createLearner !== undefined) return declaration.createLearner(typed(values), setup);
      return createFloatModelLearner(declaration.create(typed(values)), setup);
    },
  };
}
