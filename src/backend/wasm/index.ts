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
 * Small calls run on the calling thread only; posting to the pool costs a few microseconds at best, so
 * a call is split across threads only when its work passes a per-kernel threshold.
 */
import { convOutputSize, packedWords } from '../backend.js';
import type {
  AdamStep,
  Backend,
  Conv2dGeometry,
  FloatArray,
  GemmLayout,
  KernelArray,
  SignSurrogate,
} from '../backend.js';
import type { WasmBytes, WasmModule } from '../../wasm/api.js';
import { WasmHeap } from '../../wasm/heap.js';
import { sharedMemory } from '../../wasm/loader.js';
import { defaultThreads, ThreadPool } from '../../wasm/pool.js';
import { CONTROL_BYTES } from '../../wasm/protocol.js';
import { instantiateBackend, KERNEL_NAMES, LABEL, resolveModule, type KernelName } from './loader.js';

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

/** Minimum work (in elements, or multiply-adds for the GEMMs) before a call is split across threads. */
const PARALLEL_MIN = {
  elementwise: 1 << 17,
  adam: 1 << 14,
  gemm: 1 << 18,
  binaryGemm: 1 << 22, // bit operations: m * n * k
  conv: 1 << 16,
} as const;

const LAYOUTS: Record<GemmLayout, number> = { nn: 0, nt: 1, tn: 2 };
const SURROGATES: Record<SignSurrogate, number> = { identity: 0, 'clipped-identity': 1, 'approx-sign': 2 };

type ElementKind = 'float32' | 'int32' | 'uint32';

export async function createWasmBackend(options: WasmBackendOptions = {}): Promise<Backend> {
  const threads = options.threads ?? (await defaultThreads());
  const alwaysParallel = options.alwaysParallel ?? false;
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

  function alive(): void {
    if (disposed) throw new Error('wasm backend: used after dispose()');
  }

  function allocView<T extends KernelArray>(length: number, make: (buf: ArrayBufferLike, off: number) => T): T {
    alive();
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`alloc: bad length ${length}`);
    const offset = heap.alloc(length * 4);
    const view = make(heap.buffer(), offset);
    view.fill(0); // reused blocks hold old data
    live.set(view, offset);
    userBytes += view.byteLength;
    return view;
  }

  /** Validates a kernel argument and returns its byte offset in wasm memory. */
  function ptr(kernel: string, what: string, x: KernelArray, length: number, kind: ElementKind = 'float32'): number {
    const ok =
      kind === 'float32' ? x instanceof Float32Array : kind === 'int32' ? x instanceof Int32Array : x instanceof Uint32Array;
    if (!ok) {
      throw new TypeError(`wasm backend: ${kernel}: ${what} must be a ${kind} buffer from this backend's alloc`);
    }
    if (!heap.isOurBuffer(x.buffer)) {
      throw new TypeError(
        `wasm backend: ${kernel}: ${what} is not a view of this backend's wasm memory; allocate it with backend.alloc*()`,
      );
    }
    if (x.length < length) throw new RangeError(`${kernel}: ${what} has ${x.length} entries, needs ${length}`);
    return x.byteOffset;
  }

  function sizes(kernel: string, values: Record<string, number>): void {
    alive();
    for (const [key, v] of Object.entries(values)) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new RangeError(`${kernel}: ${key} = ${v} is not a non-negative integer`);
      }
    }
  }

  /** Runs a kernel on all threads when `work` reaches `threshold`, else on the calling thread alone. */
  function run(name: KernelName, work: number, threshold: number, args: readonly number[]): void {
    if (threadsFor(work, threshold) > 1) pool.run(name, args);
    else main.kernels[name](0, 1, ...args);
  }

  function threadsFor(work: number, threshold: number): number {
    if (pool.threads === 1) return 1;
    return work >= threshold || (alwaysParallel && work > 0) ? pool.threads : 1;
  }

  function unary(kernel: KernelName, label: string, x: FloatArray, out: FloatArray, length: number): void {
    sizes(label, { length });
    run(kernel, length, PARALLEL_MIN.elementwise, [ptr(label, 'x', x, length), ptr(label, 'out', out, length), length]);
  }

  function backward(kernel: KernelName, label: string, x: FloatArray, g: FloatArray, gi: FloatArray, n: number): void {
    sizes(label, { length: n });
    const args = [ptr(label, 'x', x, n), ptr(label, 'gradOutput', g, n), ptr(label, 'gradInput', gi, n), n];
    run(kernel, n, PARALLEL_MIN.elementwise, args);
  }

  function reduce(label: string, x: FloatArray, length: number, squares: number): number {
    sizes(label, { length });
    const nt = threadsFor(length, PARALLEL_MIN.elementwise);
    const args = [ptr(label, 'x', x, length), length, squares, pool.partialsOffset];
    if (nt > 1) pool.run('ob_sum', args);
    else main.kernels.ob_sum(0, 1, ...args);
    let s = 0;
    for (let t = 0; t < nt; t++) s += pool.partial(t);
    return s;
  }

  function geometry(kernel: string, g: Conv2dGeometry): number[] {
    sizes(kernel, { ...g });
    if (g.stride < 1) throw new RangeError(`${kernel}: stride must be >= 1, got ${g.stride}`);
    const { outH, outW } = convOutputSize(g);
    if (outH < 1 || outW < 1) throw new RangeError(`${kernel}: window does not fit the padded image`);
    return [g.channels, g.height, g.width, g.kernelH, g.kernelW, g.stride, g.padding, outH, outW];
  }

  const backend: Backend = {
    name: 'wasm',
    dtype: 'float32',
    threads: pool.threads,

    alloc: (length) => allocView(length, (buf, off) => new Float32Array(buf, off, length)),
    allocInt32: (length) => allocView(length, (buf, off) => new Int32Array(buf, off, length)),
    allocUint32: (length) => allocView(length, (buf, off) => new Uint32Array(buf, off, length)),
    free(buffer) {
      alive();
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

    gemm(layout, m, n, k, a, b, c, accumulate) {
      sizes('gemm', { m, n, k });
      const code = LAYOUTS[layout];
      if (code === undefined) throw new RangeError(`gemm: unknown layout ${String(layout)}`);
      const args = [
        code,
        m,
        n,
        k,
        ptr('gemm', 'A', a, m * k),
        ptr('gemm', 'B', b, k * n),
        ptr('gemm', 'C', c, m * n),
        accumulate ? 1 : 0,
        gemmWorkspace,
      ];
      run('ob_gemm', m * n * k, PARALLEL_MIN.gemm, args);
    },

    im2col(image, g, col) {
      const geo = geometry('im2col', g);
      const rows = g.channels * g.kernelH * g.kernelW;
      const colLength = rows * geo[7] * geo[8];
      const args = [
        ptr('im2col', 'image', image, g.channels * g.height * g.width),
        ...geo,
        ptr('im2col', 'col', col, colLength),
      ];
      run('ob_im2col', colLength, PARALLEL_MIN.conv, args);
    },
    col2im(col, g, image) {
      const geo = geometry('col2im', g);
      const colLength = g.channels * g.kernelH * g.kernelW * geo[7] * geo[8];
      const args = [
        ptr('col2im', 'col', col, colLength),
        ...geo,
        ptr('col2im', 'image', image, g.channels * g.height * g.width),
      ];
      run('ob_col2im', colLength, PARALLEL_MIN.conv, args);
    },

    fill(x, value, length) {
      sizes('fill', { length });
      run('ob_fill', length, PARALLEL_MIN.elementwise, [ptr('fill', 'x', x, length), value, length]);
    },
    copy(src, dst, length) {
      sizes('copy', { length });
      const s = ptr('copy', 'src', src, length);
      const d = ptr('copy', 'dst', dst, length);
      // Overlapping ranges need memmove order, which only a single thread guarantees.
      const overlap = s < d + 4 * length && d < s + 4 * length;
      run('ob_copy', overlap ? 0 : length, PARALLEL_MIN.elementwise, [s, d, length]);
    },
    axpy(alpha, x, y, length) {
      sizes('axpy', { length });
      run('ob_axpy', length, PARALLEL_MIN.elementwise, [alpha, ptr('axpy', 'x', x, length), ptr('axpy', 'y', y, length), length]);
    },
    scale(x, alpha, length) {
      sizes('scale', { length });
      run('ob_scale', length, PARALLEL_MIN.elementwise, [ptr('scale', 'x', x, length), alpha, length]);
    },
    multiply(a, b, out, length) {
      sizes('multiply', { length });
      const args = [ptr('multiply', 'a', a, length), ptr('multiply', 'b', b, length), ptr('multiply', 'out', out, length), length];
      run('ob_multiply', length, PARALLEL_MIN.elementwise, args);
    },
    clip(x, lo, hi, length) {
      sizes('clip', { length });
      run('ob_clip', length, PARALLEL_MIN.elementwise, [ptr('clip', 'x', x, length), lo, hi, length]);
    },
    sign: (x, out, length) => unary('ob_sign', 'sign', x, out, length),
    signBackward(x, gradOutput, gradInput, surrogate, length) {
      sizes('signBackward', { length });
      const code = SURROGATES[surrogate];
      if (code === undefined) throw new RangeError(`signBackward: unknown surrogate ${String(surrogate)}`);
      const args = [
        ptr('signBackward', 'x', x, length),
        ptr('signBackward', 'gradOutput', gradOutput, length),
        ptr('signBackward', 'gradInput', gradInput, length),
        code,
        length,
      ];
      run('ob_sign_backward', length, PARALLEL_MIN.elementwise, args);
    },
    relu: (x, out, length) => unary('ob_relu', 'relu', x, out, length),
    reluBackward: (x, g, gi, length) => backward('ob_relu_backward', 'reluBackward', x, g, gi, length),
    hardtanh: (x, out, length) => unary('ob_hardtanh', 'hardtanh', x, out, length),
    hardtanhBackward: (x, g, gi, length) => backward('ob_hardtanh_backward', 'hardtanhBackward', x, g, gi, length),

    sum: (x, length) => reduce('sum', x, length, 0),
    sumSquares: (x, length) => reduce('sumSquares', x, length, 1),
    channelSums(x, y, n, channels, spatial, sums, sumsB) {
      sizes('channelSums', { n, channels, spatial });
      const total = n * channels * spatial;
      const args = [
        ptr('channelSums', 'x', x, total),
        y === null ? 0 : ptr('channelSums', 'y', y, total),
        n,
        channels,
        spatial,
        ptr('channelSums', 'sums', sums, channels),
        ptr('channelSums', 'sumsB', sumsB, channels),
      ];
      run('ob_channel_sums', total, PARALLEL_MIN.elementwise, args);
    },
    channelAffine(x, mul, add, n, channels, spatial, out) {
      sizes('channelAffine', { n, channels, spatial });
      const total = n * channels * spatial;
      const args = [
        ptr('channelAffine', 'x', x, total),
        ptr('channelAffine', 'mul', mul, channels),
        ptr('channelAffine', 'add', add, channels),
        n,
        channels,
        spatial,
        ptr('channelAffine', 'out', out, total),
      ];
      run('ob_channel_affine', total, PARALLEL_MIN.elementwise, args);
    },

    adam(param, grad, m, v, hp: AdamStep, length) {
      sizes('adam', { length });
      if (!Number.isInteger(hp.step) || hp.step < 1) {
        throw new RangeError(`adam: step must be a 1-based integer, got ${hp.step}`);
      }
      // Bias corrections computed here with Math.pow, exactly as the reference does.
      const c1 = 1 - Math.pow(hp.beta1, hp.step);
      const c2 = 1 - Math.pow(hp.beta2, hp.step);
      const args = [
        ptr('adam', 'param', param, length),
        ptr('adam', 'grad', grad, length),
        ptr('adam', 'm', m, length),
        ptr('adam', 'v', v, length),
        hp.learningRate,
        hp.beta1,
        hp.beta2,
        hp.epsilon,
        hp.weightDecay,
        c1,
        c2,
        length,
      ];
      run('ob_adam', length, PARALLEL_MIN.adam, args);
    },

    packSigns(x, rows, cols, out) {
      sizes('packSigns', { rows, cols });
      const args = [
        ptr('packSigns', 'x', x, rows * cols),
        rows,
        cols,
        ptr('packSigns', 'out', out, rows * packedWords(cols), 'uint32'),
      ];
      run('ob_pack_signs', rows * cols, PARALLEL_MIN.elementwise, args);
    },
    binaryGemm(m, n, k, a, b, c) {
      sizes('binaryGemm', { m, n, k });
      const words = packedWords(k);
      const args = [
        m,
        n,
        k,
        ptr('binaryGemm', 'A', a, m * words, 'uint32'),
        ptr('binaryGemm', 'B', b, n * words, 'uint32'),
        ptr('binaryGemm', 'C', c, m * n, 'int32'),
      ];
      run('ob_binary_gemm', m * n * k, PARALLEL_MIN.binaryGemm, args);
    },
  };
  return backend;
}
