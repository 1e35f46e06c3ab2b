/**
 * VISPA: Gaussian variational inference over the pre-sign weights with a low-rank SDP relaxation solved in
 * Burer-Monteiro form (Orecchia et al., "Training Binary Neural Networks via Gaussian Variational Inference
 * and Low-Rank Semidefinite Programming", NeurIPS 2024; official code snownus/bnn_vi,
 * models/sdp_wo_entropy.py and main_sdp_cifar.py). See docs/methods.md#vispa.
 *
 * State per binary layer of n weights: a mean m (n), a factor Z of rank K (K x n, row k = z_k), and their
 * SGD momentum buffers; S > 0 is a constant (default 100).
 *
 *   sample (once per layer per forward, shared by the whole batch)   r ~ N(0, I_K / S)
 *   forward weight     w = m + Z^T r = m + sum_k r_k z_k,   b = sign(w)      (sign(0) = +1)
 *   backward           identity straight-through: dL/dw = dL/db = g
 *                      grad_m = g,   grad_z_k = sqrt(S) * r_k * g
 *                      (the sqrt(S) is the official code's, docs/methods.md#vispa: exactly
 *                      reparameterised it would be r_k * g; kept to match the published results)
 *   update             PyTorch SGD (momentum mu, dampening 0, L2 weight decay wd, no Nesterov) on m and Z:
 *                        buf <- mu * buf + grad + wd * p;   p <- p - lr * buf
 *   projection         onto diag(X) = 1, i.e. per weight i:  m_i^2 + ||z_i||^2 / S = 1
 *                        A_i = m_i^2 + (1/S) sum_k z_{k,i}^2;  m_i <- m_i / sqrt(A_i);  z_{k,i} <- z_{k,i} / sqrt(A_i)
 *                      (A_i = 0 cannot be normalised: that weight is reset to m_i = 1, z_i = 0.)
 *   prediction         'mode':   sign(m), the single deterministic network;
 *                      'sample': sign(m + Z^T r) with a fresh r (ensembles average the logits of these).
 *
 * The official code projects in place at the start of every forward (training and evaluation). Here it
 * runs once per step right after the update (and once after initialisation), which gives the same
 * sequence of states while keeping `propose` and `predict` free of side effects on the state.
 *
 * Initialisation follows the code: xavier (Glorot) normal for M and for Z, then the projection. PyTorch
 * computes Z's fans on its 5-D shape (K, out, in, kh, kw): fan_in = out * in * kh * kw, fan_out =
 * K * in * kh * kw (dense layers are 1x1 convolutions there), so Z starts much smaller than M and the first
 * samples are close to sign(m).
 *
 * Rank 0 (`rank: 0`) is the diagonal / LP view: no Z, w = m, deterministic sign(m) with the identity
 * straight-through gradient, SGD with momentum on m, and the constraint m_i^2 + sigma_i^2 = 1 with a free
 * sigma_i >= 0 relaxes to |m_i| <= 1, so the projection is clipping m to [-1, 1]: latent-weight STE trained
 * by SGD. (The official ablation models/sdp_wo_z.py instead normalises m to +-1 every forward; with that
 * an SGD step changes a weight only when it crosses zero in one step, so onebit follows the LP view.)
 *
 * Training state per binary weight in float32: (1 + K) values for m and Z, and as many momentum values when
 * momentum > 0: 8 (1 + K) bytes (4 (1 + K) without momentum).
 */
import type { Backend, FloatArray } from '../backend/backend.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import type { Parameter } from '../nn/layer.js';
import type { Rng } from '../tensor/rng.js';
import { defineMethod } from './definition.js';
import type { BinaryMethod, MethodStep, PredictionKind } from './method.js';

export interface VispaOptions {
  /** K, the rank of the covariance factor Z; an integer >= 0 (0 = the diagonal / LP view). */
  readonly rank: number;
  /** S > 0: r ~ N(0, I/S) and the constraint m_i^2 + ||z_i||^2 / S = 1. */
  readonly scale: number;
  /** SGD momentum on m and Z, in [0, 1). */
  readonly momentum: number;
  /** L2 weight decay on m and Z (added to the gradient, as torch.optim.SGD), >= 0. */
  readonly weightDecay: number;
}

/**
 * Defaults: S = 100 and momentum 0.9 as every official script; rank 4 (the official scripts use 8 for
 * 1W32A on CIFAR and 4 for 1W1A and ImageNet 1W32A).
 *
 * No weight decay on m and Z by default (the official code decays them with the run's 5e-4). The projection
 * rescales every (m_i, z_i) to the constraint, so a decay that shrinks m and Z alike is undone at once and
 * has no effect without momentum; with momentum, the buffers hold the stale term wd * p_{t-1}, which only
 * kicks a rotating weight onward. What the official recipe fixes is the product lr * wd = 5e-5 per step; at
 * onebit's learning rates for MLPs (hundreds, VISPA_RUN_DEFAULTS) that product means wd ~ 1e-7, and the
 * paper's 5e-4 would shrink every weight by more than all of it per step. Measured (mlp-2x2048,
 * Fashion-MNIST, 5 epochs, K = 4): with wd 5e-4 the learning rate cannot pass ~20 without most signs
 * flipping back and forth (0.79 to 0.84 test accuracy); with wd 0, lr 80 to 800 train stably. Weight decay
 * on m and Z stays available (`--vispa-weight-decay`).
 */
export const VISPA_DEFAULTS: VispaOptions = {
  rank: 4,
  scale: 100,
  momentum: 0.9,
  weightDecay: 0,
};

/**
 * Run settings the CLI uses for `--method vispa` where the user gives none (VISPA.runDefaults below). The official recipe (docs/methods.md#vispa) is SGD with momentum 0.9 on every parameter,
 * weight decay 5e-4 (1W32A on CIFAR), cosine with a 5-epoch linear warm-up, the per-channel `Alpha`, and
 * lr 0.1 over 500 epochs of convolutions. On onebit's batch-normalised MLPs the gradient per weight is
 * ~5e-6 (hidden layers) to ~5e-5 (last layer) while the projection puts every weight on the sphere
 * m_i^2 + ||z_i||^2 / S = 1 with |m_i| ~ 0.95 from the start, and a weight turns only as fast as
 * lr * g * ||z_i|| / sqrt(S): with lr 0.1 nothing moves in 5 epochs (mlp-2x2048 stays at chance).
 *
 * Measured on mlp-2x2048, Fashion-MNIST, 5 epochs, batch 100, seed 1, K = 4, S = 100, no decay on m and Z,
 * test accuracy of sign(m) without / with batch-norm recalibration: lr 80 0.8594 / 0.8671, lr 250
 * 0.8660 / 0.8728, lr 400 0.8633 / 0.8734, lr 800 0.8649 / 0.8743: a plateau, whose middle is the default. The real-valued parameters (per-channel scales, batch norm
 * when affine) keep the official SGD at lr 0.1 with weight decay 5e-4: their gradients do not shrink with
 * the layer's width.
 *
 * Batch-norm recalibration (methods/recalibrate.ts) is on: the running statistics gathered over the sampled
 * networks sign(m + Z^T r) do not fit the single network sign(m) that is evaluated and exported.
 */
export const VISPA_RUN_DEFAULTS = {
  learningRate: 400,
  realLearningRate: 0.1,
  realOptimizer: 'sgd',
  realWeightDecay: 5e-4,
  schedule: 'warmup-cosine',
  channelScale: true,
  recalibrateBatchNorm: true,
} as const;

/** Linear warm-up length: the paper's 5 epochs, but at most a tenth of a shorter run. */
export function vispaWarmupEpochs(epochs: number): number {
  return Math.min(5, epochs / 10);
}

/**
 * VISPA's options and its run recipe: VISPA_RUN_DEFAULTS, with a warm-up of min(5, epochs/10) epochs.
 */
export const VISPA = defineMethod({
  name: 'vispa',
  description: 'Gaussian with a low-rank covariance, projected SGD',
  options: [
    {
      key: 'rank',
      flag: '--rank',
      kind: 'integer',
      default: VISPA_DEFAULTS.rank,
      range: { min: 0 },
      placeholder: 'K',
      help: 'rank K of the covariance factor Z (0 = the diagonal / LP view, deterministic)',
    },
    {
      key: 'scale',
      flag: '--vispa-scale',
      kind: 'number',
      default: VISPA_DEFAULTS.scale,
      range: { min: 0, minOpen: true },
      placeholder: 'S',
      help: 'the constant S, r ~ N(0, I/S) and m^2 + |z|^2/S = 1',
    },
    {
      key: 'momentum',
      flag: '--momentum',
      kind: 'number',
      default: VISPA_DEFAULTS.momentum,
      range: { min: 0, max: 1, maxOpen: true },
      help: 'SGD momentum on m and Z',
    },
    {
      key: 'weightDecay',
      flag: '--vispa-weight-decay',
      kind: 'number',
      default: VISPA_DEFAULTS.weightDecay,
      range: { min: 0 },
      help: 'weight decay on m and Z (--weight-decay is for the real-valued parameters)',
    },
  ],
  runDefaults: (epochs) => ({ ...VISPA_RUN_DEFAULTS, warmupEpochs: vispaWarmupEpochs(epochs) }),
  runDefaultsHelp: { warmupEpochs: 'min(5, epochs/10)' },
  create: (v) =>
    new VispaMethod({ rank: v.rank, scale: v.scale, momentum: v.momentum, weightDecay: v.weightDecay }),
});

/** Checks the options; throws a RangeError naming the first bad one. */
export function checkVispaOptions(options: VispaOptions): void {
  const { rank, scale, momentum, weightDecay } = options;
  if (!Number.isInteger(rank) || rank < 0)
    throw new RangeError(`vispa: rank must be an integer >= 0, got ${rank}`);
  if (!(Number.isFinite(scale) && scale > 0)) throw new RangeError(`vispa: scale must be > 0, got ${scale}`);
  if (!(momentum >= 0 && momentum < 1))
    throw new RangeError(`vispa: momentum must be in [0, 1), got ${momentum}`);
  if (!(Number.isFinite(weightDecay) && weightDecay >= 0)) {
    throw new RangeError(`vispa: weight decay must be >= 0, got ${weightDecay}`);
  }
}

interface Slot {
  readonly param: Parameter;
  readonly n: number;
  readonly m: FloatArray;
  /** K x n, row k = z_k; null when K = 0. */
  readonly z: FloatArray | null;
  /** Views of the rows of z (and of zMomentum), built once. */
  readonly zRows: readonly FloatArray[];
  readonly mMomentum: FloatArray | null;
  readonly zMomentum: FloatArray | null;
  readonly zMomentumRows: readonly FloatArray[];
  /** The r of the last propose (N(0, I/S)), which the update's grad_Z needs. */
  readonly r: Float64Array;
}

/** Glorot normal, N(0, 2 / (fanIn + fanOut)), into the first `length` entries. */
function glorotNormal(rng: Rng, x: FloatArray, fanIn: number, fanOut: number, length: number): void {
  const std = Math.sqrt(2 / (fanIn + fanOut));
  for (let i = 0; i < length; i++) x[i] = std * rng.normal();
}

/** Rows of a K x n buffer as views (no copies). */
function rows(buffer: FloatArray | null, k: number, n: number): FloatArray[] {
  if (buffer === null) return [];
  return Array.from({ length: k }, (_, i) => buffer.subarray(i * n, (i + 1) * n));
}

/**
 * The projection onto m_i^2 + ||z_i||^2 / S = 1 of weights [0, n) (in place, z is K x n), written as one
 * readable loop: the specification that the method's kernel-based projection is tested against.
 */
export function projectVispa(
  m: FloatArray,
  z: FloatArray | null,
  rank: number,
  scale: number,
  n: number,
): void {
  const invScale = 1 / scale;
  for (let i = 0; i < n; i++) {
    const mi = m[i];
    let a = mi * mi;
    if (z !== null) {
      for (let k = 0, j = i; k < rank; k++, j += n) {
        const zk = z[j];
        a += zk * zk * invScale;
      }
    }
    if (a > 0) {
      const f = 1 / Math.sqrt(a);
      m[i] = mi * f;
      if (z !== null) for (let k = 0, j = i; k < rank; k++, j += n) z[j] *= f;
    } else if (a === 0) {
      // The zero vector has no direction: restart the weight at +1 (sign(0) = +1), deterministic.
      m[i] = 1;
      if (z !== null) for (let k = 0, j = i; k < rank; k++, j += n) z[j] = 0;
    }
    // a is NaN: left as is, so that a diverged run shows up in the loss instead of being hidden.
  }
}

export class VispaMethod implements BinaryMethod {
  readonly name = 'vispa';
  readonly stochastic: boolean;
  private backend: Backend | null = null;
  private slots: Slot[] = [];
  /** Scratch for predict('sample'), so it never overwrites the r that the next update needs. */
  private readonly sampleR: Float64Array;

  constructor(readonly options: VispaOptions = VISPA_DEFAULTS) {
    checkVispaOptions(options);
    this.stochastic = options.rank > 0;
    this.sampleR = new Float64Array(options.rank);
  }

  get rank(): number {
    return this.options.rank;
  }

  attach(params: readonly Parameter[], backend: Backend, rng: Rng): void {
    this.dispose();
    this.backend = backend;
    const { rank, momentum } = this.options;
    this.slots = params.map((param) => {
      const n = param.value.length;
      const shape = param.shape;
      const out = shape[0];
      const perOut = n / out; // in * kh * kw
      const receptive = shape.length > 2 ? shape.slice(2).reduce((a, b) => a * b, 1) : 1;
      const m = backend.alloc(n);
      // M: xavier normal on (out, in, kh, kw): fan_in = in*kh*kw, fan_out = out*kh*kw.
      glorotNormal(rng, m, perOut, out * receptive, n);
      let z: FloatArray | null = null;
      if (rank > 0) {
        z = backend.alloc(rank * n);
        // Z: xavier normal on (K, out, in, kh, kw): fan_in = out*in*kh*kw, fan_out = K*in*kh*kw.
        glorotNormal(rng, z, out * perOut, rank * perOut, rank * n);
      }
      const mMomentum = momentum > 0 ? backend.alloc(n) : null;
      const zMomentum = momentum > 0 && rank > 0 ? backend.alloc(rank * n) : null;
      const slot: Slot = {
        param,
        n,
        m,
        z,
        zRows: rows(z, rank, n),
        mMomentum,
        zMomentum,
        zMomentumRows: rows(zMomentum, rank, n),
        r: new Float64Array(rank),
      };
      return slot;
    });
    for (const slot of this.slots) this.constrain(slot);
  }

  private requireBackend(): Backend {
    if (this.backend === null) throw new Error('vispa: attach() must be called before use');
    return this.backend;
  }

  /** Puts a slot back on the constraint set: the projection (K > 0), clipping to [-1, 1] (K = 0). */
  private constrain(s: Slot): void {
    const backend = this.requireBackend();
    if (this.options.rank === 0) backend.clip(s.m, -1, 1, s.n);
    else this.project(backend, s);
  }

  /** projectVispa as one backend kernel (vispaProject: one pass over the weights, threaded). */
  private project(backend: Backend, s: Slot): void {
    backend.vispaProject(s.m, s.z, s.zRows.length, 1 / this.options.scale, s.n);
  }

  /** Draws r ~ N(0, I/S) into `r`. */
  private drawR(rng: Rng, r: Float64Array): void {
    const std = 1 / Math.sqrt(this.options.scale);
    for (let k = 0; k < r.length; k++) r[k] = std * rng.normal();
  }

  /** param.value = sign(m + sum_k r_k z_k). */
  private writeSigns(s: Slot, r: Float64Array | null): void {
    const backend = this.requireBackend();
    const w = s.param.value;
    backend.copy(s.m, w, s.n);
    if (r !== null) for (let k = 0; k < s.zRows.length; k++) backend.axpy(r[k], s.zRows[k], w, s.n);
    backend.sign(w, w, s.n);
  }

  propose(rng: Rng): void {
    for (const s of this.slots) {
      this.drawR(rng, s.r);
      this.writeSigns(s, s.r);
    }
  }

  update(step: MethodStep): void {
    const backend = this.requireBackend();
    const { momentum: mu, weightDecay: wd, scale } = this.options;
    const lr = step.learningRate;
    const gradScale = Math.sqrt(scale);
    for (const s of this.slots) {
      const n = s.n;
      const g = s.param.grad;
      // Mean: grad_m = g.
      sgdStep(backend, s.m, s.mMomentum, g, 1, lr, mu, wd, n);
      // Factor rows: grad_z_k = sqrt(S) r_k g, never materialised.
      for (let k = 0; k < s.zRows.length; k++) {
        const buf = s.zMomentumRows.length > 0 ? s.zMomentumRows[k] : null;
        sgdStep(backend, s.zRows[k], buf, g, gradScale * s.r[k], lr, mu, wd, n);
      }
      this.constrain(s);
    }
  }

  predict(kind: PredictionKind, rng: Rng): void {
    for (const s of this.slots) {
      if (kind === 'sample' && this.stochastic) {
        this.drawR(rng, this.sampleR);
        this.writeSigns(s, this.sampleR);
      } else {
        this.writeSigns(s, null);
      }
    }
  }

  stateTensors(): NamedTensor[] {
    return this.slots.flatMap((s) => {
      const name = s.param.name;
      const tensors: NamedTensor[] = [{ name: `${name}/m`, value: s.m }];
      if (s.z !== null) tensors.push({ name: `${name}/z`, value: s.z });
      if (s.mMomentum !== null) tensors.push({ name: `${name}/m_momentum`, value: s.mMomentum });
      if (s.zMomentum !== null) tensors.push({ name: `${name}/z_momentum`, value: s.zMomentum });
      return tensors;
    });
  }

  stateScalars(): Record<string, number> {
    return {};
  }

  loadStateScalars(): void {}

  dispose(): void {
    if (this.backend !== null) {
      for (const s of this.slots) {
        for (const b of [s.m, s.z, s.mMomentum, s.zMomentum]) if (b !== null) this.backend.free(b);
      }
    }
    this.slots = [];
    this.backend = null;
  }
}

/**
 * One torch.optim.SGD step (dampening 0, no Nesterov) on p with gradient c * g:
 *   buf <- mu * buf + c * g + wd * p;  p <- p - lr * buf       (buf starts at 0, so step 1 gives buf = grad)
 *   p <- p - lr * (c * g + wd * p)                             (mu = 0, no buffer)
 */
function sgdStep(
  backend: Backend,
  p: FloatArray,
  buf: FloatArray | null,
  g: FloatArray,
  c: number,
  lr: number,
  mu: number,
  wd: number,
  n: number,
): void {
  if (buf === null) {
    if (wd !== 0) backend.scale(p, 1 - lr * wd, n);
    backend.axpy(-lr * c, g, p, n);
    return;
  }
  backend.scale(buf, mu, n);
  backend.axpy(c, g, buf, n);
  if (wd !== 0) backend.axpy(wd, p, buf, n);
  backend.axpy(-lr, buf, p, n);
}
