/**
 * The wasm backend: the Backend kernels compiled from src/kernels to WebAssembly (SIMD), running on a
 * persistent worker pool over one shared memory (the module loader, heap and pool are the shared ones in
 * src/wasm, also used by the float-free kernels and the engine).
 *
 * Buffers from alloc* are typed-array views into the module's memory, so kernels take pointers (the
 * views' byte offsets) and nothing is copied. Every kernel checks that its arguments are views of this
 * memory, of the right element type and long enough, before any pointer reaches wasm: a bad argument
 * throws a clear error instead of silently corrupting the heap.
 *
 * The kernel calls themselves (argument checks and order, thread thresholds) are shared with the native
 * backend (../kernel-backend.ts).
 */
import type { Backend, KernelArray } from '../backend.js';
import { isKind, KERNEL_NAMES, kernelBackend, type KernelHost } from '../kernel-backend.js';
import type { WasmBytes, WasmModule } from '../../wasm/api.js';
import { WasmHeap } from '../../wasm/heap.js';
import { sharedMemory } from '../../wasm/loader.js';
import { defaultThreads, ThreadPool } from '../../wasm/pool.js';
import { CONTROL_BYTES } from '../../wasm/protocol.js';
import { instantiateBackend, LABEL, resolveModule } from './loader.js';

export type { WasmBytes, WasmModule } from '../../wasm/api.js';

export interface WasmBackendOptions {
  /** Threads kernels may use, the calling thread included (default: the machine's parallelism, at most 8). */
  readonly threads?: number;
  /** The compiled kernel module or its bytes (required outside Node; default: wasm/onebit-kernels.wasm). */
  readonly module?: WasmModule | WasmBytes;
  /** Largest size the memory may grow to, in bytes (default and maximum 4 GiB). */
  readonly maxMemoryBytes?: number;
  /** Split every call across all threads, however small (for tests of the threaded paths). */
  readonly alwaysParallel?: boolean;
}

const PAGE = 65536;
const MAX_PAGES = 65536;
const INITIAL_PAGES = 256; // 16 MiB; the heap grows on demand

export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<Backend> {
  const threads = options.threads ?? (await defaultThreads());
  const maxBytes = options.maxMemoryBytes ?? MAX_PAGES * PAGE;
  if (!Number.isInteger(maxBytes) || maxBytes < INITIAL_PAGES * PAGE || maxBytes > MAX_PAGES * PAGE) {
    throw new RangeError(`wasm backend: maxMemoryBytes must be in ${INITIAL_PAGES * PAGE}..${MAX_PAGES * PAGE}`);
  }
  const module = await resolveModule(options.module);
  const memory = sharedMemory(INITIAL_PAGES, Math.floor(maxBytes / PAGE));
  const main = instantiateBackend(module, memory);
  const heap = new WasmHeap(memory, main.heapBase, Math.floor(maxBytes / PAGE) * PAGE, LABEL);

  // Internal blocks (control block, worker stacks, GEMM scratch) live for the backend's lifetime and are
  // not counted by bytesInUse, so a fresh backend reports 0.
  const control = heap.alloc(CONTROL_BYTES);
  const internal = [control];
  const reserve = (bytes: number): number => {
    const offset = heap.alloc(bytes);
    internal.push(offset);
    return offset;
  };
  const pool = await ThreadPool.create({
    module,
    memory,
    main,
    names: KERNEL_NAMES,
    threads,
    control,
    reserve,
    label: LABEL,
  });
  const gemmWorkspace = reserve(main.gemmWorkspaceBytes * threads);

  const live = new Map<KernelArray, number>();
  let userBytes = 0;
  let disposed = false;

  const host: KernelHost<number> = {
    name: 'wasm',
    threads: pool.threads,
    alwaysParallel: options.alwaysParallel ?? false,
    alloc(length, kind) {
      host.alive();
      if (!Number.isInteger(length) || length < 0) throw new RangeError(`alloc: bad length ${length}`);
      const offset = heap.alloc(length * 4);
      const buffer = heap.buffer();
      const view =
        kind === 'float32'
          ? new Float32Array(buffer, offset, length)
          : kind === 'int32'
            ? new Int32Array(buffer, offset, length)
            : new Uint32Array(buffer, offset, length);
      view.fill(0); // reused blocks hold old data
      live.set(view, offset);
      userBytes += view.byteLength;
      return view;
    },
    free(buffer) {
      host.alive();
      const offset = live.get(buffer);
      if (offset === undefined) {
        throw new Error('wasm backend: free() of a buffer that this backend did not allocate or already freed');
      }
      live.delete(buffer);
      userBytes -= buffer.byteLength;
      heap.release(offset);
    },
    bytesInUse: () => userBytes,
    dispose() {
      if (disposed) return;
      disposed = true;
      pool.dispose();
      live.clear();
      userBytes = 0;
      for (const offset of internal) heap.release(offset);
    },
    alive() {
      if (disposed) throw new Error('wasm backend: used after dispose()');
    },
    pointer(kernel, what, x, length, kind) {
      if (!isKind(x, kind)) {
        throw new TypeError(`wasm backend: ${kernel}: ${what} must be a ${kind} buffer from this backend's alloc`);
      }
      if (!heap.isOurBuffer(x.buffer)) {
        throw new TypeError(
          `wasm backend: ${kernel}: ${what} is not a view of this backend's wasm memory; allocate it with backend.alloc*()`,
        );
      }
      if (x.length < length) throw new RangeError(`${kernel}: ${what} has ${x.length} entries, needs ${length}`);
      return x.byteOffset;
    },
    none: 0,
    gemmWorkspace,
    partials: pool.partialsOffset,
    partial: (tid) => pool.partial(tid),
    run(name, nt, args) {
      if (nt <= 1) return main.kernels[name](0, 1, ...args);
      pool.run(name, args);
      return 0; // the threaded kernels return nothing
    },
  };
  return kernelBackend(host);
}
