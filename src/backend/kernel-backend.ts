/**
 * A Backend over a module of the C kernels in src/kernels (kernels.h), whoever runs them: the wasm backend
 * (the kernels compiled to WebAssembly, on the worker pool over one shared memory) and the native backend
 * (the same sources compiled by clang into the Node addon, on native threads). A `KernelHost` owns the
 * memory and runs a kernel on some threads; this module checks every argument, lays out each kernel's
 * arguments in its C order, and decides how many threads a call gets.
 *
 * Small calls run on the calling thread only; handing work to other threads costs microseconds, so a call is
 * split across threads only when its work passes a per-kernel threshold.
 */
import type { NativeLevel } from '../native/addon.js';
import { convOutputSize, packedWords } from './backend.js';
import type {
  AdamStep,
  Backend,
  Conv2dGeometry,
  FloatArray,
  GemmLayout,
  KernelArray,
  SignSurrogate,
} from './backend.js';

/** Every kernel a backend calls; each takes (tid, nthreads, ...) and does its share (src/kernels/kernels.h). */
export const KERNEL_NAMES = [
  'ob_gemm',
  'ob_binary_gemm',
  'ob_pack_signs',
  'ob_im2col',
  'ob_col2im',
  'ob_swap_axes',
  'ob_max_pool',
  'ob_max_pool_backward',
  'ob_fill',
  'ob_copy',
  'ob_axpy',
  'ob_scale',
  'ob_multiply',
  'ob_clip',
  'ob_sign',
  'ob_sign_backward',
  'ob_relu',
  'ob_relu_backward',
  'ob_hardtanh',
  'ob_hardtanh_backward',
  'ob_sum',
  'ob_channel_sums',
  'ob_channel_affine',
  'ob_adam',
  'ob_bayesbinn_saturated',
  'ob_bayesbinn_update',
  'ob_bop_update',
  'ob_vispa_project',
] as const;

export type KernelName = (typeof KERNEL_NAMES)[number];

export type ElementKind = 'float32' | 'int32' | 'uint32';

/** Whether `x` is a buffer of element kind `kind`. */
export function isKind(x: KernelArray, kind: ElementKind): boolean {
  return kind === 'float32'
    ? x instanceof Float32Array
    : kind === 'int32'
      ? x instanceof Int32Array
      : x instanceof Uint32Array;
}

/**
 * What a kernel module's runner provides. `A` is how a buffer reaches a kernel: a byte offset into wasm
 * memory, or the typed array itself for the native addon.
 */
export interface KernelHost<A> {
  readonly name: 'wasm' | 'native';
  /** The native instruction-set level (absent on wasm). */
  readonly level?: NativeLevel;
  /** Threads a call may use, the calling thread included. */
  readonly threads: number;
  /** Split every call across all threads, however small (for tests of the threaded paths). */
  readonly alwaysParallel: boolean;
  /** A zero-filled buffer of `length` elements. */
  alloc(length: number, kind: ElementKind): KernelArray;
  free(buffer: KernelArray): void;
  bytesInUse(): number;
  dispose(): void;
  /** Throws once the host is disposed. */
  alive(): void;
  /**
   * `x` as a kernel argument, after checking that it is a `kind` buffer of this host's memory with at least
   * `length` entries (`kernel` and `what` name it in the error).
   */
  pointer(kernel: string, what: string, x: KernelArray, length: number, kind: ElementKind): A;
  /** A null pointer. */
  readonly none: A;
  /** Per-thread scratch of ob_gemm (its last argument). */
  readonly gemmWorkspace: A;
  /** Where ob_sum writes one double per thread, and reading back thread t's. */
  readonly partials: A;
  partial(tid: number): number;
  /** Runs kernel `name` on `nt` threads (nt = 1: the calling thread alone); returns its result (thread 0's). */
  run(name: KernelName, nt: number, args: readonly (A | number)[]): number;
}

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

/** The Backend whose kernels `host` runs. */
export function kernelBackend<A>(host: KernelHost<A>): Backend {
  function ptr(
    kernel: string,
    what: string,
    x: KernelArray,
    length: number,
    kind: ElementKind = 'float32',
  ): A {
    return host.pointer(kernel, what, x, length, kind);
  }

  function sizes(kernel: string, values: Record<string, number>): void {
    host.alive();
    for (const [key, v] of Object.entries(values)) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new RangeError(`${kernel}: ${key} = ${v} is not a non-negative integer`);
      }
    }
  }

  function positiveBatch(kernel: string, batch: number): void {
    if (!Number.isInteger(batch) || batch < 1)
      throw new RangeError(`${kernel}: batch must be a positive integer, got ${batch}`);
  }

  function threadsFor(work: number, threshold: number): number {
    if (host.threads === 1) return 1;
    return work >= threshold || (host.alwaysParallel && work > 0) ? host.threads : 1;
  }

  /** Runs a kernel on all threads when `work` reaches `threshold`, else on the calling thread alone. */
  function run(name: KernelName, work: number, threshold: number, args: readonly (A | number)[]): void {
    host.run(name, threadsFor(work, threshold), args);
  }

  function unary(kernel: KernelName, label: string, x: FloatArray, out: FloatArray, length: number): void {
    sizes(label, { length });
    run(kernel, length, PARALLEL_MIN.elementwise, [
      ptr(label, 'x', x, length),
      ptr(label, 'out', out, length),
      length,
    ]);
  }

  function backward(
    kernel: KernelName,
    label: string,
    x: FloatArray,
    g: FloatArray,
    gi: FloatArray,
    n: number,
  ): void {
    sizes(label, { length: n });
    const args = [ptr(label, 'x', x, n), ptr(label, 'gradOutput', g, n), ptr(label, 'gradInput', gi, n), n];
    run(kernel, n, PARALLEL_MIN.elementwise, args);
  }

  function reduce(label: string, x: FloatArray, length: number, squares: number): number {
    sizes(label, { length });
    const nt = threadsFor(length, PARALLEL_MIN.elementwise);
    host.run('ob_sum', nt, [ptr(label, 'x', x, length), length, squares, host.partials]);
    let s = 0;
    for (let t = 0; t < nt; t++) s += host.partial(t);
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
    name: host.name,
    ...(host.level === undefined ? {} : { level: host.level }),
    dtype: 'float32',
    threads: host.threads,

    alloc: (length) => host.alloc(length, 'float32') as Float32Array,
    allocInt32: (length) => host.alloc(length, 'int32') as Int32Array,
    allocUint32: (length) => host.alloc(length, 'uint32') as Uint32Array,
    free: (buffer) => host.free(buffer),
    bytesInUse: () => host.bytesInUse(),
    dispose: () => host.dispose(),

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
        host.gemmWorkspace,
      ];
      run('ob_gemm', m * n * k, PARALLEL_MIN.gemm, args);
    },

    im2col(images, g, col, batch = 1) {
      const geo = geometry('im2col', g);
      positiveBatch('im2col', batch);
      const rows = g.channels * g.kernelH * g.kernelW;
      const colLength = rows * geo[7] * geo[8] * batch;
      const args = [
        ptr('im2col', 'images', images, g.channels * g.height * g.width * batch),
        ...geo,
        batch,
        ptr('im2col', 'col', col, colLength),
      ];
      run('ob_im2col', colLength, PARALLEL_MIN.conv, args);
    },
    col2im(col, g, images, batch = 1) {
      const geo = geometry('col2im', g);
      positiveBatch('col2im', batch);
      const colLength = g.channels * g.kernelH * g.kernelW * geo[7] * geo[8] * batch;
      const args = [
        ptr('col2im', 'col', col, colLength),
        ...geo,
        batch,
        ptr('col2im', 'images', images, g.channels * g.height * g.width * batch),
      ];
      run('ob_col2im', colLength, PARALLEL_MIN.conv, args);
    },

    swapAxes(src, a, b, inner, dst) {
      sizes('swapAxes', { a, b, inner });
      const n = a * b * inner;
      const args = [ptr('swapAxes', 'src', src, n), a, b, inner, ptr('swapAxes', 'dst', dst, n)];
      run('ob_swap_axes', n, PARALLEL_MIN.elementwise, args);
    },
    maxPool(input, batch, g, out, argmax) {
      const geo = geometry('maxPool', g);
      positiveBatch('maxPool', batch);
      const planes = batch * g.channels;
      const n = planes * geo[7] * geo[8];
      const args = [
        ptr('maxPool', 'input', input, planes * g.height * g.width),
        planes,
        ...geo.slice(1),
        ptr('maxPool', 'out', out, n),
        ptr('maxPool', 'argmax', argmax, n, 'int32'),
      ];
      run('ob_max_pool', n * g.kernelH * g.kernelW, PARALLEL_MIN.conv, args);
    },
    maxPoolBackward(gradOut, argmax, batch, g, gradIn) {
      const geo = geometry('maxPoolBackward', g);
      positiveBatch('maxPoolBackward', batch);
      const planes = batch * g.channels;
      const inPlane = g.height * g.width;
      const outPlane = geo[7] * geo[8];
      const args = [
        ptr('maxPoolBackward', 'gradOut', gradOut, planes * outPlane),
        ptr('maxPoolBackward', 'argmax', argmax, planes * outPlane, 'int32'),
        planes,
        inPlane,
        outPlane,
        ptr('maxPoolBackward', 'gradIn', gradIn, planes * inPlane),
      ];
      run('ob_max_pool_backward', planes * (inPlane + outPlane), PARALLEL_MIN.conv, args);
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
      const overlap =
        src.buffer === dst.buffer &&
        src.byteOffset < dst.byteOffset + 4 * length &&
        dst.byteOffset < src.byteOffset + 4 * length;
      run('ob_copy', overlap ? 0 : length, PARALLEL_MIN.elementwise, [s, d, length]);
    },
    axpy(alpha, x, y, length) {
      sizes('axpy', { length });
      run('ob_axpy', length, PARALLEL_MIN.elementwise, [
        alpha,
        ptr('axpy', 'x', x, length),
        ptr('axpy', 'y', y, length),
        length,
      ]);
    },
    scale(x, alpha, length) {
      sizes('scale', { length });
      run('ob_scale', length, PARALLEL_MIN.elementwise, [ptr('scale', 'x', x, length), alpha, length]);
    },
    multiply(a, b, out, length) {
      sizes('multiply', { length });
      const args = [
        ptr('multiply', 'a', a, length),
        ptr('multiply', 'b', b, length),
        ptr('multiply', 'out', out, length),
        length,
      ];
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
    hardtanhBackward: (x, g, gi, length) =>
      backward('ob_hardtanh_backward', 'hardtanhBackward', x, g, gi, length),

    sum: (x, length) => reduce('sum', x, length, 0),
    sumSquares: (x, length) => reduce('sumSquares', x, length, 1),
    channelSums(x, y, n, channels, spatial, sums, sumsB) {
      sizes('channelSums', { n, channels, spatial });
      const total = n * channels * spatial;
      const args = [
        ptr('channelSums', 'x', x, total),
        y === null ? host.none : ptr('channelSums', 'y', y, total),
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
    bayesBinnSaturated(lambda, sample, skip, pending, length) {
      sizes('bayesBinnSaturated', { length });
      const args = [
        ptr('bayesBinnSaturated', 'lambda', lambda, length),
        ptr('bayesBinnSaturated', 'sample', sample, length),
        skip,
        length,
        ptr('bayesBinnSaturated', 'pending', pending, length, 'int32'),
      ];
      // One thread: the pending list comes out in index order.
      return host.run('ob_bayesbinn_saturated', 1, args);
    },
    bayesBinnUpdate(lambda, mu, prior, grad, sample, velocity, hp, pending, pendingLambda, length) {
      sizes('bayesBinnUpdate', { length });
      const label = 'bayesBinnUpdate';
      const args = [
        ptr(label, 'lambda', lambda, length),
        ptr(label, 'mu', mu, length),
        ptr(label, 'prior', prior, length),
        ptr(label, 'grad', grad, length),
        ptr(label, 'sample', sample, length),
        velocity === null ? host.none : ptr(label, 'velocity', velocity, length),
        hp.temperature,
        Math.fround(hp.trainSetSize),
        hp.learningRate,
        hp.klReweight,
        hp.momentum,
        hp.correction,
        length,
        ptr(label, 'pending', pending, length, 'int32'),
        ptr(label, 'pendingLambda', pendingLambda, length),
      ];
      return host.run('ob_bayesbinn_update', 1, args);
    },

    bopUpdate(w, m, grad, gamma, threshold, length) {
      sizes('bopUpdate', { length });
      const args = [
        ptr('bopUpdate', 'w', w, length),
        ptr('bopUpdate', 'm', m, length),
        ptr('bopUpdate', 'grad', grad, length),
        gamma,
        threshold,
        length,
      ];
      return host.run('ob_bop_update', 1, args);
    },

    vispaProject(m, z, rank, invScale, length) {
      sizes('vispaProject', { rank, length });
      if (rank > 0 && z === null) throw new TypeError(`vispaProject: z is null with rank ${rank}`);
      const args = [
        ptr('vispaProject', 'm', m, length),
        rank > 0 ? ptr('vispaProject', 'z', z as FloatArray, rank * length) : host.none,
        rank,
        invScale,
        length,
      ];
      run('ob_vispa_project', length * (rank + 1), PARALLEL_MIN.elementwise, args);
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
