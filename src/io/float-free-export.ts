/**
 * Export of a float-free checkpoint (src/methods/float-free.ts) to the `.onebit` format (src/engine/format.ts).
 *
 * The float-free network is integer end to end, so it maps onto the format exactly, read straight from the
 * checkpoint's tensors (no model is rebuilt, nothing is probed):
 *  - input: mean 128/255 and std 1/255 per channel, so the engine's normalised input (v/255 - mean)/std is
 *    v - 128, the centred pixel the method trained on (the engine's byte kernels add the pixels exactly and
 *    fold this in; its float path gets v - 128 exactly in float32 too);
 *  - every dense layer: weights = the packed signs of the int16 counters (h < 0 is -1);
 *  - hidden layers: output bits, the integer threshold t = ceil(running / 256) with direction +1 (bit set iff
 *    z < t), exactly the method's test-time sign(z - t). The first layer's z is real in the format (its
 *    input is "real"): its float32 threshold is t - 1/2, which separates the same integers with a margin
 *    of 1/2 against the rounding of the folded normalisation;
 *  - the logits: scale 2^-s and bias -running * 2^-(8+s) (s the output exponent), exact in float32, so the
 *    engine's logits equal the method's test-time logits (256 z - running) / 2^(8+s), and its predictions are
 *    identical.
 */
import { ExportError } from '../errors.js';
import {
  encodeOnebit,
  packedWords,
  type DenseLayer,
  type OnebitLayer,
  type OnebitModel,
} from '../engine/format.js';
import { floatFreeLayers, floatFreeOutputExponent } from '../methods/float-free.js';
import { rowStride } from '../methods/float-free/reference.js';
import { datasetShape } from '../data/dataset.js';
import type { Checkpoint } from '../train/checkpoint.js';
import { writeFileAtomic } from './atomic.js';
import type { TensorData } from './tensor-file.js';

function tensor<T extends TensorData>(
  path: string,
  checkpoint: Checkpoint,
  name: string,
  type: new (n: number) => T,
  length: number,
): T {
  const t = checkpoint.tensors.get(name);
  if (t === undefined) throw new ExportError(path, `float-free tensor "${name}" is missing`);
  if (!(t instanceof type) || t.length !== length) {
    throw new ExportError(
      path,
      `float-free tensor "${name}": expected ${type.name} x ${length}, found ${t.constructor.name} x ${t.length}`,
    );
  }
  return t;
}

/** The `.onebit` model of a float-free checkpoint (`path` names it in errors): its spec and `method/` tensors. */
export function floatFreeOnebitModel(path: string, checkpoint: Checkpoint): OnebitModel {
  const config = checkpoint.meta.config;
  if (checkpoint.meta.inference !== 'float-free')
    throw new ExportError(path, `a ${checkpoint.meta.inference} checkpoint is not float-free`);
  const spec = config.spec;
  if (spec === undefined) throw new ExportError(path, 'the checkpoint has no model spec');
  const classes = spec.classes;
  // The images' shape: the spec's, or its data set's when the spec takes flat vectors.
  const size = spec.input.reduce((a, b) => a * b, 1);
  const dataShape = datasetShape(config.data);
  const inputShape: readonly [number, number, number] =
    spec.input.length === 3
      ? [spec.input[0], spec.input[1], spec.input[2]]
      : dataShape !== undefined && dataShape[0] * dataShape[1] * dataShape[2] === size
        ? dataShape
        : [1, 1, size];
  const dense = floatFreeLayers(spec);
  const s = floatFreeOutputExponent(tensor(path, checkpoint, 'method/output/scale_stats', Int32Array, 2));

  const layers: OnebitLayer[] = [{ kind: 'flatten' }];
  dense.forEach((layer, l) => {
    const { name, inFeatures: k, outFeatures: n } = layer;
    const p = rowStride(k);
    const counters = tensor(path, checkpoint, `method/${name}/counters`, Int16Array, n * p);
    const running = tensor(path, checkpoint, `method/${name}/running_mean_q8`, Int32Array, n);
    const wd = packedWords(k);
    const weights = new Uint32Array(n * wd);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) {
        if (counters[i * p + j] < 0) weights[i * wd + (j >>> 5)] |= 1 << (j & 31);
      }
    }
    const last = l === dense.length - 1;
    let output: DenseLayer['output'];
    if (last) {
      const scale = new Float32Array(n).fill(2 ** -s);
      const bias = Float32Array.from(running, (r) => -r * 2 ** -(8 + s));
      output = { kind: 'real', scale, bias, activation: 'none' };
    } else {
      const t = Array.from(running, (r) => -Math.floor(-r / 256)); // ceil(r / 256), exact for |r| < 2^31
      output = {
        kind: 'bits',
        thresholds: l === 0 ? Float32Array.from(t, (v) => v - 0.5) : Int32Array.from(t),
        directions: new Int8Array(n).fill(1),
      };
    }
    layers.push({
      kind: 'dense',
      name,
      input: l === 0 ? 'real' : 'bits',
      inFeatures: k,
      outFeatures: n,
      weights,
      output,
    });
  });
  const channels = inputShape[0];
  return {
    input: {
      shape: inputShape,
      mean: new Array<number>(channels).fill(128 / 255),
      std: new Array<number>(channels).fill(1 / 255),
    },
    classes,
    layers,
    metadata: {
      model: config.model,
      method: 'float-free',
      activations: 'binary',
      data: config.data,
      epoch: checkpoint.meta.epoch,
    },
  };
}

/** `onebit export` of a float-free checkpoint: the `.onebit` format only. Returns the file's size. */
export function exportFloatFree(
  path: string,
  checkpoint: Checkpoint,
  format: string,
  out: string,
): { bytes: number; float32WeightBytes: number } {
  if (format !== 'onebit') {
    throw new ExportError(
      path,
      `float-free checkpoints export to the .onebit format only (asked for ${format})`,
    );
  }
  const model = floatFreeOnebitModel(path, checkpoint);
  const bytes = encodeOnebit(model);
  writeFileAtomic(out, [bytes]);
  let weights = 0;
  for (const layer of model.layers)
    if (layer.kind === 'dense') weights += layer.inFeatures * layer.outFeatures;
  return { bytes: bytes.byteLength, float32WeightBytes: 4 * weights };
}
