/**
 * Latent-weight straight-through estimator (BinaryConnect: Courbariaux, Bengio & David 2015; BNN: Hubara et
 * al. 2016) trained with Adam (Kingma & Ba 2015).
 *
 *   forward weight      w_b = sign(w_r)                      (sign(0) = +1)
 *   surrogate gradient  dL/dw_r = dL/dw_b                    ('identity', as the BayesBiNN repository)
 *                       dL/dw_r = dL/dw_b * 1[|w_r| <= 1]    ('clipped-identity', as Larq's ste_sign)
 *   update              w_r <- clip(w_r - lr * AdamStep(dL/dw_r), -1, 1)
 *   prediction          sign(w_r)
 *
 * With latent clipping on (the default), the two surrogates agree: |w_r| <= 1 always holds. They differ when
 * `clipLatent` is false, where clipped-identity stops latent weights that have left [-1, 1].
 * State per binary weight: w_r, Adam's m and v, 12 bytes in float32.
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import type { Parameter } from '../nn/layer.js';
import { ConfigError } from '../errors.js';
import { defineMethod } from './definition.js';
import type { BinaryMethod, MethodStep } from './method.js';

export interface SteOptions {
  readonly surrogate: 'identity' | 'clipped-identity';
  readonly clipLatent: boolean;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}

export const STE_DEFAULTS: SteOptions = {
  surrogate: 'identity',
  clipLatent: true,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
};

/** STE's options and run defaults (those of the run: Adam's learning rate TRAIN_DEFAULTS.learningRate). */
export const STE = defineMethod({
  name: 'ste',
  description: 'latent weights, Adam, straight-through estimator',
  options: [
    {
      key: 'surrogate',
      flag: '--surrogate',
      kind: 'choice',
      choices: ['identity', 'clipped-identity'],
      default: STE_DEFAULTS.surrogate,
      help: 'gradient of sign(w) for the latent weight (clipped-identity: zero where |w| > 1)',
    },
    {
      key: 'clipLatent',
      flag: '--no-clip-latent',
      kind: 'boolean',
      default: STE_DEFAULTS.clipLatent,
      help: 'let latent weights leave [-1, 1] (they are clipped after each update by default)',
    },
  ],
  check(v) {
    // Clipped after every update, latent weights never leave [-1, 1]: the clipped surrogate is the identity.
    if (v.surrogate === 'clipped-identity' && v.clipLatent) {
      throw new ConfigError(
        '--surrogate',
        'clipped-identity only with --no-clip-latent (clipped latent weights stay in [-1, 1], where it equals the identity)',
        'clipped-identity',
      );
    }
  },
  create: (v) => new SteMethod({ ...STE_DEFAULTS, surrogate: v.surrogate, clipLatent: v.clipLatent }),
});

interface Slot {
  readonly param: Parameter;
  readonly latent: FloatArray;
  readonly m: FloatArray;
  readonly v: FloatArray;
}

export class SteMethod implements BinaryMethod {
  readonly name = 'ste';
  readonly stochastic = false;
  private backend: Backend | null = null;
  private slots: Slot[] = [];

  constructor(readonly options: SteOptions = STE_DEFAULTS) {}

  attach(params: readonly Parameter[], backend: Backend): void {
    this.dispose();
    this.backend = backend;
    this.slots = params.map((param) => {
      const n = param.value.length;
      const latent = backend.alloc(n);
      backend.copy(param.value, latent, n);
      if (this.options.clipLatent) backend.clip(latent, -1, 1, n);
      return { param, latent, m: backend.alloc(n), v: backend.alloc(n) };
    });
  }

  private requireBackend(): Backend {
    if (this.backend === null) throw new Error('ste: attach() must be called before use');
    return this.backend;
  }

  propose(): void {
    const backend = this.requireBackend();
    for (const s of this.slots) backend.sign(s.latent, s.param.value, s.latent.length);
  }

  update(step: MethodStep): void {
    const backend = this.requireBackend();
    const { beta1, beta2, epsilon } = this.options;
    for (const s of this.slots) {
      const n = s.latent.length;
      const grad = s.param.grad;
      if (this.options.surrogate === 'clipped-identity')
        backend.signBackward(s.latent, grad, grad, 'clipped-identity', n);
      backend.adam(
        s.latent,
        grad,
        s.m,
        s.v,
        { learningRate: step.learningRate, beta1, beta2, epsilon, step: step.step, weightDecay: 0 },
        n,
      );
      if (this.options.clipLatent) backend.clip(s.latent, -1, 1, n);
    }
  }

  predict(): void {
    this.propose();
  }

  stateTensors(): NamedTensor[] {
    return this.slots.flatMap((s) => [
      { name: `${s.param.name}/latent`, value: s.latent },
      { name: `${s.param.name}/adam_m`, value: s.m },
      { name: `${s.param.name}/adam_v`, value: s.v },
    ]);
  }

  stateScalars(): Record<string, number> {
    return {};
  }

  loadStateScalars(): void {}

  dispose(): void {
    if (this.backend !== null) {
      for (const s of this.slots) {
        this.backend.free(s.latent);
        this.backend.free(s.m);
        this.backend.free(s.v);
      }
    }
    this.slots = [];
    this.backend = null;
  }
}
