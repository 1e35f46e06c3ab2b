/**
 * Float-free training (docs/methods.md#float-free: our design from published ingredients): a training step in
 * integer and bitwise arithmetic only, with 2 bytes of state per binary weight.
 *
 * Network: the binary MLPs of models.ts with `--activations binary` (flatten, then dense layers; batch norm
 * and hardtanh after each hidden layer, batch norm after the logits). The float layers are not used: the
 * method runs its own integer network of the same shape in wasm/onebit-float-free.wasm (src/kernels/float-free,
 * no floating-point instruction; the TypeScript here moves bytes, draws the initial counters and the per-step
 * random keys, and computes the reported loss in float, a metric only). It plugs into the run as a
 * learner of its own (learner.ts): the trainer hands it raw 8-bit batches and asks it for test-time logits.
 *
 * Forward (batch of n):
 *  - first layer: 8-bit pixels centred to int8 (byte - 128) against +-1 weights, exact integer sums by
 *    masked additions (Hubara et al. 2016, "Binarized Neural Networks", keep the first layer's input at 8 bits);
 *  - later layers: XNOR/popcount on bit-packed signs, z = K - 2 popcount(a XOR w);
 *  - batch norm becomes integer centring: mu = ceil(sum_b z / n), a = sign(z - mu) (sign(0) = +1), stored
 *    bit-packed; a power-of-two scale 2^s ~ one standard deviation (from the mean absolute deviation; the
 *    shift-based batch norm of the same paper) sets the straight-through gate |z - mu| <= 2^s, also stored
 *    as one bit; running means (Q8, momentum 2^-3) give the test-time integer thresholds, which fold into
 *    the export's per-channel thresholds;
 *  - logits: (z - mu) * 2^(8 - s) in Q8 (natural-log units), one power-of-two scale for the layer.
 * Loss: softmax cross-entropy through an integer softmax: exponentials from a 256-entry table of powers of
 * two (Q16) and shifts, probabilities by integer division; the error p - onehot is an integer (Q16).
 * Backward, from the top:
 *  - the error passes the straight-through gate and the backward of batch norm, in integers: minus its
 *    column mean (the centring's backward) and minus its projection on the normalised activation (the
 *    variance term; exact at the output, where it is computed from the integer logits; for hidden units
 *    approximated by the stored sign, additions only). Without the variance term the updates chase the
 *    logits' scale, which the normalisation removes anyway: that cost 4 points of test accuracy (below);
 *  - each layer's error is requantised to int8 with a power-of-two scale (q = bitlen(max |g|) - 7, rounded
 *    to nearest);
 *  - dL/dx = W^T e and dL/dW = e x^T by additions only (W and x are +-1: masked sums, done as table lookups
 *    of subset sums), except dL/dW of the first layer, whose inputs are 8-bit pixels (int8 x int8 products);
 *  - each weight's int16 counter h takes h <- clamp(h - round_stochastic(dW / 2^shift), -clip, clip): a right
 *    shift as the learning rate, stochastic rounding from xorshift32 streams (keys from a xorshift32 state
 *    seeded by the run's Rng), fused with dL/dW so the gradient never exists in memory; the weight is
 *    sign(h). The per-layer error exponent q is not applied: each layer's step is normalised by its largest
 *    error, and the shift alone sets the step (with the 'halving' schedule as the decay).
 *
 * State per binary weight: one int16 counter (2 bytes; the packed sign bits are derived from it and rebuilt
 * on restore). Stored for backward per example: the 8-bit input plus 2 bits (sign and gate) per hidden unit.
 * Why int16 and not int8: with int8 the latent range is +-127, so the right shift that turns a normalised
 * int8 error sum (hundreds) into a counter step of the right size (a few hundredths of the range, as Adam's
 * 1e-3 on [-1, 1]) leaves almost everything to stochastic rounding; 16 bits keep the averaging of gradients
 * across steps in the counter itself.
 *
 * Measured on Fashion-MNIST, mlp-2x2048, 5 epochs, batch 100, seed 1 (validation / test accuracy; STE with
 * 1-bit activations: 0.8953 / 0.8873). This code: shift 2, 3 (the default), 4: 0.8800 / 0.8708,
 * 0.8862 / 0.8773, 0.8878 / 0.8759 — measured with a wasm update kernel that, for a fan-in that is a multiple
 * of 256 (2048 here), cleared the first packed word of some rows each step (fixed; the default shift now
 * gives test accuracy 0.8752, `npm run e2e -- float-free`). During development (shift 2, an earlier revision): without either
 * variance term 0.8553 / 0.8342, with the output's only 0.8755 / 0.8657. Tried and dropped (no gain at 1 or
 * 5 epochs): per-unit normalised steps, a leak of the counters towards 0, batch norm's per-channel 1/sigma in
 * the backward, the exact hidden variance term from recomputed pre-activations (0.8670 / 0.8555), per-class
 * output scales, a mean-based int8 error scale, other initial counter ranges and first-layer shifts.
 */
import { ConfigError } from '../errors.js';
import type { Backend } from '../backend/backend.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import { layerNames } from '../nn/models.js';
import type { ModelSpec } from '../nn/spec.js';
import type { Shape } from '../tensor/shape.js';
import { defineMethod } from './definition.js';
import { createReferenceKernels, type FfKernels } from './float-free/kernels.js';
import { powerTable, roundLog2, rowStride, words, xorshift32 } from './float-free/reference.js';
import { createNativeKernels } from './float-free/native-kernels.js';
import { createWasmKernels } from './float-free/wasm-kernels.js';
import {
  measuredStateBytes,
  type Learner,
  type BinarySigns,
  type LearnerScalars,
  type LearnerSetup,
  type LearnerStep,
  type StepResult,
} from './learner.js';
import type { ByteImageSource } from './method.js';

export type FloatFreeSchedule = 'constant' | 'halving';
export const FLOAT_FREE_SCHEDULES: readonly FloatFreeSchedule[] = ['constant', 'halving'];

export interface FloatFreeOptions {
  /** Right shift of the counter update of layers with +-1 inputs (learning rate 2^-shift). */
  readonly shift: number;
  /** Extra right shift of the first layer, whose inputs are 8-bit pixels rather than +-1. */
  readonly pixelShift: number;
  /** Counters are clamped to [-clip, clip] (at most 32767: int16). */
  readonly clip: number;
  /** Initial counters uniform in [-init, init]; 0: clip * sqrt(6 / (fan_in + fan_out)) per layer (Glorot). */
  readonly init: number;
  /**
   * 'halving': the shift grows by one each time the remaining steps halve (steps [0, T/2) shift, [T/2, 3T/4)
   * shift + 1, ...; at most + 5), an integer stand-in for the cosine decay; 'constant': no decay.
   */
  readonly schedule: FloatFreeSchedule;
  /** Running statistics: running += (batch - running) >> momentumShift (3: momentum 1/8). */
  readonly momentumShift: number;
  /** Backpropagate through the centring (subtract each column's mean error), as batch norm does. */
  readonly center: boolean;
  /**
   * The output error loses its component along each class's centred logits (the variance term of batch
   * norm's backward: the normalised logits do not depend on the raw scale, so neither should the gradient).
   */
  readonly project: boolean;
  /**
   * The same for hidden errors, with the normalised activation approximated by its stored sign (the
   * projection off the sign pattern; additions only).
   */
  readonly projectHidden: boolean;
}

/** Test-time exponent of the logits from the output statistics (ff_output_train): round_log2(stats[0] / 256). */
export function floatFreeOutputExponent(stats: ArrayLike<number>): number {
  return roundLog2(Math.floor(stats[0] / 256));
}

export const FLOAT_FREE_DEFAULTS: FloatFreeOptions = {
  shift: 3,
  pixelShift: 7,
  clip: 32767,
  init: 0,
  schedule: 'halving',
  momentumShift: 3,
  center: true,
  project: true,
  projectHidden: true,
};

/** Largest ff-shift + ff-pixel-shift: the first layer's update must keep some bits of 8-bit pixels * error. */
const MAX_TOTAL_SHIFT = 24;

/** Float-free's options; it runs its own network, so it asks for no real-valued optimizer or schedule. */
export const FLOAT_FREE = defineMethod({
  name: 'float-free',
  description: 'integers only: int16 counters, shifts, popcounts',
  unusedRunSettings: {
    settings: [
      'learningRate',
      'schedule',
      'warmupEpochs',
      'realLearningRate',
      'realOptimizer',
      'realWeightDecay',
      'recalibrateBatchNorm',
    ],
    reason:
      'float-free steps by integer shifts (--ff-shift, --ff-schedule), has no real-valued parameters and keeps its own integer statistics',
  },
  options: [
    {
      key: 'ffShift',
      flag: '--ff-shift',
      kind: 'integer',
      default: FLOAT_FREE_DEFAULTS.shift,
      range: { min: 0, max: 20 },
      placeholder: 'k',
      help: 'right shift of the integer counter update, learning rate 2^-k',
    },
    {
      key: 'ffPixelShift',
      flag: '--ff-pixel-shift',
      kind: 'integer',
      default: FLOAT_FREE_DEFAULTS.pixelShift,
      range: { min: 0 },
      placeholder: 'k',
      help: `extra shift of the first layer, whose inputs are 8-bit pixels (--ff-shift + k <= ${MAX_TOTAL_SHIFT})`,
    },
    {
      key: 'ffClip',
      flag: '--ff-clip',
      kind: 'integer',
      default: FLOAT_FREE_DEFAULTS.clip,
      range: { min: 1, max: 32767 },
      placeholder: 'c',
      help: 'int16 counters are clamped to [-c, c]',
    },
    {
      key: 'ffInit',
      flag: '--ff-init',
      kind: 'integer',
      default: FLOAT_FREE_DEFAULTS.init,
      range: { min: 0 },
      placeholder: 'c',
      help: 'initial counters uniform in [-c, c], c <= --ff-clip; 0: c = clip * sqrt(6 / (fan_in + fan_out))',
    },
    {
      key: 'ffSchedule',
      flag: '--ff-schedule',
      kind: 'choice',
      choices: FLOAT_FREE_SCHEDULES,
      default: FLOAT_FREE_DEFAULTS.schedule,
      help: 'halving: the shift grows by one each time the remaining steps halve',
    },
    {
      key: 'ffCenter',
      flag: '--no-ff-center',
      kind: 'boolean',
      default: FLOAT_FREE_DEFAULTS.center,
      help: 'do not backpropagate through the centring (batch-norm mean)',
    },
    {
      key: 'ffProject',
      flag: '--no-ff-project',
      kind: 'boolean',
      default: FLOAT_FREE_DEFAULTS.project,
      help: "keep the output error's component along the logits (no variance term of batch norm)",
    },
    {
      key: 'ffProjectHidden',
      flag: '--no-ff-project-hidden',
      kind: 'boolean',
      default: FLOAT_FREE_DEFAULTS.projectHidden,
      help: 'no variance term (sign approximation) for hidden errors',
    },
  ],
  check(v) {
    if (v.ffShift + v.ffPixelShift > MAX_TOTAL_SHIFT) {
      throw new ConfigError(
        '--ff-pixel-shift',
        `an integer in 0..${MAX_TOTAL_SHIFT - v.ffShift} (--ff-shift + --ff-pixel-shift <= ${MAX_TOTAL_SHIFT})`,
        String(v.ffPixelShift),
      );
    }
    if (v.ffInit > v.ffClip) {
      throw new ConfigError(
        '--ff-init',
        `an integer in 0..--ff-clip (${v.ffClip}); 0 = Glorot-like`,
        String(v.ffInit),
      );
    }
  },
  createLearner: (v, setup) =>
    new FloatFreeMethod({
      ...FLOAT_FREE_DEFAULTS,
      shift: v.ffShift,
      pixelShift: v.ffPixelShift,
      clip: v.ffClip,
      init: v.ffInit,
      schedule: v.ffSchedule,
      center: v.ffCenter,
      project: v.ffProject,
      projectHidden: v.ffProjectHidden,
    }).bind(setup),
});

const MAX_EXTRA_SHIFT = 5;
/**
 * Largest batch: int32 column sums of errors (n * 2048 * 127 for a 2048-wide layer) must stay far from
 * overflow.
 */
export const FLOAT_FREE_MAX_BATCH = 4096;

interface DenseSpec {
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

/**
 * The dense layers of a binary MLP with binary activations, read from its spec, or a ConfigError naming
 * the layer that does not fit. Accepts flatten, binary dense layers (the first on the real input, later
 * ones with a sign binarizer), batch norm without affine parameters, and hardtanh. The dense layers keep
 * the names the float model gives them (models.ts), so checkpoints name the same layers either way.
 */
export function floatFreeLayers(spec: ModelSpec): DenseSpec[] {
  let features = spec.input.reduce((a, d) => a * d, 1);
  const dense: DenseSpec[] = [];
  const names = layerNames(spec);
  spec.layers.forEach((layer, i) => {
    const where = `--model (layers[${i}], ${layer.type})`;
    switch (layer.type) {
      case 'flatten':
        return;
      case 'binaryDense': {
        const wantSign = dense.length > 0;
        if ((layer.binarizer === 'sign') !== wantSign) {
          throw new ConfigError(
            wantSign ? '--activations' : where,
            wantSign
              ? 'binary for --method float-free (1-bit activations into every layer after the first)'
              : 'a first dense layer on the real input (no binarizer) for --method float-free',
            wantSign ? 'real' : 'binarizer "sign"',
          );
        }
        dense.push({ name: names[i], inFeatures: features, outFeatures: layer.units });
        features = layer.units;
        return;
      }
      case 'batchNorm':
        if (layer.affine === true)
          throw new ConfigError('--bn-affine', 'off for --method float-free (integer centring)', 'on');
        return;
      case 'hardtanh':
        return;
      case 'relu':
        throw new ConfigError('--activations', 'binary for --method float-free (1-bit activations)', 'real');
      default:
        throw new ConfigError(
          '--model',
          'an MLP of binary dense layers, batch norm and hardtanh for --method float-free (mlp-100, mlp-2x2048)',
          `layer ${i} of type ${layer.type}`,
        );
    }
  });
  if (dense.length === 0) throw new ConfigError('--model', 'at least one binary dense layer', 'none');
  return dense;
}

/** Bytes kept for backward per example: the 8-bit input, and a sign bit and a gate bit per hidden unit. */
export function floatFreeActivationBytes(layers: readonly DenseSpec[]): number {
  let bits = 8 * layers[0].inFeatures;
  for (let l = 0; l + 1 < layers.length; l++) bits += 2 * layers[l].outFeatures;
  return Math.ceil(bits / 8);
}

/** Integer square root (floor). */
function isqrt(v: number): number {
  let r = Math.floor(Math.sqrt(v));
  while (r * r > v) r--;
  while ((r + 1) * (r + 1) <= v) r++;
  return r;
}

/** The learning-rate shift's growth at 0-based step t of T under the schedule. */
export function scheduleExtraShift(schedule: FloatFreeSchedule, t: number, total: number): number {
  if (schedule === 'constant' || total <= 0) return 0;
  const remaining = Math.max(1, total - t);
  let extra = 0;
  while (extra < MAX_EXTRA_SHIFT && remaining * 2 ** (extra + 1) <= total) extra++;
  return extra;
}

/**
 * The integer step's kernels on a backend: the reference's on the reference backend, the native addon's on
 * the native backend (at its level), else the wasm module's. All three give the same results bit for bit.
 */
function defaultKernels(backend: Backend): FfKernels {
  if (backend.name === 'reference') return createReferenceKernels();
  if (backend.name === 'native')
    return createNativeKernels({ threads: backend.threads, level: backend.level });
  return createWasmKernels({ threads: backend.threads });
}

/** One layer's state and buffers. */
interface Slot {
  readonly spec: DenseSpec;
  /** Counter row stride (input features padded to 16). */
  readonly p: number;
  /** Output stride of z, e (padded to 16). */
  readonly outStride: number;
  readonly counters: Int16Array;
  /** Packed sgn(counters), for layers with bit inputs; derived. */
  readonly packed: Uint32Array | null;
  readonly running: Int32Array;
  readonly mu: Int32Array;
  readonly gexp: Int32Array;
  /** Hidden layers: packed signs and gates of the last forward ([maxBatch][words(out)]). */
  readonly act: Uint32Array | null;
  readonly gate: Uint32Array | null;
  /** Quantised error at this layer's output. */
  readonly e: Int8Array;
}

export class FloatFreeMethod implements Learner {
  readonly method = 'float-free';
  readonly inference = 'float-free' as const;
  readonly stochastic = false;
  private specOrNull: ModelSpec | null = null;
  private logitBuffer: Float64Array = new Float64Array(0);
  private kernels: FfKernels | null = null;
  private slots: Slot[] = [];
  private inputShape: Shape = [1];
  private maxBatch = 0;
  private totalSteps = 0;
  private rngState = 1;
  // Shared buffers (allocated by bind).
  private x: Int8Array = new Int8Array(0);
  private xp: Uint32Array = new Uint32Array(0);
  private z: Int32Array = new Int32Array(0);
  private ex: Int32Array = new Int32Array(0);
  private pairs: Uint32Array = new Uint32Array(0);
  private labels: Int32Array = new Int32Array(0);
  private lut: Int32Array = new Int32Array(0);
  private stats: Int32Array = new Int32Array(0);
  private u: Int32Array = new Int32Array(0);
  private g: Int32Array = new Int32Array(0);
  /** The exponents q of the last step's error quantisation, output layer first (diagnostics). */
  readonly lastErrorExponents: number[] = [];

  /**
   * @param kernels which kernels to run on (default: the wasm module with the backend's threads for the wasm
   *   backend, the TypeScript reference for the reference backend)
   */
  constructor(
    readonly options: FloatFreeOptions = FLOAT_FREE_DEFAULTS,
    private readonly kernelsFor: (backend: Backend) => FfKernels = defaultKernels,
  ) {}

  /** The spec the learner was bound to. */
  get spec(): ModelSpec {
    if (this.specOrNull === null) throw new Error('float-free: used before bind()');
    return this.specOrNull;
  }

  /** Binary weights of the integer network. */
  get binaryWeights(): number {
    return this.slots.reduce((sum, s) => sum + s.spec.inFeatures * s.spec.outFeatures, 0);
  }

  /** Binds the method to a network of `setup.spec`: allocates everything and draws the initial counters. */
  bind(setup: LearnerSetup): this {
    const { spec, backend, rng, maxBatch, context } = setup;
    const inputShape = spec.input;
    const classes = spec.classes;
    this.dispose();
    this.specOrNull = spec;
    const specs = floatFreeLayers(spec);
    const last = specs[specs.length - 1];
    if (last.outFeatures !== classes) {
      throw new ConfigError('model', `${classes} outputs`, `${last.outFeatures} (${last.name})`);
    }
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > FLOAT_FREE_MAX_BATCH) {
      throw new ConfigError(
        'batch-size',
        `an integer in 1..${FLOAT_FREE_MAX_BATCH} for float-free`,
        String(maxBatch),
      );
    }
    const k = this.kernelsFor(backend);
    this.kernels = k;
    this.inputShape = inputShape;
    this.maxBatch = maxBatch;
    this.totalSteps = context.totalSteps ?? 0;
    const { clip, init } = this.options;
    let maxStride = 16;
    this.slots = specs.map((spec, l) => {
      const p = rowStride(spec.inFeatures);
      const outStride = rowStride(spec.outFeatures);
      maxStride = Math.max(maxStride, p, outStride);
      const hidden = l + 1 < specs.length;
      const wd = words(spec.outFeatures);
      return {
        spec,
        p,
        outStride,
        counters: k.int16(spec.outFeatures * p),
        packed: l > 0 ? k.uint32(spec.outFeatures * words(spec.inFeatures)) : null,
        running: k.int32(spec.outFeatures),
        mu: k.int32(spec.outFeatures),
        gexp: k.int32(spec.outFeatures),
        act: hidden ? k.uint32(maxBatch * wd) : null,
        gate: hidden ? k.uint32(maxBatch * wd) : null,
        e: k.int8(maxBatch * outStride),
      };
    });
    const p0 = this.slots[0].p;
    const pairsOf = Math.ceil(maxBatch / 2);
    this.x = k.int8(maxBatch * p0);
    this.xp = k.uint32(pairsOf * p0);
    this.z = k.int32(maxBatch * maxStride);
    this.ex = k.int32(maxBatch * maxStride);
    this.pairs = k.uint32(this.slots[0].outStride * pairsOf);
    this.labels = k.int32(maxBatch);
    this.lut = k.int32(256);
    this.lut.set(powerTable());
    this.stats = k.int32(2);
    this.u = k.int32(maxBatch * classes);
    this.g = k.int32(maxBatch * classes);

    // Initial counters: uniform integers from the run's generator; padding columns stay 0.
    for (const s of this.slots) {
      const { inFeatures, outFeatures } = s.spec;
      const bound =
        init > 0
          ? Math.min(init, clip)
          : Math.floor((clip * isqrt(Math.floor((6 * 2 ** 30) / (inFeatures + outFeatures)))) / 2 ** 15);
      for (let i = 0; i < outFeatures; i++) {
        for (let j = 0; j < inFeatures; j++) s.counters[i * s.p + j] = rng.int(2 * bound + 1) - bound;
      }
    }
    this.rngState = rng.nextUint32() || 1;
    this.repack();
    this.logitBuffer = new Float64Array(maxBatch * classes);
    return this;
  }

  prepare(): Promise<void> {
    return this.requireKernels().ready();
  }

  private requireKernels(): FfKernels {
    if (this.kernels === null) throw new Error('float-free: bind() must be called before use');
    return this.kernels;
  }

  binarySigns(): BinarySigns[] {
    // The weights are the counters' signs (h < 0 is -1), whatever `predict` asked for.
    return this.slots.map((s) => {
      const { inFeatures, outFeatures } = s.spec;
      const negative = new Uint8Array(inFeatures * outFeatures);
      for (let i = 0; i < outFeatures; i++) {
        for (let j = 0; j < inFeatures; j++)
          negative[i * inFeatures + j] = s.counters[i * s.p + j] < 0 ? 1 : 0;
      }
      return { name: `${s.spec.name}.weight`, negative };
    });
  }

  /** Rebuilds the packed signs from the counters (after a restore). */
  private repack(): void {
    for (const s of this.slots) {
      if (s.packed === null) continue;
      const { inFeatures, outFeatures } = s.spec;
      const wd = words(inFeatures);
      s.packed.fill(0);
      for (let i = 0; i < outFeatures; i++) {
        for (let j = 0; j < inFeatures; j++) {
          if (s.counters[i * s.p + j] < 0) s.packed[i * wd + (j >>> 5)] |= 1 << (j & 31);
        }
      }
    }
  }

  /** Copies items order[start..start+n) into the input buffer (raw bytes) and the labels. */
  private load(data: ByteImageSource, order: ArrayLike<number>, start: number, n: number): void {
    const k = this.requireKernels();
    if (!Number.isInteger(n) || n < 1 || n > this.maxBatch) {
      throw new RangeError(`float-free: batch of ${n} examples, planned for 1..${this.maxBatch}`);
    }
    const [c, h, w] = this.inputShape;
    if (data.shape[0] !== c || data.shape[1] !== h || data.shape[2] !== w) {
      throw new RangeError(
        `float-free: images of shape [${data.shape.join(', ')}], planned for [${c}, ${h}, ${w}]`,
      );
    }
    const features = c * h * w;
    const p = this.slots[0].p;
    const bytes = k.bytes(this.x);
    for (let b = 0; b < n; b++) {
      const item = order[start + b];
      bytes.set(data.images.subarray(item * features, (item + 1) * features), b * p);
      this.labels[b] = data.labels[item];
    }
    k.input(n, features, p, this.x, this.xp);
  }

  /** Forward through every layer; the last layer's pre-activations are left in z (stride outStride). */
  private forward(n: number, mode: 0 | 1): void {
    const k = this.requireKernels();
    const shift = this.options.momentumShift;
    for (let l = 0; l < this.slots.length; l++) {
      const s = this.slots[l];
      const { inFeatures, outFeatures } = s.spec;
      if (l === 0) k.densePixels(n, outFeatures, s.p, this.x, s.counters, this.z, s.outStride);
      else {
        const prev = this.slots[l - 1];
        k.denseBits(
          n,
          outFeatures,
          inFeatures,
          prev.act as Uint32Array,
          s.packed as Uint32Array,
          this.z,
          s.outStride,
        );
      }
      if (s.act !== null) {
        k.hidden(
          n,
          outFeatures,
          this.z,
          s.outStride,
          mode,
          s.running,
          shift,
          s.mu,
          s.gexp,
          s.act,
          s.gate as Uint32Array,
        );
      }
    }
  }

  trainBatch(
    data: ByteImageSource,
    order: ArrayLike<number>,
    start: number,
    n: number,
    step: LearnerStep,
  ): StepResult {
    const k = this.requireKernels();
    this.load(data, order, start, n);
    this.forward(n, 1);
    const L = this.slots.length;
    const out = this.slots[L - 1];
    const classes = out.spec.outFeatures;
    const { momentumShift, center, clip } = this.options;
    k.outputTrain(
      n,
      classes,
      this.z,
      out.outStride,
      this.labels,
      this.lut,
      out.running,
      momentumShift,
      this.stats,
      out.mu,
      this.u,
      this.g,
      this.options.project,
    );
    const metrics = this.metrics(n, classes);

    // Backward: the output error, then each layer from the top.
    this.lastErrorExponents.length = 0;
    this.lastErrorExponents.push(
      k.centerQuantize(
        n,
        classes,
        this.g,
        classes,
        null,
        center,
        null,
        out.e,
        out.outStride,
        L === 1 ? this.pairs : null,
      ),
    );
    const extra = scheduleExtraShift(this.options.schedule, step.step - 1, this.totalSteps);
    const shift = this.options.shift + extra;
    for (let l = L - 1; l >= 0; l--) {
      const s = this.slots[l];
      const { inFeatures, outFeatures } = s.spec;
      this.rngState = xorshift32(this.rngState);
      const key = this.rngState;
      if (l > 0) {
        const prev = this.slots[l - 1];
        k.backwardInput(n, outFeatures, s.p, s.counters, s.e, s.outStride, this.ex);
        k.updateBits(
          n,
          outFeatures,
          inFeatures,
          s.p,
          s.e,
          s.outStride,
          prev.act as Uint32Array,
          s.counters,
          s.packed as Uint32Array,
          key,
          shift,
          clip,
        );
        this.lastErrorExponents.push(
          k.centerQuantize(
            n,
            inFeatures,
            this.ex,
            s.p,
            prev.gate,
            center,
            this.options.projectHidden ? prev.act : null,
            prev.e,
            prev.outStride,
            l === 1 ? this.pairs : null,
          ),
        );
      } else {
        k.updatePixels(
          n,
          outFeatures,
          inFeatures,
          s.p,
          this.pairs,
          this.xp,
          s.counters,
          key,
          shift + this.options.pixelShift,
          clip,
        );
      }
    }
    return metrics;
  }

  /** Loss (softmax cross-entropy of the integer logits u / 256) and hits: metrics only, in float. */
  private metrics(n: number, classes: number): StepResult {
    let loss = 0;
    let correct = 0;
    for (let b = 0; b < n; b++) {
      const row = b * classes;
      let best = 0;
      for (let c = 1; c < classes; c++) if (this.u[row + c] > this.u[row + best]) best = c;
      const top = this.u[row + best] / 256;
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += Math.exp(this.u[row + c] / 256 - top);
      loss += top + Math.log(sum) - this.u[row + this.labels[b]] / 256;
      if (best === this.labels[b]) correct++;
    }
    return { loss: loss / n, correct };
  }

  /** The output layer's test-time exponent: logits are raw / 2^(8 + s). */
  outputExponent(): number {
    return floatFreeOutputExponent(this.stats);
  }

  /** Test-time logits (deterministic: the integer network has no distribution to sample). */
  logits(data: ByteImageSource, order: ArrayLike<number>, start: number, n: number): Float64Array {
    const out = this.logitBuffer;
    const k = this.requireKernels();
    this.load(data, order, start, n);
    this.forward(n, 0);
    const last = this.slots[this.slots.length - 1];
    const classes = last.spec.outFeatures;
    k.outputEval(n, classes, this.z, last.outStride, last.running, this.u);
    const scale = 2 ** -(8 + this.outputExponent());
    for (let i = 0; i < n * classes; i++) out[i] = this.u[i] * scale;
    return out;
  }

  /**
   * The raw integer logits of the last `logits` call (256 z - running, in units of 2^-(8 + s)).
   */
  rawLogits(n: number): Int32Array {
    const classes = this.slots[this.slots.length - 1].spec.outFeatures;
    return this.u.subarray(0, n * classes);
  }

  /** The trained network's integer parameters, for export: counters' signs, thresholds and the output scale. */
  network(): {
    readonly layers: readonly {
      readonly name: string;
      readonly inFeatures: number;
      readonly outFeatures: number;
      readonly stride: number;
      readonly counters: Int16Array;
      readonly running: Int32Array;
    }[];
    readonly outputExponent: number;
  } {
    return {
      layers: this.slots.map((s) => ({ ...s.spec, stride: s.p, counters: s.counters, running: s.running })),
      outputExponent: this.outputExponent(),
    };
  }

  /** The integer network is deterministic: its mode is the only network, and there is nothing to sample. */
  predict(): void {}

  /** Float-free training keeps one deterministic network: no distribution, so no mean or flip probabilities. */
  readonly hasMean = false;

  predictMean(): void {
    throw new Error('float-free has no posterior mean predictor');
  }

  weightUncertainty(): null {
    return null;
  }

  /** Its centring statistics are integer running means of the trained network already. */
  recalibrate(): void {}

  /** Continual learning: the counters carry over from task to task. */
  beginTask(): void {}

  /** Bytes kept for backward per example: the 8-bit input and two bits per hidden unit. */
  activationBytesPerExample(): number {
    return floatFreeActivationBytes(this.slots.map((s) => s.spec));
  }

  stateBytesPerWeight(): number {
    return measuredStateBytes(this.stateTensors(), this.binaryWeights);
  }

  stateTensors(): NamedTensor[] {
    return [
      ...this.slots.flatMap((s) => [
        { name: `method/${s.spec.name}/counters`, value: s.counters },
        { name: `method/${s.spec.name}/running_mean_q8`, value: s.running },
      ]),
      { name: 'method/output/scale_stats', value: this.stats },
    ];
  }

  stateScalars(): LearnerScalars {
    return { method: { rngState: this.rngState }, optimizer: {} };
  }

  /** Called after the tensors were restored (run.ts), so the derived packed signs are rebuilt here too. */
  loadStateScalars(scalars: LearnerScalars): void {
    const s = scalars.method.rngState;
    if (s !== undefined) {
      if (!Number.isInteger(s) || s <= 0 || s > 0xffffffff)
        throw new RangeError(`float-free: bad rngState ${s}`);
      this.rngState = s;
    }
    this.repack();
  }

  dispose(): void {
    this.kernels?.dispose();
    this.kernels = null;
    this.slots = [];
  }
}
