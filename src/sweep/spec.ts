/**
 * A sweep spec: one or more grids of `onebit train` or `onebit continual` settings, each setting a flag of
 * that command. A list is an axis of the grid; anything else is fixed. Each train grid may name the
 * evaluation to run on every finished run (flags of `onebit eval`). Example:
 *
 * ```json
 * { "grids": [
 *   { "command": "train", "flags": { "model": "mlp-2x2048", "method": ["ste", "bop"], "seed": [1, 2, 3] },
 *     "eval": { "test-samples": 20 } },
 *   { "command": "continual", "flags": { "stream": ["permuted", "split"], "method": "bayesbinn", "seed": [1, 2, 3] } }
 * ] }
 * ```
 *
 * The flags a command takes are given by the caller (the CLI reads them from its own program), so a
 * misspelt flag is refused here with the grid and the flag named, not at the first job hours later.
 */
import { SpecError } from '../errors.js';

/** A flag's value as a spec may give it: a string, a number, or a boolean (true: `--flag`, false: `--no-flag`). */
export type FlagValue = string | number | boolean;

export type SweepCommand = 'train' | 'continual';
export const SWEEP_COMMANDS: readonly SweepCommand[] = ['train', 'continual'];

export interface GridSpec {
  readonly command: SweepCommand;
  /** Flag name (as typed, without the dashes) to a value, or to a list of values (an axis). */
  readonly flags: Readonly<Record<string, FlagValue | readonly FlagValue[]>>;
  /** Flags of `onebit eval` run on each finished train job (fixed, no axes); null: the train result only. */
  readonly evaluate: Readonly<Record<string, FlagValue>> | null;
}

export interface SweepSpec {
  readonly grids: readonly GridSpec[];
}

/** What the caller allows: each command's flags (long names without dashes) and `eval`'s. */
export interface SweepFlagRules {
  readonly flags: Readonly<Record<SweepCommand, ReadonlySet<string>>>;
  readonly evaluate: ReadonlySet<string>;
  /** Flags the sweep sets itself (e.g. out, json, threads): refused in a spec. */
  readonly reserved: ReadonlySet<string>;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isFlagValue(value: unknown): value is FlagValue {
  return (
    typeof value === 'string' ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isFinite(value))
  );
}

function parseFlags(
  where: string,
  value: unknown,
  allowed: ReadonlySet<string>,
  reserved: ReadonlySet<string>,
  axes: boolean,
  file: string | null,
): Record<string, FlagValue | FlagValue[]> {
  if (!isRecord(value))
    throw new SpecError(where, 'an object of flag names to values', describe(value), file);
  const flags: Record<string, FlagValue | FlagValue[]> = {};
  for (const [name, given] of Object.entries(value)) {
    const at = `${where}.${name}`;
    const bare = name.replace(/^--/, '');
    if (reserved.has(bare))
      throw new SpecError(at, 'a flag the sweep does not set itself', `--${bare}`, file);
    if (!allowed.has(bare)) {
      throw new SpecError(at, `a flag of the command (${[...allowed].sort().join(', ')})`, `--${bare}`, file);
    }
    if (bare in flags) throw new SpecError(at, 'each flag once', `--${bare} twice`, file);
    if (Array.isArray(given)) {
      if (!axes) throw new SpecError(at, 'one value (eval settings are not a grid axis)', 'a list', file);
      if (given.length === 0) throw new SpecError(at, 'a non-empty list of values', 'an empty list', file);
      given.forEach((v, i) => {
        if (!isFlagValue(v))
          throw new SpecError(`${at}[${i}]`, 'a string, number or boolean', describe(v), file);
      });
      const distinct = new Set(given.map((v) => JSON.stringify(v)));
      if (distinct.size !== given.length)
        throw new SpecError(at, 'distinct values', JSON.stringify(given), file);
      flags[bare] = [...(given as FlagValue[])];
    } else if (isFlagValue(given)) {
      flags[bare] = given;
    } else {
      throw new SpecError(at, 'a string, number, boolean or a list of them', describe(given), file);
    }
  }
  return flags;
}

/** Reads and checks a sweep spec (already parsed from JSON); `file` names it in errors. */
export function parseSweepSpec(json: unknown, rules: SweepFlagRules, file: string | null = null): SweepSpec {
  const top = isRecord(json) && !('grids' in json) && 'command' in json ? { grids: [json] } : json;
  if (!isRecord(top)) throw new SpecError('(top level)', 'an object with "grids"', describe(json), file);
  for (const key of Object.keys(top)) {
    if (key !== 'grids') throw new SpecError(key, 'only "grids" at the top level', `"${key}"`, file);
  }
  const grids = top.grids;
  if (!Array.isArray(grids) || grids.length === 0) {
    throw new SpecError('grids', 'a non-empty list of grids', describe(grids), file);
  }
  return {
    grids: grids.map((grid: unknown, g): GridSpec => {
      const where = `grids[${g}]`;
      if (!isRecord(grid)) throw new SpecError(where, 'an object', describe(grid), file);
      for (const key of Object.keys(grid)) {
        if (key !== 'command' && key !== 'flags' && key !== 'eval') {
          throw new SpecError(`${where}.${key}`, 'only "command", "flags" and "eval"', `"${key}"`, file);
        }
      }
      const command = grid.command;
      if (typeof command !== 'string' || !(SWEEP_COMMANDS as readonly string[]).includes(command)) {
        throw new SpecError(`${where}.command`, SWEEP_COMMANDS.join(' or '), describe(command), file);
      }
      const which = command as SweepCommand;
      const flags = parseFlags(
        `${where}.flags`,
        grid.flags ?? {},
        rules.flags[which],
        rules.reserved,
        true,
        file,
      );
      let evaluate: Record<string, FlagValue> | null = null;
      if (grid.eval !== undefined) {
        if (which !== 'train') {
          throw new SpecError(
            `${where}.eval`,
            'no "eval" on a continual grid (it evaluates every task itself)',
            'one',
            file,
          );
        }
        evaluate = parseFlags(
          `${where}.eval`,
          grid.eval,
          rules.evaluate,
          rules.reserved,
          false,
          file,
        ) as Record<string, FlagValue>;
      }
      return { command: which, flags, evaluate };
    }),
  };
}
