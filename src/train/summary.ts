/**
 * Model summary in the spirit of Larq's `summary`: per layer, parameters by precision, memory, and
 * multiply-accumulates by precision of (input, weight); totals, compression against float32, and the
 * training state a method keeps per binary weight.
 *
 * The summary reads the spec, not built layers: each layer type describes itself in one table (SUMMARY),
 * so a new layer type is one entry there, and the compiler refuses a type without one. Nothing is planned
 * or allocated, so a model the caller passes in is left exactly as it was.
 */
import { createReferenceBackend } from '../backend/reference/index.js';
import { layerNames, Model } from '../nn/models.js';
import { layerShapes, type LayerSpec, type LayerType, type ModelSpec } from '../nn/spec.js';
import { Normalizer } from '../data/pipeline.js';
import { createLearner } from '../methods/registry.js';
import { Rng } from '../tensor/rng.js';
import type { Shape } from '../tensor/shape.js';
import { shapeSize } from '../tensor/shape.js';

export interface LayerSummary {
  readonly name: string;
  /** The layer's spec type ("binaryDense", "batchNorm", "residual", ...). */
  readonly kind: LayerType;
  readonly outputShape: Shape;
  readonly binaryParameters: number;
  /** Real-valued parameters plus float32 state kept for inference (batch-norm statistics). */
  readonly realParameters: number;
  /** Inference memory: 1 bit per binary parameter, 32 bits per real one (batch-norm statistics included). */
  readonly memoryBits: number;
  /** MACs with binary weights on binary inputs (XNOR/popcount). */
  readonly binaryBinaryMacs: number;
  /** MACs with binary weights on real inputs (additions and subtractions only). */
  readonly binaryRealMacs: number;
  /** MACs with real weights. */
  readonly realMacs: number;
}

export interface ModelSummary {
  readonly layers: readonly LayerSummary[];
  readonly totals: Omit<LayerSummary, 'name' | 'kind' | 'outputShape'>;
  readonly memoryBytes: number;
  readonly float32Bytes: number;
  /** float32 size of all parameters divided by the bit-packed size. */
  readonly compressionRatio: number;
  /**
   * Bytes the float layers keep from the forward pass for the backward pass, per example (what STE and the
   * other methods on the float model store): every tensor a layer's backward reads, counted once even when
   * two layers read it (batch norm's output is the next activation's input), float32 unless noted.
   */
  readonly activationBytesPerExample: number;
}

/** The counts a layer (or a residual block, its children summed) adds to the summary, per example. */
interface Counts {
  readonly binaryParameters: number;
  readonly realParameters: number;
  readonly binaryBinaryMacs: number;
  readonly binaryRealMacs: number;
  readonly realMacs: number;
}

/** What a layer's backward reads besides the gradient: its input, its output, and internal buffers (bytes). */
interface BackwardReads {
  readonly input: boolean;
  readonly output: boolean;
  readonly internalBytes: number;
}

/** One layer's description: its counts and what its backward keeps from the forward pass. */
interface LayerFigures extends Counts {
  readonly reads: BackwardReads;
}

/** What a table entry sees of its layer: shapes, and (for residual blocks) a way to describe a branch. */
interface LayerContext {
  readonly input: Shape;
  readonly output: Shape;
  /**
   * Describes `layers` run on this layer's input, as the walk does at the top level (their activations join
   * the same count); returns their summed counts.
   */
  branch(layers: readonly LayerSpec[]): Counts;
}

/** The spec of one layer type: `SpecOf<'relu'>` is ActivationSpec, `SpecOf<'dense'>` is DenseSpec. */
type SpecOf<T extends LayerType> = LayerSpec extends infer S
  ? S extends LayerSpec
    ? T extends S['type']
      ? S
      : never
    : never
  : never;

type Describe<T extends LayerType> = (spec: SpecOf<T>, at: LayerContext) => LayerFigures;

const ZERO: Counts = {
  binaryParameters: 0,
  realParameters: 0,
  binaryBinaryMacs: 0,
  binaryRealMacs: 0,
  realMacs: 0,
};
const READS_NOTHING: BackwardReads = { input: false, output: false, internalBytes: 0 };
const READS_INPUT: BackwardReads = { input: true, output: false, internalBytes: 0 };

/** A layer without parameters whose backward reads `reads`. */
const parameterFree = (reads: BackwardReads): LayerFigures => ({ ...ZERO, reads });

/** A layer with one real float32 value per channel (PReLU slopes, channel scales); backward reads its input. */
const perChannel = (at: LayerContext): LayerFigures => ({
  ...ZERO,
  realParameters: at.input[0],
  reads: READS_INPUT,
});

/**
 * A binary dense or conv layer: `weights` binary values, each used once per output position. Its MACs are
 * XNOR/popcount when it binarizes its input; backward reads the input (dW = g^T x) and, with a binarizer,
 * keeps the signs too (the surrogate gradient reads the real input, the weight gradient its signs).
 */
function binaryLinear(
  weights: number,
  positions: number,
  binarizer: 'none' | 'sign' | undefined,
  at: LayerContext,
): LayerFigures {
  const sign = binarizer === 'sign';
  const macs = weights * positions;
  return {
    ...ZERO,
    binaryParameters: weights,
    binaryBinaryMacs: sign ? macs : 0,
    binaryRealMacs: sign ? 0 : macs,
    reads: { input: true, output: false, internalBytes: sign ? 4 * shapeSize(at.input) : 0 },
  };
}

/** A real dense or conv layer: real weights (and an optional bias, no MACs counted for it). */
function realLinear(weights: number, positions: number, bias: number): LayerFigures {
  return { ...ZERO, realParameters: weights + bias, realMacs: weights * positions, reads: READS_INPUT };
}

/** Output positions of an image output [C, H, W]. */
const positions = (shape: Shape): number => shape[1] * shape[2];

/**
 * Every layer type, from the layers' code. Batch norm keeps its running mean and variance (2 per channel) in
 * float32 for inference, plus scale and shift when affine; its backward reads its normalised output (an
 * internal copy when affine, since the output is then scaled). Max-pooling keeps int32 argmax indices,
 * dropout a float mask; flatten and average pooling read nothing; ReLU, hardtanh, PReLU and the channel
 * scale read their input. A residual block is the sum of its branches.
 */
const SUMMARY: { readonly [T in LayerType]: Describe<T> } = {
  binaryDense: (spec, at) => binaryLinear(spec.units * at.input[0], 1, spec.binarizer, at),
  binaryConv2d: (spec, at) =>
    binaryLinear(spec.filters * at.input[0] * spec.kernelSize ** 2, positions(at.output), spec.binarizer, at),
  dense: (spec, at) => realLinear(spec.units * at.input[0], 1, (spec.bias ?? true) ? spec.units : 0),
  conv2d: (spec, at) =>
    realLinear(
      spec.filters * at.input[0] * spec.kernelSize ** 2,
      positions(at.output),
      (spec.bias ?? true) ? spec.filters : 0,
    ),
  batchNorm: (spec, at) => {
    const channels = at.input[0];
    const affine = spec.affine ?? false;
    return {
      ...ZERO,
      realParameters: (affine ? 4 : 2) * channels,
      reads: affine
        ? { ...READS_NOTHING, internalBytes: 4 * shapeSize(at.input) }
        : { ...READS_NOTHING, output: true },
    };
  },
  relu: () => parameterFree(READS_INPUT),
  hardtanh: () => parameterFree(READS_INPUT),
  prelu: (_spec, at) => perChannel(at),
  channelScale: (_spec, at) => perChannel(at),
  flatten: () => parameterFree(READS_NOTHING),
  maxPool2d: (_spec, at) => parameterFree({ ...READS_NOTHING, internalBytes: 4 * shapeSize(at.output) }),
  avgPool2d: () => parameterFree(READS_NOTHING),
  dropout: (_spec, at) => parameterFree({ ...READS_NOTHING, internalBytes: 4 * shapeSize(at.input) }),
  residual: (spec, at) => {
    const body = at.branch(spec.body);
    const shortcut = spec.shortcut === undefined ? ZERO : at.branch(spec.shortcut);
    // The block's own buffers (the sum, the input gradient) are not read by its backward.
    return { ...addCounts(body, shortcut), reads: READS_NOTHING };
  },
};

function addCounts(a: Counts, b: Counts): Counts {
  return {
    binaryParameters: a.binaryParameters + b.binaryParameters,
    realParameters: a.realParameters + b.realParameters,
    binaryBinaryMacs: a.binaryBinaryMacs + b.binaryBinaryMacs,
    binaryRealMacs: a.binaryRealMacs + b.binaryRealMacs,
    realMacs: a.realMacs + b.realMacs,
  };
}

/** Dispatches on the spec's type; the table's type guarantees each entry gets its own spec type. */
function describeLayer(spec: LayerSpec, at: LayerContext): LayerFigures {
  return (SUMMARY[spec.type] as (spec: LayerSpec, at: LayerContext) => LayerFigures)(spec, at);
}

/** A tensor between layers: its size per example, and whether some backward reads it. */
interface Value {
  readonly size: number;
  read: boolean;
}

/** Walks layer lists, collecting the tensors kept for backward and the layers' internal buffers. */
class ActivationWalk {
  readonly values: Value[] = [];
  internalBytes = 0;

  value(size: number): Value {
    const v = { size, read: false };
    this.values.push(v);
    return v;
  }

  /** Describes `layers` run on `input` (shape `shape`); calls `each` per layer with its figures. */
  walk(
    layers: readonly LayerSpec[],
    shape: Shape,
    input: Value,
    each: (spec: LayerSpec, output: Shape, figures: LayerFigures) => void = () => {},
  ): { counts: Counts; output: Value } {
    // layerShapes reads only `input` and `layers`; branches of a residual block are walked the same way.
    const shapes = layerShapes({ input: shape, classes: 1, layers });
    let counts = ZERO;
    let value = input;
    let inShape = shape;
    layers.forEach((spec, i) => {
      const inValue = value;
      const at: LayerContext = {
        input: inShape,
        output: shapes[i],
        branch: (branch) => this.walk(branch, at.input, inValue).counts,
      };
      const figures = describeLayer(spec, at);
      if (figures.reads.input) inValue.read = true;
      value = this.value(shapeSize(shapes[i]));
      value.read = figures.reads.output;
      this.internalBytes += figures.reads.internalBytes;
      counts = addCounts(counts, figures);
      each(spec, shapes[i], figures);
      inShape = shapes[i];
    });
    return { counts, output: value };
  }

  bytes(): number {
    return this.internalBytes + this.values.reduce((acc, v) => acc + (v.read ? 4 * v.size : 0), 0);
  }
}

/**
 * Summarises a spec (or the spec a model was built from), optionally for another per-example input shape.
 * Layer names are the ones buildModelFromSpec gives (fc1, bn1, conv2, block1, ...).
 */
export function summarizeModel(source: Model | ModelSpec, inputShape?: Shape): ModelSummary {
  const given = source instanceof Model ? source.spec : source;
  const spec: ModelSpec = inputShape === undefined ? given : { ...given, input: inputShape };
  const names = layerNames(spec);
  const walk = new ActivationWalk();
  const layers: LayerSummary[] = [];
  walk.walk(spec.layers, spec.input, walk.value(shapeSize(spec.input)), (layer, outputShape, f) => {
    layers.push({
      name: names[layers.length],
      kind: layer.type,
      outputShape,
      binaryParameters: f.binaryParameters,
      realParameters: f.realParameters,
      memoryBits: f.binaryParameters + 32 * f.realParameters,
      binaryBinaryMacs: f.binaryBinaryMacs,
      binaryRealMacs: f.binaryRealMacs,
      realMacs: f.realMacs,
    });
  });
  const sum = (key: keyof Omit<LayerSummary, 'name' | 'kind' | 'outputShape'>): number =>
    layers.reduce((acc, l) => acc + l[key], 0);
  const totals = {
    binaryParameters: sum('binaryParameters'),
    realParameters: sum('realParameters'),
    memoryBits: sum('memoryBits'),
    binaryBinaryMacs: sum('binaryBinaryMacs'),
    binaryRealMacs: sum('binaryRealMacs'),
    realMacs: sum('realMacs'),
  };
  const memoryBytes = Math.ceil(totals.memoryBits / 8);
  const float32Bytes = 4 * (totals.binaryParameters + totals.realParameters);
  return {
    layers,
    totals,
    memoryBytes,
    float32Bytes,
    compressionRatio: float32Bytes / memoryBytes,
    activationBytesPerExample: walk.bytes(),
  };
}

/** What a method keeps to train a model: measured from a learner built on the reference backend. */
export interface TrainingMemoryFigures {
  /** Bytes of the method's state tensors per binary weight. */
  readonly stateBytesPerWeight: number;
  /** Bytes the training step keeps from the forward pass for the backward pass, per example. */
  readonly activationBytesPerExample: number;
}

/** Builds the method's learner for `spec` (batch 1, reference backend) and measures its training memory. */
export function measureTrainingMemory(
  spec: ModelSpec,
  method: string,
  methodOptions: Readonly<Record<string, number | string | boolean>>,
): TrainingMemoryFigures {
  const backend = createReferenceBackend('float32');
  const channels = spec.input.length === 3 ? spec.input[0] : 1;
  const learner = createLearner(method, methodOptions, {
    spec,
    backend,
    rng: new Rng(0),
    maxBatch: 1,
    context: { trainingExamples: 1, stepsPerEpoch: 1, learningRate: 1e-3, totalSteps: 1 },
    realOptimizer: { kind: 'adam', learningRate: () => 1e-3, weightDecay: 0 },
    normalizer: new Normalizer(
      spec.input.length === 3 ? (spec.input as [number, number, number]) : [1, 1, spec.input[0]],
      {
        mean: Array<number>(channels).fill(0),
        std: Array<number>(channels).fill(1),
      },
    ),
  });
  try {
    return {
      stateBytesPerWeight: learner.stateBytesPerWeight(),
      activationBytesPerExample:
        learner.activationBytesPerExample?.() ?? summarizeModel(spec).activationBytesPerExample,
    };
  } finally {
    learner.dispose();
  }
}
