/**
 * Where an engine's plan lives and runs (engine.ts): the memory that the plan's byte offsets point into, and a
 * way to run a kernel on it. Two hosts give the same results bit for bit: WebAssembly (wasm-host.ts, Node and
 * browsers) and the native addon (native-host.ts, Node where it is built), both running the kernels of
 * src/kernels/engine.
 */
import type { EngineKernel, Placement } from './plan.js';

export type EngineBackend = 'native' | 'wasm';

export interface EngineHost {
  readonly backend: EngineBackend;
  /** The native instruction-set level ('avx512', 'avx2', 'baseline'), or null on wasm. */
  readonly level: string | null;
  readonly threads: number;
  /** The memory that offsets point into (fixed for the engine's life). */
  readonly buffer: ArrayBufferLike;
  /** Places the plan's buffers (zeroed) and tensors; offsets are never 0. */
  readonly placement: Placement;
  /** Runs a kernel on every thread (each does its share) or on the calling one alone. */
  run(name: EngineKernel, parallel: boolean, args: number[]): void;
  memoryBytes(): number;
  dispose(): void;
}
