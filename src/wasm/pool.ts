/**
 * A persistent pool of worker threads sharing a kernel module's memory: the one pool of the wasm backend,
 * the float-free kernels and the engine. Every kernel it runs takes (tid, nthreads, ...) and does its share.
 *
 * `run` is synchronous, like every Backend kernel: the calling thread writes the job into the control
 * block (protocol.ts), bumps GEN and notifies, runs share 0 itself, then waits until PENDING drops to 0.
 * Node allows Atomics.wait on its main thread; a browser's main thread does not, so there the caller
 * spins on PENDING instead (the shares are short; a page that trains runs in a Web Worker anyway).
 * The workers are Node worker threads or Web Workers (host.ts); with threads = 1 none is started.
 *
 * Node workers are unref'd so they never keep the process alive, and `dispose` stops and terminates them.
 */
import type { KernelFunction, WasmMemory, WasmModule } from './api.js';
import { alignUp } from './heap.js';
import { availableCores, startPoolWorker, type PoolWorker } from './host.js';
import {
  ARGS_BYTE,
  CONTROL_BYTES,
  ERRORS,
  FN,
  GEN,
  MAX_ARGS,
  MAX_THREADS,
  NT,
  PARTIALS_BYTE,
  PENDING,
  QUIT,
  type WorkerInit,
} from './protocol.js';
import { WORKER_SOURCE } from './worker-source.js';

/** Each worker instance's shadow stack (the kernels do not use it today; this is headroom). */
export const WORKER_STACK_BYTES = 64 * 1024;

/** Spins on PENDING before sleeping: a wake-up through the kernel costs tens of microseconds. */
const SPIN_CHECKS = 2000;

export interface PoolOptions<N extends string> {
  readonly module: WasmModule;
  readonly memory: WasmMemory;
  /** The calling thread's instance: its kernels run share 0 of every job. */
  readonly main: { readonly kernels: Record<N, KernelFunction> };
  /** Export names of the kernels jobs may run, in a fixed order (a job names its kernel by index). */
  readonly names: readonly N[];
  readonly threads: number;
  /** Byte offset of CONTROL_BYTES reserved for the control block. */
  readonly control: number;
  /** Reserves `bytes` of memory for the pool's own use (worker stacks), returning the offset. */
  readonly reserve: (bytes: number) => number;
  /** What owns the pool, the prefix of its error messages (e.g. 'wasm backend'). */
  readonly label: string;
}

export class ThreadPool<N extends string> {
  readonly threads: number;
  private readonly label: string;
  private readonly ctl: Int32Array;
  private readonly args: Float64Array;
  private readonly partials: Float64Array;
  private readonly kernels: Record<N, KernelFunction>;
  /** Kernel name -> its index in the names list (the FN slot of the control block). */
  private readonly index: ReadonlyMap<N, number>;
  private readonly workers: PoolWorker[];
  /** False once Atomics.wait has refused this thread (a browser's main thread): spin instead. */
  private mayWait = true;

  private constructor(options: PoolOptions<N>, workers: PoolWorker[]) {
    this.threads = options.threads;
    this.label = options.label;
    this.index = new Map(options.names.map((name, i) => [name, i]));
    const buf = options.memory.buffer;
    this.ctl = new Int32Array(buf, options.control, ARGS_BYTE / 4);
    this.args = new Float64Array(buf, options.control + ARGS_BYTE, MAX_ARGS);
    this.partials = new Float64Array(buf, options.control + PARTIALS_BYTE, MAX_THREADS);
    this.kernels = options.main.kernels;
    this.workers = workers;
  }

  static async create<N extends string>(options: PoolOptions<N>): Promise<ThreadPool<N>> {
    const { threads, label } = options;
    checkThreads(threads, label);
    if (options.control % 8 !== 0) throw new Error(`${label}: control block must be 8-byte aligned`);
    new Int32Array(options.memory.buffer, options.control, CONTROL_BYTES / 4).fill(0);
    if (threads === 1) return new ThreadPool<N>(options, []);

    const workers: PoolWorker[] = [];
    try {
      for (let tid = 1; tid < threads; tid++) {
        const stackTop = alignUp(options.reserve(WORKER_STACK_BYTES) + WORKER_STACK_BYTES - 16, 16);
        const init: WorkerInit = {
          module: options.module,
          memory: options.memory,
          names: options.names,
          control: options.control,
          tid,
          stackTop,
        };
        workers.push(startPoolWorker(init, WORKER_SOURCE, label));
      }
      await Promise.all(workers.map((w) => w.ready));
    } catch (err) {
      for (const w of workers) {
        w.ready.catch(() => undefined); // one that had not failed yet must not fail unhandled later
        w.terminate();
      }
      throw err;
    }
    return new ThreadPool<N>(options, workers);
  }

  /** Runs `name(tid, nt, ...args)` on every thread (args.length <= MAX_ARGS) and waits for all shares. */
  run(name: N, args: readonly number[]): void {
    const nt = this.threads;
    const fn = this.kernels[name];
    if (nt === 1) {
      fn(0, 1, ...args);
      return;
    }
    if (args.length > MAX_ARGS)
      throw new Error(`wasm pool: ${name} takes ${args.length} arguments, the control block holds ${MAX_ARGS}`);
    const ctl = this.ctl;
    for (let i = 0; i < args.length; i++) this.args[i] = args[i];
    const fnIndex = this.index.get(name);
    if (fnIndex === undefined) throw new Error(`wasm pool: no kernel named ${name}`);
    ctl[FN] = fnIndex;
    ctl[NT] = nt;
    Atomics.store(ctl, PENDING, nt - 1);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    try {
      fn(0, nt, ...args);
    } finally {
      this.waitForWorkers();
    }
    const errors = Atomics.exchange(ctl, ERRORS, 0);
    if (errors > 0) throw new Error(`${this.label}: ${name} failed on ${errors} worker thread(s)`);
  }

  /** Per-thread float64 results written by a kernel (thread t at index t). */
  partial(tid: number): number {
    return this.partials[tid];
  }

  /** Byte offset of the partials array, passed to kernels that write per-thread results. */
  get partialsOffset(): number {
    return this.partials.byteOffset;
  }

  dispose(): void {
    if (this.workers.length === 0) return;
    Atomics.store(this.ctl, QUIT, 1);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
  }

  private waitForWorkers(): void {
    const ctl = this.ctl;
    for (let spin = 0; spin < SPIN_CHECKS; spin++) {
      if (Atomics.load(ctl, PENDING) === 0) return;
    }
    for (;;) {
      const pending = Atomics.load(ctl, PENDING);
      if (pending === 0) return;
      if (!this.mayWait) continue;
      try {
        Atomics.wait(ctl, PENDING, pending);
      } catch {
        this.mayWait = false; // a browser's main thread may not block
      }
    }
  }
}

/** Throws unless `threads` is a thread count a pool accepts (1..MAX_THREADS). */
export function checkThreads(threads: number, label: string): void {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_THREADS) {
    throw new RangeError(`${label}: threads must be an integer in 1..${MAX_THREADS}, got ${threads}`);
  }
}

/**
 * The available cores (host.ts), capped at 8: beyond that the memory-bound kernels stop scaling. In a
 * browser that is 1 unless the page is cross-origin isolated.
 */
export function defaultThreads(): Promise<number> {
  return Promise.resolve(Math.max(1, Math.min(8, availableCores())));
}
