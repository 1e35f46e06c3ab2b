/**
 * The float-free kernels in WebAssembly: wasm/onebit-float-free.wasm (built from src/kernels/float-free by
 * scripts/build-kernels.mjs) over its own shared memory, loaded, instantiated and threaded by the shared
 * wasm code (src/wasm: loader, heap, worker pool) that the backend and the engine use too.
 *
 * Creation is synchronous (the module is small and compiled in place), so a run can be assembled without
 * awaiting; with threads > 1 the workers start in the background and kernels run on the calling thread
 * until they are ready (`ready()` waits for them). Results never depend on the thread count (every kernel
 * splits work so that integer results are identical), so when the workers join does not matter.
 */
import type { WasmBytes, WasmModule } from '../../wasm/api.js';
import { WasmHeap } from '../../wasm/heap.js';
import {
  instantiate,
  loadModuleSync,
  packagedModuleUrl,
  sharedMemory,
  type PackagedModule,
} from '../../wasm/loader.js';
import { checkThreads, ThreadPool } from '../../wasm/pool.js';
import { CONTROL_BYTES, MAX_THREADS } from '../../wasm/protocol.js';
import type { FfBuffer, FfKernels } from './kernels.js';

const LABEL = 'float-free';

const FLOAT_FREE_MODULE: PackagedModule = {
  file: 'onebit-float-free.wasm',
  label: LABEL,
  howToPass: 'the float-free module: createWasmKernels({ module })',
};

/** Every export the float-free step calls. */
export const FF_KERNEL_NAMES = [
  'ff_input',
  'ff_dense_pixels',
  'ff_dense_bits',
  'ff_hidden',
  'ff_output_train',
  'ff_output_eval',
  'ff_center_max',
  'ff_quantize',
  'ff_error_tables',
  'ff_backward_input',
  'ff_row_tables',
  'ff_act_nibbles',
  'ff_update_bits',
  'ff_update_pixels',
] as const;

export type FfKernelName = (typeof FF_KERNEL_NAMES)[number];

/** Where the module lives in the package. */
export const FLOAT_FREE_MODULE_URL = packagedModuleUrl(FLOAT_FREE_MODULE.file);

const PAGE = 65536;
const MAX_PAGES = 65536;
const INITIAL_PAGES = 64;
/** Work (elementary operations) below which a call stays on the calling thread. */
const PARALLEL_MIN = 1 << 15;

export interface WasmKernelOptions {
  /** Threads, the calling thread included (default 1). */
  readonly threads?: number;
  /** The compiled module or its bytes (default: read wasm/onebit-float-free.wasm). */
  readonly module?: WasmModule | WasmBytes;
  /** Split every call across all threads, however small (for tests of the threaded paths). */
  readonly alwaysParallel?: boolean;
}

export function createWasmKernels(options: WasmKernelOptions = {}): FfKernels {
  const threads = options.threads ?? 1;
  checkThreads(threads, LABEL);
  const alwaysParallel = options.alwaysParallel ?? false;
  const module = loadModuleSync(FLOAT_FREE_MODULE, options.module);
  const memory = sharedMemory(INITIAL_PAGES, MAX_PAGES);
  const { kernels, heapBase } = instantiate(module, memory, FF_KERNEL_NAMES, LABEL);
  const heap = new WasmHeap(memory, heapBase, MAX_PAGES * PAGE, LABEL);
  const control = heap.alloc(CONTROL_BYTES);
  const partialOffset = heap.alloc(MAX_THREADS * 4);
  const qOffset = heap.alloc(4);
  const live = new Map<FfBuffer, number>();
  let userBytes = 0;
  let disposed = false;
  let pool: ThreadPool<FfKernelName> | null = null;

  const poolPromise: Promise<void> =
    threads === 1
      ? Promise.resolve()
      : ThreadPool.create<FfKernelName>({
          module,
          memory,
          main: { kernels },
          names: FF_KERNEL_NAMES,
          threads,
          control,
          reserve: (bytes) => heap.alloc(bytes),
          label: LABEL,
        }).then(
          (created) => {
            if (disposed) created.dispose();
            else pool = created;
          },
          () => undefined, // workers failed to start: stay on the calling thread
        );

  function alive(): void {
    if (disposed) throw new Error('float-free kernels: used after dispose()');
  }

  function alloc<T extends FfBuffer>(
    length: number,
    bytesPer: number,
    make: (b: ArrayBufferLike, o: number) => T,
  ): T {
    alive();
    if (!Number.isInteger(length) || length < 0)
      throw new RangeError(`float-free: bad buffer length ${length}`);
    const offset = heap.alloc(Math.max(1, length * bytesPer));
    const view = make(heap.buffer(), offset);
    view.fill(0);
    live.set(view, offset);
    userBytes += view.byteLength;
    return view;
  }

  function ptr(view: FfBuffer | null): number {
    if (view === null) return 0;
    if (!heap.isOurBuffer(view.buffer)) {
      throw new TypeError(
        'float-free: a buffer is not a view of the kernel module memory; allocate it with the kernels',
      );
    }
    return view.byteOffset;
  }

  function run(name: FfKernelName, work: number, args: readonly number[]): number {
    alive();
    if (pool !== null && (work >= PARALLEL_MIN || alwaysParallel)) {
      pool.run(name, args);
      return pool.threads;
    }
    kernels[name](0, 1, ...args);
    return 1;
  }

  /** Column-sum scratch of ff_center_max, grown on demand (internal, not counted in bytesInUse). */
  let csum: Int32Array | null = null;
  const csumFor = (cols: number): Int32Array => {
    if (csum === null || csum.length < cols) {
      if (csum !== null) heap.release(csum.byteOffset);
      const offset = heap.alloc(Math.max(4, cols * 4));
      csum = new Int32Array(heap.buffer(), offset, cols);
    }
    return csum;
  };
  /** Scratch regions of the backward kernels by purpose (bytes), grown on demand; internal, not counted. */
  const scratchBlocks = new Map<string, { offset: number; bytes: number }>();
  const scratch = (purpose: string, bytes: number): number => {
    const block = scratchBlocks.get(purpose);
    if (block !== undefined && block.bytes >= bytes) return block.offset;
    if (block !== undefined) heap.release(block.offset);
    const fresh = { offset: heap.alloc(Math.max(16, bytes)), bytes };
    scratchBlocks.set(purpose, fresh);
    return fresh.offset;
  };
  const qCell = new Int32Array(heap.buffer(), qOffset, 1);

  return {
    kind: 'wasm',
    threads,
    int8: (length) => alloc(length, 1, (b, o) => new Int8Array(b, o, length)),
    int16: (length) => alloc(length, 2, (b, o) => new Int16Array(b, o, length)),
    int32: (length) => alloc(length, 4, (b, o) => new Int32Array(b, o, length)),
    uint32: (length) => alloc(length, 4, (b, o) => new Uint32Array(b, o, length)),
    bytes: (view) => new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
    ready: () => poolPromise,
    bytesInUse: () => userBytes,
    dispose() {
      if (disposed) return;
      disposed = true;
      pool?.dispose();
      pool = null;
      for (const offset of live.values()) heap.release(offset);
      live.clear();
      userBytes = 0;
    },

    input(n, k, p, x, xp) {
      run('ff_input', n * p, [n, k, p, ptr(x), ptr(xp)]);
    },
    densePixels(n, rows, p, x, h, z, zs) {
      // Subset tables of the pixels (x is 0 past the features, so all p columns can be grouped).
      const tables = scratch('tables', n * (p / 4) * 32);
      const totals = scratch('totals', Math.max(n, rows) * 4);
      run('ff_error_tables', n * p, [n, p, ptr(x), p, tables, totals]);
      const nib = scratch('nibbles', threads * (p / 4) * 16);
      run('ff_dense_pixels', n * rows * p, [n, rows, p, ptr(h), tables, totals, ptr(z), zs, nib]);
    },
    denseBits(n, rows, k, a, w, z, zs) {
      run('ff_dense_bits', (n * rows * k) >>> 5, [n, rows, k, ptr(a), ptr(w), ptr(z), zs]);
    },
    hidden(n, rows, z, zs, mode, running, shift, mu, gexp, act, gate) {
      run('ff_hidden', n * rows, [
        n,
        rows,
        ptr(z),
        zs,
        mode,
        ptr(running),
        shift,
        ptr(mu),
        ptr(gexp),
        ptr(act),
        ptr(gate),
      ]);
    },
    outputTrain(n, classes, z, zs, labels, lut, running, shift, stats, mu, u, g, project) {
      kernels.ff_output_train(
        0,
        1,
        n,
        classes,
        ptr(z),
        zs,
        ptr(labels),
        ptr(lut),
        ptr(running),
        shift,
        ptr(stats),
        ptr(mu),
        ptr(u),
        ptr(g),
        project ? 1 : 0,
      );
    },
    outputEval(n, classes, z, zs, running, raw) {
      run('ff_output_eval', n * classes, [n, classes, ptr(z), zs, ptr(running), ptr(raw)]);
    },
    centerQuantize(n, cols, g, gs, gate, center, act, e, es, pairs) {
      const parts = run('ff_center_max', n * cols, [
        n,
        cols,
        ptr(g),
        gs,
        ptr(gate),
        center ? 1 : 0,
        ptr(act),
        ptr(csumFor(2 * cols)),
        partialOffset,
      ]);
      run('ff_quantize', n * es, [
        n,
        cols,
        ptr(g),
        gs,
        partialOffset,
        parts,
        ptr(e),
        es,
        ptr(pairs),
        qOffset,
      ]);
      return qCell[0];
    },
    backwardInput(n, rows, p, h, e, es, ex) {
      const groups = Math.ceil(rows / 4);
      const tables = scratch('tables', n * groups * 32);
      const totals = scratch('totals', Math.max(n, rows) * 4);
      run('ff_error_tables', n * rows, [n, rows, ptr(e), es, tables, totals]);
      const nib = scratch('nibbles', threads * groups * 16);
      run('ff_backward_input', n * rows * p, [n, rows, p, ptr(h), tables, totals, ptr(ex), nib]);
    },
    updateBits(n, rows, cols, p, e, es, act, h, w, key, shift, clip) {
      const groups = Math.ceil(n / 4);
      const tables = scratch('tables', rows * groups * 32);
      const totals = scratch('totals', Math.max(n, rows) * 4);
      const nib = scratch('nibbles', (p / 16) * groups * 16);
      run('ff_row_tables', n * rows, [n, rows, ptr(e), es, tables, totals]);
      run('ff_act_nibbles', n * p, [n, cols, p, ptr(act), nib]);
      run('ff_update_bits', n * rows * p, [
        n,
        rows,
        cols,
        p,
        tables,
        totals,
        nib,
        ptr(h),
        ptr(w),
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
        ptr(ep),
        ptr(xp),
        ptr(h),
        key >>> 0,
        shift,
        clip,
      ]);
    },
  };
}
