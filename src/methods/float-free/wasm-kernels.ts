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
import { FF_KERNEL_NAMES, ffKernelCalls, type FfKernelName } from './kernel-calls.js';
import type { FfBuffer, FfKernels } from './kernels.js';

export { FF_KERNEL_NAMES, type FfKernelName } from './kernel-calls.js';

const LABEL = 'float-free';

const FLOAT_FREE_MODULE: PackagedModule = {
  file: 'onebit-float-free.wasm',
  label: LABEL,
  howToPass: 'the float-free module: createWasmKernels({ module })',
};

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

  function run(name: FfKernelName, work: number, args: readonly number[], serial = false): number {
    alive();
    if (!serial && pool !== null && (work >= PARALLEL_MIN || alwaysParallel)) {
      pool.run(name, args);
      return pool.threads;
    }
    kernels[name](0, 1, ...args);
    return 1;
  }

  /** Scratch regions of the kernels by purpose (bytes), grown on demand; internal, not counted. */
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
  const steps = ffKernelCalls<number>({
    threads,
    arg: ptr,
    scratch,
    partials: partialOffset,
    exponent: qOffset,
    readExponent: () => qCell[0],
    run,
  });

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

    ...steps,
  };
}
