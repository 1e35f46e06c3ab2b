/**
 * A training method's options, declared once: the key stored in `TrainConfig.methodOptions`, the flag a
 * user types, the kind of value, its default, its range and its help. Validation (here), the command-line
 * flags and their help (src/cli/method-flags.ts) are all generated from these declarations, so an option's
 * facts live in one place and every error names the flag the user typed.
 */
import { ConfigError } from '../errors.js';

/** A value in `TrainConfig.methodOptions` (JSON in checkpoints). */
export type OptionValue = number | string | boolean;
/** Method options by key, as stored in a config. */
export type OptionValues = Readonly<Record<string, OptionValue>>;

/** Bounds of a numeric option; an end is closed (>=, <=) unless marked open (>, <). */
export interface NumberBounds {
  readonly min?: number;
  readonly max?: number;
  readonly minOpen?: boolean;
  readonly maxOpen?: boolean;
}

/** A numeric constraint that bounds cannot say, with the text an error shows as "expected". */
export interface NumberCheck {
  readonly test: (value: number) => boolean;
  readonly expected: string;
}

interface DeclarationBase {
  /** Key in `TrainConfig.methodOptions`; checkpoints store it, so it never changes. */
  readonly key: string;
  /**
   * The flag as the user types it, e.g. '--ff-clip'. A boolean that is on by default is turned off by its
   * flag, so its flag is '--no-' + its name ('--no-mu-lag'); one that is off by default, '--' + its name.
   */
  readonly flag: `--${string}`;
  /** One line for `--help`, without the default (it is appended). */
  readonly help: string;
}

export interface NumberDeclaration extends DeclarationBase {
  /** 'integer' also requires a whole number. Either way the value is finite. */
  readonly kind: 'number' | 'integer';
  readonly default: number;
  readonly range?: NumberBounds | NumberCheck;
  /** Name of the value in `--help`, e.g. 'tau' in `--temperature <tau>` (default x, or n for integers). */
  readonly placeholder?: string;
}

export interface BooleanDeclaration extends DeclarationBase {
  readonly kind: 'boolean';
  readonly default: boolean;
}

export interface ChoiceDeclaration<C extends string = string> extends DeclarationBase {
  readonly kind: 'choice';
  readonly choices: readonly C[];
  readonly default: NoInfer<C>;
  /** Name of the value in `--help` (default kind). */
  readonly placeholder?: string;
}

export type OptionDeclaration = NumberDeclaration | BooleanDeclaration | ChoiceDeclaration;

/** The value type one declaration resolves to. */
export type DeclaredValue<D> = D extends { readonly kind: 'choice'; readonly choices: readonly (infer C)[] }
  ? C
  : D extends { readonly kind: 'boolean' }
    ? boolean
    : number;

/** The resolved options of a list of declarations: every key present, typed by its declaration. */
export type DeclaredValues<Ds extends readonly OptionDeclaration[]> = {
  readonly [D in Ds[number] as D['key']]: DeclaredValue<D>;
};

function isCheck(range: NumberBounds | NumberCheck): range is NumberCheck {
  return 'test' in range;
}

/** "an integer in 1..32767", "a number in [0, 1)", "a number > 0", ...: what a valid value looks like. */
export function expectedText(declaration: OptionDeclaration): string {
  switch (declaration.kind) {
    case 'boolean':
      return 'true or false';
    case 'choice':
      return `one of ${declaration.choices.join(', ')}`;
    case 'number':
    case 'integer': {
      const noun = declaration.kind === 'integer' ? 'an integer' : 'a number';
      const range = declaration.range;
      if (range === undefined) return noun;
      if (isCheck(range)) return range.expected;
      const { min, max, minOpen = false, maxOpen = false } = range;
      if (min !== undefined && max !== undefined) {
        if (declaration.kind === 'integer' && !minOpen && !maxOpen) return `${noun} in ${min}..${max}`;
        return `${noun} in ${minOpen ? '(' : '['}${min}, ${max}${maxOpen ? ')' : ']'}`;
      }
      if (min !== undefined) return `${noun} ${minOpen ? '>' : '>='} ${min}`;
      if (max !== undefined) return `${noun} ${maxOpen ? '<' : '<='} ${max}`;
      return noun;
    }
  }
}

function inBounds(value: number, { min, max, minOpen = false, maxOpen = false }: NumberBounds): boolean {
  if (min !== undefined && (minOpen ? !(value > min) : !(value >= min))) return false;
  if (max !== undefined && (maxOpen ? !(value < max) : !(value <= max))) return false;
  return true;
}

/** Whether `value` is valid for the declaration: of its kind, and within its range or choices. */
export function isValidValue(declaration: OptionDeclaration, value: unknown): boolean {
  switch (declaration.kind) {
    case 'boolean':
      return typeof value === 'boolean';
    case 'choice':
      return typeof value === 'string' && declaration.choices.includes(value);
    case 'number':
    case 'integer': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return false;
      if (declaration.kind === 'integer' && !Number.isInteger(value)) return false;
      const range = declaration.range;
      if (range === undefined) return true;
      return isCheck(range) ? range.test(value) : inBounds(value, range);
    }
  }
}

/** A value as an error shows it: strings quoted (so a string "2" reads apart from the number 2). */
export function showValue(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** The options a method declares, for naming the owner of a stray option. */
export interface DeclaredOptions {
  readonly name: string;
  readonly options: readonly OptionDeclaration[];
}

export interface ResolveContext {
  /** The method the options are given to, named in errors. */
  readonly method: string;
  /** Every method's declarations, so an option of another method is reported as that method's. */
  readonly methods?: readonly DeclaredOptions[];
}

/**
 * Every declared option's value: the given one where present (validated), else the default. Throws
 * ConfigError naming the typed flag for a value of the wrong kind or out of range, and for a key the
 * method does not declare (with the method it belongs to, when another one declares it).
 */
export function resolveMethodOptions(
  declarations: readonly OptionDeclaration[],
  given: Readonly<Record<string, unknown>>,
  context: ResolveContext = { method: 'this method' },
): Record<string, OptionValue> {
  const byKey = new Map(declarations.map((d) => [d.key, d]));
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined || byKey.has(key)) continue;
    const owners = (context.methods ?? []).filter((m) => m.options.some((d) => d.key === key));
    const owned = owners[0]?.options.find((d) => d.key === key);
    if (owned !== undefined) {
      throw new ConfigError(
        owned.flag,
        `no such option with --method ${context.method} (it is an option of ${owners.map((m) => m.name).join(', ')})`,
        showValue(value),
      );
    }
    const known = declarations.map((d) => d.key).join(', ');
    throw new ConfigError(
      key,
      `an option of method ${context.method} (${known === '' ? 'it has none' : known})`,
      showValue(value),
    );
  }
  const values: Record<string, OptionValue> = {};
  for (const d of declarations) {
    const value = given[d.key];
    if (value === undefined) {
      values[d.key] = d.default;
      continue;
    }
    if (!isValidValue(d, value)) throw new ConfigError(d.flag, expectedText(d), showValue(value));
    values[d.key] = value as OptionValue;
  }
  return values;
}
