/**
 * The bit-packed inference engine: runs a `.onebit` model (format.ts) in WebAssembly.
 *
 * Kernels (src/kernels/engine/engine.c for dense layers, conv.c for convolutions, pooling and reshaping,
 * built into wasm/onebit-engine.wasm, a module of its own so the engine ships without the training kernels):
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
 * Memory: one shared WebAssembly.Memory sized once for the model and `maxBatch` (weights, per-channel
 * parameters, one activation buffer per layer, the convolutions' per-thread scratch rows), by running the
 * plan once over a counting allocator; nothing is allocated per call except the returned arrays.
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
import { OnebitFormatError } from '../errors.js';
import {
  decodeOnebit,
  encodeOnebit,
  packedWords,
  type ConvLayer,
  type DenseOutput,
  type OnebitLayer,
  type OnebitModel,
} from './format.js';

export type { WasmBytes, WasmModule } from '../wasm/api.js';

export const ENGINE_KERNELS = [
  'oe_dense_bits',
  'oe_dense_f32',
  'oe_dense_u8',
  'oe_dense_lut',
  'oe_nibbles',
  'oe_conv_bits',
  'oe_conv_f32',
  'oe_conv_u8',
  'oe_maxpool_bits',
  'oe_pool_f32',
  'oe_threshold_f32',
  'oe_affine_f32',
  'oe_flatten',
  'oe_add_f32',
] as const;
export type EngineKernel = (typeof ENGINE_KERNELS)[number];

/** Which popcount the XNOR kernel uses; see DEFAULT_POPCOUNT for the measurement behind the default. */
export type PopcountVariant = 'simd' | 'scalar';

/**
 * Default XNOR variant, by measurement: a 2048 x 2048 binary layer at batch 100 on one thread (Node 20, the
 * dev machine's AMD EPYC, best of 3; `npm run bench -- engine` reports the variants) took about 34 us per image with SIMD (i8x16.popcnt in a 2 x 4 register block, byte accumulators) against 60 us with
 * scalar i64.popcnt (same blocking). V8 lowers i8x16.popcnt to a few byte shuffles, which still does 128
 * bits per step; the scalar loop does 64, so the SIMD variant wins. (Convolutions always use SIMD.)
 */
export const DEFAULT_POPCOUNT: PopcountVariant = 'simd';

/**
 * The first layer's kernel on raw images: 'lut', 'masked' (dense layers on one-channel images), 'direct'
 * (a convolution on one-channel images: exact integer sums), 'float' (normalised to float32 first).
 */
export type FirstLayerKernel = 'lut' | 'masked' | 'direct' | 'float';

/** Largest first-layer input for the table kernel (its per-thread tables take 32 * k bytes). */
const LUT_MAX_FEATURES = 1 << 16;

/** Output pixels per gathered block of the convolution kernels (CONV_BLOCK in src/kernels/engine/conv.c). */
const CONV_BLOCK = 32;

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
   * afterwards). A dense first layer: 'lut' (default) looks the sums up in per-image tables of 4-pixel partial
   * sums, 16 channels per SIMD lookup; 'masked' adds the pixels under byte masks of the weights, 16 pixels per
   * SIMD add (same results, slower). A convolution takes 'direct' for either. 'float' normalises to float32
   * first and runs the real-activation kernel (as for images of several channels).
   */
  readonly firstLayer?: 'lut' | 'masked' | 'float';
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

/**
 * A value flowing between layers in wasm memory: per example, a flat row or a map of H * W pixel rows.
 * `stride` is the elements (words for bits, floats for reals) per row (flat) or per pixel (map).
 */
interface Value {
  readonly kind: 'bits' | 'real';
  /** [features] or [C, H, W]. */
  readonly shape: readonly number[];
  readonly offset: number;
  readonly stride: number;
}

function rowsPerExample(v: Pick<Value, 'shape'>): number {
  return v.shape.length === 3 ? v.shape[1] * v.shape[2] : 1;
}

function bytesPerExample(v: Pick<Value, 'shape' | 'stride'>): number {
  return rowsPerExample(v) * v.stride * 4;
}

/** The output layout of a dense or conv layer's rows of `n` channels (as the kernels write them). */
function outputStride(kind: 'bits' | 'real', n: number): number {
  return kind === 'bits' ? packedWords(n) : packedWords(n) * 32;
}

/** A planned step: runs a kernel on `rows` examples; `trace` reads its output (for Engine.trace). */
interface Step {
  run(rows: number): void;
  readonly trace?: { readonly name: string; readonly value: Value };
}

/** Memory of the plan: `alloc` reserves zeroed bytes, `put` copies data in; both return byte offsets. */
interface Placement {
  alloc(bytes: number): number;
  put(data: Uint32Array | Int32Array | Float32Array | Int8Array): number;
}

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
  const module = await loadModule(ENGINE_MODULE, options.module);

  const [channels, height, width] = model.input.shape;
  const inputSize = channels * height * width;
  const head = headOf(model, options.firstLayer ?? 'lut');

  // Sizing pass: the same plan over a counting allocator, so memory is sized once before anything is placed.
  let counted = 0;
  const counting: Placement = {
    alloc: (bytes) => ((counted += alignUp(Math.max(bytes, 64), 64)), 0),
    put: (data) => ((counted += alignUp(Math.max(data.byteLength, 64), 64)), 0),
  };
  planLayers(model, head, counting, maxBatch, threads, null);
  const heapBase = heapBaseOf(module, LABEL);
  const total =
    alignUp(heapBase, 64) +
    alignUp(CONTROL_BYTES, 64) +
    (threads - 1) * alignUp(WORKER_STACK_BYTES, 64) +
    counted +
    64 * 64;
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
  const placing: Placement = {
    alloc(bytes) {
      const offset = heap.alloc(bytes);
      new Uint8Array(buf, offset, bytes).fill(0);
      return offset;
    },
    put(data) {
      const offset = heap.alloc(data.byteLength);
      new Uint8Array(buf, offset, data.byteLength).set(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
      return offset;
    },
  };
  let disposed = false;
  function run(name: EngineKernel, rows: number, n: number, work: number, args: number[]): void {
    const useful = rows >= 4 * pool.threads || n <= 32 ? Math.ceil(rows / 2) : Math.ceil(n / 32);
    if (pool.threads > 1 && useful > 1 && work >= PARALLEL_MIN_WORK) pool.run(name, args);
    else kernels[name](0, 1, ...args);
  }
  const runner: Runner = {
    run,
    nibbles: (k, n, weights, out) => kernels.oe_nibbles(0, 1, k, n, weights, out),
    variant: popcount === 'simd' ? 1 : 0,
    fromBytes: true,
  };
  const plan = planLayers(model, head, placing, maxBatch, threads, runner);
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
    threads: pool.threads,
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
    memoryBytes: () => memory.buffer.byteLength,
    dispose() {
      if (disposed) return;
      disposed = true;
      pool.dispose();
    },
  };
  return engine;
}

/** How the network input enters: raw bytes for an integer first layer, else normalised floats. */
interface Head {
  readonly kernel: FirstLayerKernel;
  /** Whether the first layer reads the raw bytes. */
  readonly bytes: boolean;
  /** Index in model.layers of the first layer (dense or conv) when it reads the raw input, else -1. */
  readonly first: number;
}

function headOf(model: OnebitModel, requested: 'lut' | 'masked' | 'float'): Head {
  const [channels] = model.input.shape;
  const first = model.layers.findIndex((l) => l.kind !== 'flatten');
  const layer = model.layers[first];
  if (layer.kind === 'dense') {
    const kernel: FirstLayerKernel =
      channels !== 1
        ? 'float'
        : requested === 'lut' && layer.inFeatures > LUT_MAX_FEATURES
          ? 'masked'
          : requested;
    return { kernel, bytes: kernel !== 'float', first };
  }
  if (layer.kind === 'conv2d' && first === 0) {
    const kernel: FirstLayerKernel = channels !== 1 || requested === 'float' ? 'float' : 'direct';
    return { kernel, bytes: kernel !== 'float', first };
  }
  return { kernel: 'float', bytes: false, first: -1 };
}

/** What running the plan needs (absent in the sizing pass). */
interface Runner {
  run(name: EngineKernel, rows: number, n: number, work: number, args: number[]): void;
  nibbles(k: number, n: number, weights: number, out: number): void;
  variant: number;
  /** Whether this pass's input is raw bytes (logits, trace) or normalised floats (logitsNormalized). */
  fromBytes: boolean;
}

interface InputBuffers {
  readonly bytes: number;
  readonly byteStride: number;
  readonly floats: number;
  readonly floatStride: number;
  /** How the float input is laid out per example: 'chw' (a flat first layer) or 'hwc' (pixel rows). */
  readonly floatLayout: 'chw' | 'hwc';
}

/**
 * Places every layer's tensors and output buffers and returns the steps that run them. With `runner` null it
 * only counts memory (the sizing pass); the offsets it returns are then meaningless.
 */
function planLayers(
  model: OnebitModel,
  head: Head,
  mem: Placement,
  maxBatch: number,
  threads: number,
  runner: Runner | null,
): { steps: Step[]; input: InputBuffers; logits: Value } {
  const [channels, height, width] = model.input.shape;
  const plane = height * width;
  const steps: Step[] = [];
  const call = (name: EngineKernel, rows: number, n: number, work: number, args: number[]): void =>
    (runner as Runner).run(name, rows, n, work, args);

  /** A first layer's step: its byte kernel on raw images, its float kernel on normalised inputs. */
  const firstRun =
    (byteRun: ((rows: number) => void) | null, floatRun: (rows: number) => void) =>
    (rows: number): void =>
      byteRun !== null && (runner as Runner).fromBytes ? byteRun(rows) : floatRun(rows);

  // The input buffers, laid out for the first layer.
  const firstLayer = head.first >= 0 ? model.layers[head.first] : null;
  let input: InputBuffers;
  let start: Value;
  if (firstLayer?.kind === 'dense') {
    const stride = packedWords(firstLayer.inFeatures) * 32;
    input = {
      bytes: mem.alloc(head.bytes ? maxBatch * stride : 0),
      byteStride: stride,
      floats: mem.alloc(maxBatch * stride * 4),
      floatStride: stride,
      floatLayout: 'chw',
    };
    start = { kind: 'real', shape: [firstLayer.inFeatures], offset: input.floats, stride };
  } else {
    const bytes = head.bytes ? mem.alloc(maxBatch * channels * plane) : 0;
    const floats = mem.alloc(maxBatch * channels * plane * 4);
    input = {
      bytes,
      byteStride: channels * plane,
      floats,
      floatStride: channels * plane,
      floatLayout: 'hwc',
    };
    start = { kind: 'real', shape: [channels, height, width], offset: floats, stride: channels };
  }

  // Scratch rows of the convolutions, shared: the largest any conv needs.
  let scratchBytes = 0;
  const convScratch = (l: OnebitLayer): void => {
    if (l.kind === 'conv2d') {
      const taps = l.kernel * l.kernel * l.inChannels;
      const perRow = l.input === 'bits' ? packedWords(taps) * 4 : packedWords(taps) * 32 * 4;
      scratchBytes = Math.max(scratchBytes, threads * CONV_BLOCK * perRow);
    } else if (l.kind === 'residual') {
      l.body.forEach(convScratch);
      l.shortcut?.forEach(convScratch);
    }
  };
  model.layers.forEach(convScratch);
  const scratch = mem.alloc(scratchBytes);

  const outputStage = (
    out: DenseOutput,
  ): { mode: number; p0: number; p1: number; act: number; kind: 'bits' | 'real' } => ({
    mode: out.kind === 'bits' ? OUT_BITS : OUT_REAL,
    p0: mem.put(out.kind === 'bits' ? out.thresholds : out.scale),
    p1: mem.put(out.kind === 'bits' ? out.directions : out.bias),
    act: out.kind === 'real' ? ACTIVATIONS[out.activation] : 0,
    kind: out.kind,
  });

  const newValue = (kind: 'bits' | 'real', shape: readonly number[], stride: number): Value => {
    const v = { kind, shape, stride, offset: 0 };
    return { ...v, offset: mem.alloc(maxBatch * bytesPerExample(v)) };
  };

  /** Plans `layers` from value `x`; returns the value they produce. `path` prefixes trace names. */
  const planList = (layers: readonly OnebitLayer[], x0: Value, path: string, top: boolean): Value => {
    let x = x0;
    layers.forEach((layer, index) => {
      const isFirst = top && index === head.first;
      x = planLayer(layer, x, path, isFirst);
    });
    return x;
  };

  const planLayer = (layer: OnebitLayer, x: Value, path: string, isFirst: boolean): Value => {
    switch (layer.kind) {
      case 'flatten': {
        if (x.shape.length === 1) return x;
        const [c, h, w] = x.shape;
        const flat = c * h * w;
        if (x === start && firstLayer?.kind === 'dense') {
          return { ...x, shape: [flat] }; // the input, already flat for the dense head
        }
        const chw = (layer.layout ?? 'chw') === 'chw' ? 1 : 0;
        const out = newValue(x.kind, [flat], outputStride(x.kind, flat));
        const bits = x.kind === 'bits' ? 1 : 0;
        steps.push({
          run: (rows) =>
            call('oe_flatten', rows, 1, rows * flat, [
              rows,
              h * w,
              c,
              x.stride,
              x.offset,
              out.offset,
              bits,
              chw,
            ]),
        });
        return out;
      }
      case 'dense': {
        const k = layer.inFeatures;
        const n = layer.outFeatures;
        const weights = mem.put(layer.weights);
        const o = outputStage(layer.output);
        const out = newValue(o.kind, [n], outputStride(o.kind, n));
        const name = path + layer.name;
        // The first layer on raw bytes (normalised inputs take the float kernel below).
        let byteRun: ((rows: number) => void) | null = null;
        if (isFirst && head.bytes) {
          const wsum = mem.put(weightSums(layer.weights, n, k));
          const { scale: scaleA, shift: shiftC } = byteNormalization(model);
          if (head.kernel === 'lut') {
            const groups = packedWords(k) * 8;
            const nibbles = mem.alloc(Math.ceil(n / 16) * groups * 16);
            const tables = mem.alloc(threads * 4 * groups * 32);
            runner?.nibbles(k, n, weights, nibbles);
            byteRun = (rows) =>
              call('oe_dense_lut', rows, n, rows * n * k, [
                rows,
                k,
                n,
                input.bytes,
                nibbles,
                wsum,
                scaleA,
                shiftC,
                o.mode,
                o.p0,
                o.p1,
                o.act,
                out.offset,
                tables,
              ]);
          } else {
            byteRun = (rows) =>
              call('oe_dense_u8', rows, n, rows * n * k, [
                rows,
                k,
                n,
                input.bytes,
                weights,
                wsum,
                scaleA,
                shiftC,
                o.mode,
                o.p0,
                o.p1,
                o.act,
                out.offset,
              ]);
          }
        }
        const bits = layer.input === 'bits';
        const floatRun = (rows: number): void =>
          bits
            ? call('oe_dense_bits', rows, n, (rows * n * k) / 8, [
                rows,
                k,
                n,
                x.offset,
                weights,
                o.mode,
                o.p0,
                o.p1,
                o.act,
                out.offset,
                (runner as Runner).variant,
              ])
            : call('oe_dense_f32', rows, n, rows * n * k, [
                rows,
                k,
                n,
                x.offset,
                weights,
                o.mode,
                o.p0,
                o.p1,
                o.act,
                out.offset,
              ]);
        steps.push({ run: firstRun(byteRun, floatRun), trace: { name, value: out } });
        return out;
      }
      case 'conv2d': {
        const [c, h, w] = x.shape;
        const { kernel: k, stride, padding, outChannels: n } = layer;
        const oh = Math.floor((h + 2 * padding - k) / stride) + 1;
        const ow = Math.floor((w + 2 * padding - k) / stride) + 1;
        const taps = k * k * c;
        const weights = mem.put(layer.weights);
        const o = outputStage(layer.output);
        const out = newValue(o.kind, [n, oh, ow], outputStride(o.kind, n));
        const border = borderCorrection(layer, h, w);
        const cidx = mem.put(border.index);
        const corr = mem.put(border.sums);
        const pixels = oh * ow;
        const geometry = [h, w];
        const name = path + layer.name;
        // The first layer on raw bytes (normalised inputs take the float kernel below).
        let byteRun: ((rows: number) => void) | null = null;
        if (isFirst && head.bytes) {
          const wsum = mem.put(weightSums(layer.weights, n, taps));
          const { scale: a, shift } = byteNormalization(model);
          byteRun = (rows) =>
            call('oe_conv_u8', rows * pixels, n, rows * pixels * n * taps, [
              rows,
              ...geometry,
              k,
              stride,
              padding,
              oh,
              ow,
              n,
              input.bytes,
              weights,
              wsum,
              cidx,
              corr,
              a,
              shift,
              o.mode,
              o.p0,
              o.p1,
              o.act,
              out.offset,
              scratch,
            ]);
        }
        const bits = layer.input === 'bits';
        const floatRun = (rows: number): void =>
          bits
            ? call('oe_conv_bits', rows * pixels, n, (rows * pixels * n * taps) / 8, [
                rows,
                ...geometry,
                c,
                x.stride,
                k,
                stride,
                padding,
                oh,
                ow,
                n,
                x.offset,
                weights,
                cidx,
                corr,
                o.mode,
                o.p0,
                o.p1,
                o.act,
                out.offset,
                scratch,
              ])
            : call('oe_conv_f32', rows * pixels, n, rows * pixels * n * taps, [
                rows,
                ...geometry,
                c,
                x.stride,
                k,
                stride,
                padding,
                oh,
                ow,
                n,
                x.offset,
                weights,
                o.mode,
                o.p0,
                o.p1,
                o.act,
                out.offset,
                scratch,
              ]);
        steps.push({ run: firstRun(byteRun, floatRun), trace: { name, value: out } });
        return out;
      }
      case 'maxpool':
      case 'avgpool': {
        const [c, h, w] = x.shape;
        const { kernel: k, stride, padding } = layer;
        const oh = Math.floor((h + 2 * padding - k) / stride) + 1;
        const ow = Math.floor((w + 2 * padding - k) / stride) + 1;
        const out = newValue(x.kind, [c, oh, ow], x.stride);
        const args = [h, w];
        const name = path + layer.name;
        if (x.kind === 'bits') {
          steps.push({
            run: (rows) =>
              call('oe_maxpool_bits', rows * oh * ow, 1, rows * oh * ow * k * k * x.stride, [
                rows,
                ...args,
                x.stride,
                k,
                stride,
                padding,
                oh,
                ow,
                x.offset,
                out.offset,
              ]),
            trace: { name, value: out },
          });
        } else {
          const avg = layer.kind === 'avgpool' ? 1 : 0;
          steps.push({
            run: (rows) =>
              call('oe_pool_f32', rows * oh * ow, 1, rows * oh * ow * k * k * c, [
                rows,
                ...args,
                c,
                x.stride,
                k,
                stride,
                padding,
                oh,
                ow,
                x.offset,
                out.offset,
                avg,
              ]),
            trace: { name, value: out },
          });
        }
        return out;
      }
      case 'threshold': {
        const c = layer.channels;
        const t = mem.put(layer.thresholds);
        const d = mem.put(layer.directions);
        const out = newValue('bits', x.shape, packedWords(c));
        const per = rowsPerExample(x);
        steps.push({
          run: (rows) =>
            call('oe_threshold_f32', rows * per, 1, rows * per * c, [
              rows * per,
              c,
              x.stride,
              x.offset,
              t,
              d,
              out.offset,
            ]),
          trace: { name: path + layer.name, value: out },
        });
        return out;
      }
      case 'affine': {
        const c = layer.channels;
        const scale = mem.put(layer.scale);
        const bias = mem.put(layer.bias);
        const out = newValue('real', x.shape, x.stride);
        const per = rowsPerExample(x);
        const act = ACTIVATIONS[layer.activation];
        steps.push({
          run: (rows) =>
            call('oe_affine_f32', rows * per, 1, rows * per * c, [
              rows * per,
              c,
              x.stride,
              x.offset,
              scale,
              bias,
              act,
              out.offset,
            ]),
          trace: { name: path + layer.name, value: out },
        });
        return out;
      }
      case 'residual': {
        const prefix = `${path}${layer.name}/`;
        const body = planList(layer.body, x, `${prefix}body/`, false);
        const shortcut =
          layer.shortcut === null ? x : planList(layer.shortcut, x, `${prefix}shortcut/`, false);
        if (body.stride !== shortcut.stride) {
          throw new OnebitFormatError(
            'unsupported',
            layer.name,
            'the engine adds residual branches of one layout: end the shortcut with a layer, or start the block after one',
          );
        }
        const out = newValue('real', body.shape, body.stride);
        const count = rowsPerExample(body) * body.stride;
        steps.push({
          run: (rows) =>
            call('oe_add_f32', rows * count, 1, rows * count, [
              rows * count,
              body.offset,
              shortcut.offset,
              out.offset,
            ]),
          trace: { name: path + layer.name, value: out },
        });
        return out;
      }
    }
  };

  const logits = planList(model.layers, start, '', true);
  return { steps, input, logits };
}

/**
 * The border correction of a convolution on an h x w map (docs/architecture.md "Padding"): output pixels
 * whose window reaches into the padding get a class (`index`, -1 inside the image), and `sums[class * n + j]`
 * is the sum of channel j's weights over that class's padded taps: the bits kernel counts a padded tap as +1,
 * so subtracting this sum gives the zero-padded convolution exactly (and the byte kernel's in-image weight sum).
 */
export function borderCorrection(
  layer: Pick<ConvLayer, 'kernel' | 'stride' | 'padding' | 'inChannels' | 'outChannels' | 'weights'>,
  h: number,
  w: number,
): { index: Int32Array; sums: Int32Array } {
  const { kernel: k, stride, padding, inChannels: c, outChannels: n, weights } = layer;
  const oh = Math.floor((h + 2 * padding - k) / stride) + 1;
  const ow = Math.floor((w + 2 * padding - k) / stride) + 1;
  const words = packedWords(k * k * c);
  const index = new Int32Array(oh * ow).fill(-1);
  const classes = new Map<string, number>();
  const padded: number[][] = [];
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      const taps: number[] = [];
      for (let i = 0; i < k; i++) {
        const y = oy * stride - padding + i;
        for (let j = 0; j < k; j++) {
          const x = ox * stride - padding + j;
          if (y < 0 || y >= h || x < 0 || x >= w) taps.push(i * k + j);
        }
      }
      if (taps.length === 0) continue;
      const key = taps.join(',');
      let id = classes.get(key);
      if (id === undefined) {
        id = padded.length;
        classes.set(key, id);
        padded.push(taps);
      }
      index[oy * ow + ox] = id;
    }
  }
  const sums = new Int32Array(Math.max(1, padded.length) * n);
  padded.forEach((taps, id) => {
    for (let o = 0; o < n; o++) {
      let s = 0;
      for (const t of taps) {
        for (let ch = 0; ch < c; ch++) {
          const col = t * c + ch;
          s += (weights[o * words + (col >>> 5)] >>> (col & 31)) & 1 ? -1 : 1;
        }
      }
      sums[id * n + o] = s;
    }
  });
  return { index, sums };
}

/** Each row's sum of its k +-1 weights (k - 2 * the set bits): the first layer's weight sums. */
function weightSums(weights: Uint32Array, n: number, k: number): Int32Array {
  const sums = new Int32Array(n);
  const words = packedWords(k);
  for (let j = 0; j < n; j++) {
    let set = 0;
    for (let w = 0; w < words; w++) set += popcount32(weights[j * words + w]);
    sums[j] = k - 2 * set;
  }
  return sums;
}

/** The normalisation of one-channel raw bytes as x = scale * v + shift. */
function byteNormalization(model: OnebitModel): { scale: number; shift: number } {
  return { scale: 1 / (255 * model.input.std[0]), shift: -model.input.mean[0] / model.input.std[0] };
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
