/**
 * Minimal typings of the WebAssembly JavaScript API. The project compiles against lib ES2022 without
 * DOM, and @types/node 20 does not declare the WebAssembly namespace, so the wasm code (backend,
 * float-free kernels, engine) reaches the global through these local types instead of widening the
 * project's lib (which would drag DOM globals into Node code).
 */

/** A compiled module (opaque). */
export interface WasmModule {
  readonly __wasmModule?: never;
}

export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
  grow(deltaPages: number): number;
}

export interface WasmGlobal {
  value: unknown;
}

export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

export interface WasmImportDescriptor {
  readonly module: string;
  readonly name: string;
  readonly kind: string;
}

/** A wasm export called from JS: numbers in, at most one number out. */
export type KernelFunction = (...args: number[]) => number;

/** Bytes of a module. */
export type WasmBytes = ArrayBuffer | ArrayBufferView;

interface WasmApi {
  readonly Module: {
    new (bytes: WasmBytes): WasmModule;
    readonly prototype: WasmModule;
    imports(module: WasmModule): WasmImportDescriptor[];
    exports(module: WasmModule): WasmImportDescriptor[];
  };
  readonly Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  readonly Memory: {
    new (descriptor: { initial: number; maximum?: number; shared?: boolean }): WasmMemory;
    readonly prototype: WasmMemory;
  };
  readonly Global: { readonly prototype: WasmGlobal; new (d: { value: string; mutable?: boolean }, v?: number): WasmGlobal };
  compile(bytes: WasmBytes): Promise<WasmModule>;
}

/** The host's WebAssembly object (Node and browsers both have it). */
export const wasmApi: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
