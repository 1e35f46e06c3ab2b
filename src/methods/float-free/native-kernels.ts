/**
 * The float-free kernels natively: src/kernels/float-free compiled into the Node addon (native/onebit.node,
 * scripts/build-native.mjs) at each instruction-set level, their 128-bit SIMD paths built from the same
 * source as the wasm module's (src/kernels/simd128.h), so every result is the wasm kernels' bit for bit;
 * still integer arithmetic only (test/float-free.test.ts disassembles the native objects). Buffers are
 * ordinary typed arrays that the addon reads in place; threads are the addon's native threads.
 */
import { kernelIndices, resolveNativeLevel, type NativeArg, type NativeLevel } from '../../native/addon.js';
import { checkThreads } from '../../wasm/pool.js';
import { FF_KERNEL_NAMES, ffKernelCalls, type FfKernelName } from './kernel-calls.js';
import type { FfBuffer, FfKernels } from './kernels.js';

const LABEL = 'float-free';
/** Work (elementary operations) below which a call stays on the calling thread (as on wasm). */
const PARALLEL_MIN = 1 << 15;
/** Most threads a kernel splits its work for (ff_quantize's partial maxima are per thread). */
const MAX_PARTS = 64;

export interface NativeKernelOptions {
  /** Threads, the calling thread included (default 1). */
  readonly threads?: number;
  /** The instruction-set level (default: the best this CPU runs). */
  readonly level?: NativeLevel;
  /** Split every call across all threads, however small (for tests of the threaded paths). */
  readonly alwaysParallel?: boolean;
}

export function createNativeKernels(options: NativeKernelOptions = {}): FfKernels {
  const threads = options.threads ?? 1;
  checkThreads(threads, LABEL);
  const { addon, level } = resolveNativeLevel(LABEL, options.level);
  const indices = kernelIndices(LABEL, addon, 'float-free', FF_KERNEL_NAMES);
  const context = addon.open(level, threads, 'float-free');
  const alwaysParallel = options.alwaysParallel ?? false;
  const ours = new WeakSet<FfBuffer>();
  let userBytes = 0;
  let disposed = false;
  const partial = new Int32Array(MAX_PARTS);
  const qCell = new Int32Array(1);

  function alive(): void {
    if (disposed) throw new Error('float-free kernels: used after dispose()');
  }

  function alloc<T extends FfBuffer>(length: number, make: (n: number) => T): T {
    alive();
    if (!Number.isInteger(length) || length < 0)
      throw new RangeError(`float-free: bad buffer length ${length}`);
    const view = make(length);
    ours.add(view);
    userBytes += view.byteLength;
    return view;
  }

  function buf(view: FfBuffer | null): NativeArg {
    if (view === null) return null;
    if (!ours.has(view))
      throw new TypeError('float-free: a buffer was not allocated by these kernels; allocate it with them');
    return view;
  }

  /** Runs a kernel; returns the threads that split it. */
  function run(name: FfKernelName, work: number, args: readonly NativeArg[], serial = false): number {
    alive();
    const nt = !serial && threads > 1 && (work >= PARALLEL_MIN || alwaysParallel) ? threads : 1;
    addon.run(context, indices[name], nt, ...args);
    return nt;
  }

  /** Scratch regions of the kernels by purpose, grown on demand (internal, not counted in bytesInUse). */
  const scratchBlocks = new Map<string, Uint8Array>();
  const scratch = (purpose: string, bytes: number): Uint8Array => {
    const block = scratchBlocks.get(purpose);
    if (block !== undefined && block.byteLength >= bytes) return block;
    const fresh = new Uint8Array(Math.max(16, bytes));
    scratchBlocks.set(purpose, fresh);
    return fresh;
  };
  const steps = ffKernelCalls<NativeArg>({
    threads,
    arg: buf,
    scratch,
    partials: partial,
    exponent: qCell,
    readExponent: () => qCell[0],
    run,
  });

  return {
    kind: 'native',
    threads,
    int8: (length) => alloc(length, (n) => new Int8Array(n)),
    int16: (length) => alloc(length, (n) => new Int16Array(n)),
    int32: (length) => alloc(length, (n) => new Int32Array(n)),
    uint32: (length) => alloc(length, (n) => new Uint32Array(n)),
    bytes: (view) => new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
    ready: () => Promise.resolve(),
    bytesInUse: () => userBytes,
    dispose() {
      if (disposed) return;
      disposed = true;
      addon.close(context);
      scratchBlocks.clear();
      userBytes = 0;
    },

    ...steps,
  };
}
