/**
 * The control block through which the calling thread hands one kernel call to the worker threads.
 * It lives in the shared wasm memory, so posting a job costs a few stores and one Atomics.notify.
 *
 * Int32 slots (index into an Int32Array over the block):
 *   GEN     incremented by the caller for every job; workers Atomics.wait on it
 *   PENDING workers still running the current job; the last one notifies the caller
 *   FN      index of the kernel to run in the pool's list of export names
 *   NT      total threads of the job (the caller is thread 0)
 *   QUIT    set to 1 (with a GEN bump) to stop the workers
 *   ERRORS  number of workers whose share threw
 * Float64 arguments start at ARGS_BYTE; per-thread float64 results (e.g. ob_sum's partials) at PARTIALS_BYTE.
 */
import type { WasmMemory, WasmModule } from './api.js';

export const GEN = 0;
export const PENDING = 1;
export const FN = 2;
export const NT = 3;
export const QUIT = 4;
export const ERRORS = 5;

export const ARGS_BYTE = 64;
/** Arguments of one kernel call after (tid, nt): the convolution kernels take up to 23. */
export const MAX_ARGS = 24;
export const PARTIALS_BYTE = ARGS_BYTE + MAX_ARGS * 8;
export const MAX_THREADS = 64;
export const CONTROL_BYTES = PARTIALS_BYTE + MAX_THREADS * 8;

/** What a worker needs to join the pool (sent as workerData). */
export interface WorkerInit {
  readonly module: WasmModule;
  readonly memory: WasmMemory;
  /** Kernel export names, in FN order. */
  readonly names: readonly string[];
  /** Byte offset of the control block. */
  readonly control: number;
  /** This worker's thread index (1 .. threads-1). */
  readonly tid: number;
  /** Top of this worker's own shadow stack. */
  readonly stackTop: number;
}
