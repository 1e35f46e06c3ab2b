/**
 * The engine's plan: how a `.onebit` model's layers are placed in wasm memory and which kernel runs each
 * (src/engine/engine.ts runs it). `planLayers` walks the layers once with the values they pass (a flat row or
 * a pixel-major map per example, bits or reals), places every tensor and output buffer through a `Placement`
 * (a counting one first, to size the memory) and returns one step per layer. Also the conv border
 * correction (docs/architecture.md, "Engine layout and padding").
 */
import { OnebitFormatError } from '../errors.js';
import {
  packedWords,
  type ConvLayer,
  type DenseOutput,
  type OnebitLayer,
  type OnebitModel,
} from './format.js';

export const ENGINE_KERNELS = [
  'oe_dense_bits',
  'oe_dense_f32',
  'oe_dense_f32_lut',
  'oe_dense_u8',
  'oe_dense_lut',
  'oe_nibbles',
  'oe_dense_g5',
  'oe_groups5',
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

/**
 * The first layer's kernel on raw images: 'lut', 'masked' (dense layers on one-channel images), 'direct'
 * (a convolution on one-channel images: exact integer sums), 'float' (normalised to float32 first).
 */
export type FirstLayerKernel = 'lut' | 'masked' | 'direct' | 'float';

/**
 * The kernel of dense layers on real activations (1W32A): 'lut' (default) builds per row the 16 signed sums of
 * each group of 4 inputs and looks them up for 16 channels at once (byte planes and i8x16.swizzle); 'signs'
 * adds each input with its sign flipped by its weight bit. Equal up to float rounding (the order of the sums
 * differs). On mlp-2x2048 with real activations, one thread, in Node: 'lut' about 5,900 images/s at batch 1
 * and 5,350 at batch 100, 'signs' 1,340 and 3,650 (npm run bench -- engine prints both).
 */
export type RealDenseKernel = 'lut' | 'signs';

/** Largest first-layer input for the table kernel (its per-thread tables take 32 * k bytes). */
const LUT_MAX_FEATURES = 1 << 16;

/** Output pixels per gathered block of the convolution kernels (CONV_BLOCK in src/kernels/engine/conv.c). */
const CONV_BLOCK = 32;

const OUT_BITS = 0;
const OUT_REAL = 1;
const ACTIVATIONS = { none: 0, relu: 1, hardtanh: 2 } as const;

/**
 * A value flowing between layers in wasm memory: per example, a flat row or a map of H * W pixel rows.
 * `stride` is the elements (words for bits, floats for reals) per row (flat) or per pixel (map).
 */
export interface Value {
  readonly kind: 'bits' | 'real';
  /** [features] or [C, H, W]. */
  readonly shape: readonly number[];
  readonly offset: number;
  readonly stride: number;
}

export function rowsPerExample(v: Pick<Value, 'shape'>): number {
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
export interface Step {
  run(rows: number): void;
  readonly trace?: { readonly name: string; readonly value: Value };
}

/** Memory of the plan: `alloc` reserves zeroed bytes, `put` copies data in; both return byte offsets. */
export interface Placement {
  alloc(bytes: number): number;
  put(data: Uint32Array | Int32Array | Float32Array | Int8Array): number;
}

/** How the network input enters: raw bytes for an integer first layer, else normalised floats. */
export interface Head {
  readonly kernel: FirstLayerKernel;
  /** Whether the first layer reads the raw bytes. */
  readonly bytes: boolean;
  /** Index in model.layers of the first layer (dense or conv) when it reads the raw input, else -1. */
  readonly first: number;
}

export function headOf(model: OnebitModel, requested: 'lut' | 'masked' | 'float'): Head {
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
export interface Runner {
  run(name: EngineKernel, rows: number, n: number, work: number, args: number[]): void;
  /** Lays packed weights (k inputs, n channels) out for a kernel: oe_nibbles' or oe_groups5's layout. */
  relayout(kernel: 'oe_nibbles' | 'oe_groups5', k: number, n: number, weights: number, out: number): void;
  variant: number;
  /** Whether this pass's input is raw bytes (logits, trace) or normalised floats (logitsNormalized). */
  fromBytes: boolean;
}

export interface InputBuffers {
  readonly bytes: number;
  readonly byteStride: number;
  readonly floats: number;
  readonly floatStride: number;
  /** How the float input is laid out per example: 'chw' (a flat first layer) or 'hwc' (pixel rows). */
  readonly floatLayout: 'chw' | 'hwc';
}

/**
 * Places every layer's tensors and output buffers and returns the steps that run them. With `runner` null it
 * only counts memory (the sizing pass); the offsets it returns are then meaningless. `pixelGroups5`: a 'lut'
 * first layer runs oe_dense_g5 (5-pixel groups; where the kernels have AVX-512) instead of oe_dense_lut.
 */
export function planLayers(
  model: OnebitModel,
  head: Head,
  mem: Placement,
  maxBatch: number,
  threads: number,
  runner: Runner | null,
  realDense: RealDenseKernel = 'lut',
  pixelGroups5 = false,
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

  /**
   * An output stage placed in memory: `args` are the kernels' (mode, p0, p1, act) arguments, in that order
   * (thresholds and directions for bits, scale and bias for reals).
   */
  const outputStage = (out: DenseOutput): { args: number[]; kind: 'bits' | 'real' } => ({
    args: [
      out.kind === 'bits' ? OUT_BITS : OUT_REAL,
      mem.put(out.kind === 'bits' ? out.thresholds : out.scale),
      mem.put(out.kind === 'bits' ? out.directions : out.bias),
      out.kind === 'real' ? ACTIVATIONS[out.activation] : 0,
    ],
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
            // Per-image tables of pixel groups, looked up by the weights' bits per group: groups of 5 pixels,
            // 32 channels per lookup, 8 images' tables per thread (oe_dense_g5, the native AVX-512 kernel), or
            // groups of 4, 16 channels per lookup, 4 images' tables per thread (oe_dense_lut).
            const [kernel, relayout, layoutBytes, tableBytes] = pixelGroups5
              ? ([
                  'oe_dense_g5',
                  'oe_groups5',
                  Math.ceil(n / 32) * Math.ceil(k / 5) * 64,
                  8 * Math.ceil(k / 5) * 64,
                ] as const)
              : ([
                  'oe_dense_lut',
                  'oe_nibbles',
                  Math.ceil(n / 16) * packedWords(k) * 128,
                  4 * packedWords(k) * 256,
                ] as const);
            const layout = mem.alloc(layoutBytes);
            const tables = mem.alloc(threads * tableBytes);
            runner?.relayout(relayout, k, n, weights, layout);
            const args = [k, n, input.bytes, layout, wsum, scaleA, shiftC, ...o.args, out.offset, tables];
            byteRun = (rows) => call(kernel, rows, n, rows * n * k, [rows, ...args]);
          } else {
            const args = [k, n, input.bytes, weights, wsum, scaleA, shiftC, ...o.args, out.offset];
            byteRun = (rows) => call('oe_dense_u8', rows, n, rows * n * k, [rows, ...args]);
          }
        }
        const bits = layer.input === 'bits';
        // The 'lut' kernel's per-thread tables (16 float32 sums per group of 4 inputs, for 2 rows) and the
        // weights' nibbles (16 channels per lookup, oe_nibbles' layout).
        const lut = !bits && realDense === 'lut';
        const tables = lut ? mem.alloc(threads * 128 * Math.ceil(k / 4)) : 0;
        const realNibbles = lut ? mem.alloc(Math.ceil(n / 16) * packedWords(k) * 8 * 16) : 0;
        if (lut) runner?.relayout('oe_nibbles', k, n, weights, realNibbles);
        const floatRun = (rows: number): void =>
          bits
            ? call('oe_dense_bits', rows, n, (rows * n * k) / 8, [
                rows,
                k,
                n,
                x.offset,
                weights,
                ...o.args,
                out.offset,
                (runner as Runner).variant,
              ])
            : realDense === 'lut'
              ? call('oe_dense_f32_lut', rows, n, rows * n * k, [
                  rows,
                  k,
                  n,
                  x.offset,
                  weights,
                  realNibbles,
                  ...o.args,
                  out.offset,
                  tables,
                ])
              : call('oe_dense_f32', rows, n, rows * n * k, [
                  rows,
                  k,
                  n,
                  x.offset,
                  weights,
                  ...o.args,
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
        // Without padding no window reaches the border: the kernels get no table (NULL) and look nothing up.
        const padded = border.index.some((c) => c >= 0);
        const cidx = padded ? mem.put(border.index) : 0;
        const corr = padded ? mem.put(border.sums) : 0;
        const pixels = oh * ow;
        const geometry = [h, w];
        const window = [k, stride, padding, oh, ow, n];
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
              ...window,
              input.bytes,
              weights,
              wsum,
              cidx,
              corr,
              a,
              shift,
              ...o.args,
              out.offset,
              scratch,
            ]);
        }
        const bits = layer.input === 'bits';
        const floatRun = (rows: number): void => {
          // The bits and float kernels read the same source and window; the bits kernel adds the border table.
          const source = [rows, ...geometry, c, x.stride, ...window, x.offset, weights];
          const tail = [...o.args, out.offset, scratch];
          if (bits)
            call('oe_conv_bits', rows * pixels, n, (rows * pixels * n * taps) / 8, [
              ...source,
              cidx,
              corr,
              ...tail,
            ]);
          else call('oe_conv_f32', rows * pixels, n, rows * pixels * n * taps, [...source, ...tail]);
        };
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
