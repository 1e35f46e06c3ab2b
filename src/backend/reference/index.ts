/**
 * The reference backend: every kernel of `Backend` as plain, readable TypeScript over ordinary typed arrays.
 * It is the executable specification the fast backends are tested against, and it can run in float64 for
 * finite-difference gradient checks. Single-threaded; memory is ordinary JS memory, tracked for leak tests.
 */
import type { Backend, DType, FloatArray, KernelArray } from '../backend.js';
import { adam } from './adam.js';
import { bayesBinnSaturated, bayesBinnUpdate } from './bayes-binn.js';
import { bopUpdate } from './bop.js';
import { vispaProject } from './vispa.js';
import { binaryGemm, packSigns } from './bits.js';
import {
  axpy,
  channelAffine,
  channelSums,
  clip,
  copy,
  fill,
  hardtanh,
  hardtanhBackward,
  multiply,
  relu,
  reluBackward,
  scale,
  sign,
  signBackward,
  sum,
  sumSquares,
} from './elementwise.js';
import { col2im, gemm, im2col, swapAxes } from './linalg.js';
import { maxPool, maxPoolBackward } from './pool.js';

export { adam } from './adam.js';
export { bayesBinnSaturated, bayesBinnScale, bayesBinnUpdate } from './bayes-binn.js';
export { bopUpdate } from './bop.js';
export { vispaProject } from './vispa.js';
export { binaryGemm, packSigns, popcount32 } from './bits.js';
export {
  axpy,
  channelAffine,
  channelSums,
  clip,
  copy,
  fill,
  hardtanh,
  hardtanhBackward,
  multiply,
  relu,
  reluBackward,
  scale,
  sign,
  signBackward,
  sum,
  sumSquares,
  surrogateDerivative,
} from './elementwise.js';
export { col2im, gemm, im2col, swapAxes } from './linalg.js';
export { maxPool, maxPoolBackward } from './pool.js';

export function createReferenceBackend(dtype: DType = 'float64'): Backend {
  if (dtype !== 'float32' && dtype !== 'float64') throw new RangeError(`unknown dtype ${String(dtype)}`);
  // Live buffers, keyed by identity: a view made from one (subarray) is not itself a live buffer.
  const live = new Set<KernelArray>();
  let bytes = 0;
  let disposed = false;

  function checkAlive(): void {
    if (disposed) throw new Error('reference backend: used after dispose()');
  }
  function checkLength(length: number): void {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`alloc: bad length ${length}`);
  }
  function track<T extends KernelArray>(buffer: T): T {
    live.add(buffer);
    bytes += buffer.byteLength;
    return buffer;
  }

  return {
    name: 'reference',
    dtype,
    threads: 1,

    alloc(length: number): FloatArray {
      checkAlive();
      checkLength(length);
      return track(dtype === 'float32' ? new Float32Array(length) : new Float64Array(length));
    },
    allocInt32(length: number): Int32Array {
      checkAlive();
      checkLength(length);
      return track(new Int32Array(length));
    },
    allocUint32(length: number): Uint32Array {
      checkAlive();
      checkLength(length);
      return track(new Uint32Array(length));
    },
    free(buffer: KernelArray): void {
      checkAlive();
      if (!live.has(buffer)) {
        throw new Error(
          'reference backend: free() of a buffer that this backend did not allocate or already freed',
        );
      }
      live.delete(buffer);
      bytes -= buffer.byteLength;
    },
    bytesInUse(): number {
      return bytes;
    },
    dispose(): void {
      live.clear();
      bytes = 0;
      disposed = true;
    },

    gemm,
    im2col,
    col2im,
    swapAxes,
    maxPool,
    maxPoolBackward,
    fill,
    copy,
    axpy,
    scale,
    multiply,
    clip,
    sign,
    signBackward,
    relu,
    reluBackward,
    hardtanh,
    hardtanhBackward,
    sum,
    sumSquares,
    channelSums,
    channelAffine,
    adam,
    packSigns,
    binaryGemm,
    bopUpdate,
    vispaProject,
    bayesBinnSaturated,
    bayesBinnUpdate,
  };
}
