/**
 * The layer contract: explicit forward and backward, buffers planned once.
 *
 * A layer is planned once for a per-example input shape and a maximum batch size; planning allocates
 * every buffer it will ever need (outputs, caches for backward, input gradients) from the backend.
 * After that, `forward` and `backward` allocate nothing: they take and return views of planned buffers,
 * and may run on any batch size up to the planned maximum.
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import type { Rng } from '../tensor/rng.js';
import type { Shape } from '../tensor/shape.js';

/**
 * A trainable tensor.
 * - `binary`: a +-1 weight of a binary layer. Its `value` is whatever the training method proposed for
 *   this forward pass (sign of latent weights, a relaxed sample, ...); the layer uses it as given. `grad`
 *   is dL/d(value), the gradient the method turns into its own update.
 * - `real`: an ordinary real-valued parameter (batch-norm affine, PReLU slopes, real layers), trained by
 *   an optimizer.
 */
export interface Parameter {
  /** Unique dotted path inside the model, e.g. "fc2.weight". */
  readonly name: string;
  readonly shape: Shape;
  readonly kind: 'binary' | 'real';
  readonly value: FloatArray;
  /** Overwritten (not accumulated) by each backward pass. */
  readonly grad: FloatArray;
  /** Whether weight decay should apply (false for batch-norm and PReLU parameters). */
  readonly decay: boolean;
}

/** Non-trainable state that a checkpoint must keep (batch-norm running statistics). */
export interface StateBuffer {
  readonly name: string;
  readonly value: FloatArray;
}

/** What a forward pass needs besides its input. */
export interface ForwardContext {
  /** Training mode: batch statistics in batch norm, dropout active. */
  readonly training: boolean;
  /** The run's generator, for dropout masks. */
  readonly rng: Rng;
  /**
   * Overrides every batch norm's running-statistics momentum for this pass (training mode only). Batch-norm
   * recalibration passes 1/b on its b-th batch, which makes the running statistics the plain average of the
   * batch statistics (PyTorch's momentum=None).
   */
  readonly batchNormMomentum?: number;
}

export interface Layer {
  /** Unique name inside the model, used in errors and parameter paths. */
  readonly name: string;
  /**
   * Allocates all buffers for batches of at most `maxBatch` examples of per-example shape `inputShape`,
   * and returns the per-example output shape. Throws ShapeError naming this layer when the shape does not fit.
   * Parameters and state buffers are allocated by the first plan and kept (values included) by later
   * plans with the same input shape, so a model can be re-planned for another batch size (e.g. evaluation);
   * activation buffers are freed and allocated anew.
   */
  plan(backend: Backend, inputShape: Shape, maxBatch: number): Shape;
  /** Computes the output for `batch` examples; the returned view stays valid until the next forward. */
  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray;
  /**
   * Given dL/d(output) of the last forward, writes parameter gradients and returns dL/d(input).
   * The returned view stays valid until the next backward.
   */
  backward(gradOutput: FloatArray, batch: number): FloatArray;
  /** Trainable parameters, in a fixed order. */
  parameters(): Parameter[];
  /** Non-trainable state (running statistics), in a fixed order. */
  stateBuffers(): StateBuffer[];
  /** (Re)initialises parameters and state from the generator; requires a plan. */
  initialize(rng: Rng): void;
  /** Frees every buffer this layer allocated. */
  dispose(): void;
}
