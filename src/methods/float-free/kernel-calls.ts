/**
 * The float-free step's kernel calls, shared by the wasm module (wasm-kernels.ts) and the native addon
 * (native-kernels.ts): each FfKernels step as its sequence of C kernels (src/kernels/float-free), with the
 * scratch each needs and the work that decides whether a call is split across threads. A host supplies how a
 * buffer reaches a kernel (`A`: a byte offset into wasm memory, or the typed array itself for the addon),
 * its scratch regions and a way to run a kernel.
 */
import type { FfBuffer, FfKernels } from './kernels.js';

/** Every kernel the float-free step calls. */
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

/** What a kernel module's runner provides. */
export interface FfHost<A> {
  readonly threads: number;
  /** A buffer of these kernels as a kernel argument (null: a null pointer); throws for a foreign one. */
  arg(view: FfBuffer | null): A;
  /** A scratch region of at least `bytes` bytes for `purpose`, kept and grown between calls. */
  scratch(purpose: string, bytes: number): A;
  /** One int32 per thread, where ff_center_max leaves its partial maxima. */
  readonly partials: A;
  /** One int32 where ff_quantize leaves the layer's exponent, and reading it back. */
  readonly exponent: A;
  readExponent(): number;
  /** Runs a kernel split across the threads when `work` is large enough (or on the calling thread only
   * when `serial`); returns the threads that ran it. */
  run(name: FfKernelName, work: number, args: readonly (A | number)[], serial?: boolean): number;
}

export type FfSteps = Omit<
  FfKernels,
  'kind' | 'threads' | 'int8' | 'int16' | 'int32' | 'uint32' | 'bytes' | 'ready' | 'bytesInUse' | 'dispose'
>;

export function ffKernelCalls<A>(host: FfHost<A>): FfSteps {
  const { arg, scratch, run } = host;
  return {
    input(n, k, p, x, xp) {
      run('ff_input', n * p, [n, k, p, arg(x), arg(xp)]);
    },
    densePixels(n, rows, p, x, h, z, zs) {
      // Subset tables of the pixels (x is 0 past the features, so all p columns can be grouped).
      const tables = scratch('tables', n * (p / 4) * 32);
      const totals = scratch('totals', Math.max(n, rows) * 4);
      run('ff_error_tables', n * p, [n, p, arg(x), p, tables, totals]);
      const nib = scratch('nibbles', host.threads * (p / 4) * 16);
      run('ff_dense_pixels', n * rows * p, [n, rows, p, arg(h), tables, totals, arg(z), zs, nib]);
    },
    denseBits(n, rows, k, a, w, z, zs) {
      run('ff_dense_bits', (n * rows * k) >>> 5, [n, rows, k, arg(a), arg(w), arg(z), zs]);
    },
    hidden(n, rows, z, zs, mode, running, shift, mu, gexp, act, gate) {
      run('ff_hidden', n * rows, [
        n,
        rows,
        arg(z),
        zs,
        mode,
        arg(running),
        shift,
        arg(mu),
        arg(gexp),
        arg(act),
        arg(gate),
      ]);
    },
    outputTrain(n, classes, z, zs, labels, lut, running, shift, stats, mu, u, g, project) {
      const args = [n, classes, arg(z), zs, arg(labels), arg(lut), arg(running), shift, arg(stats)];
      run('ff_output_train', 0, [...args, arg(mu), arg(u), arg(g), project ? 1 : 0], true);
    },
    outputEval(n, classes, z, zs, running, raw) {
      run('ff_output_eval', n * classes, [n, classes, arg(z), zs, arg(running), arg(raw)]);
    },
    centerQuantize(n, cols, g, gs, gate, center, act, e, es, pairs) {
      const parts = run('ff_center_max', n * cols, [
        n,
        cols,
        arg(g),
        gs,
        arg(gate),
        center ? 1 : 0,
        arg(act),
        scratch('csum', Math.max(4, 2 * cols * 4)),
        host.partials,
      ]);
      run('ff_quantize', n * es, [
        n,
        cols,
        arg(g),
        gs,
        host.partials,
        parts,
        arg(e),
        es,
        arg(pairs),
        host.exponent,
      ]);
      return host.readExponent();
    },
    backwardInput(n, rows, p, h, e, es, ex) {
      const groups = Math.ceil(rows / 4);
      const tables = scratch('tables', n * groups * 32);
      const totals = scratch('totals', Math.max(n, rows) * 4);
      run('ff_error_tables', n * rows, [n, rows, arg(e), es, tables, totals]);
      const nib = scratch('nibbles', host.threads * groups * 16);
      run('ff_backward_input', n * rows * p, [n, rows, p, arg(h), tables, totals, arg(ex), nib]);
    },
    updateBits(n, rows, cols, p, e, es, act, h, w, key, shift, clip) {
      const groups = Math.ceil(n / 4);
      const tables = scratch('tables', rows * groups * 32);
      const totals = scratch('totals', Math.max(n, rows) * 4);
      const nib = scratch('nibbles', (p / 16) * groups * 16);
      run('ff_row_tables', n * rows, [n, rows, arg(e), es, tables, totals]);
      run('ff_act_nibbles', n * p, [n, cols, p, arg(act), nib]);
      run('ff_update_bits', n * rows * p, [
        n,
        rows,
        cols,
        p,
        tables,
        totals,
        nib,
        arg(h),
        arg(w),
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
        arg(ep),
        arg(xp),
        arg(h),
        key >>> 0,
        shift,
        clip,
      ]);
    },
  };
}
