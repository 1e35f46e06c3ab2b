/**
 * The float32 images an ONNX graph of a network takes for raw 8-bit images: normalised as training feeds
 * them, `(v / 255 - mean[c]) / std[c]` (the data pipeline's Normalizer). Shared by the Node and the browser
 * benchmarks, which time the engine on the bytes and onnxruntime on these.
 */
import { Normalizer } from '../src/data/pipeline.js';

export function normalizedImages(
  images: Uint8Array,
  shape: readonly [number, number, number],
  stats: { readonly mean: readonly number[]; readonly std: readonly number[] },
): Float32Array {
  const normalizer = new Normalizer(shape, { mean: [...stats.mean], std: [...stats.std] });
  const size = shape[0] * shape[1] * shape[2];
  const out = new Float32Array(images.length);
  for (let offset = 0; offset < images.length; offset += size)
    normalizer.writeImage(images, offset, out, offset);
  return out;
}
