/**
 * The `.onebit` export format: everything the inference engine needs and nothing more.
 *
 * Layout (all integers little-endian):
 *
 *   bytes 0..7     magic "ONEBITNN"
 *   bytes 8..11    format version (uint32), currently 2
 *   bytes 12..15   header length H in bytes (uint32)
 *   bytes 16..19   CRC32C of the H header bytes (uint32)
 *   bytes 20..20+H UTF-8 JSON header (space-padded), see `Header` below
 *   then, from the first multiple of 16 at or after 20+H, the data section: each tensor at its `offset`
 *   (a multiple of 16) from the start of the data section, `byteLength` bytes, tensors never overlapping;
 *   the file ends where the last tensor ends.
 *
 * Version 1 is the same without the checksums: no bytes 16..19 (the JSON starts at byte 16, the data section
 * at the first multiple of 16 at or after 16+H) and no `crc32c` in the tensor entries. Version-1 files still
 * decode; the encoder writes version 2.
 *
 * The JSON header:
 *
 *   {
 *     "bits":    { "word": 32, "rowAlign": 128, "order": "lsb-first", "set": -1 },
 *     "input":   { "shape": [C, H, W], "mean": [C numbers], "std": [C numbers] },
 *     "classes": 10,
 *     "layers":  [ { "kind": "flatten" },
 *                  { "kind": "dense", "name": "fc1", "input": "real" | "bits",
 *                    "inFeatures": K, "outFeatures": N, "weights": "<tensor>",
 *                    "output": { "kind": "bits", "thresholds": "<tensor>", "directions": "<tensor>" }
 *                            | { "kind": "real", "scale": "<tensor>", "bias": "<tensor>",
 *                                "activation": "none" | "relu" | "hardtanh" } }, ... ],
 *     "tensors": [ { "name": "...", "dtype": "uint32" | "int32" | "float32" | "int8",
 *                    "shape": [...], "offset": o, "byteLength": b, "crc32c": c }, ... ],
 *     "metadata": { free-form strings, numbers and booleans: model, method, activations, ... },
 *     "temperature": T    (optional, > 0: the probabilities are softmax(logits / T); absent: 1)
 *   }
 *
 * Bit convention ("bits"): a row of K signs takes words(K) = ceil(K / 128) * 4 uint32 words (rows padded
 * to 128 bits for SIMD); bit j of word w is column 32w + j; a set bit is -1, a clear bit +1 (sign(0) = +1);
 * padding bits are 0 (the reader checks). With both operands packed this way a +-1 dot product over K
 * columns is K - 2 * popcount(a XOR b).
 *
 * A dense layer computes z = x W^T with W the N x K sign matrix `weights` ([N, words(K)] uint32). Its
 * input is "real" (float32 values: the normalised image for the first layer, or the previous layer's
 * real output) or "bits" (the previous layer's packed signs). Its output is
 *  - "bits": the sign of the training model's activation after the layer (batch norm, scale, hardtanh),
 *    folded into one per-channel threshold: with direction +1 the output is -1 (bit set) iff z < t, with
 *    direction -1 iff z > t. Thresholds are int32 for "bits" input (z is an integer) and float32 for "real"
 *    input (may be +-Infinity for channels whose sign is constant);
 *  - "real": y = activation(z * scale + bias), float32 scale and bias per channel (batch norm folded).
 * The last layer's output is "real" with N = classes: the logits.
 *
 * The input normalisation (per-channel mean and std of pixel values scaled to [0, 1]) travels with the
 * model, so raw 8-bit images can be classified: x = (v / 255 - mean[c]) / std[c].
 *
 * `decodeOnebit` validates every size, count and offset against the file before it allocates anything,
 * and rejects a wrong, truncated or hostile file with an OnebitFormatError saying what and where. It checks
 * the header's CRC32C before parsing the JSON and every tensor's (`crc32c`, of its `byteLength` bytes)
 * before copying any data out, so a damaged file is refused as 'bad-checksum' naming the header or the
 * tensor rather than run with wrong weights; the structural checks stay, for files whose checksums match
 * what a faulty writer put there. This file imports only errors.ts and the engine's own CRC32C
 * (crc32c.ts), so the engine can ship without the training code and without any package.
 */
import { type OnebitErrorCode, OnebitFormatError } from '../errors.js';
import { crc32c } from './crc32c.js';

export const ONEBIT_MAGIC = 'ONEBITNN';
export const ONEBIT_VERSION = 3;
/** Magic, version, header length and the header's CRC32C (version 1 had no CRC: 16 bytes). */
export const PREFIX_BYTES = 20;
/** Alignment of the data section and of every tensor in it. */
export const DATA_ALIGN = 16;

/** Caps on what a file may declare (far above any model onebit trains; they bound hostile input). */
export const LIMITS = {
  headerBytes: 1 << 20,
  layers: 1024,
  features: 1 << 20,
  /** Per-example input elements (C * H * W). */
  inputElements: 1 << 24,
  classes: 1 << 16,
  nameLength: 256,
  metadataEntries: 64,
} as const;

/** The bit convention the engine implements; a file declaring another one is rejected. */
export const BIT_CONVENTION = { word: 32, rowAlign: 128, order: 'lsb-first', set: -1 } as const;

/** Number of uint32 words one packed row of `cols` signs occupies (rows padded to 128 bits). */
export function packedWords(cols: number): number {
  return Math.ceil(cols / 128) * 4;
}

export type Activation = 'none' | 'relu' | 'hardtanh';

export type DenseOutput =
  | {
      readonly kind: 'bits';
      /** int32 for "bits" input, float32 for "real" input; one per output channel. */
      readonly thresholds: Int32Array | Float32Array;
      /** +1: bit set iff z < t; -1: bit set iff z > t. */
      readonly directions: Int8Array;
    }
  | {
      readonly kind: 'real';
      readonly scale: Float32Array;
      readonly bias: Float32Array;
      readonly activation: Activation;
    };

export interface DenseLayer {
  readonly kind: 'dense';
  readonly name: string;
  readonly input: 'real' | 'bits';
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** [outFeatures, packedWords(inFeatures)] packed signs. */
  readonly weights: Uint32Array;
  readonly output: DenseOutput;
}

/**
 * Reshapes the values to a flat vector. `layout` says how the features are numbered: 'chw'
 * (c * H * W + h * W + w, the training model's Flatten over NCHW) or 'hwc' ((h * W + w) * C + c, the order the
 * engine keeps feature maps in, so flattening one costs no transpose; the exporter permutes the next dense
 * layer's columns to match). Absent (version 1 and 2 files): 'chw'.
 */
export interface FlattenLayer {
  readonly kind: 'flatten';
  readonly layout?: 'chw' | 'hwc';
}

/**
 * A binary 2-D convolution over a [C, H, W] feature map: z[o, y, x] = sum over in-image taps of
 * w[o, c, i, j] * v[c, y * stride - padding + i, x * stride - padding + j]. Padded taps contribute 0 exactly
 * as zero padding does in training (a padded +-1 map is neither +1 nor -1; docs/architecture.md "Padding").
 * `weights` is [outChannels, packedWords(kernel^2 * inChannels)] with column (i * kernel + j) * inChannels + c.
 * Input and output as for a dense layer, per output pixel and channel.
 */
export interface ConvLayer {
  readonly kind: 'conv2d';
  readonly name: string;
  readonly input: 'real' | 'bits';
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernel: number;
  readonly stride: number;
  readonly padding: number;
  readonly weights: Uint32Array;
  readonly output: DenseOutput;
}

/** A pooling window over a [C, H, W] map: square side, stride, padding (2 * padding <= kernel). */
export interface PoolWindow {
  readonly kernel: number;
  readonly stride: number;
  readonly padding: number;
}

/**
 * Max pooling (padded positions never win). On real values the maximum; on bits (signs) the maximum of +-1
 * values, -1 only where every value in the window is -1: an AND of the set bits.
 */
export interface MaxPoolLayer extends PoolWindow {
  readonly kind: 'maxpool';
  readonly name: string;
}

/** Average pooling of real values; padded positions count as zeros (every window divides by kernel^2). */
export interface AvgPoolLayer extends PoolWindow {
  readonly kind: 'avgpool';
  readonly name: string;
}

/**
 * Real values to signs per channel: -1 (bit set) iff v < t (direction +1) or v > t (direction -1); float32
 * thresholds, possibly +-Infinity. Batch norm and sign after a pooled pre-activation.
 */
export interface ThresholdLayer {
  readonly kind: 'threshold';
  readonly name: string;
  readonly channels: number;
  readonly thresholds: Float32Array;
  readonly directions: Int8Array;
}

/** Real values per channel: y = activation(v * scale + bias). Batch norm after a pooled pre-activation. */
export interface AffineLayer {
  readonly kind: 'affine';
  readonly name: string;
  readonly channels: number;
  readonly scale: Float32Array;
  readonly bias: Float32Array;
  readonly activation: Activation;
}

/**
 * y = body(x) + shortcut(x) (the identity when `shortcut` is null): both branches take the block's real input
 * and give real values of one shape, added in float32.
 */
export interface ResidualLayer {
  readonly kind: 'residual';
  readonly name: string;
  readonly body: readonly OnebitLayer[];
  readonly shortcut: readonly OnebitLayer[] | null;
}

export type OnebitLayer =
  | DenseLayer
  | FlattenLayer
  | ConvLayer
  | MaxPoolLayer
  | AvgPoolLayer
  | ThresholdLayer
  | AffineLayer
  | ResidualLayer;

export interface OnebitInput {
  /** Per-example shape [C, H, W]. */
  readonly shape: readonly [number, number, number];
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

export type MetadataValue = string | number | boolean;

export interface OnebitModel {
  readonly input: OnebitInput;
  readonly classes: number;
  readonly layers: readonly OnebitLayer[];
  readonly metadata: Readonly<Record<string, MetadataValue>>;
  /**
   * Temperature of the model's probabilities, softmax(logits / T), fitted when the model was trained
   * (calibration); absent: 1. The logits, and so the predicted class, do not depend on it.
   */
  readonly temperature?: number;
}

type TensorDType = 'uint32' | 'int32' | 'float32' | 'int8';
type TensorArray = Uint32Array | Int32Array | Float32Array | Int8Array;

const DTYPE_BYTES: Record<TensorDType, number> = { uint32: 4, int32: 4, float32: 4, int8: 1 };

interface TensorEntry {
  readonly name: string;
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly byteLength: number;
  /** CRC32C of the tensor's bytes (version 2; null in a version-1 file). */
  readonly crc32c: number | null;
}

/** Bytes before the JSON header in a file of `version`: magic, version, length, and from version 2 a CRC32C. */
function prefixBytes(version: number): number {
  return version >= 2 ? PREFIX_BYTES : 16;
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

/** What a layer needs of one tensor: its dtype and exact shape. */
interface TensorNeed {
  readonly where: string;
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

function dtypeOf(a: TensorArray): TensorDType {
  if (a instanceof Uint32Array) return 'uint32';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Float32Array) return 'float32';
  return 'int8';
}

function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

function checkLittleEndian(): void {
  if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
    throw new Error('onebit format: big-endian hosts are not supported');
  }
}

/**
 * Serialises a model. The model is validated first (as the reader would), so an encoder bug cannot write
 * a file the reader rejects.
 */
export function encodeOnebit(model: OnebitModel): Uint8Array {
  checkLittleEndian();
  const tensors: { name: string; value: TensorArray; shape: number[] }[] = [];
  const add = (name: string, value: TensorArray, shape: number[]): string => {
    tensors.push({ name, value, shape });
    return name;
  };
  const list = (items: readonly OnebitLayer[], prefix: string): Record<string, unknown>[] =>
    items.map((layer, i) => codecOf(layer.kind).encode(layer, `${prefix}.${i}`, add, list));
  const layers = list(model.layers, 'layers');
  const entries: TensorEntry[] = [];
  let offset = 0;
  let end = 0;
  for (const t of tensors) {
    entries.push({
      name: t.name,
      dtype: dtypeOf(t.value),
      shape: t.shape,
      offset,
      byteLength: t.value.byteLength,
      crc32c: crc32c(new Uint8Array(t.value.buffer, t.value.byteOffset, t.value.byteLength)),
    });
    end = offset + t.value.byteLength;
    offset = alignUp(end, DATA_ALIGN);
  }
  const header = {
    bits: BIT_CONVENTION,
    input: { shape: model.input.shape, mean: model.input.mean, std: model.input.std },
    classes: model.classes,
    layers,
    tensors: entries,
    metadata: model.metadata,
    ...(model.temperature !== undefined ? { temperature: model.temperature } : {}),
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const dataStart = alignUp(PREFIX_BYTES + json.byteLength, DATA_ALIGN);
  const bytes = new Uint8Array(dataStart + end);
  bytes.set(new TextEncoder().encode(ONEBIT_MAGIC), 0);
  const view = new DataView(bytes.buffer);
  view.setUint32(8, versionFor(model), true);
  view.setUint32(12, dataStart - PREFIX_BYTES, true);
  bytes.set(json, PREFIX_BYTES);
  bytes.fill(0x20, PREFIX_BYTES + json.byteLength, dataStart);
  view.setUint32(16, crc32c(bytes.subarray(PREFIX_BYTES, dataStart)), true);
  for (let i = 0; i < tensors.length; i++) {
    const v = tensors[i].value;
    bytes.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), dataStart + entries[i].offset);
  }
  decodeOnebit(bytes, '<encoder output>'); // the encoder must never write what the reader refuses
  return bytes;
}

/**
 * The lowest version that can hold the model: 2 for dense models (readable by every reader since checksums
 * came in), 3 when it has a version-3 layer (convolution, pooling, threshold, affine, residual, a flatten layout).
 */
function versionFor(model: OnebitModel): number {
  const needs3 = (layers: readonly OnebitLayer[]): boolean =>
    layers.some(
      (l) => (l.kind !== 'dense' && l.kind !== 'flatten') || (l.kind === 'flatten' && l.layout !== undefined),
    );
  return needs3(model.layers) ? 3 : 2;
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

/** Reading state: the source name for messages. */
class Reader {
  constructor(readonly source: string) {}

  fail(code: OnebitErrorCode, where: string, detail: string): never {
    throw new OnebitFormatError(code, `${this.source}: ${where}`, detail);
  }

  object(value: unknown, where: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail('bad-header', where, `expected an object, found ${describe(value)}`);
    }
    return value as Record<string, unknown>;
  }

  array(value: unknown, where: string, maxLength: number): unknown[] {
    if (!Array.isArray(value)) this.fail('bad-header', where, `expected an array, found ${describe(value)}`);
    if (value.length > maxLength)
      this.fail('bad-header', where, `${value.length} entries, at most ${maxLength} allowed`);
    return value;
  }

  integer(value: unknown, where: string, min: number, max: number): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      this.fail('bad-header', where, `expected an integer in ${min}..${max}, found ${describe(value)}`);
    }
    return value;
  }

  finite(value: unknown, where: string): number {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      this.fail('bad-header', where, `expected a finite number, found ${describe(value)}`);
    }
    return value;
  }

  string(value: unknown, where: string, maxLength: number = LIMITS.nameLength): string {
    if (typeof value !== 'string')
      this.fail('bad-header', where, `expected a string, found ${describe(value)}`);
    if (value.length > maxLength)
      this.fail('bad-header', where, `string of ${value.length} characters, at most ${maxLength}`);
    return value;
  }

  choice<T extends string>(value: unknown, where: string, choices: readonly T[]): T {
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      this.fail('bad-header', where, `expected one of ${choices.join(', ')}, found ${describe(value)}`);
    }
    return value as T;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? typeof value;
  } catch {
    text = Array.isArray(value) ? '(a deeply nested array)' : `(${typeof value})`;
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** What the layers so far produce: the per-example shape and kind of values, and whether a linear layer ran. */
interface Flow {
  shape: number[];
  values: 'real' | 'bits';
  seenLinear: boolean;
}

/** Declares a tensor a layer needs (name from the header, dtype, exact shape); returns its name. */
type NeedTensor = (name: unknown, where: string, dtype: TensorDType, shape: number[]) => string;

type AddTensor = (name: string, value: TensorArray, shape: number[]) => string;
type Read = (name: string) => TensorArray;
type Plan = (read: Read) => OnebitLayer;

/** What a codec gets besides its own entry: tensors, the format version, and nested layer lists (residual). */
interface DecodeContext {
  readonly r: Reader;
  readonly need: NeedTensor;
  readonly version: number;
  /** Decodes a nested list of layers from `flow` (which it advances); returns the plans. */
  list(value: unknown, where: string, flow: Flow): Plan[];
}

/**
 * One layer kind of the format: how it is written to the header (registering its tensors with `add`, and
 * nested lists with `list`) and how a header entry is validated against the values flowing in (`decode`
 * checks the structure and declares the tensors it needs, then returns the function that builds the layer once
 * the tensors are read and checked). Adding an op to the format is adding an entry to LAYER_CODECS.
 */
interface LayerCodec<L extends OnebitLayer> {
  /** The first format version with this kind. */
  readonly since: number;
  encode(
    layer: L,
    prefix: string,
    add: AddTensor,
    list: (layers: readonly OnebitLayer[], prefix: string) => Record<string, unknown>[],
  ): Record<string, unknown>;
  decode(ctx: DecodeContext, layer: Record<string, unknown>, where: string, flow: Flow): (read: Read) => L;
}

/** Largest kernel side, stride and padding a file may declare. */
const MAX_WINDOW = 64;
/** Deepest nesting of residual blocks. */
const MAX_DEPTH = 8;

const FLATTEN_CODEC: LayerCodec<FlattenLayer> = {
  since: 1,
  encode: (layer) => ({ kind: 'flatten', ...(layer.layout !== undefined ? { layout: layer.layout } : {}) }),
  decode: ({ r, version }, layer, where, flow) => {
    const layout =
      layer.layout === undefined || version < 3
        ? undefined
        : r.choice(layer.layout, `${where}.layout`, ['chw', 'hwc'] as const);
    flow.shape = [flow.shape.reduce((a, b) => a * b, 1)];
    return () => ({ kind: 'flatten', ...(layout !== undefined ? { layout } : {}) });
  },
};

function encodeOutput(out: DenseOutput, prefix: string, n: number, add: AddTensor): Record<string, unknown> {
  return out.kind === 'bits'
    ? {
        kind: 'bits',
        thresholds: add(`${prefix}.thresholds`, out.thresholds, [n]),
        directions: add(`${prefix}.directions`, out.directions, [n]),
      }
    : {
        kind: 'real',
        scale: add(`${prefix}.scale`, out.scale, [n]),
        bias: add(`${prefix}.bias`, out.bias, [n]),
        activation: out.activation,
      };
}

/** Checks directions are +-1 and thresholds not NaN. */
function checkThresholds(
  r: Reader,
  where: string,
  thresholds: Int32Array | Float32Array,
  directions: Int8Array,
): void {
  for (let j = 0; j < directions.length; j++) {
    if (directions[j] !== 1 && directions[j] !== -1)
      r.fail('bad-value', `${where}.directions[${j}]`, `a direction is +1 or -1, found ${directions[j]}`);
    if (Number.isNaN(thresholds[j]))
      r.fail('bad-value', `${where}.thresholds[${j}]`, 'a threshold must not be NaN');
  }
}

/** Checks scale and bias are finite. */
function checkAffine(r: Reader, where: string, scale: Float32Array, bias: Float32Array): void {
  for (let j = 0; j < scale.length; j++) {
    if (!Number.isFinite(scale[j]))
      r.fail('bad-value', `${where}.scale[${j}]`, `a scale must be finite, found ${scale[j]}`);
    if (!Number.isFinite(bias[j]))
      r.fail('bad-value', `${where}.bias[${j}]`, `a bias must be finite, found ${bias[j]}`);
  }
}

const ACTIVATIONS: readonly Activation[] = ['none', 'relu', 'hardtanh'];

/** The output stage of a dense or conv layer with `n` channels: declares its tensors, returns its builder. */
function decodeOutput(
  { r, need }: DecodeContext,
  value: unknown,
  where: string,
  n: number,
  input: 'real' | 'bits',
): { kind: 'bits' | 'real'; finish: (read: Read) => DenseOutput } {
  const output = r.object(value, where);
  const kind = r.choice(output.kind, `${where}.kind`, ['bits', 'real'] as const);
  if (kind === 'bits') {
    const dtype = input === 'bits' ? 'int32' : 'float32';
    const thresholdsName = need(output.thresholds, `${where}.thresholds`, dtype, [n]);
    const directionsName = need(output.directions, `${where}.directions`, 'int8', [n]);
    return {
      kind,
      finish: (read) => {
        const thresholds = read(thresholdsName) as Int32Array | Float32Array;
        const directions = read(directionsName) as Int8Array;
        checkThresholds(r, where, thresholds, directions);
        return { kind: 'bits', thresholds, directions };
      },
    };
  }
  const scaleName = need(output.scale, `${where}.scale`, 'float32', [n]);
  const biasName = need(output.bias, `${where}.bias`, 'float32', [n]);
  const activation = r.choice(output.activation, `${where}.activation`, ACTIVATIONS);
  return {
    kind,
    finish: (read) => {
      const scale = read(scaleName) as Float32Array;
      const bias = read(biasName) as Float32Array;
      checkAffine(r, where, scale, bias);
      return { kind: 'real', scale, bias, activation };
    },
  };
}

/** The layer's declared input kind, checked against what flows in. */
function checkInputKind(r: Reader, where: string, input: 'real' | 'bits', flow: Flow): void {
  if (input !== flow.values) {
    r.fail(
      'bad-layer',
      `${where}.input`,
      `the layer takes ${input} values but receives ${flow.values} values`,
    );
  }
}

/** The [C, H, W] a spatial layer receives, or a failure naming the flat shape. */
function spatialShape(r: Reader, where: string, flow: Flow): [number, number, number] {
  if (flow.shape.length !== 3) {
    r.fail('bad-layer', where, `the layer takes a [C, H, W] map but receives [${flow.shape.join(', ')}]`);
  }
  return [flow.shape[0], flow.shape[1], flow.shape[2]];
}

/** Output side of a window over `size` pixels, or a failure when no window fits. */
function windowOutput(r: Reader, where: string, size: number, w: PoolWindow): number {
  const out = Math.floor((size + 2 * w.padding - w.kernel) / w.stride) + 1;
  if (!(out >= 1)) {
    r.fail(
      'bad-layer',
      where,
      `a window of ${w.kernel} with padding ${w.padding} does not fit a map of side ${size}`,
    );
  }
  return out;
}

function decodeWindow(r: Reader, layer: Record<string, unknown>, where: string, pool: boolean): PoolWindow {
  const kernel = r.integer(layer.kernel, `${where}.kernel`, 1, MAX_WINDOW);
  const stride = r.integer(layer.stride, `${where}.stride`, 1, MAX_WINDOW);
  const padding = r.integer(layer.padding, `${where}.padding`, 0, pool ? Math.floor(kernel / 2) : MAX_WINDOW);
  return { kernel, stride, padding };
}

const DENSE_CODEC: LayerCodec<DenseLayer> = {
  since: 1,
  encode: (layer, prefix, add) => {
    const n = layer.outFeatures;
    return {
      kind: 'dense',
      name: layer.name,
      input: layer.input,
      inFeatures: layer.inFeatures,
      outFeatures: n,
      weights: add(`${prefix}.weights`, layer.weights, [n, packedWords(layer.inFeatures)]),
      output: encodeOutput(layer.output, prefix, n, add),
    };
  },
  decode: (ctx, layer, where, flow) => {
    const { r, need } = ctx;
    const current = flow.shape;
    const name = r.string(layer.name, `${where}.name`);
    const input = r.choice(layer.input, `${where}.input`, ['real', 'bits'] as const);
    const inFeatures = r.integer(layer.inFeatures, `${where}.inFeatures`, 1, LIMITS.features);
    const outFeatures = r.integer(layer.outFeatures, `${where}.outFeatures`, 1, LIMITS.features);
    if (current.length !== 1 || current[0] !== inFeatures) {
      r.fail(
        'bad-layer',
        `${where}.inFeatures`,
        `the layer takes [${inFeatures}] but receives [${current.join(', ')}]${current.length > 1 ? ' (flatten first)' : ''}`,
      );
    }
    checkInputKind(r, where, input, flow);
    const weightsName = need(layer.weights, `${where}.weights`, 'uint32', [
      outFeatures,
      packedWords(inFeatures),
    ]);
    const output = decodeOutput(ctx, layer.output, `${where}.output`, outFeatures, input);
    flow.shape = [outFeatures];
    flow.values = output.kind;
    flow.seenLinear = true;
    return (read) => {
      const weights = read(weightsName) as Uint32Array;
      checkPadding(r, `${where}.weights`, weights, outFeatures, inFeatures);
      const out = output.finish(read);
      return { kind: 'dense', name, input, inFeatures, outFeatures, weights, output: out };
    };
  },
};

const CONV_CODEC: LayerCodec<ConvLayer> = {
  since: 3,
  encode: (layer, prefix, add) => {
    const n = layer.outChannels;
    const taps = layer.kernel * layer.kernel * layer.inChannels;
    return {
      kind: 'conv2d',
      name: layer.name,
      input: layer.input,
      inChannels: layer.inChannels,
      outChannels: n,
      kernel: layer.kernel,
      stride: layer.stride,
      padding: layer.padding,
      weights: add(`${prefix}.weights`, layer.weights, [n, packedWords(taps)]),
      output: encodeOutput(layer.output, prefix, n, add),
    };
  },
  decode: (ctx, layer, where, flow) => {
    const { r, need } = ctx;
    const name = r.string(layer.name, `${where}.name`);
    const input = r.choice(layer.input, `${where}.input`, ['real', 'bits'] as const);
    const inChannels = r.integer(layer.inChannels, `${where}.inChannels`, 1, LIMITS.features);
    const outChannels = r.integer(layer.outChannels, `${where}.outChannels`, 1, LIMITS.features);
    const window = decodeWindow(r, layer, where, false);
    const [c, h, w] = spatialShape(r, where, flow);
    if (c !== inChannels) {
      r.fail('bad-layer', `${where}.inChannels`, `the layer takes ${inChannels} channels but receives ${c}`);
    }
    checkInputKind(r, where, input, flow);
    const taps = window.kernel * window.kernel * inChannels;
    if (taps > LIMITS.features) {
      r.fail('bad-layer', where, `${taps} weights per output channel, at most ${LIMITS.features}`);
    }
    const outH = windowOutput(r, where, h, window);
    const outW = windowOutput(r, where, w, window);
    if (outChannels * outH * outW > LIMITS.inputElements) {
      r.fail(
        'bad-layer',
        where,
        `an output of ${outChannels} x ${outH} x ${outW} values, at most ${LIMITS.inputElements}`,
      );
    }
    const weightsName = need(layer.weights, `${where}.weights`, 'uint32', [outChannels, packedWords(taps)]);
    const output = decodeOutput(ctx, layer.output, `${where}.output`, outChannels, input);
    flow.shape = [outChannels, outH, outW];
    flow.values = output.kind;
    flow.seenLinear = true;
    return (read) => {
      const weights = read(weightsName) as Uint32Array;
      checkPadding(r, `${where}.weights`, weights, outChannels, taps);
      const out = output.finish(read);
      return {
        kind: 'conv2d',
        name,
        input,
        inChannels,
        outChannels,
        ...window,
        weights,
        output: out,
      };
    };
  },
};

function poolCodec<K extends 'maxpool' | 'avgpool'>(
  kind: K,
): LayerCodec<(MaxPoolLayer | AvgPoolLayer) & { readonly kind: K }> {
  return {
    since: 3,
    encode: (layer) => ({
      kind,
      name: layer.name,
      kernel: layer.kernel,
      stride: layer.stride,
      padding: layer.padding,
    }),
    decode: ({ r }, layer, where, flow) => {
      const name = r.string(layer.name, `${where}.name`);
      const window = decodeWindow(r, layer, where, true);
      const [c, h, w] = spatialShape(r, where, flow);
      if (kind === 'avgpool' && flow.values !== 'real')
        r.fail('bad-layer', where, 'average pooling takes real values, it receives bits');
      flow.shape = [c, windowOutput(r, where, h, window), windowOutput(r, where, w, window)];
      return () => ({ kind, name, ...window }) as (MaxPoolLayer | AvgPoolLayer) & { readonly kind: K };
    },
  };
}

/** Channels of what flows in: C of a [C, H, W] map or the features of a flat vector. */
function channelsOf(flow: Flow): number {
  return flow.shape[0];
}

const THRESHOLD_CODEC: LayerCodec<ThresholdLayer> = {
  since: 3,
  encode: (layer, prefix, add) => ({
    kind: 'threshold',
    name: layer.name,
    channels: layer.channels,
    thresholds: add(`${prefix}.thresholds`, layer.thresholds, [layer.channels]),
    directions: add(`${prefix}.directions`, layer.directions, [layer.channels]),
  }),
  decode: ({ r, need }, layer, where, flow) => {
    const name = r.string(layer.name, `${where}.name`);
    const channels = r.integer(layer.channels, `${where}.channels`, 1, LIMITS.features);
    if (flow.values !== 'real') r.fail('bad-layer', where, 'a threshold takes real values, it receives bits');
    if (channels !== channelsOf(flow))
      r.fail('bad-layer', `${where}.channels`, `${channels} channels, the values have ${channelsOf(flow)}`);
    const t = need(layer.thresholds, `${where}.thresholds`, 'float32', [channels]);
    const d = need(layer.directions, `${where}.directions`, 'int8', [channels]);
    flow.values = 'bits';
    return (read) => {
      const thresholds = read(t) as Float32Array;
      const directions = read(d) as Int8Array;
      checkThresholds(r, where, thresholds, directions);
      return { kind: 'threshold', name, channels, thresholds, directions };
    };
  },
};

const AFFINE_CODEC: LayerCodec<AffineLayer> = {
  since: 3,
  encode: (layer, prefix, add) => ({
    kind: 'affine',
    name: layer.name,
    channels: layer.channels,
    scale: add(`${prefix}.scale`, layer.scale, [layer.channels]),
    bias: add(`${prefix}.bias`, layer.bias, [layer.channels]),
    activation: layer.activation,
  }),
  decode: ({ r, need }, layer, where, flow) => {
    const name = r.string(layer.name, `${where}.name`);
    const channels = r.integer(layer.channels, `${where}.channels`, 1, LIMITS.features);
    if (flow.values !== 'real')
      r.fail('bad-layer', where, 'an affine layer takes real values, it receives bits');
    if (channels !== channelsOf(flow))
      r.fail('bad-layer', `${where}.channels`, `${channels} channels, the values have ${channelsOf(flow)}`);
    const scaleName = need(layer.scale, `${where}.scale`, 'float32', [channels]);
    const biasName = need(layer.bias, `${where}.bias`, 'float32', [channels]);
    const activation = r.choice(layer.activation, `${where}.activation`, ACTIVATIONS);
    return (read) => {
      const scale = read(scaleName) as Float32Array;
      const bias = read(biasName) as Float32Array;
      checkAffine(r, where, scale, bias);
      return { kind: 'affine', name, channels, scale, bias, activation };
    };
  },
};

const RESIDUAL_CODEC: LayerCodec<ResidualLayer> = {
  since: 3,
  encode: (layer, prefix, _add, list) => ({
    kind: 'residual',
    name: layer.name,
    body: list(layer.body, `${prefix}.body`),
    shortcut: layer.shortcut === null ? null : list(layer.shortcut, `${prefix}.shortcut`),
  }),
  decode: (ctx, layer, where, flow) => {
    const { r } = ctx;
    const name = r.string(layer.name, `${where}.name`);
    if (flow.values !== 'real')
      r.fail('bad-layer', where, 'a residual block takes real values, it receives bits');
    const input = [...flow.shape];
    const body: Flow = { shape: [...input], values: 'real', seenLinear: flow.seenLinear };
    const bodyPlans = ctx.list(layer.body, `${where}.body`, body);
    if (bodyPlans.length === 0)
      r.fail('bad-layer', `${where}.body`, 'a residual body needs at least one layer');
    const shortcut: Flow = { shape: [...input], values: 'real', seenLinear: flow.seenLinear };
    const shortcutPlans =
      layer.shortcut === null ? null : ctx.list(layer.shortcut, `${where}.shortcut`, shortcut);
    for (const [branch, f] of [
      ['body', body],
      ['shortcut', shortcut],
    ] as const) {
      if (f.values !== 'real')
        r.fail(
          'bad-layer',
          `${where}.${branch}`,
          `the ${branch} must end with real values, it ends with bits`,
        );
    }
    if (body.shape.join(',') !== shortcut.shape.join(',')) {
      r.fail(
        'bad-layer',
        where,
        `body gives [${body.shape.join(', ')}], the shortcut [${shortcut.shape.join(', ')}]: they must agree`,
      );
    }
    flow.shape = body.shape;
    flow.seenLinear = body.seenLinear || shortcut.seenLinear;
    return (read) => ({
      kind: 'residual',
      name,
      body: bodyPlans.map((finish) => finish(read)),
      shortcut: shortcutPlans === null ? null : shortcutPlans.map((finish) => finish(read)),
    });
  },
};

/** Every layer kind of the format, by its header `kind`. */
const LAYER_CODECS: { readonly [K in OnebitLayer['kind']]: LayerCodec<OnebitLayer & { readonly kind: K }> } =
  {
    flatten: FLATTEN_CODEC,
    dense: DENSE_CODEC,
    conv2d: CONV_CODEC,
    maxpool: poolCodec('maxpool'),
    avgpool: poolCodec('avgpool'),
    threshold: THRESHOLD_CODEC,
    affine: AFFINE_CODEC,
    residual: RESIDUAL_CODEC,
  };

const LAYER_KINDS = Object.keys(LAYER_CODECS) as OnebitLayer['kind'][];

/** The codec of a layer kind (the table is indexed by the layer's own kind, so the cast is sound). */
function codecOf(kind: OnebitLayer['kind']): LayerCodec<OnebitLayer> {
  return LAYER_CODECS[kind] as LayerCodec<OnebitLayer>;
}

/**
 * Parses and validates a `.onebit` file. `source` names the file in error messages. Tensor data is copied
 * out of `bytes` (at most the file's size in all, as tensors may not overlap).
 */
export function decodeOnebit(bytes: Uint8Array, source = '<bytes>'): OnebitModel {
  checkLittleEndian();
  const r: Reader = new Reader(source);
  if (bytes.byteLength < 16) {
    r.fail(
      'truncated',
      'byte 0',
      `file too short: ${bytes.byteLength} bytes, a .onebit file has at least 16`,
    );
  }
  let magic = '';
  for (let i = 0; i < 8; i++) magic += String.fromCharCode(bytes[i]);
  if (magic !== ONEBIT_MAGIC) {
    r.fail('bad-magic', 'byte 0', `bad magic: expected "${ONEBIT_MAGIC}", found ${JSON.stringify(magic)}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (!(version >= 1 && version <= ONEBIT_VERSION)) {
    r.fail(
      'bad-version',
      'byte 8',
      `unsupported format version ${version}; this build reads versions 1 to ${ONEBIT_VERSION}`,
    );
  }
  const prefix = prefixBytes(version);
  if (bytes.byteLength < prefix) {
    r.fail(
      'truncated',
      'byte 0',
      `file too short: ${bytes.byteLength} bytes, a version-${version} .onebit file has at least ${prefix}`,
    );
  }
  const headerLength = view.getUint32(12, true);
  if (headerLength > LIMITS.headerBytes) {
    r.fail(
      'bad-header',
      'byte 12',
      `header length ${headerLength} exceeds the limit of ${LIMITS.headerBytes} bytes`,
    );
  }
  if (prefix + headerLength > bytes.byteLength) {
    r.fail(
      'truncated',
      'byte 12',
      `header of ${headerLength} bytes runs past the end of the file (${bytes.byteLength} bytes)`,
    );
  }
  const headerBytes = bytes.subarray(prefix, prefix + headerLength);
  if (version >= 2) {
    const stored = view.getUint32(16, true);
    const computed = crc32c(headerBytes);
    if (stored !== computed) {
      r.fail(
        'bad-checksum',
        `bytes ${prefix}..${prefix + headerLength}`,
        `header fails its CRC32C checksum (stored ${hex32(stored)}, computed ${hex32(computed)}): the file is damaged`,
      );
    }
  }
  let parsed: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
    parsed = JSON.parse(text);
  } catch (error) {
    // A later version's file whose version field says 1 has its checksum where a version-1 header starts.
    if (version === 1 && bytes[PREFIX_BYTES] === 0x7b && bytes[16] !== 0x7b) {
      r.fail(
        'bad-version',
        'byte 8',
        'the file says version 1 but is laid out as a later version: the version field is damaged',
      );
    }
    r.fail(
      'bad-header',
      `bytes ${prefix}..${prefix + headerLength}`,
      `header is not valid UTF-8 JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  const header = r.object(parsed, 'header');

  // Bit convention.
  const bits = r.object(header.bits, 'header.bits');
  for (const [key, expected] of Object.entries(BIT_CONVENTION)) {
    if (bits[key] !== expected) {
      r.fail(
        'unsupported',
        `header.bits.${key}`,
        `this engine implements ${JSON.stringify(expected)}, the file declares ${describe(bits[key])}`,
      );
    }
  }

  // Input and classes.
  const inputRecord = r.object(header.input, 'header.input');
  const shapeList = r.array(inputRecord.shape, 'header.input.shape', 3);
  if (shapeList.length !== 3)
    r.fail('bad-header', 'header.input.shape', `expected [C, H, W], found ${describe(shapeList)}`);
  const shape = shapeList.map((d, i) =>
    r.integer(d, `header.input.shape[${i}]`, 1, LIMITS.inputElements),
  ) as [number, number, number];
  const inputElements = shape[0] * shape[1] * shape[2];
  if (inputElements > LIMITS.inputElements) {
    r.fail(
      'bad-header',
      'header.input.shape',
      `${inputElements} elements per example, at most ${LIMITS.inputElements}`,
    );
  }
  const mean = r
    .array(inputRecord.mean, 'header.input.mean', shape[0])
    .map((v, i) => r.finite(v, `header.input.mean[${i}]`));
  const std = r
    .array(inputRecord.std, 'header.input.std', shape[0])
    .map((v, i) => r.finite(v, `header.input.std[${i}]`));
  if (mean.length !== shape[0] || std.length !== shape[0]) {
    r.fail(
      'bad-header',
      'header.input',
      `${shape[0]} channels need ${shape[0]} means and stds, found ${mean.length} and ${std.length}`,
    );
  }
  std.forEach((s, i) => {
    if (!(s > 0))
      r.fail('bad-header', `header.input.std[${i}]`, `a standard deviation must be > 0, found ${s}`);
  });
  const classes = r.integer(header.classes, 'header.classes', 1, LIMITS.classes);

  let temperature: number | undefined;
  if (header.temperature !== undefined) {
    const t = header.temperature;
    if (typeof t !== 'number' || !Number.isFinite(t) || !(t > 0))
      r.fail('bad-header', 'header.temperature', `expected a finite number > 0, found ${describe(t)}`);
    temperature = t;
  }

  // Metadata.
  const metadata: Record<string, MetadataValue> = {};
  if (header.metadata !== undefined) {
    const record = r.object(header.metadata, 'header.metadata');
    const keys = Object.keys(record);
    if (keys.length > LIMITS.metadataEntries) {
      r.fail('bad-header', 'header.metadata', `${keys.length} entries, at most ${LIMITS.metadataEntries}`);
    }
    for (const key of keys) {
      const v = record[key];
      if (typeof v === 'string') metadata[key] = r.string(v, `header.metadata.${key}`, 4096);
      else if (typeof v === 'number' && Number.isFinite(v)) metadata[key] = v;
      else if (typeof v === 'boolean') metadata[key] = v;
      else
        r.fail(
          'bad-header',
          `header.metadata.${key}`,
          `expected a string, finite number or boolean, found ${describe(v)}`,
        );
    }
  }

  // Layers: structure and the exact tensors each needs.
  const needs = new Map<string, TensorNeed>();
  const need = (name: unknown, where: string, dtype: TensorDType, tensorShape: number[]): string => {
    const key = r.string(name, where);
    if (needs.has(key)) r.fail('bad-layer', where, `tensor "${key}" is referenced twice`);
    needs.set(key, { where, dtype, shape: tensorShape });
    return key;
  };
  let depth = 0;
  const ctx: DecodeContext = {
    r,
    need,
    version,
    list(value, where, flow) {
      if (++depth > MAX_DEPTH) r.fail('bad-layer', where, `residual blocks nested deeper than ${MAX_DEPTH}`);
      const items = r.array(value, where, LIMITS.layers);
      const plans = items.map((item, i) => {
        const at = `${where}[${i}]`;
        const layer = r.object(item, at);
        const kind = r.choice(layer.kind, `${at}.kind`, LAYER_KINDS);
        const codec = codecOf(kind);
        if (version < codec.since) {
          r.fail(
            'bad-version',
            `${at}.kind`,
            `layer kind "${kind}" needs format version ${codec.since}, the file says version ${version}`,
          );
        }
        return codec.decode(ctx, layer, at, flow);
      });
      depth--;
      return plans;
    },
  };
  const flow: Flow = { shape: [...shape], values: 'real', seenLinear: false };
  const plans = ctx.list(header.layers, 'header.layers', flow);
  if (plans.length === 0) r.fail('bad-layer', 'header.layers', 'a model needs at least one layer');
  const layerCount = plans.length;
  if (!flow.seenLinear)
    r.fail('bad-layer', 'header.layers', 'a model needs at least one dense or convolution layer');
  const current = flow.shape;
  const valueKind = flow.values;
  if (valueKind !== 'real' || current.length !== 1 || current[0] !== classes) {
    r.fail(
      'bad-layer',
      `header.layers[${layerCount - 1}]`,
      `the last layer must output ${classes} real logits (header.classes), it outputs [${current.join(', ')}] ${valueKind} values`,
    );
  }

  // Tensor table: every entry needed, exactly the needed dtype and shape, inside the data section, disjoint.
  const dataStart = alignUp(prefix + headerLength, DATA_ALIGN);
  const dataBytes = Math.max(0, bytes.byteLength - dataStart);
  const tensorList = r.array(header.tensors, 'header.tensors', 4 * LIMITS.layers);
  const entries = new Map<string, TensorEntry>();
  /** Where each tensor's entry is in the header, for messages. */
  const places = new Map<string, string>();
  for (let i = 0; i < tensorList.length; i++) {
    const where = `header.tensors[${i}]`;
    const t = r.object(tensorList[i], where);
    const name = r.string(t.name, `${where}.name`);
    const wanted = needs.get(name);
    if (wanted === undefined)
      r.fail('bad-tensor', `${where}.name`, `tensor "${name}" is not used by any layer`);
    if (entries.has(name)) r.fail('bad-tensor', `${where}.name`, `tensor "${name}" appears twice`);
    const dtype = r.choice(t.dtype, `${where}.dtype`, ['uint32', 'int32', 'float32', 'int8'] as const);
    if (dtype !== wanted.dtype)
      r.fail('bad-tensor', `${where}.dtype`, `${wanted.where} needs ${wanted.dtype}, the file has ${dtype}`);
    const dims = r
      .array(t.shape, `${where}.shape`, 4)
      .map((d, j) => r.integer(d, `${where}.shape[${j}]`, 0, LIMITS.features * 64));
    if (dims.length !== wanted.shape.length || dims.some((d, j) => d !== wanted.shape[j])) {
      r.fail(
        'bad-tensor',
        `${where}.shape`,
        `${wanted.where} needs shape [${wanted.shape.join(', ')}], the file has [${dims.join(', ')}]`,
      );
    }
    const expectedBytes = wanted.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    const byteLength = r.integer(t.byteLength, `${where}.byteLength`, 0, Number.MAX_SAFE_INTEGER);
    if (byteLength !== expectedBytes)
      r.fail(
        'bad-tensor',
        `${where}.byteLength`,
        `shape [${dims.join(', ')}] of ${dtype} takes ${expectedBytes} bytes, the file says ${byteLength}`,
      );
    const offset = r.integer(t.offset, `${where}.offset`, 0, Number.MAX_SAFE_INTEGER);
    if (offset % DATA_ALIGN !== 0)
      r.fail('bad-tensor', `${where}.offset`, `offset ${offset} is not a multiple of ${DATA_ALIGN}`);
    if (offset + byteLength > dataBytes) {
      r.fail(
        'truncated',
        `${where}`,
        `tensor "${name}" (bytes ${offset}..${offset + byteLength} of the data section) runs past the end of the file: the data section has ${dataBytes} bytes`,
      );
    }
    const checksum = version >= 2 ? r.integer(t.crc32c, `${where}.crc32c`, 0, 0xffffffff) : null;
    entries.set(name, { name, dtype, shape: dims, offset, byteLength, crc32c: checksum });
    places.set(name, where);
  }
  for (const [name, wanted] of needs) {
    if (!entries.has(name))
      r.fail('bad-tensor', wanted.where, `tensor "${name}" is missing from header.tensors`);
  }
  const sorted = [...entries.values()].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (prev.offset + prev.byteLength > sorted[i].offset) {
      r.fail('bad-tensor', 'header.tensors', `tensors "${prev.name}" and "${sorted[i].name}" overlap`);
    }
  }
  const last = sorted[sorted.length - 1];
  const dataEnd = last.offset + last.byteLength;
  if (dataEnd !== dataBytes) {
    r.fail(
      'bad-tensor',
      `byte ${dataStart + dataEnd}`,
      `${dataBytes - dataEnd} bytes after the last tensor: the file is not what its header describes`,
    );
  }

  // Every tensor's bytes must be the ones written (version 2), checked before any is used.
  for (const e of entries.values()) {
    if (e.crc32c === null) continue;
    const start = dataStart + e.offset;
    const computed = crc32c(bytes.subarray(start, start + e.byteLength));
    if (computed !== e.crc32c) {
      r.fail(
        'bad-checksum',
        places.get(e.name) as string,
        `tensor "${e.name}" fails its CRC32C checksum (stored ${hex32(e.crc32c)}, computed ${hex32(computed)}): the file is damaged`,
      );
    }
  }

  // Only now, with every size checked against the file, copy the data out.
  const read = (name: string): TensorArray => {
    const e = entries.get(name) as TensorEntry;
    const start = dataStart + e.offset;
    // A fresh buffer (Node's Buffer.slice would return a view of a shared pool, not a copy).
    const copy = new Uint8Array(e.byteLength);
    copy.set(bytes.subarray(start, start + e.byteLength));
    const n = e.byteLength / DTYPE_BYTES[e.dtype];
    switch (e.dtype) {
      case 'uint32':
        return new Uint32Array(copy.buffer, 0, n);
      case 'int32':
        return new Int32Array(copy.buffer, 0, n);
      case 'float32':
        return new Float32Array(copy.buffer, 0, n);
      case 'int8':
        return new Int8Array(copy.buffer, 0, n);
    }
  };
  const layers = plans.map((finish) => finish(read));
  return {
    input: { shape, mean, std },
    classes,
    layers,
    metadata,
    ...(temperature !== undefined ? { temperature } : {}),
  };
}

/** Padding bits (columns inFeatures.. of each packed row) must be zero: the XNOR trick relies on it. */
function checkPadding(r: Reader, where: string, weights: Uint32Array, rows: number, cols: number): void {
  const words = packedWords(cols);
  const full = Math.floor(cols / 32);
  const partialBits = cols % 32;
  const partialMask = partialBits === 0 ? 0 : (0xffffffff << partialBits) >>> 0;
  for (let row = 0; row < rows; row++) {
    const base = row * words;
    if (partialBits !== 0 && (weights[base + full] & partialMask) !== 0) {
      r.fail('bad-value', `${where} row ${row}`, `padding bits past column ${cols} must be 0`);
    }
    for (let w = full + (partialBits === 0 ? 0 : 1); w < words; w++) {
      if (weights[base + w] !== 0)
        r.fail('bad-value', `${where} row ${row}`, `padding bits past column ${cols} must be 0`);
    }
  }
}

/** Packs a rows x cols matrix of signs (value < 0 or NaN -> set bit, i.e. -1) by the format's convention. */
export function packSignRows(values: ArrayLike<number>, rows: number, cols: number): Uint32Array {
  const words = packedWords(cols);
  const out = new Uint32Array(rows * words);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (!(values[r * cols + c] >= 0)) out[r * words + (c >>> 5)] |= 1 << (c & 31);
    }
  }
  return out;
}
