/**
 * Export of a float-free checkpoint (src/methods/float-free.ts) to the `.onebit` format (src/engine/format.ts),
 * to ONNX and to safetensors.
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
 *
 * ONNX is built from that `.onebit` model (`onebitModelNetwork`), so both share the thresholds. Its input is
 * the float-model export's: [N, C, H, W] normalised with the checkpoint's statistics (metadata
 * "normalization"); a 'pixels' operation rounds it back to the 8-bit pixel and centres it (v - 128, exact),
 * the MatMuls of +-1 weights give the integer pre-activations exactly in float32 (|z| <= 128 * features <
 * 2^24), the hidden layers are threshold comparisons (+1 iff z >= t, ties to +1 as the method), and the
 * logits z * 2^-s - running * 2^-(8+s) are exact in float32: the same values as the method's logits.
 *
 * safetensors holds every checkpoint tensor, the counters unpadded as [out, in] int16 (the checkpoint pads
 * each row with zeros to rowStride(in) columns for its kernels; the padding is checked to be zero and left
 * out), `running_mean_q8` as [out] int32 and `scale_stats` as [2] int32.
 */
import { ExportError } from '../errors.js';
import { packedWords, type DenseLayer, type OnebitLayer, type OnebitModel } from '../engine/format.js';
import { floatFreeLayers, floatFreeOutputExponent } from '../methods/float-free.js';
import { rowStride } from '../methods/float-free/reference.js';
import { datasetShape } from '../data/in-memory.js';
import type { Checkpoint } from './checkpoint.js';
import {
  checkpointMetadata,
  imageShapeOf,
  type ExportNormalization,
  type NetworkDescription,
  type NetworkOp,
} from './export.js';
import type { SafeTensor } from './safetensors.js';
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
  const dataShape = datasetShape(config.data);
  const inputShape = imageShapeOf({
    spec,
    name: path,
    normalization: checkpoint.meta.normalization,
    ...(dataShape !== undefined ? { imageShape: dataShape } : {}),
  });
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
    ...(checkpoint.meta.calibration !== undefined
      ? { temperature: checkpoint.meta.calibration.mode.temperature }
      : {}),
  };
}

/**
 * A `.onebit` model as ONNX-ready operations (onnx.ts) that take the input normalised with `normalization`:
 * unpacked +-1 weights, 'threshold' for 1-bit outputs (the model's own thresholds and directions) and
 * 'affine' plus the activation for real outputs. Exact when the model's input statistics turn the 8-bit
 * pixel into integers and its real outputs are exact in float32, as float-free's are.
 */
export function onebitModelNetwork(
  model: OnebitModel,
  normalization: ExportNormalization,
  metadata: NetworkDescription['metadata'] = model.metadata,
): NetworkDescription {
  const ops: NetworkOp[] = [
    { kind: 'pixels', name: 'input_pixels', model: { mean: model.input.mean, std: model.input.std } },
  ];
  let previous: 'real' | 'bits' = 'real';
  for (const layer of model.layers) {
    if (layer.kind === 'flatten') {
      ops.push({ kind: 'flatten' });
      continue;
    }
    if (layer.kind !== 'dense')
      throw new ExportError(
        model.metadata.model?.toString() ?? 'model',
        `a float-free model has dense layers only, found ${layer.kind}`,
      );
    const { name, inFeatures: k, outFeatures: n, weights, output } = layer;
    // A 'bits' layer takes +-1 values: the previous layer's threshold output.
    if ((layer.input === 'bits') !== (previous === 'bits'))
      throw new ExportError(name, `takes ${layer.input} input after a ${previous} output`);
    const wd = packedWords(k);
    const weight = new Float32Array(n * k);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) weight[i * k + j] = (weights[i * wd + (j >>> 5)] >>> (j & 31)) & 1 ? -1 : 1;
    }
    ops.push({ kind: 'dense', name, inFeatures: k, outFeatures: n, binarizeInput: false, weight });
    if (output.kind === 'bits') {
      ops.push({
        kind: 'threshold',
        name: `${name}_threshold`,
        thresholds: Float32Array.from(output.thresholds),
        directions: output.directions,
      });
    } else {
      ops.push({ kind: 'affine', name: `${name}_affine`, scale: output.scale, bias: output.bias });
      if (output.activation !== 'none')
        ops.push({ kind: output.activation, name: `${name}_${output.activation}` });
    }
    previous = output.kind;
  }
  return {
    inputShape: model.input.shape,
    classes: model.classes,
    normalization,
    ops,
    metadata,
    temperature: model.temperature ?? 1,
  };
}

/** The ONNX-ready network of a float-free checkpoint: its `.onebit` model on the checkpoint's normalised input. */
export function floatFreeNetwork(path: string, checkpoint: Checkpoint): NetworkDescription {
  return onebitModelNetwork(
    floatFreeOnebitModel(path, checkpoint),
    checkpoint.meta.normalization,
    checkpointMetadata(checkpoint),
  );
}

/**
 * Every tensor of a float-free checkpoint, shaped for safetensors: counters [out, in] without the row
 * padding (ExportError if the padding is not zero), the rest as stored.
 */
export function floatFreeSafeTensors(path: string, checkpoint: Checkpoint): SafeTensor[] {
  const spec = checkpoint.meta.config.spec;
  if (spec === undefined) throw new ExportError(path, 'the checkpoint has no model spec');
  const sizes = new Map(floatFreeLayers(spec).map((l) => [l.name, l]));
  const tensors: SafeTensor[] = [];
  for (const [name, data] of checkpoint.tensors) {
    const m = /^method\/(.+)\/(counters|running_mean_q8)$/.exec(name);
    const layer = m === null ? undefined : sizes.get(m[1]);
    if (layer === undefined || m === null) {
      tensors.push({ name, shape: [data.length], data });
      continue;
    }
    const { inFeatures: k, outFeatures: n } = layer;
    if (m[2] === 'running_mean_q8') {
      tensors.push({ name, shape: [n], data: tensor(path, checkpoint, name, Int32Array, n) });
      continue;
    }
    const p = rowStride(k);
    const padded = tensor(path, checkpoint, name, Int16Array, n * p);
    const counters = new Int16Array(n * k);
    for (let i = 0; i < n; i++) {
      counters.set(padded.subarray(i * p, i * p + k), i * k);
      const nonzero = padded.subarray(i * p + k, (i + 1) * p).findIndex((v) => v !== 0);
      if (nonzero >= 0)
        throw new ExportError(
          path,
          `float-free tensor "${name}": row ${i} has a nonzero counter in its padding`,
        );
    }
    tensors.push({ name, shape: [n, k], data: counters });
  }
  return tensors;
}

/** Bytes the dense layers' weights of a `.onebit` model take as float32 (for the export's size ratio). */
export function float32WeightBytes(model: OnebitModel): number {
  let weights = 0;
  for (const layer of model.layers)
    if (layer.kind === 'dense') weights += layer.inFeatures * layer.outFeatures;
  return 4 * weights;
}
