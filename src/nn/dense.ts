/**
 * Fully connected layers: y = x W^T (+ b) for a batch of row vectors, W of shape [units, inFeatures].
 * `DenseBase` holds the one implementation; `Dense` (real weights, optional bias) and `BinaryDense`
 * (binary-dense.ts) configure it.
 *
 * Backward: dW = dy^T x, db = column sums of dy, dx = dy W, each a single GEMM over the batch.
 */
import { ShapeError } from '../errors.js';
import type { FloatArray, SignSurrogate } from '../backend/backend.js';
import { formatShape } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';
import type { Rng } from '../tensor/rng.js';
import { LayerBase } from './base.js';
import { InputBinarizer } from './binarizer.js';
import type { BinarizerKind } from './binarizer.js';
import { initWeight } from './init.js';
import type { WeightInit } from './init.js';
import type { ForwardContext, Parameter } from './layer.js';

/** Everything that distinguishes the dense variants. */
export interface DenseConfig {
  readonly units: number;
  /** When given, plan checks the input has this many features. */
  readonly inFeatures?: number;
  readonly bias: boolean;
  readonly kind: 'binary' | 'real';
  readonly init: WeightInit;
  readonly binarizer: BinarizerKind;
  readonly surrogate: SignSurrogate;
}

export abstract class DenseBase extends LayerBase {
  protected weightParam: Parameter | null = null;
  protected biasParam: Parameter | null = null;
  private binarizer: InputBinarizer | null = null;
  private output: FloatArray | null = null;
  /** dL/d(the input the GEMM saw): the layer's input gradient, or the sign's when binarizing. */
  private gradGemmInput: FloatArray | null = null;
  /** A column of ones: bias broadcast and bias gradient as GEMMs. */
  private ones: FloatArray | null = null;
  /** The last forward's input and the values the GEMM used (the input or its signs). */
  private input: FloatArray | null = null;
  private gemmInput: FloatArray | null = null;

  protected constructor(
    name: string,
    readonly config: DenseConfig,
  ) {
    super(name);
    if (!Number.isInteger(config.units) || config.units < 1) {
      throw new RangeError(`${name}: units must be a positive integer, got ${config.units}`);
    }
  }

  /** The weight [units, inFeatures]; throws before plan. */
  get weight(): Parameter {
    if (this.weightParam === null) throw new Error(`${this.name}: weight used before plan()`);
    return this.weightParam;
  }

  protected build(inputShape: Shape, maxBatch: number): Shape {
    const { units, inFeatures, bias, kind } = this.config;
    if (inputShape.length !== 1 || (inFeatures !== undefined && inputShape[0] !== inFeatures)) {
      const expected = inFeatures !== undefined ? formatShape([inFeatures]) : '[features] (one dimension)';
      throw new ShapeError(this.name, expected, formatShape(inputShape));
    }
    const features = inputShape[0];
    this.weightParam = this.parameter(this.weightParam, 'weight', [units, features], kind, true);
    this.biasParam = bias
      ? this.parameter(this.biasParam, 'bias', [units], 'real', true)
      : this.dropParameter(this.biasParam);
    this.output = this.activation(maxBatch * units);
    this.gradGemmInput = this.activation(maxBatch * features);
    this.ones = null;
    if (bias) {
      this.ones = this.activation(maxBatch);
      this.backend.fill(this.ones, 1, maxBatch);
    }
    this.binarizer =
      this.config.binarizer === 'sign'
        ? new InputBinarizer(
            this.backend,
            this.config.surrogate,
            this.activation(maxBatch * features),
            this.activation(maxBatch * features),
          )
        : null;
    return [units];
  }

  forward(input: FloatArray, batch: number, ctx: ForwardContext): FloatArray {
    void ctx;
    this.checkInput(input, batch);
    const be = this.backend;
    const units = this.config.units;
    const features = this.inSize;
    const y = this.output as FloatArray;
    const w = this.weight.value;
    const x = this.binarizer === null ? input : this.binarizer.forward(input, batch * features);
    this.input = input;
    this.gemmInput = x;
    if (this.biasParam !== null) {
      // y = 1 b^T, then y += x W^T.
      be.gemm('nn', batch, units, 1, this.ones as FloatArray, this.biasParam.value, y, false);
      be.gemm('nt', batch, units, features, x, w, y, true);
    } else {
      be.gemm('nt', batch, units, features, x, w, y, false);
    }
    return y;
  }

  backward(gradOutput: FloatArray, batch: number): FloatArray {
    this.checkGradOutput(gradOutput, batch);
    const be = this.backend;
    const units = this.config.units;
    const features = this.inSize;
    const x = this.gemmInput as FloatArray;
    const w = this.weight;
    be.gemm('tn', units, features, batch, gradOutput, x, w.grad, false);
    if (this.biasParam !== null) {
      be.gemm('tn', 1, units, batch, this.ones as FloatArray, gradOutput, this.biasParam.grad, false);
    }
    const gx = this.gradGemmInput as FloatArray;
    be.gemm('nn', batch, features, units, gradOutput, w.value, gx, false);
    if (this.binarizer === null) return gx;
    return this.binarizer.backward(this.input as FloatArray, gx, batch * features);
  }

  override parameters(): Parameter[] {
    const ps: Parameter[] = [];
    if (this.weightParam !== null) ps.push(this.weightParam);
    if (this.biasParam !== null) ps.push(this.biasParam);
    return ps;
  }

  override initialize(rng: Rng): void {
    const w = this.weight;
    const [units, features] = w.shape;
    initWeight(rng, w.value, this.config.init, features, units);
    if (this.biasParam !== null) this.backend.fill(this.biasParam.value, 0, units);
  }

  protected override onDispose(): void {
    this.weightParam = null;
    this.biasParam = null;
    this.binarizer = null;
    this.output = null;
    this.gradGemmInput = null;
    this.ones = null;
    this.input = null;
    this.gemmInput = null;
  }
}

export interface DenseOptions {
  readonly units: number;
  readonly inFeatures?: number;
  /** Default true. */
  readonly bias?: boolean;
  /** Default 'kaiming' (for ReLU networks); bias starts at 0. */
  readonly init?: WeightInit;
}

/** A real-valued fully connected layer with optional bias; parameters of kind 'real'. */
export class Dense extends DenseBase {
  constructor(name: string, options: DenseOptions) {
    super(name, {
      units: options.units,
      inFeatures: options.inFeatures,
      bias: options.bias ?? true,
      kind: 'real',
      init: options.init ?? 'kaiming',
      binarizer: 'none',
      surrogate: 'identity',
    });
  }
}
