/**
 * Model summary in the spirit of Larq's `summary`: per layer, parameters by precision, memory, and
 * multiply-accumulates by precision of (input, weight); totals, compression against float32, and the
 * training state a method keeps per binary weight.
 */
import { createReferenceBackend } from '../backend/reference/index.js';
import { AvgPool2d } from '../nn/avg-pool2d.js';
import { BatchNorm } from '../nn/batch-norm.js';
import { Conv2dBase } from '../nn/conv2d.js';
import { DenseBase } from '../nn/dense.js';
import { Dropout } from '../nn/dropout.js';
import { Flatten } from '../nn/flatten.js';
import type { Layer } from '../nn/layer.js';
import { MaxPool2d } from '../nn/max-pool2d.js';
import { buildModelFromSpec, Model } from '../nn/models.js';
import type { ModelSpec } from '../nn/spec.js';
import { Normalizer } from '../data/pipeline.js';
import { createLearner } from '../methods/registry.js';
import { Rng } from '../tensor/rng.js';
import type { Shape } from '../tensor/shape.js';
import { shapeSize } from '../tensor/shape.js';

export interface LayerSummary {
  readonly name: string;
  readonly kind: string;
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

/** What a layer's backward reads besides the gradient: its input, its output, and internal buffers (bytes). */
interface BackwardReads {
  readonly input: boolean;
  readonly output: boolean;
  readonly internalBytes: number;
}

/**
 * Per layer kind, from the layers' code: dense and conv read their input (dW = g^T x) and, when they
 * binarize it, keep the signs too (the surrogate gradient reads the input); batch norm reads its normalised
 * output (an internal copy when affine); hardtanh, ReLU, PReLU and the channel scale read their input;
 * max-pooling keeps int32 argmax indices, dropout a float mask; flatten and average pooling read nothing.
 * A layer of another kind is assumed to read its input.
 */
function backwardReads(layer: Layer, inSize: number, outSize: number): BackwardReads {
  const none = { input: false, output: false, internalBytes: 0 };
  if (layer instanceof Flatten || layer instanceof AvgPool2d) return none;
  if (layer instanceof BatchNorm) {
    return layer.affine ? { ...none, internalBytes: 4 * inSize } : { ...none, output: true };
  }
  if (layer instanceof DenseBase || layer instanceof Conv2dBase) {
    return { ...none, input: true, internalBytes: binarizesInput(layer) ? 4 * inSize : 0 };
  }
  if (layer instanceof MaxPool2d) return { ...none, internalBytes: 4 * outSize };
  if (layer instanceof Dropout) return { ...none, internalBytes: 4 * inSize };
  return { ...none, input: true };
}

/** Whether a binary layer binarizes its input (so its MACs are XNOR/popcount). */
function binarizesInput(layer: Layer): boolean {
  const config = (layer as unknown as { config?: { binarizer?: string } }).config;
  return config?.binarizer === 'sign';
}

/**
 * Walks the top level of a Sequential model. Plans each layer on a small reference backend to learn its
 * output shape; MACs per example follow from the weight shape and the output's spatial size.
 */
export function summarizeModel(source: Model | ModelSpec, inputShape?: Shape): ModelSummary {
  // A fresh copy from the spec: a model the caller planned stays as it is.
  const spec = source instanceof Model ? source.spec : source;
  const model = buildModelFromSpec(spec);
  inputShape ??= spec.input;
  const backend = createReferenceBackend('float32');
  const layers: LayerSummary[] = [];
  let shape = inputShape;
  // Activations kept for backward: values[k] is the k-th tensor between layers (0: the model's input).
  const valueSizes: number[] = [shapeSize(inputShape)];
  const valueRead: boolean[] = [false];
  let internalBytes = 0;
  try {
    for (const layer of model.layers) {
      const inSize = shapeSize(shape);
      shape = layer.plan(backend, shape, 1);
      const reads = backwardReads(layer, inSize, shapeSize(shape));
      if (reads.input) valueRead[valueRead.length - 1] = true;
      valueSizes.push(shapeSize(shape));
      valueRead.push(reads.output);
      internalBytes += reads.internalBytes;
      let binaryParameters = 0;
      let realParameters = 0;
      let binaryBinaryMacs = 0;
      let binaryRealMacs = 0;
      let realMacs = 0;
      const spatial = shape.length === 3 ? shape[1] * shape[2] : 1;
      for (const p of layer.parameters()) {
        const n = shapeSize(p.shape);
        // Weights are rank 2 (dense: out x in) or rank 4 (conv: out x in x kh x kw); each entry is used
        // once per output position.
        const macs = p.shape.length >= 2 ? n * spatial : 0;
        if (p.kind === 'binary') {
          binaryParameters += n;
          if (binarizesInput(layer)) binaryBinaryMacs += macs;
          else binaryRealMacs += macs;
        } else {
          realParameters += n;
          realMacs += macs;
        }
      }
      // Running statistics are kept in float32 at inference (folded into thresholds or scale and shift).
      for (const state of layer.stateBuffers()) realParameters += state.value.length;
      layers.push({
        name: layer.name,
        kind: layer.constructor.name,
        outputShape: shape,
        binaryParameters,
        realParameters,
        memoryBits: binaryParameters + 32 * realParameters,
        binaryBinaryMacs,
        binaryRealMacs,
        realMacs,
      });
    }
  } finally {
    for (const layer of model.layers) layer.dispose();
  }
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
  const activationBytesPerExample =
    internalBytes + valueSizes.reduce((acc, size, k) => acc + (valueRead[k] ? 4 * size : 0), 0);
  return {
    layers,
    totals,
    memoryBytes,
    float32Bytes,
    compressionRatio: float32Bytes / memoryBytes,
    activationBytesPerExample,
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
