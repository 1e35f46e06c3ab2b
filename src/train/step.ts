/**
 * One training step on a filled batch, shared by the ordinary loop (trainer.ts) and continual learning
 * (continual.ts): the method proposes weights, the model runs forward and backward, then the method updates
 * its state and the optimizer updates the real-valued parameters.
 */
import type { FloatArray } from '../backend/backend.js';
import type { ForwardContext } from '../nn/layer.js';
import { countCorrect } from './metrics.js';
import type { Run } from './run.js';

export interface StepResult {
  /** Mean loss over the batch; when it is not finite, nothing was updated. */
  readonly loss: number;
  /** Examples of the batch whose largest logit is at the label. */
  readonly correct: number;
}

/**
 * Runs one step on the first `n` examples of `images`/`labels`. `step` is the 1-based update count given
 * to the method, `learningRate` its rate, and `scheduleStep` the 0-based step at which the real-valued
 * optimizer evaluates its schedule. When the loss is NaN or infinite the step stops before backward and
 * nothing changes except what the forward pass touched (batch-norm running statistics, the generator).
 */
export function trainStep(
  run: Run,
  images: FloatArray,
  labels: Int32Array,
  n: number,
  ctx: ForwardContext,
  update: { readonly step: number; readonly learningRate: number; readonly scheduleStep: number },
): StepResult {
  run.method.propose(run.rng);
  const logits = run.model.forward(images, n, ctx);
  const loss = run.loss.forward(logits, labels, n);
  const correct = countCorrect(logits, labels, n, run.shape.classes);
  if (!Number.isFinite(loss)) return { loss, correct };
  run.model.backward(run.loss.backward(), n);
  run.method.update({ step: update.step, learningRate: update.learningRate });
  run.optimizer.update(run.optimizerState, run.realParameters, { step: update.scheduleStep });
  return { loss, correct };
}
