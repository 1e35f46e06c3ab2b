/** A tiny learner setup shared by tests: a 16-4-2 binary MLP with 1-bit activations, which every method trains. */
import { createReferenceBackend } from '../src/backend/reference/index.js';
import type { Backend } from '../src/backend/backend.js';
import { Normalizer } from '../src/data/pipeline.js';
import type { LearnerSetup } from '../src/methods/learner.js';
import { batchNorm, binaryDense, flatten, hardtanh, sequential, type ModelSpec } from '../src/nn/spec.js';
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
