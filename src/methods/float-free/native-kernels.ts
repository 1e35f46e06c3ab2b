/**
 * The float-free kernels natively: src/kernels/float-free compiled into the Node addon (native/onebit.node,
 * scripts/build-native.mjs) at each instruction-set level, their 128-bit SIMD paths built from the same
 * source as the wasm module's (src/kernels/simd128.h), so every result is the wasm kernels' bit for bit;
 * still integer arithmetic only (test/float-free.test.ts disassembles the native objects). Buffers are
 * ordinary typed arrays that the addon reads in place; threads are the addon's native threads.
 */
import { NATIVE_LEVELS, loadNativeAddon, type NativeArg, type NativeLevel } from '../../native/addon.js';
import { checkThreads } from '../../wasm/pool.js';
import type { FfBuffer, FfKernels } from './kernels.js';
import { FF_KERNEL_NAMES, type FfKernelName } from './wasm-kernels.js';

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
  const status = loadNativeAddon();
  if (!status.available) throw new Error(`float-free: the native kernels cannot run: ${status.reason}`);
  const { addon, levels } = status;
  if (options.level !== undefined && !NATIVE_LEVELS.includes(options.level))
    throw new RangeError(
      `float-free: level must be one of ${NATIVE_LEVELS.join(', ')}, got ${String(options.level)}`,
    );
  if (options.level !== undefined && !levels.includes(options.level))
    throw new RangeError(`float-free: this CPU cannot run native level '${options.level}'`);
  const level = options.level ?? levels[0];
  const names = addon.kernelNames('float-free');
  const indices = {} as Record<FfKernelName, number>;
  for (const name of FF_KERNEL_NAMES) {
    const index = names.indexOf(name);
    if (index < 0) throw new Error(`float-free: the native addon has no kernel ${name}; rebuild it`);
    indices[name] = index;
  }
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
  function run(name: FfKernelName, work: number, args: readonly NativeArg[]): number {
    alive();
    const nt = threads > 1 && (work >= PARALLEL_MIN || alwaysParallel) ? threads : 1;
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
  const csumFor = (cols: number): Int32Array => {
    const block = scratch('csum', Math.max(4, cols * 4));
    return new Int32Array(block.buffer, 0, block.byteLength >>> 2);
  };
  const int32Of = (purpose: string, length: number): Int32Array => {
    const block = scratch(purpose, length * 4);
    return new Int32Array(block.buffer, 0, block.byteLength >>> 2);
  };

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

    input(n, k, p, x, xp) {
      run('ff_input', n * p, [n, k, p, buf(x), buf(xp)]);
    },
    densePixels(n, rows, p, x, h, z, zs) {
      const tables = scratch('tables', n * (p / 4) * 32);
      const totals = int32Of('totals', Math.max(n, rows));
      run('ff_error_tables', n * p, [n, p, buf(x), p, tables, totals]);
      const nib = scratch('nibbles', threads * (p / 4) * 16);
      run('ff_dense_pixels', n * rows * p, [n, rows, p, buf(h), tables, totals, buf(z), zs, nib]);
    },
    denseBits(n, rows, k, a, w, z, zs) {
      run('ff_dense_bits', (n * rows * k) >>> 5, [n, rows, k, buf(a), buf(w), buf(z), zs]);
    },
    hidden(n, rows, z, zs, mode, running, shift, mu, gexp, act, gate) {
      run('ff_hidden', n * rows, [
        n,
        rows,
        buf(z),
        zs,
        mode,
        buf(running),
        shift,
        buf(mu),
        buf(gexp),
        buf(act),
        buf(gate),
      ]);
    },
    outputTrain(n, classes, z, zs, labels, lut, running, shift, stats, mu, u, g, project) {
      addon.run(
        context,
        indices.ff_output_train,
        1,
        n,
        classes,
        buf(z),
        zs,
        buf(labels),
        buf(lut),
        buf(running),
        shift,
        buf(stats),
        buf(mu),
        buf(u),
        buf(g),
        project ? 1 : 0,
      );
    },
    outputEval(n, classes, z, zs, running, raw) {
      run('ff_output_eval', n * classes, [n, classes, buf(z), zs, buf(running), buf(raw)]);
    },
    centerQuantize(n, cols, g, gs, gate, center, act, e, es, pairs) {
      const parts = run('ff_center_max', n * cols, [
        n,
        cols,
        buf(g),
        gs,
        buf(gate),
        center ? 1 : 0,
        buf(act),
        csumFor(2 * cols),
        partial,
      ]);
      run('ff_quantize', n * es, [n, cols, buf(g), gs, partial, parts, buf(e), es, buf(pairs), qCell]);
      return qCell[0];
    },
    backwardInput(n, rows, p, h, e, es, ex) {
      const groups = Math.ceil(rows / 4);
      const tables = scratch('tables', n * groups * 32);
      const totals = int32Of('totals', Math.max(n, rows));
      run('ff_error_tables', n * rows, [n, rows, buf(e), es, tables, totals]);
      const nib = scratch('nibbles', threads * groups * 16);
      run('ff_backward_input', n * rows * p, [n, rows, p, buf(h), tables, totals, buf(ex), nib]);
    },
    updateBits(n, rows, cols, p, e, es, act, h, w, key, shift, clip) {
      const groups = Math.ceil(n / 4);
      const tables = scratch('tables', rows * groups * 32);
      const totals = int32Of('totals', Math.max(n, rows));
      const nib = scratch('nibbles', (p / 16) * groups * 16);
      run('ff_row_tables', n * rows, [n, rows, buf(e), es, tables, totals]);
      run('ff_act_nibbles', n * p, [n, cols, p, buf(act), nib]);
      run('ff_update_bits', n * rows * p, [
        n,
        rows,
        cols,
        p,
        tables,
        totals,
        nib,
        buf(h),
        buf(w),
        key >>> 0,
        shift,
        clip,
      ]);
    },
    updatePixels(n, rows, cols, p, ep, xp, h, key, shift, clip) {
      run('ff_update_pixels', n * rows * p, [
        n,
        rows,
        cols,
        p,
        buf(ep),
        buf(xp),
        buf(h),
        key >>> 0,
        shift,
        clip,
      ]);
    },
  };
}
