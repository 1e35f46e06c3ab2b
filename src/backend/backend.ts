/**
 * The compute backend: one typed record of every kernel the layers, losses and optimizers use.
 *
 * A backend owns the memory its kernels work on. Buffers come from `alloc*` and are plain typed-array
 * views (for the wasm backend, views into the module's shared linear memory), so the TypeScript side can
 * read and write them directly and no copy happens at a kernel call. Kernels never allocate.
 *
 * Conventions, shared by every backend and checked by the equality tests:
 * - Matrices are dense and row-major; a matrix argument is the view whose element 0 is its first entry.
 * - Images are NCHW.
 * - Sign convention: sign(x) = +1 for x >= 0 (zero counts as positive), -1 otherwise.
 * - Bit-packing: row r of an R x K sign matrix occupies `packedWords(K)` consecutive 32-bit words;
 *   bit j of word w holds column 32*w + j; a set bit means -1, a clear bit +1; padding bits are 0.
 *   With both operands packed this way, the +-1 dot product of two rows is K - 2*popcount(a XOR b).
 */

import type { NativeLevel } from '../native/addon.js';

/** Floating-point buffer of the backend's dtype. */
export type FloatArray = Float32Array | Float64Array;

/** Any buffer a backend can allocate. */
export type KernelArray = FloatArray | Int32Array | Uint32Array;

export type DType = 'float32' | 'float64';

/** Which operands of a GEMM are read transposed: 'nt' means C = A * B^T. */
export type GemmLayout = 'nn' | 'nt' | 'tn';

/** Surrogate gradient of a sign binarizer (see docs/methods.md#surrogate-gradients). */
export type SignSurrogate =
  /** dL/dx = dL/dy: the plain straight-through estimator. */
  | 'identity'
  /** dL/dx = dL/dy * 1[|x| <= 1]: the derivative of hardtanh (BNN, Hubara et al. 2016). */
  | 'clipped-identity'
  /** dL/dx = dL/dy * max(0, 2 - 2|x|): ApproxSign (Bi-Real Net, Liu et al. 2018). */
  | 'approx-sign';

/** Geometry of a 2-D convolution or pooling window over one NCHW image. */
export interface Conv2dGeometry {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly kernelH: number;
  readonly kernelW: number;
  readonly stride: number;
  readonly padding: number;
}

/** Output height and width of a window sweep; both backends and the layers use this one formula. */
export function convOutputSize(g: Conv2dGeometry): { outH: number; outW: number } {
  return {
    outH: Math.floor((g.height + 2 * g.padding - g.kernelH) / g.stride) + 1,
    outW: Math.floor((g.width + 2 * g.padding - g.kernelW) / g.stride) + 1,
  };
}

/** Number of 32-bit words one packed row of `cols` signs occupies (rows are padded to 128 bits for SIMD). */
export function packedWords(cols: number): number {
  return Math.ceil(cols / 128) * 4;
}

/** Hyperparameters of one Adam step (Kingma & Ba 2015), with decoupled weight decay (AdamW) when > 0. */
export interface AdamStep {
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  /** 1-based step count, for bias correction. */
  readonly step: number;
  readonly weightDecay: number;
}

/** One BayesBiNN update (docs/methods.md#bayesbinn; Backend.bayesBinnUpdate). */
export interface BayesBinnUpdateStep {
  /** tau, the relaxation temperature. */
  readonly temperature: number;
  /** N, the training-set size the gradient is scaled by (rounded to float32 by the kernel). */
  readonly trainSetSize: number;
  readonly learningRate: number;
  readonly klReweight: number;
  /** beta; used only with a velocity buffer. */
  readonly momentum: number;
  /** 1 - beta^t, the bias correction of the momentum. */
  readonly correction: number;
}

export interface Backend {
  readonly name: 'reference' | 'wasm' | 'native';
  /** The native backend's instruction-set level ('avx512', 'avx2', 'baseline'); absent on the others. */
  readonly level?: NativeLevel;
  readonly dtype: DType;
  /** Number of threads kernels may use (1 for the reference backend). */
  readonly threads: number;

  // ---- memory ----
  /** A zero-filled float buffer of the backend's dtype. */
  alloc(length: number): FloatArray;
  allocInt32(length: number): Int32Array;
  allocUint32(length: number): Uint32Array;
  /** Returns a buffer obtained from this backend's alloc*; freeing twice or a foreign buffer throws. */
  free(buffer: KernelArray): void;
  /** Bytes currently allocated and not freed (for leak tests). */
  bytesInUse(): number;
  /** Releases workers and memory; the backend is unusable afterwards. */
  dispose(): void;

  // ---- dense linear algebra ----
  /**
   * C (m x n) = op(A) * op(B), or C += op(A) * op(B) when `accumulate`.
   * 'nn': A is m x k, B is k x n. 'nt': A is m x k, B is n x k. 'tn': A is k x m, B is k x n.
   */
  gemm(
    layout: GemmLayout,
    m: number,
    n: number,
    k: number,
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    accumulate: boolean,
  ): void;

  // ---- convolution helpers ----
  /**
   * col (C*kh*kw rows x batch*outH*outW cols) from `batch` images (each C x H x W, one after another): image
   * b's positions are columns b*outH*outW.., so one GEMM covers the batch; out-of-image taps read 0.
   */
  im2col(images: FloatArray, g: Conv2dGeometry, col: FloatArray, batch?: number): void;
  /**
   * Adds each entry of col (im2col's layout) back to the image position it came from; `images` are
   * overwritten (not accumulated).
   */
  col2im(col: FloatArray, g: Conv2dGeometry, images: FloatArray, batch?: number): void;
  /**
   * dst[(j*a + i)*inner + q] = src[(i*b + j)*inner + q] (i < a, j < b): the two outer axes of [a, b, inner]
   * swapped, between a batch of images and a GEMM chunk's [channels, images, positions].
   */
  swapAxes(src: FloatArray, a: number, b: number, inner: number, dst: FloatArray): void;

  // ---- pooling ----
  /**
   * Max pooling of `batch` images (g.channels planes each): each window's maximum over its in-image taps, and
   * in `argmax` the flat input index of the first maximum (-1 and -infinity for a window with none).
   */
  maxPool(input: FloatArray, batch: number, g: Conv2dGeometry, out: FloatArray, argmax: Int32Array): void;
  /** gradIn = 0, then gradIn[argmax[o]] += gradOut[o]. */
  maxPoolBackward(
    gradOut: FloatArray,
    argmax: Int32Array,
    batch: number,
    g: Conv2dGeometry,
    gradIn: FloatArray,
  ): void;

  // ---- elementwise (the first `length` entries) ----
  fill(x: FloatArray, value: number, length: number): void;
  copy(src: FloatArray, dst: FloatArray, length: number): void;
  /** y += alpha * x */
  axpy(alpha: number, x: FloatArray, y: FloatArray, length: number): void;
  /** x *= alpha */
  scale(x: FloatArray, alpha: number, length: number): void;
  /** out = a * b elementwise */
  multiply(a: FloatArray, b: FloatArray, out: FloatArray, length: number): void;
  /** x = min(hi, max(lo, x)) */
  clip(x: FloatArray, lo: number, hi: number, length: number): void;
  /** out = sign(x) in {-1, +1}, sign(0) = +1 */
  sign(x: FloatArray, out: FloatArray, length: number): void;
  /** gradInput = gradOutput * surrogate'(x) for y = sign(x) */
  signBackward(
    x: FloatArray,
    gradOutput: FloatArray,
    gradInput: FloatArray,
    surrogate: SignSurrogate,
    length: number,
  ): void;
  /** out = max(0, x) */
  relu(x: FloatArray, out: FloatArray, length: number): void;
  /** gradInput = gradOutput * 1[x > 0] */
  reluBackward(x: FloatArray, gradOutput: FloatArray, gradInput: FloatArray, length: number): void;
  /** out = min(1, max(-1, x)) */
  hardtanh(x: FloatArray, out: FloatArray, length: number): void;
  /** gradInput = gradOutput * 1[|x| <= 1] */
  hardtanhBackward(x: FloatArray, gradOutput: FloatArray, gradInput: FloatArray, length: number): void;

  // ---- reductions ----
  /** Sum of the first `length` entries. */
  sum(x: FloatArray, length: number): number;
  /** Sum of squares of the first `length` entries. */
  sumSquares(x: FloatArray, length: number): number;
  /**
   * Per-channel sums over an (n, channels, spatial) array: sums[c] = sum x, sumsB[c] = sum x*y
   * when y is given, else sum x*x.
   */
  channelSums(
    x: FloatArray,
    y: FloatArray | null,
    n: number,
    channels: number,
    spatial: number,
    sums: FloatArray,
    sumsB: FloatArray,
  ): void;
  /** out[i, c, s] = x[i, c, s] * mul[c] + add[c] over an (n, channels, spatial) array. */
  channelAffine(
    x: FloatArray,
    mul: FloatArray,
    add: FloatArray,
    n: number,
    channels: number,
    spatial: number,
    out: FloatArray,
  ): void;

  // ---- optimizers ----
  /** One Adam(W) step on `length` parameters; m and v are the moment buffers, updated in place. */
  adam(param: FloatArray, grad: FloatArray, m: FloatArray, v: FloatArray, hp: AdamStep, length: number): void;

  // ---- bits ----
  /** Packs the signs of a rows x cols matrix into rows * packedWords(cols) words (convention above). */
  packSigns(x: FloatArray, rows: number, cols: number, out: Uint32Array): void;
  /**
   * C (m x n, int32) = A * B^T over +-1 values, with A (m rows) and B (n rows) packed from k columns:
   * C[i, j] = k - 2 * popcount(A_i XOR B_j).
   */
  binaryGemm(m: number, n: number, k: number, a: Uint32Array, b: Uint32Array, c: Int32Array): void;

  // ---- training methods' update loops (the parts with no random number and no transcendental) ----
  /**
   * Bop's step (docs/methods.md#bop): m <- (1 - gamma) m + gamma g, then w <- -w where w m > threshold (m as
   * stored). Returns the number of flips.
   */
  bopUpdate(
    w: FloatArray,
    m: FloatArray,
    grad: FloatArray,
    gamma: number,
    threshold: number,
    length: number,
  ): number;
  /**
   * VISPA's projection onto m_i^2 + ||z_i||^2 / S = 1 (docs/methods.md#vispa) over `length` weights, in place;
   * z is rank x length (row k at k * length); invScale = 1 / S. A weight with m = z = 0 restarts at m = +1.
   */
  vispaProject(m: FloatArray, z: FloatArray | null, rank: number, invScale: number, length: number): void;
  /**
   * BayesBiNN's relaxed sample where the noise cannot change it: sample = sign(lambda) where |lambda| > skip.
   * The other weights' indices go to `pending`, in order; returns their count.
   */
  bayesBinnSaturated(
    lambda: FloatArray,
    sample: FloatArray,
    skip: number,
    pending: Int32Array,
    length: number,
  ): number;
  /**
   * BayesBiNN's update with the float32 scale and the lagged mean (reference/bayes-binn.ts): lambda, velocity
   * (when given) and, where float32 tanh of the old lambda is +-1, mu. The other weights' indices go to
   * `pending` and their old lambda to `pendingLambda`, in order, for the caller to set mu; returns their count.
   */
  bayesBinnUpdate(
    lambda: FloatArray,
    mu: FloatArray,
    prior: FloatArray,
    grad: FloatArray,
    sample: FloatArray,
    velocity: FloatArray | null,
    hp: BayesBinnUpdateStep,
    pending: Int32Array,
    pendingLambda: FloatArray,
    length: number,
  ): number;
}
