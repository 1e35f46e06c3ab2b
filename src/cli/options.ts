/** Flag parsing helpers shared by the commands: every bad value becomes one clear ConfigError. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, Option } from 'commander';
import { defaultBackendKind } from '../backend/native/index.js';
import type { BackendKind } from '../config/train-config.js';

export function parseInteger(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${flag} expects an integer, got "${value}"`);
    return n;
  };
}

export function parsePositiveInteger(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0)
      throw new InvalidArgumentError(`${flag} expects a positive integer, got "${value}"`);
    return n;
  };
}

export function parseNumber(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n))
      throw new InvalidArgumentError(`${flag} expects a number, got "${value}"`);
    return n;
  };
}

export function parseChoice<T extends string>(flag: string, choices: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`${flag} expects one of ${choices.join(', ')}, got "${value}"`);
    }
    return value as T;
  };
}

/** onebit's download cache: $XDG_CACHE_HOME/onebit or ~/.cache/onebit. */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'onebit');
}

export function parseNonNegativeInteger(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < 0)
      throw new InvalidArgumentError(`${flag} expects an integer >= 0, got "${value}"`);
    return n;
  };
}

export function parsePositiveNumber(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${flag} expects a number > 0, got "${value}"`);
    return n;
  };
}

/**
 * Whether the user typed the option `key` (commander's attribute name, e.g. 'testSamples'), as opposed to
 * its default: the commands refuse a typed flag that would have no effect.
 */
export function optionGiven(
  command: { getOptionValueSource(key: string): string | undefined },
  key: string,
): boolean {
  const source = command.getOptionValueSource(key);
  return source !== undefined && source !== 'default' && source !== 'implied';
}

/** A list of class indices: `0-4`, `0,2,4` or `0-2,7` (ranges inclusive), in the order written. */
export function parseClassList(flag: string): (value: string) => number[] {
  return (value) => {
    const classes: number[] = [];
    for (const part of value.split(',')) {
      const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
      if (m === null)
        throw new InvalidArgumentError(`${flag} expects class indices like 0-4 or 0,2,4, got "${value}"`);
      const from = Number(m[1]);
      const to = m[2] === undefined ? from : Number(m[2]);
      if (to < from) throw new InvalidArgumentError(`${flag}: the range ${part.trim()} runs backwards`);
      if (to - from > 65535) throw new InvalidArgumentError(`${flag}: the range ${part.trim()} is too long`);
      for (let c = from; c <= to; c++) classes.push(c);
    }
    return classes;
  };
}

/**
 * `--backend <kind>`, the same for every command that runs a model: native (the Node addon; the default where
 * it is built), wasm (the default elsewhere) or reference.
 */
export function backendOption(): Option {
  return new Option('--backend <kind>', 'native, wasm or reference')
    .argParser(parseChoice<BackendKind>('--backend', ['native', 'wasm', 'reference']))
    .default(defaultBackendKind(), 'native where it is built, else wasm');
}
