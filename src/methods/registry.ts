/** Training methods by name, with their hyperparameters read from a config's methodOptions. */
import { ConfigError } from '../train/config.js';
import type { BinaryMethod } from './method.js';
import { STE_DEFAULTS, SteMethod } from './ste.js';

export const METHOD_NAMES = ['ste'] as const;
export type MethodName = (typeof METHOD_NAMES)[number];

type Options = Readonly<Record<string, number | string | boolean>>;

function option<T extends number | string | boolean>(options: Options, name: string, fallback: T): T {
  const value = options[name];
  if (value === undefined) return fallback;
  if (typeof value !== typeof fallback) {
    throw new ConfigError(name, `a ${typeof fallback}`, JSON.stringify(value));
  }
  return value as T;
}

export function createMethod(name: string, options: Options): BinaryMethod {
  switch (name) {
    case 'ste': {
      const surrogate = option(options, 'surrogate', STE_DEFAULTS.surrogate as string);
      if (surrogate !== 'identity' && surrogate !== 'clipped-identity') {
        throw new ConfigError('surrogate', 'identity or clipped-identity', surrogate);
      }
      return new SteMethod({
        ...STE_DEFAULTS,
        surrogate,
        clipLatent: option(options, 'clipLatent', STE_DEFAULTS.clipLatent),
      });
    }
    default:
      throw new ConfigError('method', `one of ${METHOD_NAMES.join(', ')}`, JSON.stringify(name));
  }
}
