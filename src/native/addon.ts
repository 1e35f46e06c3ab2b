/**
 * The native Node addon (native/onebit.node, built from src/kernels and src/native by
 * scripts/build-native.mjs): the training kernels and the inference engine's, compiled by clang at several
 * instruction-set levels, one chosen by the CPU, on a pool of native threads (src/native/addon.c).
 *
 * The addon is optional: it exists only where `npm run build` found clang and Node's headers, and only Node
 * can load it. `loadNativeAddon()` says why it is missing instead of throwing, so callers can fall back to
 * WebAssembly. Loading touches no `node:` import statement (a browser bundle holds this file unused).
 */
import { nodeBuiltin } from '../wasm/host.js';

/** Instruction-set levels of the addon, best first (src/native/addon.c). */
export const NATIVE_LEVELS = ['avx512', 'avx2', 'baseline'] as const;
export type NativeLevel = (typeof NATIVE_LEVELS)[number];

/** An opened level with its thread pool (an N-API external). */
export type NativeContext = { readonly __nativeContext: unique symbol };

/** A kernel argument: a number, a null pointer, or a typed array (passed as a pointer to its first entry). */
export type NativeArg =
  | number
  | null
  | Float32Array
  | Float64Array
  | Int32Array
  | Uint32Array
  | Uint8Array
  | Int8Array
  | Int16Array;

/** The addon's sets of kernels: the training backend's, the inference engine's and the float-free step's. */
export type NativeKernelSet = 'training' | 'engine' | 'float-free';

export interface NativeAddon {
  /** The levels this CPU can run, best first. */
  levels(): NativeLevel[];
  /** A set's kernels, in the order `run` numbers them. */
  kernelNames(set: NativeKernelSet): string[];
  open(level: NativeLevel, threads: number, set: NativeKernelSet): NativeContext;
  /** Runs a kernel; returns its result (0 for a kernel that returns nothing). */
  run(context: NativeContext, kernel: number, threads: number, ...args: NativeArg[]): number;
  /**
   * Runs a kernel whose pointer arguments are byte offsets into `memory` (the engine's): a whole number
   * 0 < v <= memory.byteLength reaches the kernel as a pointer to memory[v] (and as the number), others as
   * NULL.
   */
  runIn(
    context: NativeContext,
    kernel: number,
    threads: number,
    memory: Uint8Array,
    ...args: number[]
  ): number;
  /** The address of the array's first byte modulo 64 (to align what is placed in it). */
  misalignment(array: Uint8Array): number;
  close(context: NativeContext): void;
}

export type NativeAddonStatus =
  | { readonly available: true; readonly addon: NativeAddon; readonly levels: readonly NativeLevel[] }
  | { readonly available: false; readonly reason: string };

/** Where the addon is: native/onebit.node at the package's root (from src/native or dist/native). */
export const NATIVE_ADDON_URL = new URL('../../native/onebit.node', import.meta.url);

let cached: NativeAddonStatus | null = null;

/** The addon, loaded once per process, or why it cannot be. */
export function loadNativeAddon(): NativeAddonStatus {
  cached ??= load();
  return cached;
}

function load(): NativeAddonStatus {
  const moduleApi = nodeBuiltin<{ createRequire(url: string | URL): (id: string) => unknown }>('node:module');
  const fs = nodeBuiltin<{ existsSync(path: URL): boolean }>('node:fs');
  const url = nodeBuiltin<{ fileURLToPath(url: URL): string }>('node:url');
  if (moduleApi === undefined || fs === undefined || url === undefined) {
    return { available: false, reason: 'native code needs Node' };
  }
  if (!fs.existsSync(NATIVE_ADDON_URL)) {
    return {
      available: false,
      reason:
        'the native addon is not built (native/onebit.node; `npm run build:native` builds it with clang)',
    };
  }
  try {
    // A file path, not URL.pathname: a path may hold characters that a URL escapes (a space, say).
    const path = url.fileURLToPath(NATIVE_ADDON_URL);
    const addon = moduleApi.createRequire(import.meta.url)(path) as NativeAddon;
    if (typeof addon.runIn !== 'function') {
      return {
        available: false,
        reason: 'the native addon is out of date (`npm run build:native` rebuilds native/onebit.node)',
      };
    }
    return { available: true, addon, levels: addon.levels() };
  } catch (err) {
    return { available: false, reason: `the native addon did not load: ${(err as Error).message}` };
  }
}

/** Why native code cannot run here (the addon's status), or null when it can. */
export function nativeUnavailableReason(): string | null {
  const status = loadNativeAddon();
  return status.available ? null : status.reason;
}

/**
 * The addon and the level to run at: `level` when it is a level of the addon that this CPU runs, else the best
 * one this CPU runs when no level is asked for. Throws, naming `label`, when the addon is missing or the level
 * cannot run.
 */
export function resolveNativeLevel(
  label: string,
  level: NativeLevel | undefined,
): { addon: NativeAddon; level: NativeLevel } {
  const status = loadNativeAddon();
  if (!status.available) throw new Error(`${label}: native code cannot run: ${status.reason}`);
  if (level !== undefined && !NATIVE_LEVELS.includes(level))
    throw new RangeError(`${label}: level must be one of ${NATIVE_LEVELS.join(', ')}, got ${String(level)}`);
  if (level !== undefined && !status.levels.includes(level))
    throw new RangeError(
      `${label}: this CPU cannot run native level '${level}' (it runs ${status.levels.join(', ')})`,
    );
  return { addon: status.addon, level: level ?? status.levels[0] };
}

/** Where each of `names` sits in the addon's table of `set` (the index `run` takes); throws for one missing. */
export function kernelIndices<K extends string>(
  label: string,
  addon: NativeAddon,
  set: NativeKernelSet,
  names: readonly K[],
): Record<K, number> {
  const table = addon.kernelNames(set);
  const indices = {} as Record<K, number>;
  for (const name of names) {
    const index = table.indexOf(name);
    if (index < 0)
      throw new Error(`${label}: the native addon has no kernel ${name}; rebuild it (npm run build:native)`);
    indices[name] = index;
  }
  return indices;
}
