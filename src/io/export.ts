/**
 * Export of a trained network for inference, from its spec and tensors alone (no training run, no method):
 * the float model is built from the spec (src/nn/models.ts), its parameters and batch-norm statistics are
 * copied from the `model/` tensors (for a 'float-model' checkpoint these are the deployed network: the
 * trainer writes the method's mode weights before saving), and the result is described as a plain list of
 * operations (`describeNetwork`, used by the ONNX writer) or folded into a `.onebit` model
 * (`buildOnebitModel`, src/engine/format.ts). The walk over the layers is driven by the spec's layer types
 * through one table (`EXPORTERS`), so supporting a new layer is one entry there.
 *
 * Folding batch norm into thresholds. After a binary layer come per-channel elementwise layers (optional
 * channel scale, batch norm, the activation, dropout); when the next binary layer binarizes its input, all
 * that matters is the sign of their output, sign(y) = +1 iff y >= 0 (sign(0) = +1). Each of those layers is
 * a monotone function of its input in float arithmetic (rounding is monotone), so for each channel the set
 * of pre-activations z with a +1 output is a half-line: z >= t (direction +1) or z <= t (direction -1), or
 * everything, or nothing. Rather than re-deriving the threshold algebraically (where float rounding and
 * ties at exactly 0 are easy to get wrong, and the direction flips with a negative scale), the exporter
 * finds it by running the model's own layers in evaluation mode on probe inputs:
 *  - integer z (the layer's input is bits, z in [-K, K]): every integer in [-K, K] is probed, so the
 *    threshold reproduces the training-time arithmetic exactly, and a non-monotone channel is detected;
 *  - real z (the first layer on real inputs): bisection over the ordered float32 values; the threshold is the
 *    float32 at which the training model's output changes sign.
 * Probing uses the backend the model was built on; the engine matches the training model in evaluation
 * on that backend (the float32 wasm backend, as `onebit eval` uses by default).
 *
 * When the next layer takes reals (1W32A, or the logits), the layers fold into scale and bias per
 * channel: with batch norm alone this is exactly the training-time float32 arithmetic (scale = 1/sqrt(var +
 * eps) and bias = -mean * scale, both rounded to float32 as BatchNorm rounds them); with an affine batch
 * norm or a channel scale, the product is folded in float64 and rounded once.
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import { datasetShape } from '../data/in-memory.js';
import {
  packSignRows,
  type Activation,
  type AvgPoolLayer,
  type DenseOutput,
  type MaxPoolLayer,
  type OnebitLayer,
  type OnebitModel,
} from '../engine/format.js';
import { ExportError } from '../errors.js';
import type { Layer } from '../nn/layer.js';
import { buildModelFromSpec, type Model } from '../nn/models.js';
import type { Residual } from '../nn/residual.js';
import type { Sequential } from '../nn/sequential.js';
import { layerOutputShape, layerShapes, type LayerSpec, type LayerType, type ModelSpec } from '../nn/spec.js';
import { Rng } from '../tensor/rng.js';
import type { NamedTensor, TensorData } from '../tensor/tensor-data.js';
import { loadCheckpoint, type Checkpoint } from './checkpoint.js';

/** Batch size the model is planned for: rows per probe. */
const PROBE_BATCH = 256;
/** Values of the largest layer output over the rows the model is planned for, at most (bounds its memory). */
const PROBE_PLAN_VALUES = 1 << 22;

/** Rows to plan the model for: PROBE_BATCH, fewer for a model with large feature maps (vgg-small: 32). */
function probeRows(spec: ModelSpec): number {
  const largest = Math.max(
    spec.input.reduce((a, b) => a * b, 1),
    ...layerShapes(spec).map((shape) => shape.reduce((a, b) => a * b, 1)),
  );
  return Math.max(2, Math.min(PROBE_BATCH, Math.floor(PROBE_PLAN_VALUES / largest)));
}

type MetadataRecord = Readonly<Record<string, string | number | boolean>>;

/** Per-channel input normalisation (of pixel values scaled to [0, 1]). */
export interface ExportNormalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** What an export is made from: a spec and its tensors, from a checkpoint or from memory. */
export interface ExportInput {
  readonly spec: ModelSpec;
  /**
   * At least every `model/<parameter or state name>` tensor of the spec's model ("model/fc1.weight",
   * "model/bn1.running_mean"): the test-time weights (+-1) and batch-norm statistics. Other tensors are
   * ignored, except by the safetensors export, which writes them all.
   */
  readonly tensors: ReadonlyMap<string, TensorData> | readonly NamedTensor[];
  readonly normalization: ExportNormalization;
  /** Names the source in error messages (a checkpoint path, a model name). */
  readonly name: string;
  /** Free-form facts stored in the exported file (producer, method, epoch, ...). */
  readonly metadata?: MetadataRecord;
  /** Temperature of the exported probabilities, softmax(logits / T) (train/calibration.ts); default 1. */
  readonly temperature?: number;
  /**
   * The images' [C, H, W] when the spec's input is flat ([features]); default [1, 1, features] with one
   * normalisation channel.
   */
  readonly imageShape?: readonly [number, number, number];
}

/** The float model built from a spec, planned, with its tensors copied in, ready to be exported. */
export interface ExportSource {
  /** Names the source in error messages. */
  readonly path: string;
  readonly spec: ModelSpec;
  /** Planned on `backend` for `maxBatch` rows (probeRows), in evaluation use only. */
  readonly model: Model;
  readonly backend: Backend;
  /** Rows the model is planned for. */
  readonly maxBatch: number;
  /** Per-example image shape the exported model takes. */
  readonly inputShape: readonly [number, number, number];
  readonly classes: number;
  readonly normalization: ExportNormalization;
  /** Every tensor given (the safetensors export writes them all). */
  readonly tensors: ReadonlyMap<string, TensorData>;
  readonly metadata: MetadataRecord;
  /** Temperature of the probabilities (1: none). */
  readonly temperature: number;
  /** Frees the model's buffers. */
  dispose(): void;
}

/**
 * The [C, H, W] images an exported model takes: the spec's input, or for a spec on flat vectors the given
 * image shape (its data set's), or one channel of that many values.
 */
export function imageShapeOf(
  input: Pick<ExportInput, 'spec' | 'name' | 'normalization' | 'imageShape'>,
): readonly [number, number, number] {
  const { spec, name, normalization } = input;
  const size = spec.input.reduce((a, b) => a * b, 1);
  if (spec.input.length === 3) return [spec.input[0], spec.input[1], spec.input[2]];
  if (input.imageShape !== undefined) {
    const [c, h, w] = input.imageShape;
    if (c * h * w !== size) {
      throw new ExportError(
        name,
        `image shape [${c}, ${h}, ${w}] has ${c * h * w} values, the spec's input [${size}] has ${size}`,
      );
    }
    return input.imageShape;
  }
  if (normalization.mean.length !== 1) {
    throw new ExportError(
      name,
      `the spec's input is flat ([${size}]) and the normalisation has ${normalization.mean.length} channels: give the image shape`,
    );
  }
  return [1, 1, size];
}

/**
 * Builds the spec's float model on `backend` (use the float32 wasm backend to match `onebit eval`) and copies
 * the `model/` tensors into it. ExportError naming the tensor when one is missing or has the wrong size, or a
 * binary weight is not +-1.
 */
export function exportSource(input: ExportInput, backend: Backend): ExportSource {
  const { spec, name } = input;
  const tensors =
    input.tensors instanceof Map
      ? (input.tensors as ReadonlyMap<string, TensorData>)
      : new Map((input.tensors as readonly NamedTensor[]).map((t) => [t.name, t.value]));
  const inputShape = imageShapeOf(input);
  if (input.normalization.mean.length !== inputShape[0] || input.normalization.std.length !== inputShape[0]) {
    throw new ExportError(
      name,
      `${inputShape[0]} input channels need ${inputShape[0]} normalisation means and stds, found ${input.normalization.mean.length} and ${input.normalization.std.length}`,
    );
  }
  const model = buildModelFromSpec(spec);
  const rows = probeRows(spec);
  try {
    model.planFor(backend, rows);
    const live = [
      ...model.parameters().map((p) => ({ name: p.name, value: p.value, binary: p.kind === 'binary' })),
      ...model.stateBuffers().map((s) => ({ name: s.name, value: s.value, binary: false })),
    ];
    for (const t of live) {
      const key = `model/${t.name}`;
      const saved = tensors.get(key);
      if (saved === undefined) throw new ExportError(name, `tensor "${key}" is missing`);
      if (saved.length !== t.value.length) {
        throw new ExportError(
          name,
          `tensor "${key}": the spec's layer needs ${t.value.length} values, found ${saved.length}`,
        );
      }
      t.value.set(saved);
      if (t.binary) {
        const bad = t.value.findIndex((v) => v !== 1 && v !== -1);
        if (bad >= 0) {
          throw new ExportError(
            name,
            `binary weight ${key}[${bad}] is ${t.value[bad]}, not +-1 (the tensors must hold the test-time weights)`,
          );
        }
      }
    }
  } catch (error) {
    model.dispose();
    throw error;
  }
  return {
    path: name,
    spec,
    model,
    backend,
    maxBatch: rows,
    inputShape,
    classes: spec.classes,
    normalization: input.normalization,
    tensors,
    metadata: { producer: 'onebit', ...input.metadata },
    temperature: input.temperature ?? 1,
    dispose: () => model.dispose(),
  };
}

/** The metadata an export of a checkpoint carries. */
export function checkpointMetadata(checkpoint: Checkpoint): Record<string, string | number | boolean> {
  const { config, epoch, step } = checkpoint.meta;
  return {
    producer: 'onebit',
    model: config.model,
    method: config.method,
    activations: config.activations,
    data: config.data,
    epoch,
    step,
  };
}

/**
 * The export source of a loaded 'float-model' checkpoint (`path` names it in errors). A version-1 checkpoint
 * ('stale': its weights are the last proposal, not the mode) is refused with the command that converts it;
 * a float-free one goes through float-free-export.ts.
 */
export function checkpointExportSource(path: string, checkpoint: Checkpoint, backend: Backend): ExportSource {
  const { meta } = checkpoint;
  if (meta.inference === 'stale') {
    throw new ExportError(
      path,
      `a version-1 checkpoint holds the method's last proposal, not its test-time weights: convert it with \`onebit upgrade ${path}\` and export the result`,
    );
  }
  if (meta.inference !== 'float-model') {
    throw new ExportError(path, `a ${meta.inference} checkpoint has no float model to export`);
  }
  const spec = meta.config.spec;
  if (spec === undefined) throw new ExportError(path, 'the checkpoint has no model spec');
  const dataShape = datasetShape(meta.config.data);
  return exportSource(
    {
      spec,
      tensors: checkpoint.tensors,
      normalization: meta.normalization,
      name: path,
      metadata: checkpointMetadata(checkpoint),
      temperature: meta.calibration?.mode.temperature ?? 1,
      ...(dataShape !== undefined ? { imageShape: dataShape } : {}),
    },
    backend,
  );
}

/** Loads the checkpoint at `path` and builds its export source (checkpointExportSource). */
export function openForExport(path: string, backend: Backend): ExportSource {
  return checkpointExportSource(path, loadCheckpoint(path), backend);
}

// ---------------------------------------------------------------------------------------------------------
// The layers, by spec type

/** A pooling window: square side, stride and padding on every side. */
export interface PoolWindow {
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
}

export type NetworkOp =
  | { readonly kind: 'flatten' }
  | {
      readonly kind: 'dense';
      readonly name: string;
      readonly inFeatures: number;
      readonly outFeatures: number;
      /** sign(x) of the input first (1-bit activations). */
      readonly binarizeInput: boolean;
      /** +-1 values, [outFeatures, inFeatures] row-major. */
      readonly weight: Float32Array;
    }
  /**
   * A binary 2-D convolution without bias over [N, C, H, W] (zero padding of its input, after the sign when
   * it binarizes: padded taps contribute 0).
   */
  | {
      readonly kind: 'conv';
      readonly name: string;
      readonly inChannels: number;
      readonly outChannels: number;
      readonly kernelSize: number;
      readonly stride: number;
      readonly padding: number;
      /** sign(x) of the input first (1-bit activations). */
      readonly binarizeInput: boolean;
      /** +-1 values, [outChannels, inChannels, kernelSize, kernelSize] row-major. */
      readonly weight: Float32Array;
    }
  /** Max pooling; padded positions never win. */
  | ({ readonly kind: 'maxpool'; readonly name: string } & PoolWindow)
  /** Average pooling; padded positions count as zeros (every window divides by kernelSize^2). */
  | ({ readonly kind: 'avgpool'; readonly name: string } & PoolWindow)
  /** y = body(x) + shortcut(x), the shortcut being the identity when null. */
  | {
      readonly kind: 'residual';
      readonly name: string;
      readonly body: readonly NetworkOp[];
      readonly shortcut: readonly NetworkOp[] | null;
    }
  | { readonly kind: 'scale'; readonly name: string; readonly alpha: Float32Array }
  | {
      readonly kind: 'batchnorm';
      readonly name: string;
      readonly mean: Float32Array;
      readonly variance: Float32Array;
      readonly eps: number;
      readonly gamma: Float32Array | null;
      readonly beta: Float32Array | null;
    }
  | { readonly kind: 'relu'; readonly name: string }
  | { readonly kind: 'hardtanh'; readonly name: string }
  /**
   * The model's own input from the network's normalised input, per channel: the 8-bit pixel
   * v = round(255 (x std + mean)) under the network's `normalization`, then (v / 255 - mean') / std' under
   * the model's own statistics `model` (exact when those make it an integer shift, as float-free's v - 128).
   * First, on the [N, C, H, W] input.
   */
  | { readonly kind: 'pixels'; readonly name: string; readonly model: ExportNormalization }
  /**
   * 1-bit activation against per-unit thresholds: +1 iff z >= t (direction +1) or z <= t (direction -1),
   * else -1 (the `.onebit` format's 'bits' output, whose set bit is -1).
   */
  | {
      readonly kind: 'threshold';
      readonly name: string;
      readonly thresholds: Float32Array;
      readonly directions: Int8Array;
    }
  /** y = z * scale + bias per unit (the `.onebit` format's 'real' output before its activation). */
  | {
      readonly kind: 'affine';
      readonly name: string;
      readonly scale: Float32Array;
      readonly bias: Float32Array;
    };

export interface NetworkDescription {
  readonly inputShape: readonly [number, number, number];
  readonly classes: number;
  readonly normalization: ExportNormalization;
  /** In order; per-channel ops act on axis 1 ([N, C] or [N, C, H, W]). */
  readonly ops: readonly NetworkOp[];
  readonly metadata: MetadataRecord;
  /** Temperature of the probabilities output (1: none). */
  readonly temperature: number;
}

/** One layer of the source (top level or inside a residual block): its spec, its built layer, its tensors. */
interface LayerView<S extends LayerSpec = LayerSpec> {
  readonly spec: S;
  readonly layer: Layer;
  /** The layer's parameter or state buffer `local` ("weight", "running_mean"); throws when absent. */
  tensor(local: string): FloatArray;
  /** The shape of the parameter `local`. */
  shape(local: string): readonly number[];
  /** The per-example shape the layer receives and the one it gives. */
  readonly inShape: readonly number[];
  readonly outShape: readonly number[];
  /** A residual block's branches (the shortcut null when it is the identity). */
  readonly body?: readonly LayerView[];
  readonly shortcut?: readonly LayerView[] | null;
}

/** y = activation(z * mul + add) per channel, accumulated layer by layer. */
interface Fold {
  readonly mul: Float64Array;
  readonly add: Float64Array;
  activation: Activation;
  /** Whether the fold reproduces the layers' float32 arithmetic exactly (batch norm alone). */
  exact: boolean;
  batchNorms: number;
}

/**
 * How export treats one layer type:
 *  - 'flatten': reshapes to features;
 *  - 'identity': nothing at test time (dropout);
 *  - 'binary-dense', 'binary-conv': a binary layer, whose output stage folds the per-channel layers after it;
 *  - 'per-channel': a per-channel elementwise layer, folded into thresholds or into scale and bias (`fold`),
 *    and described as one operation (`describe`);
 *  - 'max-pool', 'avg-pool': pooling windows;
 *  - 'residual': a block whose branches are exported the same way;
 *  - 'unsupported': the engine does not run it (`why`).
 */
type LayerExporter<S extends LayerSpec> =
  | {
      readonly role: 'flatten' | 'identity' | 'binary-dense' | 'binary-conv' | 'max-pool' | 'avg-pool';
    }
  | { readonly role: 'residual' }
  | {
      readonly role: 'per-channel';
      describe(view: LayerView<S>): NetworkOp;
      fold(view: LayerView<S>, fold: Fold): void;
    }
  | { readonly role: 'unsupported'; readonly why: string };

type Role = LayerExporter<LayerSpec>['role'];

/** BatchNorm's eps when the spec leaves it out (src/nn/batch-norm.ts). */
const BATCH_NORM_EPS = 1e-5;

const NOT_SUPPORTED =
  'the .onebit engine and the ONNX export run binary layers only (binaryDense, binaryConv2d) with batch norm, channel scale, relu, hardtanh, pooling, dropout and residual blocks';

function copy(x: FloatArray): Float32Array {
  return Float32Array.from(x);
}

const EXPORTERS: { readonly [T in LayerType]: LayerExporter<LayerSpec & { readonly type: T }> } = {
  flatten: { role: 'flatten' },
  dropout: { role: 'identity' },
  binaryDense: { role: 'binary-dense' },
  binaryConv2d: { role: 'binary-conv' },
  maxPool2d: { role: 'max-pool' },
  avgPool2d: { role: 'avg-pool' },
  residual: { role: 'residual' },
  channelScale: {
    role: 'per-channel',
    describe: (v) => ({ kind: 'scale', name: v.layer.name, alpha: copy(v.tensor('weight')) }),
    fold: (v, f) => {
      const alpha = v.tensor('weight');
      for (let c = 0; c < f.mul.length; c++) {
        f.mul[c] *= alpha[c];
        f.add[c] *= alpha[c];
      }
      f.exact = false;
    },
  },
  batchNorm: {
    role: 'per-channel',
    describe: (v) => {
      const affine = v.spec.affine ?? false;
      return {
        kind: 'batchnorm',
        name: v.layer.name,
        mean: copy(v.tensor('running_mean')),
        variance: copy(v.tensor('running_var')),
        eps: v.spec.eps ?? BATCH_NORM_EPS,
        gamma: affine ? copy(v.tensor('weight')) : null,
        beta: affine ? copy(v.tensor('bias')) : null,
      };
    },
    fold: (v, f) => {
      const rm = v.tensor('running_mean');
      const rv = v.tensor('running_var');
      const eps = v.spec.eps ?? BATCH_NORM_EPS;
      for (let c = 0; c < f.mul.length; c++) {
        // As BatchNorm.forward in evaluation: invStd and the shift rounded to the backend's dtype.
        const invStd = Math.fround(1 / Math.sqrt(rv[c] + eps));
        const shift = Math.fround(-rm[c] * invStd);
        f.mul[c] *= invStd;
        f.add[c] = f.add[c] * invStd + shift;
      }
      if (f.batchNorms > 0) f.exact = false;
      f.batchNorms++;
      if (v.spec.affine ?? false) {
        const gamma = v.tensor('weight');
        const beta = v.tensor('bias');
        for (let c = 0; c < f.mul.length; c++) {
          f.mul[c] *= gamma[c];
          f.add[c] = f.add[c] * gamma[c] + beta[c];
        }
        f.exact = false;
      }
    },
  },
  relu: {
    role: 'per-channel',
    describe: (v) => ({ kind: 'relu', name: v.layer.name }),
    fold: (_, f) => {
      f.activation = 'relu';
    },
  },
  hardtanh: {
    role: 'per-channel',
    describe: (v) => ({ kind: 'hardtanh', name: v.layer.name }),
    fold: (_, f) => {
      f.activation = 'hardtanh';
    },
  },
  conv2d: { role: 'unsupported', why: `real (non-binary) convolutions: ${NOT_SUPPORTED}` },
  dense: { role: 'unsupported', why: `real (non-binary) dense layers: ${NOT_SUPPORTED}` },
  prelu: { role: 'unsupported', why: `PReLU: ${NOT_SUPPORTED}` },
};

/** The exporter of a spec layer (the table is indexed by the layer's own type, so the cast is sound). */
function exporterOf(spec: LayerSpec): LayerExporter<LayerSpec> {
  return EXPORTERS[spec.type] as LayerExporter<LayerSpec>;
}

function roleOf(view: LayerView): Role {
  return exporterOf(view.spec).role;
}

/**
 * Views of `layers` (built from `specs`, planned for per-example input `inShape`); `prefix` is their parameter
 * name prefix ("" at the top, "block1.body." inside a block). ExportError on a layer the engine does not run.
 */
function viewsOf(
  source: ExportSource,
  layers: readonly Layer[],
  specs: readonly LayerSpec[],
  prefix: string,
  inShape: readonly number[],
  parameters: ReadonlyMap<string, { value: FloatArray; shape: readonly number[] }>,
  state: ReadonlyMap<string, FloatArray>,
): LayerView[] {
  if (layers.length !== specs.length)
    throw new Error(`${source.path}: the model has ${layers.length} layers, its spec ${specs.length}`);
  let shape = inShape;
  return specs.map((spec, i) => {
    const layer = layers[i];
    const exporter = exporterOf(spec);
    if (exporter.role === 'unsupported')
      throw new ExportError(source.path, `layer ${prefix}${layer.name} (${spec.type}): ${exporter.why}`);
    const full = (local: string): string => `${prefix}${layer.name}.${local}`;
    const outShape = layerOutputShape(spec, [...shape]);
    let branches: Pick<LayerView, 'body' | 'shortcut'> = {};
    if (spec.type === 'residual') {
      const block = layer as Residual;
      const children = (l: Layer): readonly Layer[] => (l as Sequential).layers;
      branches = {
        body: viewsOf(source, children(block.body), spec.body, `${full('body')}.`, shape, parameters, state),
        shortcut:
          block.shortcut === null || spec.shortcut === undefined
            ? null
            : viewsOf(
                source,
                children(block.shortcut),
                spec.shortcut,
                `${full('shortcut')}.`,
                shape,
                parameters,
                state,
              ),
      };
    }
    const view: LayerView = {
      spec,
      layer,
      inShape: shape,
      outShape,
      ...branches,
      tensor: (local) => {
        const value = parameters.get(full(local))?.value ?? state.get(full(local));
        if (value === undefined) throw new Error(`${full(local)}: no such tensor`);
        return value;
      },
      shape: (local) => {
        const p = parameters.get(full(local));
        if (p === undefined) throw new Error(`${full(local)}: no such parameter`);
        return p.shape;
      },
    };
    shape = outShape;
    return view;
  });
}

/** The source's top-level layers with their specs; ExportError on a layer the engine does not run. */
function layerViews(source: ExportSource): LayerView[] {
  const parameters = new Map(source.model.parameters().map((p) => [p.name, p]));
  const state = new Map(source.model.stateBuffers().map((s) => [s.name, s.value]));
  return viewsOf(source, source.model.layers, source.spec.layers, '', source.spec.input, parameters, state);
}

/** A binary dense layer's sizes and input binarizer. */
function denseOf(view: LayerView): { inFeatures: number; outFeatures: number; sign: boolean } {
  const [outFeatures, inFeatures] = view.shape('weight');
  const sign = view.spec.type === 'binaryDense' && view.spec.binarizer === 'sign';
  return { inFeatures, outFeatures, sign };
}

/** A binary convolution's geometry and input binarizer. */
function convOf(view: LayerView): {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  stride: number;
  padding: number;
  sign: boolean;
} {
  const spec = view.spec;
  if (spec.type !== 'binaryConv2d') throw new Error(`${view.layer.name} is not a binary convolution`);
  const [outChannels, inChannels, kernelSize] = view.shape('weight');
  return {
    inChannels,
    outChannels,
    kernelSize,
    stride: spec.stride ?? 1,
    padding: spec.padding ?? 0,
    sign: spec.binarizer === 'sign',
  };
}

/** Whether a layer binarizes its input with sign (a binary dense or conv layer with binarizer 'sign'). */
function takesSign(view: LayerView): boolean {
  const spec = view.spec;
  return (spec.type === 'binaryDense' || spec.type === 'binaryConv2d') && spec.binarizer === 'sign';
}

function poolOf(view: LayerView): PoolWindow {
  const spec = view.spec;
  if (spec.type !== 'maxPool2d' && spec.type !== 'avgPool2d')
    throw new Error(`${view.layer.name} is not a pooling layer`);
  return { kernelSize: spec.kernelSize, stride: spec.stride ?? spec.kernelSize, padding: spec.padding ?? 0 };
}

/** A pooling layer as the `.onebit` op of the same window. */
function poolLayer(view: LayerView): MaxPoolLayer | AvgPoolLayer {
  const { kernelSize, stride, padding } = poolOf(view);
  const kind = roleOf(view) === 'max-pool' ? 'maxpool' : 'avgpool';
  return { kind, name: view.layer.name, kernel: kernelSize, stride, padding };
}

/** The layers as plain operations (dropout, the identity in evaluation, is left out). */
function describeViews(views: readonly LayerView[]): NetworkOp[] {
  const ops: NetworkOp[] = [];
  for (const view of views) {
    const exporter = exporterOf(view.spec);
    const name = view.layer.name;
    switch (exporter.role) {
      case 'flatten':
        ops.push({ kind: 'flatten' });
        break;
      case 'identity':
      case 'unsupported': // refused by viewsOf
        break;
      case 'binary-dense': {
        const { inFeatures, outFeatures, sign } = denseOf(view);
        ops.push({
          kind: 'dense',
          name,
          inFeatures,
          outFeatures,
          binarizeInput: sign,
          weight: copy(view.tensor('weight')),
        });
        break;
      }
      case 'binary-conv': {
        const { sign, ...geometry } = convOf(view);
        ops.push({
          kind: 'conv',
          name,
          ...geometry,
          binarizeInput: sign,
          weight: copy(view.tensor('weight')),
        });
        break;
      }
      case 'max-pool':
        ops.push({ kind: 'maxpool', name, ...poolOf(view) });
        break;
      case 'avg-pool':
        ops.push({ kind: 'avgpool', name, ...poolOf(view) });
        break;
      case 'residual':
        ops.push({
          kind: 'residual',
          name,
          body: describeViews(view.body ?? []),
          shortcut:
            view.shortcut === null || view.shortcut === undefined ? null : describeViews(view.shortcut),
        });
        break;
      case 'per-channel':
        ops.push(exporter.describe(view));
        break;
    }
  }
  return ops;
}

/** The model as plain operations (dropout, the identity in evaluation, is left out). */
export function describeNetwork(source: ExportSource): NetworkDescription {
  const views = layerViews(source);
  // A flat spec input still arrives as an image: flatten it first.
  const ops: NetworkOp[] = source.spec.input.length === 1 ? [{ kind: 'flatten' }] : [];
  ops.push(...describeViews(views));
  const out = views.length === 0 ? source.spec.input : views[views.length - 1].outShape;
  if (out.length !== 1 || out[0] !== source.classes)
    throw new ExportError(
      source.path,
      `the model ends with outputs [${out.join(', ')}], expected ${source.classes} classes`,
    );
  return {
    inputShape: source.inputShape,
    classes: source.classes,
    normalization: source.normalization,
    ops,
    metadata: source.metadata,
    temperature: source.temperature,
  };
}

// ---------------------------------------------------------------------------------------------------------
// .onebit: fusion and threshold probing

/** Values per probe input above which a Prober uses fewer rows than the model is planned for. */
const PROBE_VALUES = 1 << 22;

/**
 * Runs `layers` (per-channel elementwise, planned) on `rows` inputs of `channels` channels in evaluation mode.
 * A layer after a convolution was planned for [C, H, W] maps: every one of the `positions` = H * W pixels of
 * channel c gets the same value, and the output of the first pixel is read back.
 */
class Prober {
  private readonly input: FloatArray;
  private readonly output: Float64Array;
  private readonly ctx = { training: false, rng: new Rng(0) };
  /** Rows per probe: at most the batch the model is planned for. */
  readonly maxRows: number;

  constructor(
    private readonly backend: Backend,
    private readonly layers: readonly Layer[],
    readonly channels: number,
    plannedRows: number,
    private readonly positions = 1,
  ) {
    this.maxRows = Math.max(2, Math.min(plannedRows, Math.floor(PROBE_VALUES / (channels * positions))));
    this.input = backend.alloc(this.maxRows * channels * positions);
    this.output = new Float64Array(this.maxRows * channels);
  }

  /** Fills row r, channel c with `value(r, c)` and returns the [rows, channels] output (valid until the next call). */
  run(rows: number, value: (r: number, c: number) => number): Float64Array {
    const x = this.input;
    const n = this.channels;
    const p = this.positions;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < n; c++) {
        const v = value(r, c);
        const base = (r * n + c) * p;
        for (let q = 0; q < p; q++) x[base + q] = v;
      }
    }
    let y: FloatArray = x;
    for (const layer of this.layers) y = layer.forward(y, rows, this.ctx);
    const out = this.output;
    for (let i = 0; i < rows * n; i++) out[i] = y[i * p];
    return out;
  }

  dispose(): void {
    this.backend.free(this.input);
  }
}

/** Per-channel integer thresholds for z in [-k, k], by probing every integer. */
function integerThresholds(
  where: string,
  prober: Prober,
  k: number,
): { thresholds: Int32Array; directions: Int8Array } {
  const n = prober.channels;
  const first = new Int8Array(n); // positivity at z = -k
  const previous = new Int8Array(n);
  const changes = new Int32Array(n);
  const changeAt = new Int32Array(n); // first z whose positivity differs from z - 1
  for (let z0 = -k; z0 <= k; z0 += prober.maxRows) {
    const rows = Math.min(prober.maxRows, k - z0 + 1);
    const y = prober.run(rows, (r) => z0 + r);
    for (let r = 0; r < rows; r++) {
      const z = z0 + r;
      for (let c = 0; c < n; c++) {
        const pos = y[r * n + c] >= 0 ? 1 : 0;
        if (z === -k) first[c] = pos;
        else if (pos !== previous[c]) {
          changes[c]++;
          changeAt[c] = z;
        }
        previous[c] = pos;
      }
    }
  }
  const thresholds = new Int32Array(n);
  const directions = new Int8Array(n);
  for (let c = 0; c < n; c++) {
    directions[c] = 1;
    if (changes[c] > 1) {
      throw new ExportError(
        where,
        `channel ${c}: the sign of the activation is not monotone in the pre-activation (${changes[c]} changes)`,
      );
    }
    if (changes[c] === 0) {
      thresholds[c] = first[c] === 1 ? -(k + 1) : k + 1; // constant +1: never set; constant -1: always set
    } else if (first[c] === 0) {
      thresholds[c] = changeAt[c]; // -1 below, +1 from changeAt on: set iff z < t
    } else {
      directions[c] = -1;
      thresholds[c] = changeAt[c] - 1; // +1 up to changeAt - 1: set iff z > t
    }
  }
  return { thresholds, directions };
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** Order-preserving integer key of a float32 (-0 and +0 share key 0). */
function floatKey(f: number): number {
  F32[0] = f;
  const bits = U32[0];
  return bits & 0x80000000 ? -(bits & 0x7fffffff) : bits;
}

function keyFloat(key: number): number {
  U32[0] = key >= 0 ? key : (-key | 0x80000000) >>> 0;
  return F32[0];
}

/** Per-channel float32 thresholds for real z, by bisection over the float32 values in [-2^100, 2^100]. */
function floatThresholds(where: string, prober: Prober): { thresholds: Float32Array; directions: Int8Array } {
  const n = prober.channels;
  const lo = new Float64Array(n).fill(floatKey(-(2 ** 100)));
  const hi = new Float64Array(n).fill(floatKey(2 ** 100));
  const ends = prober.run(2, (r) => (r === 0 ? -(2 ** 100) : 2 ** 100));
  const posLo = new Int8Array(n);
  const posHi = new Int8Array(n);
  for (let c = 0; c < n; c++) {
    posLo[c] = ends[c] >= 0 ? 1 : 0;
    posHi[c] = ends[n + c] >= 0 ? 1 : 0;
  }
  for (let step = 0; step < 40; step++) {
    let open = 0;
    for (let c = 0; c < n; c++) if (hi[c] - lo[c] > 1) open++;
    if (open === 0) break;
    const mid = new Float64Array(n);
    for (let c = 0; c < n; c++) mid[c] = Math.floor((lo[c] + hi[c]) / 2);
    const y = prober.run(1, (_, c) => keyFloat(mid[c]));
    for (let c = 0; c < n; c++) {
      if (posLo[c] === posHi[c] || hi[c] - lo[c] <= 1) continue;
      const pos = y[c] >= 0 ? 1 : 0;
      if (pos === posLo[c]) lo[c] = mid[c];
      else hi[c] = mid[c];
    }
  }
  const thresholds = new Float32Array(n);
  const directions = new Int8Array(n);
  for (let c = 0; c < n; c++) {
    directions[c] = 1;
    if (posLo[c] === posHi[c]) thresholds[c] = posLo[c] === 1 ? -Infinity : Infinity;
    else if (posLo[c] === 0)
      thresholds[c] = keyFloat(hi[c]); // +1 from hi on: set iff z < t
    else {
      directions[c] = -1;
      thresholds[c] = keyFloat(lo[c]); // +1 up to lo: set iff z > t
    }
  }
  // Check the transition is where bisection put it.
  const check = prober.run(2, (r, c) =>
    directions[c] === 1
      ? r === 0
        ? keyFloat(floatKey(thresholds[c]) - 1)
        : thresholds[c]
      : r === 0
        ? thresholds[c]
        : keyFloat(floatKey(thresholds[c]) + 1),
  );
  for (let c = 0; c < n; c++) {
    if (!Number.isFinite(thresholds[c])) continue;
    const a = check[c] >= 0;
    const b = check[n + c] >= 0;
    if (a === b)
      throw new ExportError(where, `channel ${c}: no sign change at the bisected threshold ${thresholds[c]}`);
  }
  return { thresholds, directions };
}

/** Scale and bias (and activation) of per-channel layers that feed reals, folded; checked against the layers. */
function foldReal(
  where: string,
  prober: Prober,
  post: readonly LayerView[],
  k: number,
  integerInput: boolean,
): { scale: Float32Array; bias: Float32Array; activation: Activation } {
  const n = prober.channels;
  const fold: Fold = {
    mul: new Float64Array(n).fill(1),
    add: new Float64Array(n),
    activation: 'none',
    exact: true,
    batchNorms: 0,
  };
  for (const view of post) {
    const exporter = exporterOf(view.spec);
    if (exporter.role === 'identity') continue;
    if (exporter.role !== 'per-channel') {
      throw new ExportError(
        where,
        `${view.layer.name} (${view.spec.type}) cannot be folded into scale and bias`,
      );
    }
    if (fold.activation !== 'none')
      throw new ExportError(where, `${view.layer.name} after the activation cannot be folded`);
    exporter.fold(view, fold);
  }
  const { activation } = fold;
  const scale = Float32Array.from(fold.mul);
  const bias = Float32Array.from(fold.add);
  // Check against the layers themselves on a spread of inputs.
  const rows = Math.min(prober.maxRows, 64);
  const z = (r: number): number =>
    integerInput ? Math.round(-k + (2 * k * r) / (rows - 1)) : -8 + (16 * r) / (rows - 1);
  const y = prober.run(rows, (r) => z(r));
  let worst = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < n; c++) {
      let v = Math.fround(z(r) * scale[c] + bias[c]);
      if (activation === 'relu') v = v > 0 ? v : 0;
      else if (activation === 'hardtanh') v = Math.min(1, Math.max(-1, v));
      const err = Math.abs(v - y[r * n + c]) / Math.max(1, Math.abs(y[r * n + c]));
      worst = Math.max(worst, err);
    }
  }
  const tolerance = fold.exact && integerInput ? 0 : 1e-5;
  if (!(worst <= tolerance)) {
    throw new ExportError(
      where,
      `folded scale and bias disagree with the model's layers (relative error ${worst})`,
    );
  }
  return { scale, bias, activation };
}

/** What flows between exported layers, and what the exporter must remember about it. */
interface ExportFlow {
  kind: 'real' | 'bits';
  /** Per-example shape: [features] or [C, H, W]. */
  shape: readonly number[];
  /**
   * Bound K on |value| when the values are integer pre-activations of a bits-input layer (|z| <= K; their
   * thresholds are then probed at every integer), else null.
   */
  integerBound: number | null;
  /**
   * After a flatten of a map in 'hwc' order: engine feature i is training feature order[i] (the next dense
   * layer's columns, and any per-feature layer before it, are permuted by it).
   */
  order: Int32Array | null;
  /** Whether a layer has run (a flatten of the raw input keeps the image's own 'chw' order). */
  started: boolean;
}

/** Whether the layers from `start` feed a layer that binarizes with sign, through nothing but max pooling, flatten or dropout. */
function feedsSign(views: readonly LayerView[], start: number): boolean {
  for (let i = start; i < views.length; i++) {
    const role = roleOf(views[i]);
    if (role === 'identity' || role === 'flatten' || role === 'max-pool') continue;
    return (role === 'binary-dense' || role === 'binary-conv') && takesSign(views[i]);
  }
  return false;
}

/** The index after the per-channel (and dropout) layers from `start`. */
function perChannelRun(views: readonly LayerView[], start: number): number {
  let j = start;
  while (j < views.length && (roleOf(views[j]) === 'per-channel' || roleOf(views[j]) === 'identity')) j++;
  return j;
}

/** Applies `order` to per-feature values (engine feature i gets training feature order[i]). */
function permute<T extends Float32Array | Int32Array | Int8Array>(values: T, order: Int32Array | null): T {
  if (order === null) return values;
  const out = values.slice() as T;
  for (let i = 0; i < order.length; i++) out[i] = values[order[i]];
  return out;
}

/**
 * The output of a layer (or a pooled map) through the per-channel layers `post`: signs folded into thresholds
 * when `bits`, else scale, bias and activation. `shape` is what `post` receives.
 */
function foldedOutput(
  source: ExportSource,
  where: string,
  post: readonly LayerView[],
  shape: readonly number[],
  integerBound: number | null,
  bits: boolean,
): DenseOutput {
  const channels = shape[0];
  const positions = shape.length === 3 ? shape[1] * shape[2] : 1;
  const prober = new Prober(
    source.backend,
    post.map((v) => v.layer),
    channels,
    source.maxBatch,
    positions,
  );
  try {
    if (bits) {
      const t =
        integerBound !== null
          ? integerThresholds(where, prober, integerBound)
          : floatThresholds(where, prober);
      return { kind: 'bits', ...t };
    }
    return {
      kind: 'real',
      ...foldReal(where, prober, post, integerBound ?? 0, integerBound !== null),
    };
  } finally {
    prober.dispose();
  }
}

/** Signs of +-1 weights in the engine's column order: conv columns (i, j, c), dense columns permuted. */
function convColumns(weight: FloatArray, n: number, c: number, k: number): Float32Array {
  const taps = k * k * c;
  const out = new Float32Array(n * taps);
  for (let o = 0; o < n; o++)
    for (let ch = 0; ch < c; ch++)
      for (let t = 0; t < k * k; t++) out[o * taps + t * c + ch] = weight[(o * c + ch) * k * k + t];
  return out;
}

/**
 * A convolution followed directly by max pooling and then per-channel layers (vgg-small: conv -> maxpool ->
 * batch norm -> activation) can fold those layers into its own output stage, with the pooling moved after
 * them, when they are non-decreasing in every channel: then f(max z) = max f(z), and for signs the maximum of
 * +-1 values is an AND of bits, so the pooled map never exists in reals. Non-decreasing means every
 * threshold has direction +1 (signs), or every folded scale is positive (reals; relu and hardtanh are
 * monotone). Returns that output stage and where the pools and the folded layers end, or null when the
 * layers are not like that (a negative batch-norm gamma, for one); the caller then pools the raw
 * pre-activations and applies the layers after it.
 */
function poolFirst(
  source: ExportSource,
  where: string,
  views: readonly LayerView[],
  start: number,
  integerBound: number | null,
): { output: DenseOutput; poolsEnd: number; end: number } | null {
  let poolsEnd = start;
  while (poolsEnd < views.length && roleOf(views[poolsEnd]) === 'max-pool') poolsEnd++;
  if (poolsEnd === start) return null;
  const end = perChannelRun(views, poolsEnd);
  const post = views.slice(poolsEnd, end);
  if (post.every((v) => roleOf(v) === 'identity')) return null;
  const bits = feedsSign(views, end);
  const output = foldedOutput(source, where, post, views[poolsEnd].inShape, integerBound, bits);
  const monotone =
    output.kind === 'bits' ? output.directions.every((d) => d === 1) : output.scale.every((a) => a > 0);
  return monotone ? { output, poolsEnd, end } : null;
}

/** Exports `views` (a model's layers or a residual branch) from `flow`, appending to `out`. */
function exportViews(
  source: ExportSource,
  views: readonly LayerView[],
  flow: ExportFlow,
  out: OnebitLayer[],
): void {
  let i = 0;
  while (i < views.length) {
    const view = views[i];
    const role = roleOf(view);
    const name = view.layer.name;
    const where = `${source.path}: ${name}`;
    switch (role) {
      case 'identity':
      case 'unsupported': // refused by viewsOf
        i++;
        break;
      case 'flatten': {
        if (flow.shape.length === 3) {
          const [c, h, w] = flow.shape;
          if (!flow.started || c === 1 || h * w === 1) {
            out.push({ kind: 'flatten' });
          } else {
            out.push({ kind: 'flatten', layout: 'hwc' });
            const order = new Int32Array(c * h * w);
            for (let p = 0; p < h * w; p++) for (let ch = 0; ch < c; ch++) order[p * c + ch] = ch * h * w + p;
            flow.order = order;
          }
          flow.shape = [c * h * w];
        }
        i++;
        break;
      }
      case 'binary-dense':
      case 'binary-conv': {
        const sign = takesSign(view);
        if (sign && flow.kind === 'real') {
          // The binarizer of a layer that takes real values (after average pooling, a residual block, or at the
          // start of one): sign(x) = +1 iff x >= 0, a threshold at 0.
          const c = flow.shape[0];
          out.push({
            kind: 'threshold',
            name: `${name}_sign`,
            channels: c,
            thresholds: new Float32Array(c),
            directions: new Int8Array(c).fill(1),
          });
          flow.kind = 'bits';
        }
        if (!sign && flow.kind === 'bits')
          throw new ExportError(where, 'takes real values, but the layers before it give signs');
        const end = perChannelRun(views, i + 1);
        const post = views.slice(i + 1, end);
        const bits = feedsSign(views, end);
        const input = flow.kind;
        const integerIn = input === 'bits';
        if (role === 'binary-dense') {
          const { inFeatures, outFeatures } = denseOf(view);
          const weight = view.tensor('weight');
          const columns = flow.order;
          const rows =
            columns === null
              ? weight
              : Float32Array.from({ length: outFeatures * inFeatures }, (_, q) => {
                  const o = Math.floor(q / inFeatures);
                  return weight[o * inFeatures + columns[q % inFeatures]];
                });
          const output = foldedOutput(
            source,
            where,
            post,
            [outFeatures],
            integerIn ? inFeatures : null,
            bits,
          );
          out.push({
            kind: 'dense',
            name,
            input,
            inFeatures,
            outFeatures,
            weights: packSignRows(rows, outFeatures, inFeatures),
            output,
          });
          flow.shape = [outFeatures];
          flow.integerBound = output.kind === 'real' && integerIn && post.length === 0 ? inFeatures : null;
          flow.order = null;
          flow.kind = output.kind;
        } else {
          const g = convOf(view);
          const taps = g.kernelSize * g.kernelSize * g.inChannels;
          const shape = view.outShape;
          const pooled =
            post.length === 0 ? poolFirst(source, where, views, end, integerIn ? taps : null) : null;
          const output =
            pooled?.output ?? foldedOutput(source, where, post, shape, integerIn ? taps : null, bits);
          out.push({
            kind: 'conv2d',
            name,
            input,
            inChannels: g.inChannels,
            outChannels: g.outChannels,
            kernel: g.kernelSize,
            stride: g.stride,
            padding: g.padding,
            weights: packSignRows(
              convColumns(view.tensor('weight'), g.outChannels, g.inChannels, g.kernelSize),
              g.outChannels,
              taps,
            ),
            output,
          });
          flow.shape = shape;
          flow.kind = output.kind;
          // The identity output of a bits conv carries integer z (for a pooled batch norm's integer thresholds).
          flow.integerBound = output.kind === 'real' && integerIn && post.length === 0 ? taps : null;
          if (pooled !== null) {
            // The pools, now after the folded layers, then past those layers.
            for (const pool of views.slice(end, pooled.poolsEnd)) {
              out.push(poolLayer(pool));
              flow.shape = pool.outShape;
            }
            flow.started = true;
            i = pooled.end;
            break;
          }
        }
        flow.started = true;
        i = end;
        break;
      }
      case 'max-pool':
      case 'avg-pool': {
        if (role === 'avg-pool' && flow.kind === 'bits')
          throw new ExportError(where, 'average pooling of signs is not supported: pool before the sign');
        out.push(poolLayer(view));
        flow.shape = view.outShape;
        if (role === 'avg-pool') flow.integerBound = null;
        flow.started = true;
        i++;
        break;
      }
      case 'per-channel': {
        // Per-channel layers that do not follow a binary layer (after pooling or a residual block): one
        // threshold or affine op over the values as they are.
        if (flow.kind === 'bits')
          throw new ExportError(where, 'a per-channel layer after signs is not supported');
        const end = perChannelRun(views, i);
        const post = views.slice(i, end);
        const bits = feedsSign(views, end);
        const output = foldedOutput(source, where, post, flow.shape, flow.integerBound, bits);
        const channels = flow.shape[0];
        if (output.kind === 'bits') {
          out.push({
            kind: 'threshold',
            name,
            channels,
            thresholds: permute(Float32Array.from(output.thresholds), flow.order),
            directions: permute(output.directions, flow.order),
          });
          flow.kind = 'bits';
        } else {
          out.push({
            kind: 'affine',
            name,
            channels,
            scale: permute(output.scale, flow.order),
            bias: permute(output.bias, flow.order),
            activation: output.activation,
          });
        }
        flow.integerBound = null;
        flow.started = true;
        i = end;
        break;
      }
      case 'residual': {
        if (flow.kind === 'bits')
          throw new ExportError(where, 'a residual block after signs is not supported');
        const branch = (branchViews: readonly LayerView[] | null | undefined): OnebitLayer[] | null => {
          if (branchViews === null || branchViews === undefined) return null;
          const layers: OnebitLayer[] = [];
          const f: ExportFlow = { ...flow, started: true };
          exportViews(source, branchViews, f, layers);
          if (f.kind !== 'real') throw new ExportError(where, 'a residual branch must end with real values');
          return layers;
        };
        const body = branch(view.body) ?? [];
        out.push({ kind: 'residual', name, body, shortcut: branch(view.shortcut) });
        flow.shape = view.outShape;
        flow.integerBound = null;
        flow.order = null;
        flow.started = true;
        i++;
        break;
      }
    }
  }
}

/**
 * The source's model as a `.onebit` model: packed weights, batch norm folded into thresholds (1-bit
 * activations) or scale and bias (real activations, logits), pooling, residual blocks, and the input
 * normalisation. Conv weights are packed in (i, j, c) column order and a flatten of a feature map is 'hwc'
 * with the next dense layer's columns permuted to match (src/engine/format.ts).
 */
export function buildOnebitModel(source: ExportSource): OnebitModel {
  const views = layerViews(source);
  if (!views.some((v) => roleOf(v) === 'binary-dense' || roleOf(v) === 'binary-conv'))
    throw new ExportError(source.path, 'the model has no binary dense or convolution layer');
  const out: OnebitLayer[] = [];
  // The format's input is an image: a flat spec input is flattened first.
  if (source.spec.input.length === 1) out.push({ kind: 'flatten' });
  const flow: ExportFlow = {
    kind: 'real',
    shape: source.spec.input.length === 1 ? source.spec.input : [...source.inputShape],
    integerBound: null,
    order: null,
    started: false,
  };
  exportViews(source, views, flow, out);
  const { mean, std } = source.normalization;
  return {
    input: { shape: source.inputShape, mean: [...mean], std: [...std] },
    classes: source.classes,
    layers: out,
    metadata: source.metadata,
    ...(source.temperature !== 1 ? { temperature: source.temperature } : {}),
  };
}
