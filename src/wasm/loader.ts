/**
 * Loading and instantiating onebit's WebAssembly modules: the one loader of the wasm backend
 * (wasm/onebit-kernels.wasm), the float-free kernels (wasm/onebit-float-free.wasm) and the engine
 * (wasm/onebit-engine.wasm), all built by scripts/build-kernels.mjs.
 *
 * By default the bytes come from the package's wasm/ folder; `../../wasm/` is right both from
 * src/wasm/*.ts (under tsx) and from dist/wasm/*.js. Node reads the file; a browser fetches that URL,
 * which is right when the package is served as it is laid out. A bundle that moves files passes the
 * module (or its bytes) itself, e.g. from `WebAssembly.compileStreaming(fetch(url))`. Reading goes through
 * host.ts, so nothing here imports a `node:` module.
 *
 * Every module imports one shared memory as env.memory and exports __heap_base (the first byte after
 * its own stack and data) and __stack_pointer.
 */
import { wasmApi, type KernelFunction, type WasmBytes, type WasmMemory, type WasmModule } from './api.js';
import { isNode, readPackagedFile, readPackagedFileSync } from './host.js';

/** A module of the package: which file, and what to say when it cannot be had. */
export interface PackagedModule {
  /** File name in the package's wasm/ folder, e.g. 'onebit-kernels.wasm'. */
  readonly file: string;
  /** What loads it, the prefix of error messages (e.g. 'wasm backend'). */
  readonly label: string;
  /** What a caller outside Node passes, e.g. 'the kernel module: createWasmBackend({ module })'. */
  readonly howToPass: string;
}

/** Where a packaged module lives. */
export function packagedModuleUrl(file: string): URL {
  return new URL(`../../wasm/${file}`, import.meta.url);
}

/** The package's WebAssembly files. */
export const PACKAGED_WASM_FILES = ['onebit-kernels.wasm', 'onebit-float-free.wasm', 'onebit-engine.wasm'] as const;
export type PackagedWasmFile = (typeof PACKAGED_WASM_FILES)[number];

/** Packaged modules compiled so far, by file name (each is compiled once per process). */
const compiled = new Map<string, WasmModule>();
const compiling = new Map<string, Promise<WasmModule>>();

function unreadable(spec: PackagedModule, url: URL, err: unknown): Error {
  const fix = isNode() ? 'build it with `npm run build:kernels`' : `or pass ${spec.howToPass}`;
  return new Error(`${spec.label}: cannot read ${url.href} (${String(err)}); ${fix}`);
}

/**
 * Hands the loader a compiled module of one of the package's files, used by every later load of that file:
 * how a page that fetched the modules itself (from wherever its bundler put them) gets backends, float-free
 * kernels and engines without passing a module to each.
 */
export function provideModule(file: PackagedWasmFile, module: WasmModule): void {
  if (!(PACKAGED_WASM_FILES as readonly string[]).includes(file))
    throw new RangeError(`provideModule: expected one of ${PACKAGED_WASM_FILES.join(', ')}, got ${String(file)}`);
  if (!(module instanceof wasmApi.Module)) throw new TypeError(`provideModule: ${file}: not a WebAssembly.Module`);
  compiled.set(file, module);
}

/** The caller's module, the module compiled from the caller's bytes, or the packaged one (read or fetched). */
export async function loadModule(spec: PackagedModule, source?: WasmModule | WasmBytes): Promise<WasmModule> {
  if (source instanceof wasmApi.Module) return source;
  if (source !== undefined) return wasmApi.compile(source as WasmBytes);
  const done = compiled.get(spec.file);
  if (done !== undefined) return done;
  let pending = compiling.get(spec.file);
  if (pending === undefined) {
    pending = (async () => {
      const url = packagedModuleUrl(spec.file);
      let bytes: Uint8Array;
      try {
        bytes = await readPackagedFile(url);
      } catch (err) {
        throw unreadable(spec, url, err);
      }
      const module = await wasmApi.compile(bytes);
      compiled.set(spec.file, module);
      return module;
    })();
    compiling.set(spec.file, pending);
    // Settled either way: a failure is not cached, so a later call retries (e.g. after a build).
    const settled = (): void => void compiling.delete(spec.file);
    pending.then(settled, settled);
  }
  return pending;
}

/**
 * `loadModule` without awaiting: bytes are compiled in place (fine for small modules); the packaged file
 * can be read this way in Node only (a browser passes the module or its bytes).
 */
export function loadModuleSync(spec: PackagedModule, source: WasmModule | WasmBytes | undefined): WasmModule {
  if (source instanceof wasmApi.Module) return source;
  if (source !== undefined) return new wasmApi.Module(source as WasmBytes);
  const done = compiled.get(spec.file);
  if (done !== undefined) return done;
  const url = packagedModuleUrl(spec.file);
  let bytes: Uint8Array;
  try {
    if (!isNode()) throw new Error(`outside Node, pass ${spec.howToPass}`);
    bytes = readPackagedFileSync(url);
  } catch (err) {
    throw unreadable(spec, url, err);
  }
  const module = new wasmApi.Module(bytes);
  compiled.set(spec.file, module);
  return module;
}

/** A new shared memory of `initial` pages (64 KiB each) that may grow to `maximum`. */
export function sharedMemory(initial: number, maximum: number): WasmMemory {
  return new wasmApi.Memory({ initial, maximum, shared: true });
}

/** The kernels of one instance, its other exports, and where its heap may start. */
export interface KernelInstance<N extends string> {
  readonly kernels: Record<N, KernelFunction>;
  readonly exports: Readonly<Record<string, unknown>>;
  /** First byte after the module's own stack and data (__heap_base). */
  readonly heapBase: number;
}

/**
 * Instantiates `module` over `memory` and checks that it exports every kernel in `names`, __heap_base
 * and the `extra` exports the caller needs (by kind), naming everything missing in one error.
 */
export function instantiate<N extends string>(
  module: WasmModule,
  memory: WasmMemory,
  names: readonly N[],
  label: string,
  extra: Readonly<Record<string, 'function' | 'global'>> = {},
): KernelInstance<N> {
  const exports = new wasmApi.Instance(module, { env: { memory } }).exports;
  const missing: string[] = [];
  const kernels = {} as Record<N, KernelFunction>;
  for (const name of names) {
    const fn = exports[name];
    if (typeof fn === 'function') kernels[name] = fn as KernelFunction;
    else missing.push(name);
  }
  const isGlobal = (name: string): boolean => exports[name] instanceof wasmApi.Global;
  if (!isGlobal('__heap_base')) missing.push('__heap_base');
  for (const [name, kind] of Object.entries(extra)) {
    if (kind === 'global' ? !isGlobal(name) : typeof exports[name] !== 'function') missing.push(name);
  }
  if (missing.length > 0) {
    throw new Error(
      `${label}: the kernel module lacks ${missing.join(', ')}; rebuild it with \`npm run build:kernels\``,
    );
  }
  const heapBase = ((exports.__heap_base as { value: unknown }).value as number) >>> 0;
  return { kernels, exports, heapBase };
}

/**
 * The module's __heap_base, read from a throwaway instance over a small memory: for callers that size
 * their memory once, before instantiating the module for real.
 */
export function heapBaseOf(module: WasmModule, label: string): number {
  return instantiate(module, sharedMemory(32, 32), [], label).heapBase;
}
