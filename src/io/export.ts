/**
 * Export of a trained checkpoint for inference: the training model rebuilt from the checkpoint in
 * evaluation mode (the method's mode weights, batch-norm running statistics), described as a plain list
 * of operations (`describeNetwork`, used by the ONNX writer), and folded into a `.onebit` model
 * (`buildOnebitModel`, src/engine/format.ts).
 *
 * Folding batch norm into thresholds. After a binary layer come per-channel elementwise layers (optional
 * ChannelScale, BatchNorm, the activation, dropout); when the next binary layer binarizes its input, all
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
 * Probing uses the backend the model was rebuilt on; the engine matches the training model in evaluation
 * on that backend (the float32 wasm backend, as `onebit eval` uses by default).
 *
 * When the next layer takes reals (1W32A, or the logits), the layers fold into scale and bias per
 * channel: with batch norm alone this is exactly the training-time float32 arithmetic (scale = 1/sqrt(var +
 * eps) and bias = -mean * scale, both rounded to float32 as BatchNorm rounds them); with an affine batch
 * norm or a channel scale, the product is folded in float64 and rounded once.
 */
import { ExportError } from '../errors.js';
import type { Backend, FloatArray } from '../backend/backend.js';
import {
  packSignRows,
  type Activation,
  type DenseLayer,
  type DenseOutput,
  type OnebitLayer,
  type OnebitModel,
} from '../engine/format.js';
import { BatchNorm } from '../nn/batch-norm.js';
import { BinaryConv2d } from '../nn/binary-conv2d.js';
import { BinaryDense } from '../nn/binary-dense.js';
import { ChannelScale } from '../nn/channel-scale.js';
import { Dropout } from '../nn/dropout.js';
import { Flatten } from '../nn/flatten.js';
import { Hardtanh } from '../nn/hardtanh.js';
import type { Layer } from '../nn/layer.js';
import { ReLU } from '../nn/relu.js';
import { Sequential } from '../nn/sequential.js';
import { Rng } from '../tensor/rng.js';
import { loadCheckpoint, type Checkpoint } from '../train/checkpoint.js';
import { createRun, disposeRun, restoreRun, runTensors, type Run } from '../train/run.js';
import type { TensorData } from './tensor-file.js';

/** Batch size the rebuilt model is planned for: rows per probe. */
const PROBE_BATCH = 256;

/** A checkpoint's model rebuilt in evaluation mode, with the mode weights written. */
export interface ExportSource {
  readonly path: string;
  readonly checkpoint: Checkpoint;
  readonly run: Run;
  readonly inputShape: readonly [number, number, number];
  readonly classes: number;
  dispose(): void;
}

const DATASET_SHAPES: Readonly<Record<string, readonly [number, number, number]>> = {
  'fashion-mnist': [1, 28, 28],
  mnist: [1, 28, 28],
  'synthetic-mnist': [1, 28, 28],
  cifar10: [3, 32, 32],
  cifar100: [3, 32, 32],
  'synthetic-cifar': [3, 32, 32],
};

/** Per-example input shape of a data set by name (the checkpoint at `path` names it); ExportError if unknown. */
export function datasetInputShape(path: string, data: string): readonly [number, number, number] {
  const inputShape = DATASET_SHAPES[data];
  if (inputShape === undefined)
    throw new ExportError(path, `unknown data set "${data}": cannot tell the input shape`);
  return inputShape;
}

/** Per-example input shape and class count of a checkpoint, without loading its data set. */
export function checkpointShape(
  path: string,
  checkpoint: Checkpoint,
): { inputShape: readonly [number, number, number]; classes: number } {
  const inputShape = datasetInputShape(path, checkpoint.meta.config.data);
  // The logits' batch norm is the last one: bn<L> with the largest L.
  let last = -1;
  let classes = 0;
  for (const [name, value] of checkpoint.tensors) {
    const m = /^model\/bn(\d+)\.running_mean$/.exec(name);
    if (m !== null && Number(m[1]) > last) {
      last = Number(m[1]);
      classes = value.length;
    }
  }
  if (classes < 1)
    throw new ExportError(path, 'no batch-norm statistics found: cannot tell the number of classes');
  return { inputShape, classes };
}

/**
 * Rebuilds the checkpoint's model on `backend` (use the float32 wasm backend to match `onebit eval`), restores
 * its state and writes the method's mode weights (method.predict('mode')).
 */
export function openForExport(path: string, backend: Backend): ExportSource {
  const checkpoint = loadCheckpoint(path);
  const { inputShape, classes } = checkpointShape(path, checkpoint);
  const run = createRun(
    checkpoint.meta.config,
    backend,
    { inputShape, classes, stepsPerEpoch: 1, trainingExamples: 1 },
    PROBE_BATCH,
  );
  try {
    restoreRun(run, path, checkpoint);
    run.method.predict('mode', new Rng(0));
    for (const p of run.binaryParameters) {
      for (let i = 0; i < p.value.length; i++) {
        if (p.value[i] !== 1 && p.value[i] !== -1) {
          throw new ExportError(
            path,
            `binary weight ${p.name}[${i}] is ${p.value[i]} after predict('mode'), not +-1`,
          );
        }
      }
    }
  } catch (error) {
    disposeRun(run);
    throw error;
  }
  return { path, checkpoint, run, inputShape, classes, dispose: () => disposeRun(run) };
}

/**
 * An export source for a run that lives in memory (benchmarks, tests): its current parameters, with the
 * method's mode weights written, and the given input normalisation. `dispose` leaves the run to its owner.
 */
export function sourceFromRun(
  run: Run,
  normalization: { readonly mean: readonly number[]; readonly std: readonly number[] },
  name = '<run>',
): ExportSource {
  run.method.predict('mode', new Rng(0));
  const [c, h, w] = run.shape.inputShape;
  const checkpoint: Checkpoint = {
    meta: {
      config: run.config,
      epoch: 0,
      step: 0,
      rng: run.rng.getState(),
      methodScalars: run.method.stateScalars(),
      optimizerScalars: {},
      normalization,
    },
    tensors: new Map(runTensors(run).map((t) => [t.name, t.value as TensorData])),
  };
  return {
    path: name,
    checkpoint,
    run,
    inputShape: [c, h, w],
    classes: run.shape.classes,
    dispose: () => undefined,
  };
}

// ---------------------------------------------------------------------------------------------------------
// The network as a list of operations (for ONNX and for reports)

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
  | { readonly kind: 'hardtanh'; readonly name: string };

export interface NetworkDescription {
  readonly inputShape: readonly [number, number, number];
  readonly classes: number;
  readonly normalization: { readonly mean: readonly number[]; readonly std: readonly number[] };
  readonly ops: readonly NetworkOp[];
  readonly metadata: Readonly<Record<string, string | number | boolean>>;
}

function modelLayers(source: ExportSource): readonly Layer[] {
  const model = source.run.model;
  if (!(model instanceof Sequential))
    throw new ExportError(source.path, 'only sequential models can be exported');
  return model.layers;
}

function copy(x: FloatArray): Float32Array {
  return Float32Array.from(x);
}

function named(layer: Layer, name: string): FloatArray {
  const p = layer.parameters().find((q) => q.name === name);
  if (p === undefined) throw new Error(`${layer.name}: no parameter ${name}`);
  return p.value;
}

function stateOf(layer: Layer, name: string): FloatArray {
  const s = layer.stateBuffers().find((q) => q.name === name);
  if (s === undefined) throw new Error(`${layer.name}: no state ${name}`);
  return s.value;
}

/** The model as plain operations (dropout, the identity in evaluation, is left out). */
export function describeNetwork(source: ExportSource): NetworkDescription {
  const ops: NetworkOp[] = [];
  let features = 0;
  for (const layer of modelLayers(source)) {
    if (layer instanceof Flatten) {
      ops.push({ kind: 'flatten' });
      features = source.inputShape[0] * source.inputShape[1] * source.inputShape[2];
    } else if (layer instanceof Dropout) {
      continue;
    } else if (layer instanceof BinaryDense) {
      const [outFeatures, inFeatures] = layer.weight.shape;
      ops.push({
        kind: 'dense',
        name: layer.name,
        inFeatures,
        outFeatures,
        binarizeInput: layer.config.binarizer === 'sign',
        weight: copy(layer.weight.value),
      });
      features = outFeatures;
    } else if (layer instanceof ChannelScale) {
      ops.push({ kind: 'scale', name: layer.name, alpha: copy(layer.scale.value) });
    } else if (layer instanceof BatchNorm) {
      ops.push({
        kind: 'batchnorm',
        name: layer.name,
        mean: copy(stateOf(layer, 'running_mean')),
        variance: copy(stateOf(layer, 'running_var')),
        eps: layer.eps,
        gamma: layer.affine ? copy(named(layer, 'weight')) : null,
        beta: layer.affine ? copy(named(layer, 'bias')) : null,
      });
    } else if (layer instanceof ReLU) {
      ops.push({ kind: 'relu', name: layer.name });
    } else if (layer instanceof Hardtanh) {
      ops.push({ kind: 'hardtanh', name: layer.name });
    } else if (layer instanceof BinaryConv2d) {
      throw new ExportError(
        source.path,
        `layer ${layer.name}: convolutions are not supported by the exporter yet (MLP models only)`,
      );
    } else {
      throw new ExportError(
        source.path,
        `layer ${layer.name} (${layer.constructor.name}) is not supported by the exporter`,
      );
    }
  }
  if (features !== source.classes)
    throw new ExportError(
      source.path,
      `the model ends with ${features} outputs, expected ${source.classes} classes`,
    );
  return {
    inputShape: source.inputShape,
    classes: source.classes,
    normalization: source.checkpoint.meta.normalization,
    ops,
    metadata: exportMetadata(source),
  };
}

function exportMetadata(source: ExportSource): Record<string, string | number | boolean> {
  const { config, epoch, step } = source.checkpoint.meta;
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

// ---------------------------------------------------------------------------------------------------------
// .onebit: fusion and threshold probing

/** Runs `layers` (per-channel elementwise, planned) on `rows` x `channels` inputs, in evaluation mode. */
class Prober {
  private readonly input: FloatArray;
  private readonly ctx = { training: false, rng: new Rng(0) };

  constructor(
    private readonly backend: Backend,
    private readonly layers: readonly Layer[],
    readonly channels: number,
    /** Rows per probe: the batch the model is planned for. */
    readonly maxRows: number,
  ) {
    this.input = backend.alloc(maxRows * channels);
  }

  /** Fills row r with `value(r, c)` and returns the output (a view valid until the next call). */
  run(rows: number, value: (r: number, c: number) => number): FloatArray {
    const x = this.input;
    const n = this.channels;
    for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) x[r * n + c] = value(r, c);
    let y: FloatArray = x;
    for (const layer of this.layers) y = layer.forward(y, rows, this.ctx);
    return y;
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
  post: readonly Layer[],
  k: number,
  integerInput: boolean,
): { scale: Float32Array; bias: Float32Array; activation: Activation } {
  const n = prober.channels;
  const mul = new Float64Array(n).fill(1);
  const add = new Float64Array(n);
  let activation: Activation = 'none';
  let exact = true;
  let seenBn = false;
  for (const layer of post) {
    if (activation !== 'none')
      throw new ExportError(where, `${layer.name} after the activation cannot be folded`);
    if (layer instanceof ChannelScale) {
      const alpha = layer.scale.value;
      for (let c = 0; c < n; c++) {
        mul[c] *= alpha[c];
        add[c] *= alpha[c];
      }
      exact = false;
    } else if (layer instanceof BatchNorm) {
      const rm = stateOf(layer, 'running_mean');
      const rv = stateOf(layer, 'running_var');
      for (let c = 0; c < n; c++) {
        // As BatchNorm.forward in evaluation: invStd and the shift rounded to the backend's dtype.
        const invStd = Math.fround(1 / Math.sqrt(rv[c] + layer.eps));
        const shift = Math.fround(-rm[c] * invStd);
        mul[c] *= invStd;
        add[c] = add[c] * invStd + shift;
      }
      if (seenBn) exact = false;
      seenBn = true;
      if (layer.affine) {
        const gamma = named(layer, 'weight');
        const beta = named(layer, 'bias');
        for (let c = 0; c < n; c++) {
          mul[c] *= gamma[c];
          add[c] = add[c] * gamma[c] + beta[c];
        }
        exact = false;
      }
    } else if (layer instanceof ReLU) activation = 'relu';
    else if (layer instanceof Hardtanh) activation = 'hardtanh';
    else if (!(layer instanceof Dropout)) {
      throw new ExportError(
        where,
        `${layer.name} (${layer.constructor.name}) cannot be folded into scale and bias`,
      );
    }
  }
  const scale = Float32Array.from(mul);
  const bias = Float32Array.from(add);
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
  const tolerance = exact && integerInput ? 0 : 1e-5;
  if (!(worst <= tolerance)) {
    throw new ExportError(
      where,
      `folded scale and bias disagree with the model's layers (relative error ${worst})`,
    );
  }
  return { scale, bias, activation };
}

/**
 * The checkpoint's model as a `.onebit` model: packed weights, batch norm folded into thresholds (1-bit
 * activations) or scale and bias (real activations, logits), and the input normalisation.
 */
export function buildOnebitModel(source: ExportSource): OnebitModel {
  const backend = source.run.backend;
  const layers = modelLayers(source);
  const out: OnebitLayer[] = [];
  const denseIndices = layers.flatMap((l, i) => (l instanceof BinaryDense ? [i] : []));
  if (denseIndices.length === 0) throw new ExportError(source.path, 'the model has no binary dense layer');
  for (let i = 0; i < denseIndices[0]; i++) {
    const l = layers[i];
    if (l instanceof Flatten) out.push({ kind: 'flatten' });
    else if (!(l instanceof Dropout))
      throw new ExportError(
        source.path,
        `layer ${l.name} (${l.constructor.name}) before the first dense layer is not supported`,
      );
  }
  let inputKind = 'real' as 'real' | 'bits';
  for (let d = 0; d < denseIndices.length; d++) {
    const layer = layers[denseIndices[d]] as BinaryDense;
    const where = `${source.path}: ${layer.name}`;
    const end = d + 1 < denseIndices.length ? denseIndices[d + 1] : layers.length;
    const post = layers.slice(denseIndices[d] + 1, end);
    for (const l of post) {
      if (!(
        l instanceof ChannelScale ||
        l instanceof BatchNorm ||
        l instanceof ReLU ||
        l instanceof Hardtanh ||
        l instanceof Dropout
      )) {
        throw new ExportError(
          where,
          `layer ${l.name} (${l.constructor.name}) after a dense layer is not supported`,
        );
      }
    }
    const [outFeatures, inFeatures] = layer.weight.shape;
    const next = d + 1 < denseIndices.length ? (layers[denseIndices[d + 1]] as BinaryDense) : null;
    const nextTakesBits = next !== null && next.config.binarizer === 'sign';
    const prober = new Prober(backend, post, outFeatures, source.run.maxBatch);
    let output: DenseOutput;
    try {
      if (nextTakesBits) {
        const t: { thresholds: Int32Array | Float32Array; directions: Int8Array } =
          inputKind === 'bits'
            ? integerThresholds(where, prober, inFeatures)
            : floatThresholds(where, prober);
        output = { kind: 'bits', ...t };
      } else {
        output = { kind: 'real', ...foldReal(where, prober, post, inFeatures, inputKind === 'bits') };
      }
    } finally {
      prober.dispose();
    }
    const dense: DenseLayer = {
      kind: 'dense',
      name: layer.name,
      input: inputKind,
      inFeatures,
      outFeatures,
      weights: packSignRows(layer.weight.value, outFeatures, inFeatures),
      output,
    };
    out.push(dense);
    inputKind = output.kind === 'bits' ? 'bits' : 'real';
  }
  const { mean, std } = source.checkpoint.meta.normalization;
  return {
    input: { shape: source.inputShape, mean: [...mean], std: [...std] },
    classes: source.classes,
    layers: out,
    metadata: exportMetadata(source),
  };
}
