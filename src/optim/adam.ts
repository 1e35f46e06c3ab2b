/**
 * Adam (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015), with optional decoupled
 * weight decay (AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019).
 *
 * Per parameter entry, at update t = 1, 2, ... with gradient g and learning rate lr (Algorithm 1 of the
 * paper, plus the AdamW decay in PyTorch's form):
 *
 *     p <- p - lr * wd * p                      (only when wd > 0 and the parameter has decay = true)
 *     m <- beta1 * m + (1 - beta1) * g
 *     v <- beta2 * v + (1 - beta2) * g^2
 *     p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 *
 * Defaults: lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8, weightDecay 0 (the paper's defaults).
 * State: `m` and `v` per parameter (zero at init) and the count t. The arithmetic is the backend's
 * `adam` kernel, so the wasm backend runs it fused and multi-threaded.
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import type { Parameter, StateBuffer } from '../nn/layer.js';
import {
  checkRange,
  checkSameParameters,
  learningRateAt,
  parameterNames,
  parameterSize,
  type LearningRate,
  type Optimizer,
  type OptimizerState,
  type StepContext,
} from './optimizer.js';

export interface AdamConfig {
  /** Learning rate or schedule (default 1e-3). */
  readonly learningRate?: LearningRate;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  /** Decoupled weight decay coefficient, applied only to parameters with `decay = true` (default 0). */
  readonly weightDecay?: number;
}

export interface AdamState extends OptimizerState {
  readonly optimizer: 'adam';
  /** First-moment estimates, one per parameter (also listed in `buffers` as `<name>/m`). */
  readonly m: readonly FloatArray[];
  /** Second-moment estimates, one per parameter (also listed in `buffers` as `<name>/v`). */
  readonly v: readonly FloatArray[];
}

export function adam(backend: Backend, config: AdamConfig = {}): Optimizer<AdamState> {
  const learningRate = config.learningRate ?? 1e-3;
  const beta1 = config.beta1 ?? 0.9;
  const beta2 = config.beta2 ?? 0.999;
  const epsilon = config.epsilon ?? 1e-8;
  const weightDecay = config.weightDecay ?? 0;
  if (typeof learningRate === 'number') checkRange('adam', 'learningRate', learningRate, 0, Infinity);
  checkRange('adam', 'beta1', beta1, 0, 1);
  checkRange('adam', 'beta2', beta2, 0, 1);
  checkRange('adam', 'epsilon', epsilon, 0, Infinity);
  checkRange('adam', 'weightDecay', weightDecay, 0, Infinity);

  return {
    name: 'adam',

    init(params: readonly Parameter[]): AdamState {
      const paramNames = parameterNames(params);
      const m: FloatArray[] = [];
      const v: FloatArray[] = [];
      const buffers: StateBuffer[] = [];
      for (const p of params) {
        const n = parameterSize(p);
        const mi = backend.alloc(n);
        const vi = backend.alloc(n);
        m.push(mi);
        v.push(vi);
        buffers.push({ name: `${p.name}/m`, value: mi }, { name: `${p.name}/v`, value: vi });
      }
      return { optimizer: 'adam', count: 0, paramNames, m, v, buffers };
    },

    update(state: AdamState, params: readonly Parameter[], ctx: StepContext): void {
      checkSameParameters(state, params);
      const lr = learningRateAt(learningRate, ctx.step);
      state.count += 1;
      for (let i = 0; i < params.length; i++) {
        const p = params[i];
        backend.adam(
          p.value,
          p.grad,
          state.m[i],
          state.v[i],
          {
            learningRate: lr,
            beta1,
            beta2,
            epsilon,
            step: state.count,
            // Batch-norm and PReLU parameters opt out of decay (decay = false).
            weightDecay: p.decay ? weightDecay : 0,
          },
          parameterSize(p),
        );
      }
    },

    dispose(state: AdamState): void {
      for (const b of state.buffers) backend.free(b.value);
    },
  };
}
