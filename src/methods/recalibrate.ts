/**
 * Batch-norm recalibration: re-estimates every batch norm's running statistics for the weights a model holds
 * now; the trainer calls it with the method's deterministic network (`predict('mode')`), the one that is
 * evaluated and deployed.
 *
 * Why: the running statistics are accumulated during training over the networks the method proposed. For a
 * stochastic method (VISPA trains on a fresh sample sign(m + Z^T r) each step) those are not the deployed
 * sign(m): its pre-activations have other means and variances, and evaluation normalises them with
 * statistics of other networks. The remedy is the one of SWA's `update_bn` (Izmailov et al., "Averaging
 * Weights Leads to Wider Optima and Better Generalization", UAI 2018): one pass in training mode over some
 * training data with the weights fixed. Measured on mlp-2x2048 / Fashion-MNIST after 5 epochs of VISPA
 * (rank 4), it lifts the test accuracy of sign(m) by 0.7 to 1.0 point.
 *
 * The new statistics are the plain average of the batch statistics (momentum 1/b on the b-th batch) over
 * as many full batches as the first `examples` indices of `order` fill (one smaller batch when they fill
 * none), without augmentation. Parameters and the run's generator are left untouched (dropout, if any,
 * draws from a generator of its own), so a resumed run repeats it exactly.
 */
import type { Dataset } from '../data/dataset.js';
import { fillBatch, type BatchBuffers, type Normalizer } from '../data/pipeline.js';
import type { FloatArray } from '../backend/backend.js';
import type { Layer } from '../nn/layer.js';
import { Rng } from '../tensor/rng.js';

/** Examples a recalibration reads: enough for per-channel means and variances to about 1%. */
export const RECALIBRATION_EXAMPLES = 10_000;

export function recalibrateBatchNorm(
  model: Layer,
  data: Dataset,
  order: ArrayLike<number>,
  normalizer: Normalizer,
  batch: BatchBuffers & { images: FloatArray },
  options: { readonly examples: number; readonly seed: number },
): void {
  const rng = new Rng(options.seed);
  const count = Math.min(options.examples, order.length);
  const size = Math.min(batch.capacity, count);
  if (size < 2) return; // batch norm needs a batch to take statistics of
  // Equal batches only, so that every batch statistic carries the same weight in the average.
  const batches = Math.floor(count / size);
  const limited = Uint32Array.from({ length: batches * size }, (_, i) => order[i]);
  for (let b = 0; b < batches; b++) {
    const n = fillBatch(data, limited, b * size, batch, { normalizer });
    model.forward(batch.images, n, { training: true, rng, batchNormMomentum: 1 / (b + 1) });
  }
}
