/**
 * The backend's kernel module (wasm/onebit-kernels.wasm, built from src/kernels by
 * scripts/build-kernels.mjs): the exports it calls, and loading it through the shared loader
 * (src/wasm/loader.ts), which reads it from the package's wasm/ folder in Node or takes the module or
 * bytes a browser bundle passes.
 */
import type { KernelFunction, WasmBytes, WasmMemory, WasmModule } from '../../wasm/api.js';
import { instantiate, loadModule, type PackagedModule } from '../../wasm/loader.js';
import { KERNEL_NAMES, type KernelName } from '../kernel-backend.js';

export const LABEL = 'wasm backend';

const KERNEL_MODULE: PackagedModule = {
  file: 'onebit-kernels.wasm',
  label: LABEL,
  howToPass: 'the kernel module: createWasmBackend({ module })',
};

export interface BackendInstance {
  readonly kernels: Record<KernelName, KernelFunction>;
  /** Bytes of per-thread scratch ob_gemm needs. */
  readonly gemmWorkspaceBytes: number;
  /** First byte after the module's own stack and data. */
  readonly heapBase: number;
}

/** The module from the caller's module or bytes, or the packaged one. */
export function resolveModule(source?: WasmModule | WasmBytes): Promise<WasmModule> {
  return loadModule(KERNEL_MODULE, source);
}

/** Instantiates the module over `memory` and checks that it exports everything the backend needs. */
export function instantiateBackend(module: WasmModule, memory: WasmMemory): BackendInstance {
  const { kernels, exports, heapBase } = instantiate(module, memory, KERNEL_NAMES, LABEL, {
    __stack_pointer: 'global',
    ob_gemm_workspace_bytes: 'function',
  });
  const workspace = exports.ob_gemm_workspace_bytes as KernelFunction;
  return { kernels, gemmWorkspaceBytes: workspace() >>> 0, heapBase };
}
