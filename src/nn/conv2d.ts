/**
 * 2-D convolution over NCHW batches as im2col + GEMM, a chunk of images per GEMM:
 *   col = im2col(x_chunk)          (C*kh*kw x chunk*outH*outW: the chunk's images side by side)
 *   Y   = W col (+ b 1^T)          (W viewed as O x C*kh*kw; Y is O x chunk*outH*outW)
 * and Y's blocks are copied to the NCHW output. Backward per chunk: dY gathered the same way,
 * dW (+)= dY col^T, dx_chunk = col2im(W^T dY), db = per-channel sums of dy. The copies between Y's layout
 * [O, chunk, positions] and the batch's [chunk, O, positions] are the backend's swapAxes.
 * One GEMM per chunk instead of one per image: a small layer's per-image GEMMs (cnn-small's 32 x 196 x 144)
 * ran at a tenth of the GEMM's speed. A chunk holds as many images as fit COLUMN_BUDGET floats of columns
 * (a whole batch of 100 on cnn-small, 3 images on vgg-small's widest layers), so memory stays bounded; the
 * columns are recomputed in backward instead of kept, and backward reuses the column buffer for W^T dY.
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

/** Floats of im2col columns per chunk (16 MiB in float32): the images per GEMM is what fits. */
const COLUMN_BUDGET = 1 << 22;

export abstract class Conv2dBase extends LayerBase {
  protected weightParam: Parameter | null = null;
  protected biasParam: Parameter | null = null;
  private geometry: Conv2dGeometry | null = null;
  private positions = 0;
  private binarizer: InputBinarizer | null = null;
  /** Images per chunk. */
  private chunk = 1;
  private col: FloatArray | null = null;
  /** A chunk's GEMM output Y (forward) or gathered dY (backward), O x chunk*positions. */
  private stage: FloatArray | null = null;
  private onesRow: FloatArray | null = null;
  private channelScratch: FloatArray | null = null;
  private output: FloatArray | null = null;
  private gradGemmInput: FloatArray | null = null;
  private input: FloatArray | null = null;
  private gemmInput: FloatArray | null = null;
  private readonly inputViews = new ViewCache();
  private readonly gradInputViews = new ViewCache();
  private readonly outputViews = new ViewCache();
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
    this.chunk = Math.max(1, Math.min(maxBatch, Math.floor(COLUMN_BUDGET / (taps * this.positions))));
    const columns = this.chunk * this.positions;
    this.col = this.activation(taps * columns);
    this.stage = this.activation(filters * columns);
    this.onesRow = null;
    this.channelScratch = null;
    if (bias) {
      this.onesRow = this.activation(columns);
      this.backend.fill(this.onesRow, 1, columns);
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
    this.inputViews.clear();
    this.gradInputViews.clear();
    this.outputViews.clear();
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
    const stage = this.stage as FloatArray;
    const w = this.weight.value;
    const x = this.binarizer === null ? input : this.binarizer.forward(input, batch * this.inSize);
    this.input = input;
    this.gemmInput = x;
    for (let b0 = 0; b0 < batch; b0 += this.chunk) {
      const c = Math.min(this.chunk, batch - b0);
      const columns = c * this.positions;
      be.im2col(this.inputViews.get(x, b0 / this.chunk, this.chunk * this.inSize), g, col, c);
      if (this.biasParam !== null) {
        be.gemm('nn', filters, columns, 1, this.biasParam.value, this.onesRow as FloatArray, stage, false);
        be.gemm('nn', filters, columns, taps, w, col, stage, true);
      } else {
        be.gemm('nn', filters, columns, taps, w, col, stage, false);
      }
      // [filters, c, positions] -> the chunk's images [c, filters, positions].
      be.swapAxes(
        stage,
        filters,
        c,
        this.positions,
        this.outputViews.get(
          this.output as FloatArray,
          b0 / this.chunk,
          this.chunk * filters * this.positions,
        ),
      );
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
    const stage = this.stage as FloatArray;
    const w = this.weight;
    const x = this.gemmInput as FloatArray;
    const gx = this.gradGemmInput as FloatArray;
    for (let b0 = 0; b0 < batch; b0 += this.chunk) {
      const c = Math.min(this.chunk, batch - b0);
      const columns = c * this.positions;
      be.swapAxes(
        this.gradOutputViews.get(gradOutput, b0 / this.chunk, this.chunk * filters * this.positions),
        c,
        filters,
        this.positions,
        stage,
      );
      be.im2col(this.inputViews.get(x, b0 / this.chunk, this.chunk * this.inSize), g, col, c);
      be.gemm('nt', filters, taps, columns, stage, col, w.grad, b0 > 0);
      // The columns are spent: W^T dY takes their buffer.
      be.gemm('tn', taps, columns, filters, w.value, stage, col, false);
      be.col2im(col, g, this.gradInputViews.get(gx, b0 / this.chunk, this.chunk * this.inSize), c);
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
    this.stage = null;
    this.onesRow = null;
    this.channelScratch = null;
    this.output = null;
    this.gradGemmInput = null;
    this.input = null;
    this.gemmInput = null;
    this.inputViews.clear();
    this.gradInputViews.clear();
    this.outputViews.clear();
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
