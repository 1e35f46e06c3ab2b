/**
 * Batch normalisation (Ioffe & Szegedy 2015) over per-example shapes [C] (1-D) or [C, H, W] (2-D), with
 * PyTorch semantics:
 * - training: normalise with the batch mean and the biased batch variance over (N, H, W); update
 *   running = (1 - momentum) * running + momentum * batch statistic, using the unbiased variance
 *   (ForwardContext.batchNormMomentum, when given, overrides the momentum for that pass);
 * - evaluation: normalise with the running statistics;
 * - y = xhat * gamma + beta when affine, else y = xhat.
 *
 * Training backward goes through the batch statistics, per channel c over its M = N*H*W values:
 *   dx = gamma * invStd * (dy - mean(dy) - xhat * mean(dy * xhat)),
 *   dgamma = sum(dy * xhat), dbeta = sum(dy).
 * In evaluation mode the statistics are constants and dx = gamma * invStd * dy.
 */
import { ShapeError } from '../errors.js';
import type { FloatArray } from '../backend/backend.js';
import { formatShape } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';
import type { Rng } from '../tensor/rng.js';
import { LayerBase } from './base.js';
import type { ForwardContext, Parameter, StateBuffer } from './layer.js';

export interface BatchNormOptions {
  /** Learnable per-channel scale and shift; default true (PyTorch). */
  readonly affine?: boolean;
  /** Default 1e-5. */
  readonly eps?: number;
  /** Weight of the new batch statistic in the running estimate; default 0.1. */
  readonly momentum?: number;
  /** When given, plan checks the channel count. */
  readonly channels?: number;
}

/** Per-channel working arrays, each of length C. */
interface ChannelBuffers {
  readonly sums: FloatArray;
  readonly sumsB: FloatArray;
  readonly mean: FloatArray;
  readonly invStd: FloatArray;
  readonly mul: FloatArray;
  readonly add: FloatArray;
  readonly zeros: FloatArray;
  readonly ones: FloatArray;
}

export class BatchNorm extends LayerBase {
  readonly affine: boolean;
  readonly eps: number;
  readonly momentum: number;
  private gamma: Parameter | null = null;
  private beta: Parameter | null = null;
  private runningMean: StateBuffer | null = null;
  private runningVar: StateBuffer | null = null;
  private channels = 0;
  private spatial = 0;
  private perChannel: ChannelBuffers | null = null;
  private xhat: FloatArray | null = null;
  /** Output when affine (otherwise the output is xhat itself). */
  private output: FloatArray | null = null;
  /** Holds x - mean in forward and one term of dx in backward. */
  private scratch: FloatArray | null = null;
  private gradInput: FloatArray | null = null;
  private lastTraining = false;

  constructor(
    name: string,
    private readonly options: BatchNormOptions = {},
  ) {
    super(name);
    this.affine = options.affine ?? true;
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    if (!(this.eps > 0)) throw new RangeError(`${name}: eps must be > 0, got ${this.eps}`);
    if (!(this.momentum >= 0 && this.momentum <= 1)) {
      throw new RangeError(`${name}: momentum must be in [0, 1], got ${this.momentum}`);
    }
  }

  protected build(inputShape: Shape, maxBatch: number): Shape {
    const expected = this.options.channels;
    if (
      (inputShape.length !== 1 && inputShape.length !== 3) ||
      (expected !== undefined && inputShape[0] !== expected)
    ) {
      throw new ShapeError(
        this.name,
        `[${expected ?? 'C'}] or [${expected ?? 'C'}, H, W]`,
        formatShape(inputShape),
      );
    }
    const channels = inputShape[0];
    this.channels = channels;
    this.spatial = this.inSize / channels;
    if (this.affine) {
      const previous = this.gamma;
      this.gamma = this.parameter(this.gamma, 'weight', [channels], 'real', false);
      this.beta = this.parameter(this.beta, 'bias', [channels], 'real', false);
      if (this.gamma !== previous) this.backend.fill(this.gamma.value, 1, channels); // identity until initialize
    } else {
      this.gamma = this.dropParameter(this.gamma);
      this.beta = this.dropParameter(this.beta);
    }
    const fresh = this.runningVar === null || this.runningVar.value.length !== channels;
    this.runningMean = this.state(this.runningMean, 'running_mean', channels);
    this.runningVar = this.state(this.runningVar, 'running_var', channels);
    if (fresh) this.resetState();
    this.perChannel = {
      sums: this.activation(channels),
      sumsB: this.activation(channels),
      mean: this.activation(channels),
      invStd: this.activation(channels),
      mul: this.activation(channels),
      add: this.activation(channels),
      zeros: this.activation(channels),
      ones: this.activation(channels),
    };
    this.backend.fill(this.perChannel.ones, 1, channels);
    const size = maxBatch * this.inSize;
    this.xhat = this.activation(size);
    this.output = this.affine ? this.activation(size) : null;
    this.scratch = this.activation(size);
    this.gradInput = this.activation(size);
    return [...inputShape];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    this.checkInput(input, batch);
    const be = this.backend;
    const pc = this.perChannel as ChannelBuffers;
    const C = this.channels;
    const S = this.spatial;
    const count = batch * S;
    const xhat = this.xhat as FloatArray;
    const rm = (this.runningMean as StateBuffer).value;
    const rv = (this.runningVar as StateBuffer).value;
    this.lastTraining = ctx.training;
    if (ctx.training) {
      if (count < 2) {
        throw new ShapeError(this.name, 'more than 1 value per channel in training', `${count} per channel`);
      }
      // Two passes (mean, then the centred sum of squares) for a variance free of cancellation.
      be.channelSums(input, null, batch, C, S, pc.sums, pc.sumsB);
      for (let c = 0; c < C; c++) {
        pc.mean[c] = pc.sums[c] / count;
        pc.add[c] = -pc.mean[c];
      }
      const centred = this.scratch as FloatArray;
      be.channelAffine(input, pc.ones, pc.add, batch, C, S, centred);
      be.channelSums(centred, null, batch, C, S, pc.sums, pc.sumsB);
      const m = ctx.batchNormMomentum ?? this.momentum;
      for (let c = 0; c < C; c++) {
        const variance = pc.sumsB[c] / count; // biased: used to normalise
        pc.invStd[c] = 1 / Math.sqrt(variance + this.eps);
        rm[c] = (1 - m) * rm[c] + m * pc.mean[c];
        rv[c] = (1 - m) * rv[c] + m * (pc.sumsB[c] / (count - 1)); // unbiased: the running estimate
      }
      be.channelAffine(centred, pc.invStd, pc.zeros, batch, C, S, xhat);
    } else {
      for (let c = 0; c < C; c++) {
        pc.invStd[c] = 1 / Math.sqrt(rv[c] + this.eps);
        pc.add[c] = -rm[c] * pc.invStd[c];
      }
      be.channelAffine(input, pc.invStd, pc.add, batch, C, S, xhat);
    }
    if (!this.affine) return xhat;
    const out = this.output as FloatArray;
    be.channelAffine(xhat, (this.gamma as Parameter).value, (this.beta as Parameter).value, batch, C, S, out);
    return out;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const be = this.backend;
    const pc = this.perChannel as ChannelBuffers;
    const C = this.channels;
    const S = this.spatial;
    const count = batch * S;
    const xhat = this.xhat as FloatArray;
    const dx = this.gradInput as FloatArray;
    // sums = sum(dy), sumsB = sum(dy * xhat), per channel.
    be.channelSums(gradOutput, xhat, batch, C, S, pc.sums, pc.sumsB);
    if (this.affine) {
      be.copy(pc.sumsB, (this.gamma as Parameter).grad, C);
      be.copy(pc.sums, (this.beta as Parameter).grad, C);
    }
    const gamma = this.affine ? (this.gamma as Parameter).value : pc.ones;
    if (!this.lastTraining) {
      for (let c = 0; c < C; c++) pc.mul[c] = gamma[c] * pc.invStd[c];
      be.channelAffine(gradOutput, pc.mul, pc.zeros, batch, C, S, dx);
      return dx;
    }
    // dx = k*dy - k*mean(dy) + xhat * (-k*mean(dy*xhat)), k = gamma*invStd: two affine passes and a sum.
    const xhatCoef = pc.mean; // the mean is not needed any more; reuse its storage
    for (let c = 0; c < C; c++) {
      const k = gamma[c] * pc.invStd[c];
      pc.mul[c] = k;
      pc.add[c] = (-k * pc.sums[c]) / count;
      xhatCoef[c] = (-k * pc.sumsB[c]) / count;
    }
    const term = this.scratch as FloatArray;
    be.channelAffine(gradOutput, pc.mul, pc.add, batch, C, S, dx);
    be.channelAffine(xhat, xhatCoef, pc.zeros, batch, C, S, term);
    be.axpy(1, term, dx, batch * this.inSize);
    return dx;
  }

  override parameters(): Parameter[] {
    return this.gamma !== null && this.beta !== null ? [this.gamma, this.beta] : [];
  }

  override stateBuffers(): StateBuffer[] {
    return this.runningMean !== null && this.runningVar !== null ? [this.runningMean, this.runningVar] : [];
  }

  /** gamma = 1, beta = 0, running mean 0, running variance 1 (the generator is not used). */
  override initialize(rng: Rng): void {
    void rng;
    const be = this.backend;
    if (this.gamma !== null && this.beta !== null) {
      be.fill(this.gamma.value, 1, this.channels);
      be.fill(this.beta.value, 0, this.channels);
    }
    this.resetState();
  }

  private resetState(): void {
    this.backend.fill((this.runningMean as StateBuffer).value, 0, this.channels);
    this.backend.fill((this.runningVar as StateBuffer).value, 1, this.channels);
  }

  protected override onDispose(): void {
    this.gamma = null;
    this.beta = null;
    this.runningMean = null;
    this.runningVar = null;
    this.perChannel = null;
    this.xhat = null;
    this.output = null;
    this.scratch = null;
    this.gradInput = null;
  }
}
