/**
 * Specs and a learner setup shared by tests: a tiny 16-4-2 binary MLP with 1-bit activations, which every
 * method trains, and one small network with every layer type.
 */
import { createReferenceBackend } from '../src/backend/reference/index.js';
import type { Backend } from '../src/backend/backend.js';
import { Normalizer } from '../src/data/pipeline.js';
import type { LearnerSetup } from '../src/methods/learner.js';
import {
  avgPool2d,
  batchNorm,
  binaryConv2d,
  binaryDense,
  channelScale,
  conv2d,
  dense,
  dropout,
  flatten,
  hardtanh,
  maxPool2d,
  prelu,
  relu,
  residual,
  sequential,
  type ModelSpec,
} from '../src/nn/spec.js';
import { Rng } from '../src/tensor/rng.js';

export const TINY_SPEC: ModelSpec = sequential({ input: [1, 4, 4], classes: 2 }, [
  flatten(),
  binaryDense(4),
  batchNorm(),
  hardtanh(),
  binaryDense(2, { binarizer: 'sign' }),
  batchNorm(),
]);

export function tinySetup(
  options: { seed?: number; backend?: Backend; spec?: ModelSpec; maxBatch?: number } = {},
): LearnerSetup {
  const spec = options.spec ?? TINY_SPEC;
  const channels = spec.input[0];
  return {
    spec,
    backend: options.backend ?? createReferenceBackend('float64'),
    rng: new Rng(options.seed ?? 1),
    maxBatch: options.maxBatch ?? 8,
    context: { trainingExamples: 64, stepsPerEpoch: 8, learningRate: 1e-2, totalSteps: 16 },
    realOptimizer: { kind: 'adam', learningRate: () => 1e-2, weightDecay: 0 },
    normalizer: new Normalizer(spec.input as [number, number, number], {
      mean: Array<number>(channels).fill(0.5),
      std: Array<number>(channels).fill(0.25),
    }),
  };
}

/**
 * One network with every layer type, on a small image: real conv and PReLU, an identity residual block with a
 * binary conv on signs, average pooling, a strided residual block whose shortcut is average pooling and a
 * 1x1 real conv, channel scale, max pooling, dropout, real and binary dense.
 */
export const EVERY_LAYER_SPEC: ModelSpec = sequential({ input: [2, 8, 8], classes: 4 }, [
  conv2d(4, { padding: 1 }),
  prelu(),
  residual([binaryConv2d(4, { padding: 1, binarizer: 'sign' }), batchNorm({ affine: true }), hardtanh()]),
  avgPool2d(2),
  residual(
    [binaryConv2d(6, { stride: 2, padding: 1 }), batchNorm()],
    [avgPool2d(2), conv2d(6, { kernelSize: 1, bias: false })],
  ),
  channelScale(),
  relu(),
  maxPool2d(2),
  flatten(),
  dropout(0.25),
  dense(8),
  binaryDense(4, { binarizer: 'sign', surrogate: 'identity' }),
  batchNorm(),
]);
