/**
 * Loading the kernel module (wasm/onebit-kernels.wasm, built from src/kernels by scripts/build-kernels.mjs).
 *
 * In Node the bytes are read from the package's wasm/ folder; `../../../wasm/` is right both from
 * src/backend/wasm/*.ts (under tsx) and from dist/backend/wasm/*.js. A browser bundle passes the module
 * (or its bytes) itself, e.g. from `WebAssembly.compileStreaming(fetch(url))`; Node-only modules are
 * imported dynamically so that such a bundle never touches them.
 */

/** Every kernel the backend calls; each takes (tid, nthreads, ...) and does its share (see src/kernels). */
export const KERNEL_NAMES = [
  'ob_gemm',
  'ob_binary_gemm',
  'ob_pack_signs',
  'ob_im2col',
  'ob_col2im',
  'ob_fill',
  'ob_copy',
  'ob_axpy',
  'ob_scale',
  'ob_multiply',
  'ob_clip',
  'ob_sign',
  'ob_sign_backward',
  'ob_relu',
  'ob_relu_backward',
  'ob_hardtanh',
  'ob_hardtanh_backward',
  'ob_sum',
  'ob_channel_sums',
  'ob_channel_affine',
  'ob_adam',
] as const;

export type KernelName = (typeof KERNEL_NAMES)[number];

/** A wasm export called from JS: numbers in, at most one number out. */
export type KernelFunction = (...args: number[]) => number;

export interface KernelInstance {
  readonly kernels: Record<KernelName, KernelFunction>;
  /** Bytes of per-thread scratch ob_gemm needs. */
  readonly gemmWorkspaceBytes: number;
  /** First byte after the module's own stack and data. */
  readonly heapBase: number;
  /** The instance's shadow-stack pointer; each thread's instance must point it at its own stack. */
  readonly stackPointer: WasmGlobal;
}

import { wasmApi, type WasmBytes, type WasmGlobal, type WasmMemory, type WasmModule } from './wasm-api.js';

const MODULE_URL = new URL('../../../wasm/onebit-kernels.wasm', import.meta.url);

let defaultModule: Promise<WasmModule> | undefined;

/** Compiles the packaged module once per process (browsers must pass the module instead). */
function loadDefaultModule(): Promise<WasmModule> {
  defaultModule ??= (async () => {
    const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
    if (!isNode) {
      throw new Error('wasm backend: outside Node, pass the kernel module: createWasmBackend({ module })');
    }
    const { readFile } = await import('node:fs/promises');
    let bytes: Uint8Array;
    try {
      bytes = await readFile(MODULE_URL);
    } catch (err) {
      throw new Error(
        `wasm backend: cannot read ${MODULE_URL.pathname} (${String(err)}); build it with \`npm run build:kernels\``,
      );
    }
    return wasmApi.compile(bytes);
  })();
  defaultModule.catch(() => {
    defaultModule = undefined; // let a later call retry
  });
  return defaultModule;
}

/** The module from the caller's module or bytes, or the packaged one. */
export async function resolveModule(source?: WasmModule | WasmBytes): Promise<WasmModule> {
  if (source === undefined) return loadDefaultModule();
  if (source instanceof wasmApi.Module) return source;
  return wasmApi.compile(source as WasmBytes);
}

/** Instantiates the module over `memory` and checks that it exports everything the backend needs. */
export function instantiate(module: WasmModule, memory: WasmMemory): KernelInstance {
  const instance = new wasmApi.Instance(module, { env: { memory } });
  const exports = instance.exports;
  const missing: string[] = [];
  const kernels = {} as Record<KernelName, KernelFunction>;
  for (const name of KERNEL_NAMES) {
    const fn = exports[name];
    if (typeof fn === 'function') kernels[name] = fn as KernelFunction;
    else missing.push(name);
  }
  const heapBase = exports.__heap_base;
  const stackPointer = exports.__stack_pointer;
  const workspace = exports.ob_gemm_workspace_bytes;
  if (!(heapBase instanceof wasmApi.Global)) missing.push('__heap_base');
  if (!(stackPointer instanceof wasmApi.Global)) missing.push('__stack_pointer');
  if (typeof workspace !== 'function') missing.push('ob_gemm_workspace_bytes');
  if (missing.length > 0) {
    throw new Error(
      `wasm backend: the kernel module lacks ${missing.join(', ')}; rebuild it with \`npm run build:kernels\``,
    );
  }
  return {
    kernels,
    gemmWorkspaceBytes: (workspace as KernelFunction)() >>> 0,
    heapBase: ((heapBase as WasmGlobal).value as number) >>> 0,
    stackPointer: stackPointer as WasmGlobal,
  };
}
