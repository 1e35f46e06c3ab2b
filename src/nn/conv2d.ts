/**
 * 2-D convolution over NCHW batches as im2col + GEMM, one image at a time:
 *   col_i = im2col(x_i)            (C*kh*kw x outH*outW)
 *   y_i   = W col_i (+ b 1^T)      (W viewed as O x C*kh*kw)
 * Backward: dW = sum_i dy_i col_i^T, dx_i = col2im(W^T dy_i), db = per-channel sums of dy.
 * The column buffer is recomputed in backward instead of kept per image, which keeps memory at one
 * image's columns regardless of batch size.
 *
 * `Conv2dBase` holds the one implementation; `Conv2d` (real, optional bias) and `BinaryConv2d`
 * (binary-conv2d.ts) configure it.
 */
import { ShapeError } from '../errors.js';
import { convOutputSize } from '../backend/backend.js';
import type { Conv2dGeometry, FloatArray, SignSurrogate } from '../backend/backend.js';
import { formatShape } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';
import type { Rng } from '../tensor/rng.js';
import { LayerBase, ViewCache } from './base.js';
import { InputBinarizer } from './binarizer.js';
import type { BinarizerKind } from './binarizer.js';
import { initWeight } from './init.js';
import type { WeightInit } from './init.js';
import type { ForwardContext, Parameter } from './layer.js';

export interface Conv2dConfig {
  readonly filters: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly padding: number;
  /** When given, plan checks the input has this many channels. */
  readonly inChannels?: number;
  readonly bias: boolean;
  readonly kind: 'binary' | 'real';
  readonly init: WeightInit;
  readonly binarizer: BinarizerKind;
  readonly surrogate: SignSurrogate;
}

export abstract class Conv2dBase extends LayerBase {
  protected weightParam: Parameter | null = null;
  protected biasParam: Parameter | null = null;
  private geometry: Conv2dGeometry | null = null;
  private positions = 0;
  private binarizer: InputBinarizer | null = null;
  private col: FloatArray | null = null;
  private gradCol: FloatArray | null = null;
  private onesRow: FloatArray | null = null;
  private channelScratch: FloatArray | null = null;
  private outputViews: FloatArray[] = [];
  private gradInputViews: FloatArray[] = [];
  private output: FloatArray | null = null;
  private gradGemmInput: FloatArray | null = null;
  private input: FloatArray | null = null;
  private gemmInput: FloatArray | null = null;
  private readonly inputViews = new ViewCache();
  private readonly gradOutputViews = new ViewCache();

  protected constructor(
    name: string,
    readonly config: Conv2dConfig,
  ) {
    super(name);
    const { filters, kernelSize, stride, padding } = config;
    for (const [key, v, min] of [
      ['filters', filters, 1],
      ['kernelSize', kernelSize, 1],
      ['stride', stride, 1],
      ['padding', padding, 0],
    ] as const) {
      if (!Number.isInteger(v) || v < min)
        throw new RangeError(`${name}: ${key} must be an integer >= ${min}, got ${v}`);
    }
  }

  /** The weight [filters, inChannels, k, k]; throws before plan. */
  get weight(): Parameter {
    if (this.weightParam === null) throw new Error(`${this.name}: weight used before plan()`);
    return this.weightParam;
  }

  protected build(inputShape: Shape, maxBatch: number): Shape {
    const { filters, kernelSize: k, stride, padding, inChannels, bias, kind } = this.config;
    const expected = `[${inChannels ?? 'C'}, H, W] with H, W >= ${k - 2 * padding}`;
    if (inputShape.length !== 3 || (inChannels !== undefined && inputShape[0] !== inChannels)) {
      throw new ShapeError(this.name, expected, formatShape(inputShape));
    }
    const [channels, height, width] = inputShape;
    const g: Conv2dGeometry = { channels, height, width, kernelH: k, kernelW: k, stride, padding };
    const { outH, outW } = convOutputSize(g);
    if (outH < 1 || outW < 1) throw new ShapeError(this.name, expected, formatShape(inputShape));
    this.geometry = g;
    this.positions = outH * outW;
    const taps = channels * k * k;

    this.weightParam = this.parameter(this.weightParam, 'weight', [filters, channels, k, k], kind, true);
    this.biasParam = bias
      ? this.parameter(this.biasParam, 'bias', [filters], 'real', true)
      : this.dropParameter(this.biasParam);

    const outSize = filters * this.positions;
    this.output = this.activation(maxBatch * outSize);
    this.gradGemmInput = this.activation(maxBatch * this.inSize);
    this.col = this.activation(taps * this.positions);
    this.gradCol = this.activation(taps * this.positions);
    this.onesRow = null;
    this.channelScratch = null;
    if (bias) {
      this.onesRow = this.activation(this.positions);
      this.backend.fill(this.onesRow, 1, this.positions);
      this.channelScratch = this.activation(filters);
    }
    this.binarizer =
      this.config.binarizer === 'sign'
        ? new InputBinarizer(
            this.backend,
            this.config.surrogate,
            this.activation(maxBatch * this.inSize),
            this.activation(maxBatch * this.inSize),
          )
        : null;
    // Per-image views of our own buffers, made once here so that the step allocates nothing.
    this.outputViews = [];
    this.gradInputViews = [];
    for (let i = 0; i < maxBatch; i++) {
      this.outputViews.push(this.output.subarray(i * outSize, (i + 1) * outSize));
      this.gradInputViews.push(this.gradGemmInput.subarray(i * this.inSize, (i + 1) * this.inSize));
    }
    this.inputViews.clear();
    this.gradOutputViews.clear();
    return [filters, outH, outW];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    const be = this.backend;
    const g = this.geometry as Conv2dGeometry;
    const filters = this.config.filters;
    const taps = g.channels * g.kernelH * g.kernelW;
    const col = this.col as FloatArray;
    const w = this.weight.value;
    const x = this.binarizer === null ? input : this.binarizer.forward(input, batch * this.inSize);
    this.input = input;
    this.gemmInput = x;
    for (let i = 0; i < batch; i++) {
      be.im2col(this.inputViews.get(x, i, this.inSize), g, col);
      const yi = this.outputViews[i];
      if (this.biasParam !== null) {
        be.gemm(
          'nn',
          filters,
          this.positions,
          1,
          this.biasParam.value,
          this.onesRow as FloatArray,
          yi,
          false,
        );
        be.gemm('nn', filters, this.positions, taps, w, col, yi, true);
      } else {
        be.gemm('nn', filters, this.positions, taps, w, col, yi, false);
      }
    }
    return this.output as FloatArray;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const be = this.backend;
    const g = this.geometry as Conv2dGeometry;
    const filters = this.config.filters;
    const taps = g.channels * g.kernelH * g.kernelW;
    const col = this.col as FloatArray;
    const gradCol = this.gradCol as FloatArray;
    const w = this.weight;
    const x = this.gemmInput as FloatArray;
    for (let i = 0; i < batch; i++) {
      const dyi = this.gradOutputViews.get(gradOutput, i, this.outSize);
      be.im2col(this.inputViews.get(x, i, this.inSize), g, col);
      be.gemm('nt', filters, taps, this.positions, dyi, col, w.grad, i > 0);
      be.gemm('tn', taps, this.positions, filters, w.value, dyi, gradCol, false);
      be.col2im(gradCol, g, this.gradInputViews[i]);
    }
    if (this.biasParam !== null) {
      be.channelSums(
        gradOutput,
        null,
        batch,
        filters,
        this.positions,
        this.biasParam.grad,
        this.channelScratch as FloatArray,
      );
    }
    const gx = this.gradGemmInput as FloatArray;
    if (this.binarizer === null) return gx;
    return this.binarizer.backward(this.input as FloatArray, gx, batch * this.inSize);
  }

  override parameters(): Parameter[] {
    const ps: Parameter[] = [];
    if (this.weightParam !== null) ps.push(this.weightParam);
    if (this.biasParam !== null) ps.push(this.biasParam);
    return ps;
  }

  override initialize(rng: Rng): void {
    const w = this.weight;
    const [filters, channels, kh, kw] = w.shape;
    initWeight(rng, w.value, this.config.init, channels * kh * kw, filters * kh * kw);
    if (this.biasParam !== null) this.backend.fill(this.biasParam.value, 0, filters);
  }

  protected override onDispose(): void {
    this.weightParam = null;
    this.biasParam = null;
    this.binarizer = null;
    this.col = null;
    this.gradCol = null;
    this.onesRow = null;
    this.channelScratch = null;
    this.outputViews = [];
    this.gradInputViews = [];
    this.output = null;
    this.gradGemmInput = null;
    this.input = null;
    this.gemmInput = null;
    this.inputViews.clear();
    this.gradOutputViews.clear();
  }
}

export interface Conv2dOptions {
  readonly filters: number;
  /** Square kernel side. */
  readonly kernelSize: number;
  /** Default 1. */
  readonly stride?: number;
  /** Zero padding on every side; default 0. */
  readonly padding?: number;
  readonly inChannels?: number;
  /** Default true. */
  readonly bias?: boolean;
  /** Default 'kaiming'. */
  readonly init?: WeightInit;
}

/** A real-valued 2-D convolution with optional bias; parameters of kind 'real'. */
export class Conv2d extends Conv2dBase {
  constructor(name: string, options: Conv2dOptions) {
    super(name, {
      filters: options.filters,
      kernelSize: options.kernelSize,
      stride: options.stride ?? 1,
      padding: options.padding ?? 0,
      inChannels: options.inChannels,
      bias: options.bias ?? true,
      kind: 'real',
      init: options.init ?? 'kaiming',
      binarizer: 'none',
      surrogate: 'identity',
    });
  }
}
