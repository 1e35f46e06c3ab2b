/**
 * The bit-packed inference engine: runs a `.onebit` model (format.ts) in WebAssembly.
 *
 * Kernels (src/kernels/engine/engine.c, built into wasm/onebit-engine.wasm, a module of its own so the
 * engine ships without the training kernels):
 *  - binary-activation layers: XNOR/popcount on bit-packed activations, which stay packed from one binary
 *    layer to the next; batch norm and the sign are one integer threshold per channel;
 *  - real-activation layers (1W32A): real inputs against packed +-1 weights with additions/subtractions
 *    only (each weight bit flips the sign bit of its input); the weights are never unpacked;
 *  - the first layer on raw 8-bit single-channel images: an exact masked byte sum, the normalisation
 *    folded in afterwards (float inputs, or several channels, take the real-activation kernel).
 *
 * Memory: one shared WebAssembly.Memory sized once for the model and `maxBatch` (weights, per-channel
 * parameters, one activation buffer per layer); nothing is allocated per call except the returned arrays.
 * Threads: the shared persistent worker pool (src/wasm/pool.ts, the one the wasm backend and the float-free
 * kernels use too) over that memory; each kernel call splits rows or output channels across threads when
 * the work is large enough. Loading, instantiation and the heap are the shared ones of src/wasm as well,
 * which imports no training code.
 *
 * Node and browsers: in Node the packaged module is read from wasm/; a browser bundle passes the module
 * (or its bytes) as `options.module`. A browser main thread cannot block on Atomics.wait, so there use
 * `threads: 1` or run the engine in a worker; shared memory needs a cross-origin-isolated page.
 */
import type { WasmBytes, WasmModule } from '../wasm/api.js';
import { WasmHeap, alignUp } from '../wasm/heap.js';
import { heapBaseOf, instantiate, loadModule, sharedMemory, type PackagedModule } from '../wasm/loader.js';
import { checkThreads, defaultThreads, ThreadPool, WORKER_STACK_BYTES } from '../wasm/pool.js';
import { CONTROL_BYTES } from '../wasm/protocol.js';
import { decodeOnebit, encodeOnebit, packedWords, type DenseLayer, type OnebitModel } from './format.js';

export type { WasmBytes, WasmModule } from '../wasm/api.js';

export const ENGINE_KERNELS = [
  'oe_dense_bits',
  'oe_dense_f32',
  'oe_dense_u8',
  'oe_dense_lut',
  'oe_nibbles',
] as const;
export type EngineKernel = (typeof ENGINE_KERNELS)[number];

/** Which popcount the XNOR kernel uses; see DEFAULT_POPCOUNT for the measurement behind the default. */
export type PopcountVariant = 'simd' | 'scalar';

/**
 * Default XNOR variant, by measurement: a 2048 x 2048 binary layer at batch 100 on one thread (Node 20, the
 * dev machine's AMD EPYC, best of 3; `npm run bench -- engine` reports the variants) took about 34 us per image with SIMD (i8x16.popcnt in a 2 x 4 register block, byte accumulators) against 60 us with
 * scalar i64.popcnt (same blocking). V8 lowers i8x16.popcnt to a few byte shuffles, which still does 128
 * bits per step; the scalar loop does 64, so the SIMD variant wins.
 */
export const DEFAULT_POPCOUNT: PopcountVariant = 'simd';

export type FirstLayerKernel = 'lut' | 'masked' | 'float';

/** Largest first-layer input for the table kernel (its per-thread tables take 32 * k bytes). */
const LUT_MAX_FEATURES = 1 << 16;

export interface EngineOptions {
  /** Threads, the calling thread included (default: the machine's cores, at most 8, in Node; 1 elsewhere). */
  readonly threads?: number;
  /** The compiled engine module or its bytes (required outside Node; default: wasm/onebit-engine.wasm). */
  readonly module?: WasmModule | WasmBytes;
  /** Largest batch one kernel call processes; larger inputs are run in chunks (default 100). */
  readonly maxBatch?: number;
  readonly popcount?: PopcountVariant;
  /**
   * The first layer on raw single-channel images (exact integer pixel sums, the normalisation folded in
   * afterwards): 'lut' (default) looks the sums up in per-image tables of 4-pixel partial sums, 16 channels
   * per SIMD lookup; 'masked' adds the pixels under byte masks of the weights, 16 pixels per SIMD add (same
   * results, slower); 'float' normalises to float32 first and runs the real-activation kernel (as for
   * images of several channels).
   */
  readonly firstLayer?: FirstLayerKernel;
}

/** One layer's output for a batch (engine.trace), unpadded: bits are [count, packedWords(n)] words. */
export type LayerTrace =
  | { readonly name: string; readonly kind: 'bits'; readonly features: number; readonly bits: Uint32Array }
  | {
      readonly name: string;
      readonly kind: 'real';
      readonly features: number;
      readonly values: Float32Array;
    };

export interface Engine {
  readonly model: OnebitModel;
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
  /** Logits of normalised float inputs ((v / 255 - mean) / std, as the training pipeline feeds). */
  logitsNormalized(inputs: Float32Array, count?: number): Float32Array;
  /** The predicted class of each raw image. */
  classify(images: Uint8Array, count?: number): Int32Array;
  /** The model's temperature (1 when it has none): probabilities are softmax(logits / temperature). */
  readonly temperature: number;
  /** Class probabilities [count, classes] of raw images, at the model's temperature. */
  probabilities(images: Uint8Array, count?: number): Float64Array;
  /** Every dense layer's output for raw images (count <= maxBatch), for inspection and tests. */
  trace(images: Uint8Array, count?: number): LayerTrace[];
  /** Bytes of wasm memory the engine holds. */
  memoryBytes(): number;
  dispose(): void;
}

const LABEL = 'onebit engine';
const ENGINE_MODULE: PackagedModule = {
  file: 'onebit-engine.wasm',
  label: LABEL,
  howToPass: 'the engine module: createEngine(model, { module })',
};
const PAGE = 65536;

/** Work (multiply-adds; bit operations / 8 for XNOR) above which a kernel call is split across threads. */
const PARALLEL_MIN_WORK = 1 << 17;

const OUT_BITS = 0;
const OUT_REAL = 1;
const ACTIVATIONS = { none: 0, relu: 1, hardtanh: 2 } as const;

/** A dense layer placed in wasm memory: byte offsets of its tensors and of its output buffer. */
interface PlacedDense {
  readonly layer: DenseLayer;
  readonly weights: number;
  readonly p0: number;
  readonly p1: number;
  /** Per-channel weight sums, for the byte kernel of the first layer (else 0). */
  readonly wsum: number;
  readonly mode: number;
  readonly act: number;
  readonly out: number;
  /** Output row stride in bytes. */
  readonly outStride: number;
}

/**
 * Loads a model (decoded, or the bytes of a .onebit file) into a new engine. Sizes every buffer once:
 * memory = weights and per-channel parameters + maxBatch x (the input and every layer's output).
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
  const module = await loadModule(ENGINE_MODULE, options.module);

  const [channels, height, width] = model.input.shape;
  const inputSize = channels * height * width;
  const dense = model.layers.filter((l): l is DenseLayer => l.kind === 'dense');
  const first = dense[0];
  const requested = options.firstLayer ?? 'lut';
  const firstKernel: FirstLayerKernel =
    channels !== 1
      ? 'float'
      : requested === 'lut' && first.inFeatures > LUT_MAX_FEATURES
        ? 'masked'
        : requested;
  const byteInput = firstKernel !== 'float';
  const inStride = packedWords(first.inFeatures) * 32; // values per padded input row
  const groups = inStride / 4;
  const lutBytes = firstKernel === 'lut' ? Math.ceil(first.outFeatures / 16) * groups * 16 : 0;
  const scratchBytes = firstKernel === 'lut' ? threads * 4 * groups * 32 : 0;

  // Memory layout, computed before anything is allocated.
  const blocks: number[] = [CONTROL_BYTES, (threads - 1) * WORKER_STACK_BYTES];
  for (const l of dense) {
    blocks.push(l.weights.byteLength, 4 * l.outFeatures, 4 * l.outFeatures, 4 * l.outFeatures);
    blocks.push(maxBatch * outStrideBytes(l));
  }
  blocks.push(maxBatch * inStride, maxBatch * inStride * 4, lutBytes, scratchBytes);
  // __heap_base is fixed by the module; read it before the memory is sized.
  const heapBase = heapBaseOf(module, LABEL);
  const total =
    alignUp(heapBase, 64) + blocks.reduce((a, b) => a + alignUp(Math.max(b, 64), 64), 0) + 64 * 64;
  const pages = Math.ceil(total / PAGE);
  if (pages > 65536)
    throw new RangeError(
      `onebit engine: the model needs ${total} bytes of memory at maxBatch ${maxBatch}, more than wasm32's 4 GiB`,
    );
  const memory = sharedMemory(pages, pages);
  const { kernels } = instantiate(module, memory, ENGINE_KERNELS, LABEL);
  const heap = new WasmHeap(memory, heapBase, pages * PAGE, LABEL);
  const control = heap.alloc(CONTROL_BYTES);
  const pool = await ThreadPool.create<EngineKernel>({
    module,
    memory,
    main: { kernels },
    names: ENGINE_KERNELS,
    threads,
    control,
    reserve: (bytes) => heap.alloc(bytes),
    label: LABEL,
  });
  const buf = memory.buffer;
  const put = <T extends Uint32Array | Int32Array | Float32Array | Int8Array>(data: T): number => {
    const offset = heap.alloc(data.byteLength);
    new Uint8Array(buf, offset, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    return offset;
  };

  const placed: PlacedDense[] = dense.map((layer, i) => {
    const out = layer.output;
    const weights = put(layer.weights);
    let wsum = 0;
    if (i === 0) {
      const sums = new Int32Array(layer.outFeatures);
      const words = packedWords(layer.inFeatures);
      for (let j = 0; j < layer.outFeatures; j++) {
        let set = 0;
        for (let w = 0; w < words; w++) set += popcount32(layer.weights[j * words + w]);
        sums[j] = layer.inFeatures - 2 * set;
      }
      wsum = put(sums);
    }
    const p0 = put(out.kind === 'bits' ? out.thresholds : out.scale);
    const p1 = put(out.kind === 'bits' ? out.directions : out.bias);
    const outStride = outStrideBytes(layer);
    const outBuf = heap.alloc(maxBatch * outStride);
    new Uint8Array(buf, outBuf, maxBatch * outStride).fill(0);
    return {
      layer,
      weights,
      p0,
      p1,
      wsum,
      mode: out.kind === 'bits' ? OUT_BITS : OUT_REAL,
      act: out.kind === 'real' ? ACTIVATIONS[out.activation] : 0,
      out: outBuf,
      outStride,
    };
  });
  let nibbles = 0;
  let scratch = 0;
  if (firstKernel === 'lut') {
    nibbles = heap.alloc(lutBytes);
    scratch = heap.alloc(scratchBytes);
    kernels.oe_nibbles(0, 1, first.inFeatures, first.outFeatures, placed[0].weights, nibbles);
  }
  const inBytes = heap.alloc(maxBatch * inStride);
  const inFloats = heap.alloc(maxBatch * inStride * 4);
  const inBytesView = new Uint8Array(buf, inBytes, maxBatch * inStride);
  const inFloatsView = new Float32Array(buf, inFloats, maxBatch * inStride);
  inBytesView.fill(0);
  inFloatsView.fill(0);
  const last = placed[placed.length - 1];
  const classes = model.classes;
  const temperature = model.temperature ?? 1;
  const logitView = new Float32Array(buf, last.out, (maxBatch * last.outStride) / 4);

  // Normalisation: per-channel lookup table for the float path, and x = a v + c for the byte kernel.
  const lut = new Float32Array(channels * 256);
  for (let c = 0; c < channels; c++) {
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - model.input.mean[c]) / model.input.std[c];
  }
  const scaleA = 1 / (255 * model.input.std[0]);
  const shiftC = -model.input.mean[0] / model.input.std[0];
  const variant = popcount === 'simd' ? 1 : 0;
  let disposed = false;

  function run(name: EngineKernel, rows: number, n: number, work: number, args: number[]): void {
    const useful = rows >= 4 * pool.threads || n <= 32 ? Math.ceil(rows / 2) : Math.ceil(n / 32);
    if (pool.threads > 1 && useful > 1 && work >= PARALLEL_MIN_WORK) pool.run(name, args);
    else kernels[name](0, 1, ...args);
  }

  /** Runs every layer on `rows` examples already in the input buffer; calls `visit` after each layer. */
  function forward(rows: number, fromBytes: boolean, visit?: (p: PlacedDense) => void): void {
    if (disposed) throw new Error('onebit engine: used after dispose()');
    for (let i = 0; i < placed.length; i++) {
      const p = placed[i];
      const { inFeatures: k, outFeatures: n } = p.layer;
      if (i === 0 && fromBytes && firstKernel === 'lut') {
        const args = [
          rows,
          k,
          n,
          inBytes,
          nibbles,
          p.wsum,
          scaleA,
          shiftC,
          p.mode,
          p.p0,
          p.p1,
          p.act,
          p.out,
          scratch,
        ];
        run('oe_dense_lut', rows, n, rows * n * k, args);
      } else if (i === 0 && fromBytes) {
        run('oe_dense_u8', rows, n, rows * n * k, [
          rows,
          k,
          n,
          inBytes,
          p.weights,
          p.wsum,
          scaleA,
          shiftC,
          p.mode,
          p.p0,
          p.p1,
          p.act,
          p.out,
        ]);
      } else {
        const x = i === 0 ? inFloats : placed[i - 1].out;
        if (p.layer.input === 'bits') {
          run('oe_dense_bits', rows, n, (rows * n * k) / 8, [
            rows,
            k,
            n,
            x,
            p.weights,
            p.mode,
            p.p0,
            p.p1,
            p.act,
            p.out,
            variant,
          ]);
        } else {
          run('oe_dense_f32', rows, n, rows * n * k, [
            rows,
            k,
            n,
            x,
            p.weights,
            p.mode,
            p.p0,
            p.p1,
            p.act,
            p.out,
          ]);
        }
      }
      visit?.(p);
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

  /** Copies raw images [start, start + rows) into the input buffer (bytes, or normalised floats). */
  function loadBytes(images: Uint8Array, start: number, rows: number): boolean {
    if (byteInput) {
      for (let b = 0; b < rows; b++) {
        inBytesView.set(images.subarray((start + b) * inputSize, (start + b + 1) * inputSize), b * inStride);
      }
      return true;
    }
    const plane = height * width;
    for (let b = 0; b < rows; b++) {
      const src = (start + b) * inputSize;
      const dst = b * inStride;
      for (let c = 0; c < channels; c++) {
        const table = c * 256;
        for (let p = 0; p < plane; p++)
          inFloatsView[dst + c * plane + p] = lut[table + images[src + c * plane + p]];
      }
    }
    return false;
  }

  function collect(out: Float32Array, start: number, rows: number): void {
    const stride = last.outStride / 4;
    for (let b = 0; b < rows; b++)
      out.set(logitView.subarray(b * stride, b * stride + classes), (start + b) * classes);
  }

  const engine: Engine = {
    model,
    threads: pool.threads,
    maxBatch,
    classes,
    inputSize,
    popcount,
    firstLayer: firstKernel,
    logits(images, count) {
      const n = checkCount('logits', images.length, count);
      const out = new Float32Array(n * classes);
      for (let start = 0; start < n; start += maxBatch) {
        const rows = Math.min(maxBatch, n - start);
        forward(rows, loadBytes(images, start, rows));
        collect(out, start, rows);
      }
      return out;
    },
    logitsNormalized(inputs, count) {
      const n = checkCount('logitsNormalized', inputs.length, count);
      const out = new Float32Array(n * classes);
      for (let start = 0; start < n; start += maxBatch) {
        const rows = Math.min(maxBatch, n - start);
        for (let b = 0; b < rows; b++) {
          inFloatsView.set(
            inputs.subarray((start + b) * inputSize, (start + b + 1) * inputSize),
            b * inStride,
          );
        }
        forward(rows, false);
        collect(out, start, rows);
      }
      return out;
    },
    temperature,
    probabilities(images, count) {
      const logits = engine.logits(images, count);
      const n = logits.length / classes;
      const out = new Float64Array(logits.length);
      for (let i = 0; i < n; i++) out.set(softmax(logits, i * classes, classes, temperature), i * classes);
      return out;
    },
    classify(images, count) {
      const logits = engine.logits(images, count);
      const n = logits.length / classes;
      const labels = new Int32Array(n);
      for (let i = 0; i < n; i++) labels[i] = argmax(logits, i * classes, classes);
      return labels;
    },
    trace(images, count) {
      const n = checkCount('trace', images.length, count);
      if (n > maxBatch)
        throw new RangeError(`onebit engine: trace takes at most maxBatch = ${maxBatch} examples, got ${n}`);
      const traces: LayerTrace[] = [];
      forward(n, loadBytes(images, 0, n), (p) => {
        const features = p.layer.outFeatures;
        if (p.mode === OUT_BITS) {
          const words = packedWords(features);
          traces.push({
            name: p.layer.name,
            kind: 'bits',
            features,
            bits: new Uint32Array(buf, p.out, n * words).slice(),
          });
        } else {
          const stride = p.outStride / 4;
          const view = new Float32Array(buf, p.out, n * stride);
          const values = new Float32Array(n * features);
          for (let b = 0; b < n; b++)
            values.set(view.subarray(b * stride, b * stride + features), b * features);
          traces.push({ name: p.layer.name, kind: 'real', features, values });
        }
      });
      return traces;
    },
    memoryBytes: () => memory.buffer.byteLength,
    dispose() {
      if (disposed) return;
      disposed = true;
      pool.dispose();
    },
  };
  return engine;
}

function outStrideBytes(l: DenseLayer): number {
  return l.output.kind === 'bits' ? packedWords(l.outFeatures) * 4 : packedWords(l.outFeatures) * 32 * 4;
}

function popcount32(x: number): number {
  let v = x >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
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
