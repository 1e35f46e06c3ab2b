/**
 * Stochastic gradient descent with momentum and L2 weight decay, with PyTorch's `torch.optim.SGD`
 * semantics (dampening 0). Heavy-ball momentum is Polyak (1964); the Nesterov variant is the one of
 * Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013.
 *
 * Per parameter entry, with gradient g and learning rate lr:
 *
 *     g' = g + wd * p                           (wd only for parameters with decay = true)
 *     buf = g'                                   on the first update
 *     buf = momentum * buf + g'                  afterwards
 *     d = nesterov ? g' + momentum * buf : buf
 *     p <- p - lr * d
 *
 * With momentum 0 there is no buffer and p <- p - lr * g'. This is the optimizer VISPA trains every
 * parameter with (docs/methods.md#vispa: momentum 0.9, nesterov off, weight decay 5e-4 or 1e-5).
 *
 * Defaults: momentum 0.9 (PyTorch's default is 0; onebit asks for SGD when it wants momentum),
 * weightDecay 0, nesterov false. The learning rate has no default, as in PyTorch.
 * State: one momentum buffer per parameter (zero at init; none when momentum is 0) and the count.
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

export interface SgdConfig {
  readonly learningRate: LearningRate;
  /** Momentum coefficient in [0, 1) (default 0.9). */
  readonly momentum?: number;
  /** L2 penalty coefficient added to the gradient, only for parameters with `decay = true` (default 0). */
  readonly weightDecay?: number;
  /** Nesterov momentum (default false); needs momentum > 0. */
  readonly nesterov?: boolean;
}

export interface SgdState extends OptimizerState {
  readonly optimizer: 'sgd';
  /** Momentum buffers, one per parameter (listed in `buffers` as `<name>/momentum`); empty when momentum is 0. */
  readonly momentum: readonly FloatArray[];
}

export function sgd(backend: Backend, config: SgdConfig): Optimizer<SgdState> {
  const { learningRate } = config;
  const momentum = config.momentum ?? 0.9;
  const weightDecay = config.weightDecay ?? 0;
  const nesterov = config.nesterov ?? false;
  if (typeof learningRate === 'number') checkRange('sgd', 'learningRate', learningRate, 0, Infinity);
  checkRange('sgd', 'momentum', momentum, 0, 1);
  checkRange('sgd', 'weightDecay', weightDecay, 0, Infinity);
  if (nesterov && momentum === 0) throw new RangeError('sgd: nesterov momentum needs momentum > 0');

  return {
    name: 'sgd',

    init(params: readonly Parameter[]): SgdState {
      const paramNames = parameterNames(params);
      const buffers: StateBuffer[] = [];
      const bufs: FloatArray[] = [];
      for (const p of params) {
        const n = parameterSize(p);
        if (momentum === 0) continue;
        const buf = backend.alloc(n);
        bufs.push(buf);
        buffers.push({ name: `${p.name}/momentum`, value: buf });
      }
      return { optimizer: 'sgd', count: 0, paramNames, momentum: bufs, buffers };
    },

    update(state: SgdState, params: readonly Parameter[], ctx: StepContext): void {
      checkSameParameters(state, params);
      const lr = learningRateAt(learningRate, ctx.step);
      for (let i = 0; i < params.length; i++) {
        const p = params[i];
        const n = parameterSize(p);
        const wd = p.decay ? weightDecay : 0;

        if (momentum === 0) {
          // p <- p - lr * (g + wd * p) = (1 - lr * wd) * p - lr * g
          if (wd !== 0) backend.scale(p.value, 1 - lr * wd, n);
          backend.axpy(-lr, p.grad, p.value, n);
          continue;
        }

        // buf <- momentum * buf + g + wd * p. The buffer starts at zero, so the first update gives
        // buf = g' exactly as PyTorch's special case does (without dampening the two agree).
        const buf = state.momentum[i];
        backend.scale(buf, momentum, n);
        backend.axpy(1, p.grad, buf, n);
        if (wd !== 0) backend.axpy(wd, p.value, buf, n);

        if (nesterov) {
          // p <- p - lr * (g' + momentum * buf) = (1 - lr * wd) * p - lr * g - lr * momentum * buf.
          // Expanding g' avoids a scratch buffer; the scale must come first because it uses the old p.
          if (wd !== 0) backend.scale(p.value, 1 - lr * wd, n);
          backend.axpy(-lr, p.grad, p.value, n);
          backend.axpy(-lr * momentum, buf, p.value, n);
        } else {
          backend.axpy(-lr, buf, p.value, n);
        }
      }
      state.count += 1;
    },

    dispose(state: SgdState): void {
      for (const b of state.buffers) backend.free(b.value);
    },
  };
}
