/**
 * The bit-packed inference engine: runs a `.onebit` model (format.ts) in WebAssembly, or natively in Node.
 *
 * Kernels (src/kernels/engine/engine.c for dense layers, conv.c for convolutions, pooling and reshaping,
 * built into wasm/onebit-engine.wasm, a module of its own so the engine ships without the training kernels,
 * and into the Node addon, native/onebit.node, with x86 code for the hot kernels; host.ts):
 *  - binary-activation layers: XNOR/popcount on bit-packed activations, which stay packed from one binary
 *    layer to the next; batch norm and the sign are one integer threshold per channel;
 *  - real-activation layers (1W32A): real inputs against packed +-1 weights with additions/subtractions
 *    only (each weight bit flips the sign bit of its input); the weights are never unpacked;
 *  - the first layer on raw 8-bit single-channel images: exact integer pixel sums, the normalisation
 *    folded in afterwards (float inputs, or several channels, take the real-activation kernel);
 *  - convolutions as the same blocks over output pixels (feature maps are pixel-major, a pixel being one
 *    row), with an exact border correction for zero padding; max pooling as an AND of bits on signs;
 *    average pooling, thresholds, affine layers, flatten and residual additions (docs/architecture.md,
 *    "Engine layout and padding").
 *
 * Memory: sized once for the model and `maxBatch` (weights, per-channel parameters, one activation buffer per
 * layer, the convolutions' per-thread scratch rows), by running the plan once over a counting allocator;
 * nothing is allocated per call except the returned arrays. On wasm it is one shared WebAssembly.Memory run
 * by the shared persistent worker pool (wasm-host.ts); natively one buffer run by the addon's native threads
 * (native-host.ts). Each kernel call splits rows or output channels across threads when the work is large
 * enough.
 *
 * Node and browsers: in Node the packaged module is read from wasm/; a browser bundle passes the module
 * (or its bytes) as `options.module`. A browser main thread cannot block on Atomics.wait, so there use
 * `threads: 1` or run the engine in a worker; shared memory needs a cross-origin-isolated page.
 */
import { nativeUnavailableReason, type NativeLevel } from '../native/addon.js';
import type { WasmBytes, WasmModule } from '../wasm/api.js';
import { alignUp } from '../wasm/heap.js';
import { checkThreads, defaultThreads } from '../wasm/pool.js';
import { decodeOnebit, encodeOnebit, type OnebitModel } from './format.js';
import type { EngineBackend } from './host.js';
import { createNativeHost, nativeEngineLevel } from './native-host.js';
import { createWasmHost } from './wasm-host.js';
import {
  headOf,
  planLayers,
  rowsPerExample,
  type EngineKernel,
  type FirstLayerKernel,
  type RealDenseKernel,
  type Placement,
  type Runner,
  type Step,
  type Value,
} from './plan.js';

export type { WasmBytes, WasmModule } from '../wasm/api.js';
export type { EngineBackend } from './host.js';
export type { NativeLevel } from '../native/addon.js';
export {
  borderCorrection,
  ENGINE_KERNELS,
  type EngineKernel,
  type FirstLayerKernel,
  type RealDenseKernel,
} from './plan.js';

/** Which popcount the XNOR kernel uses; see DEFAULT_POPCOUNT for the measurement behind the default. */
export type PopcountVariant = 'simd' | 'scalar';

/**
 * Default XNOR variant, by measurement: a 2048 x 2048 binary layer at batch 100 on one thread (Node 20, the
 * dev machine's AMD EPYC, best of 3; `npm run bench -- engine` reports the variants) took about 34 us per image with SIMD (i8x16.popcnt in a 2 x 4 register block, byte accumulators) against 60 us with
 * scalar i64.popcnt (same blocking). V8 lowers i8x16.popcnt to a few byte shuffles, which still does 128
 * bits per step; the scalar loop does 64, so the SIMD variant wins. (Convolutions always use SIMD.)
 */
export const DEFAULT_POPCOUNT: PopcountVariant = 'simd';

export interface EngineOptions {
  /**
   * Where the kernels run: 'native' (the Node addon, native/onebit.node, on native threads) or 'wasm'.
   * Default: 'native' where the addon loads and no `module` is given, else 'wasm'. Both give the same results
   * bit for bit.
   */
  readonly backend?: EngineBackend;
  /** The native instruction-set level (default: the best this CPU runs); for tests and measurements. */
  readonly level?: NativeLevel;
  /** Threads, the calling thread included (default: the machine's cores, at most 8, in Node; 1 elsewhere). */
  readonly threads?: number;
  /** The compiled engine module or its bytes for 'wasm' (required outside Node; default: wasm/onebit-engine.wasm). */
  readonly module?: WasmModule | WasmBytes;
  /** Largest batch one kernel call processes; larger inputs are run in chunks (default 100). */
  readonly maxBatch?: number;
  readonly popcount?: PopcountVariant;
  /**
   * The first layer on raw single-channel images (exact integer pixel sums, the normalisation folded in
   * afterwards). A dense first layer: 'lut' (default) looks the sums up in per-image tables of 4-pixel partial
   * sums, 16 channels per SIMD lookup; 'masked' adds the pixels under byte masks of the weights, 16 pixels per
   * SIMD add (same results, slower). A convolution takes 'direct' for either. 'float' normalises to float32
   * first and runs the real-activation kernel (as for images of several channels).
   */
  readonly firstLayer?: 'lut' | 'masked' | 'float';
  /** Dense layers on real activations: 'lut' (default, table lookups) or 'signs' (sign-flipped adds); plan.ts. */
  readonly realDense?: RealDenseKernel;
}

/**
 * One layer's output for a batch (engine.trace), unpadded. `shape` is the per-example [features] or
 * [C, H, W]. Bits are [count, packedWords(features)] words for a flat output, and [count, H * W,
 * packedWords(C)] words (pixel-major, channel c at bit c) for a map; real values are [count, ...shape], maps
 * in C, H, W order (the training model's).
 */
export type LayerTrace =
  | {
      readonly name: string;
      readonly kind: 'bits';
      readonly features: number;
      readonly shape: readonly number[];
      readonly bits: Uint32Array;
    }
  | {
      readonly name: string;
      readonly kind: 'real';
      readonly features: number;
      readonly shape: readonly number[];
      readonly values: Float32Array;
    };

export interface Engine {
  readonly model: OnebitModel;
  /** Where the kernels run. */
  readonly backend: EngineBackend;
  /** The native instruction-set level, or null on wasm. */
  readonly level: string | null;
  readonly threads: number;
  readonly maxBatch: number;
  readonly classes: number;
  /** Values per example: C * H * W. */
  readonly inputSize: number;
  readonly popcount: PopcountVariant;
  /** The kernel of the first layer on raw images. */
  readonly firstLayer: FirstLayerKernel;
  /** Logits [count, classes] of `count` raw 8-bit images (count * inputSize bytes, NCHW). */
  logits(images: Uint8Array, count?: number): Float32Array;
  /** Logits of normalised float inputs ((v / 255 - mean) / std, as the training pipeline feeds; NCHW). */
  logitsNormalized(inputs: Float32Array, count?: number): Float32Array;
  /** The predicted class of each raw image. */
  classify(images: Uint8Array, count?: number): Int32Array;
  /** The model's temperature (1 when it has none): probabilities are softmax(logits / temperature). */
  readonly temperature: number;
  /** Class probabilities [count, classes] of raw images, at the model's temperature. */
  probabilities(images: Uint8Array, count?: number): Float64Array;
  /**
   * Every named layer's output for raw images (count <= maxBatch), for inspection and tests: dense and conv
   * layers, pooling, thresholds, affine layers and residual blocks (whose branches are traced as
   * "block/body/..." and "block/shortcut/...").
   */
  trace(images: Uint8Array, count?: number): LayerTrace[];
  /** Bytes of memory the engine holds (wasm memory, or the native engine's buffer). */
  memoryBytes(): number;
  dispose(): void;
}

const LABEL = 'onebit engine';

/** Work (multiply-adds; bit operations / 8 for XNOR) above which a kernel call is split across threads. */
const PARALLEL_MIN_WORK = 1 << 17;

/**
 * Loads a model (decoded, or the bytes of a .onebit file) into a new engine. Sizes every buffer once:
 * memory = weights and per-channel parameters + maxBatch x (the input and every layer's output) + per-thread
 * scratch rows of the convolutions.
 */
export async function createEngine(
  source: OnebitModel | Uint8Array,
  options: EngineOptions = {},
): Promise<Engine> {
  // A model built in memory gets the reader's checks too (encodeOnebit validates what it writes), so no
  // inconsistent size ever reaches a kernel.
  const model = source instanceof Uint8Array ? decodeOnebit(source) : (encodeOnebit(source), source);
  const threads = options.threads ?? (await defaultThreads());
  checkThreads(threads, LABEL);
  const maxBatch = options.maxBatch ?? 100;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 1 << 16) {
    throw new RangeError(`onebit engine: maxBatch must be an integer in 1..65536, got ${maxBatch}`);
  }
  const popcount = options.popcount ?? DEFAULT_POPCOUNT;
  const realDense = options.realDense ?? 'lut';
  if (realDense !== 'lut' && realDense !== 'signs')
    throw new RangeError(`onebit engine: realDense must be 'lut' or 'signs', got ${String(realDense)}`);
  const [channels, height, width] = model.input.shape;
  const inputSize = channels * height * width;
  const head = headOf(model, options.firstLayer ?? 'lut');

  // Sizing pass: the same plan over a counting allocator, so memory is sized once before anything is placed.
  let counted = 0;
  const counting: Placement = {
    alloc: (bytes) => ((counted += alignUp(Math.max(bytes, 64), 64)), 0),
    put: (data) => ((counted += alignUp(Math.max(data.byteLength, 64), 64)), 0),
  };
  const backend = options.backend ?? defaultEngineBackend(options);
  if (backend !== 'native' && backend !== 'wasm')
    throw new RangeError(`onebit engine: backend must be 'native' or 'wasm', got ${String(backend)}`);
  if (backend === 'wasm' && options.level !== undefined)
    throw new RangeError(`onebit engine: level '${options.level}' is for backend 'native' only`);
  const level = backend === 'native' ? nativeEngineLevel(options.level) : null;
  // The AVX-512 kernels look the first layer's pixels up in groups of 5 (plan.ts, oe_dense_g5).
  const pixelGroups5 = level === 'avx512';
  planLayers(model, head, counting, maxBatch, threads, null, realDense, pixelGroups5);
  const host =
    level !== null
      ? createNativeHost(counted, threads, level)
      : await createWasmHost(counted, threads, options.module, maxBatch);
  const buf = host.buffer;
  let disposed = false;
  function run(name: EngineKernel, rows: number, n: number, work: number, args: number[]): void {
    const useful = rows >= 4 * host.threads || n <= 32 ? Math.ceil(rows / 2) : Math.ceil(n / 32);
    host.run(name, host.threads > 1 && useful > 1 && work >= PARALLEL_MIN_WORK, args);
  }
  const runner: Runner = {
    run,
    relayout: (kernel, k, n, weights, out) => host.run(kernel, false, [k, n, weights, out]),
    variant: popcount === 'simd' ? 1 : 0,
    fromBytes: true,
  };
  const plan = planLayers(model, head, host.placement, maxBatch, threads, runner, realDense, pixelGroups5);
  const { steps, input, logits } = plan;
  const classes = model.classes;
  const temperature = model.temperature ?? 1;

  // Normalisation: per-channel lookup table for float inputs.
  const lut = new Float32Array(channels * 256);
  for (let c = 0; c < channels; c++) {
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - model.input.mean[c]) / model.input.std[c];
  }
  const plane = height * width;
  // The byte input exists only for a first layer that reads bytes; normalised inputs always have theirs.
  const inBytesView = new Uint8Array(buf, input.bytes, head.bytes ? maxBatch * input.byteStride : 0);
  const inFloatsView = new Float32Array(buf, input.floats, maxBatch * input.floatStride);

  function forward(rows: number, visit?: (step: Step) => void): void {
    if (disposed) throw new Error('onebit engine: used after dispose()');
    for (const step of steps) {
      step.run(rows);
      visit?.(step);
    }
  }

  function checkCount(what: string, length: number, count: number | undefined): number {
    const n = count ?? Math.floor(length / inputSize);
    if (!Number.isInteger(n) || n < 0 || n * inputSize > length) {
      throw new RangeError(
        `onebit engine: ${what}: ${n} examples need ${n * inputSize} values, got ${length}`,
      );
    }
    return n;
  }

  /** Puts example b's normalised value of channel c at pixel p into the float input (the plan's layout). */
  const floatIndex =
    input.floatLayout === 'hwc'
      ? (b: number, c: number, p: number): number => b * input.floatStride + p * channels + c
      : (b: number, c: number, p: number): number => b * input.floatStride + c * plane + p;

  /** Copies raw images [start, start + rows) into the input buffer (bytes, or normalised floats). */
  function loadBytes(images: Uint8Array, start: number, rows: number): void {
    runner.fromBytes = true;
    if (head.bytes) {
      for (let b = 0; b < rows; b++) {
        inBytesView.set(
          images.subarray((start + b) * inputSize, (start + b + 1) * inputSize),
          b * input.byteStride,
        );
      }
      return;
    }
    for (let b = 0; b < rows; b++) {
      const src = (start + b) * inputSize;
      for (let c = 0; c < channels; c++) {
        const table = c * 256;
        for (let p = 0; p < plane; p++)
          inFloatsView[floatIndex(b, c, p)] = lut[table + images[src + c * plane + p]];
      }
    }
  }

  function loadFloats(inputs: Float32Array, start: number, rows: number): void {
    runner.fromBytes = false;
    for (let b = 0; b < rows; b++) {
      const src = (start + b) * inputSize;
      for (let c = 0; c < channels; c++) {
        for (let p = 0; p < plane; p++) inFloatsView[floatIndex(b, c, p)] = inputs[src + c * plane + p];
      }
    }
  }

  function collect(out: Float32Array, start: number, rows: number): void {
    const view = new Float32Array(buf, logits.offset, maxBatch * logits.stride);
    for (let b = 0; b < rows; b++)
      out.set(view.subarray(b * logits.stride, b * logits.stride + classes), (start + b) * classes);
  }

  function readTrace(name: string, value: Value, n: number): LayerTrace {
    const features = value.shape.reduce((a, b) => a * b, 1);
    const pixels = rowsPerExample(value);
    if (value.kind === 'bits') {
      return {
        name,
        kind: 'bits',
        features,
        shape: value.shape,
        bits: new Uint32Array(buf, value.offset, n * pixels * value.stride).slice(),
      };
    }
    const view = new Float32Array(buf, value.offset, n * pixels * value.stride);
    const values = new Float32Array(n * features);
    const c = value.shape[0];
    for (let b = 0; b < n; b++) {
      for (let p = 0; p < pixels; p++) {
        const row = (b * pixels + p) * value.stride;
        // Maps come back in C, H, W order; a flat row as it is.
        if (pixels === 1) values.set(view.subarray(row, row + features), b * features);
        else for (let ch = 0; ch < c; ch++) values[b * features + ch * pixels + p] = view[row + ch];
      }
    }
    return { name, kind: 'real', features, shape: value.shape, values };
  }

  const engine: Engine = {
    model,
    threads: host.threads,
    backend: host.backend,
    level: host.level,
    maxBatch,
    classes,
    inputSize,
    popcount,
    firstLayer: head.kernel,
    logits(images, count) {
      const n = checkCount('logits', images.length, count);
      const out = new Float32Array(n * classes);
      for (let start = 0; start < n; start += maxBatch) {
        const rows = Math.min(maxBatch, n - start);
        loadBytes(images, start, rows);
        forward(rows);
        collect(out, start, rows);
      }
      return out;
    },
    logitsNormalized(inputs, count) {
      const n = checkCount('logitsNormalized', inputs.length, count);
      const out = new Float32Array(n * classes);
      for (let start = 0; start < n; start += maxBatch) {
        const rows = Math.min(maxBatch, n - start);
        loadFloats(inputs, start, rows);
        forward(rows);
        collect(out, start, rows);
      }
      return out;
    },
    temperature,
    probabilities(images, count) {
      const logitValues = engine.logits(images, count);
      const n = logitValues.length / classes;
      const out = new Float64Array(logitValues.length);
      for (let i = 0; i < n; i++)
        out.set(softmax(logitValues, i * classes, classes, temperature), i * classes);
      return out;
    },
    classify(images, count) {
      const logitValues = engine.logits(images, count);
      const n = logitValues.length / classes;
      const labels = new Int32Array(n);
      for (let i = 0; i < n; i++) labels[i] = argmax(logitValues, i * classes, classes);
      return labels;
    },
    trace(images, count) {
      const n = checkCount('trace', images.length, count);
      if (n > maxBatch)
        throw new RangeError(`onebit engine: trace takes at most maxBatch = ${maxBatch} examples, got ${n}`);
      const traces: LayerTrace[] = [];
      loadBytes(images, 0, n);
      forward(n, (step) => {
        if (step.trace !== undefined) traces.push(readTrace(step.trace.name, step.trace.value, n));
      });
      return traces;
    },
    memoryBytes: () => host.memoryBytes(),
    dispose() {
      if (disposed) return;
      disposed = true;
      host.dispose();
    },
  };
  return engine;
}

/** The engine's default backend: native where the addon loads (Node, built with clang), unless a wasm module is given. */
export function defaultEngineBackend(options: Pick<EngineOptions, 'module'> = {}): EngineBackend {
  return options.module === undefined && nativeUnavailableReason() === null ? 'native' : 'wasm';
}

/** Index of the largest of `n` values from `offset` (the first on ties). */
export function argmax(values: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (values[offset + j] > values[offset + best]) best = j;
  return best;
}

/** Softmax of `n` logits from `offset` divided by `temperature`, in float64. */
export function softmax(values: ArrayLike<number>, offset: number, n: number, temperature = 1): Float64Array {
  const out = new Float64Array(n);
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, values[offset + j] / temperature);
  let sum = 0;
  for (let j = 0; j < n; j++) {
    out[j] = Math.exp(values[offset + j] / temperature - max);
    sum += out[j];
  }
  for (let j = 0; j < n; j++) out[j] /= sum;
  return out;
}
