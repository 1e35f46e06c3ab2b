/**
 * The networks the inference benchmarks run (bench/engine.ts in Node, bench/browser.ts in Chromium): a
 * named model built with random weights at its mode (+-1; speed does not depend on the values), as a
 * `.onebit` model for the engine and as ONNX (with BatchNormalization, `batchNorm: 'standard'`, the graph
 * onnxruntime runs fastest) for onnxruntime.
 */
import type { Backend } from '../src/backend/backend.js';
import { TRAIN_DEFAULTS } from '../src/config/train-config.js';
import type { OnebitModel } from '../src/engine/format.js';
import { buildOnebitModel, describeNetwork, exportSource } from '../src/io/export.js';
import { encodeOnnx } from '../src/io/onnx.js';
import { Rng } from '../src/tensor/rng.js';
import { createRun, disposeRun } from '../src/train/run.js';

/** Normalisation of `channels` channels (Fashion-MNIST's, and CIFAR-10-like for three). */
export function normalizationOf(channels: number): { mean: number[]; std: number[] } {
  return channels === 1
    ? { mean: [0.286], std: [0.353] }
    : { mean: [0.491, 0.482, 0.447], std: [0.247, 0.243, 0.262] };
}

export function benchNetwork(
  name: string,
  shape: readonly [number, number, number],
  activations: 'binary' | 'real',
  backend: Backend,
): { model: OnebitModel; onnx: Uint8Array } {
  const normalization = normalizationOf(shape[0]);
  const config = {
    ...TRAIN_DEFAULTS,
    data: shape[0] === 1 ? 'fashion-mnist' : 'cifar10',
    model: name,
    method: 'ste',
    activations,
  };
  const run = createRun(
    config,
    backend,
    { inputShape: [...shape], classes: 10, stepsPerEpoch: 1, trainingExamples: 1 },
    100,
  );
  try {
    // The random initial network, at its mode weights (+-1), exported from its spec and tensors.
    run.learner.predict('mode', new Rng(0));
    const source = exportSource(
      { spec: run.spec, tensors: run.learner.stateTensors(), normalization, name },
      backend,
    );
    try {
      return {
        model: buildOnebitModel(source),
        // The usual graph (BatchNormalization, which onnxruntime fuses into the convolution or MatMul): its best case.
        onnx: encodeOnnx(describeNetwork(source), { batchNorm: 'standard' }),
      };
    } finally {
      source.dispose();
    }
  } finally {
    disposeRun(run);
  }
}
