/**
 * Model builders by name: the architectures the training methods are compared on (methods.md).
 *
 * Shared rules:
 * - every linear and conv layer is binary (weights proposed by the training method), without bias;
 * - BatchNorm follows every linear/conv layer, the logits included; affine off by default (BayesBiNN);
 * - activations 'real': ReLU, real activations (1W32A, BinaryConnect / BayesBiNN);
 *   activations 'binary': every binary layer after the first binarizes its input with sign (surrogate
 *   default clipped-identity) and the hidden activation is hardtanh (1W1A, BinaryNet). The first layer
 *   sees the real input;
 * - optionally (ModelOptions.channelScale) a learnable per-output-channel scale right after every binary
 *   layer, before its batch norm (VISPA's `Alpha`, see channel-scale.ts).
 *
 * Architectures:
 * - mlp-100:    784-100-100-10, no dropout (BayesBiNN permuted-MNIST continual learning);
 * - mlp-2x2048: 784-2048-2048-10;
 * - mlp-3x2048: 784-2048-2048-2048-10 with dropout 0.2 on the input and after each hidden layer
 *               (BayesBiNN MNIST); MLP batch norms use eps 1e-4, momentum 0.15 (methods.md 3.5);
 * - cnn-small:  our small MNIST CNN, sized so that an epoch of 60k images takes minutes:
 *                 conv 16 3x3 pad 1 -> BN -> act -> maxpool 2      (16 x 14 x 14)
 *                 conv 32 3x3 pad 1 -> BN -> act -> maxpool 2      (32 x 7 x 7)
 *                 flatten -> dense 10 -> BN
 *               about 1M multiply-adds per image forward; PyTorch batch-norm defaults;
 * - vgg-small:  the BinaryConnect-style VGG of BayesBiNN for 3x32x32 (methods.md 3.6):
 *                 conv 128 -> BN -> act; conv 128 -> maxpool -> BN -> act;
 *                 conv 256 -> BN -> act; conv 256 -> maxpool -> BN -> act;
 *                 conv 512 -> BN -> act; conv 512 -> maxpool -> BN -> act;
 *                 flatten -> FC 1024 -> BN -> act -> FC 1024 -> BN -> act -> FC classes -> BN
 *               (3x3 convs with padding 1; conv BNs eps 1e-5 momentum 0.2, FC BNs PyTorch defaults).
 */
import type { Backend, SignSurrogate } from '../backend/backend.js';
import type { Shape } from '../tensor/shape.js';
import { BatchNorm } from './batch-norm.js';
import { BinaryConv2d } from './binary-conv2d.js';
import { BinaryDense } from './binary-dense.js';
import { ChannelScale } from './channel-scale.js';
import { Dropout } from './dropout.js';
import { Flatten } from './flatten.js';
import { Hardtanh } from './hardtanh.js';
import type { Layer, Parameter } from './layer.js';
import { MaxPool2d } from './max-pool2d.js';
import { ReLU } from './relu.js';
import { Sequential } from './sequential.js';

export const MODEL_NAMES = ['mlp-100', 'mlp-2x2048', 'mlp-3x2048', 'cnn-small', 'vgg-small'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

export function isModelName(name: string): name is ModelName {
  return (MODEL_NAMES as readonly string[]).includes(name);
}

export interface ModelOptions {
  /** 'real' (default): binary weights, real ReLU activations. 'binary': sign activations too. */
  readonly activations?: 'real' | 'binary';
  /** Number of outputs; default 10. */
  readonly classes?: number;
  /** Per-example input shape; default [1, 28, 28] for the MNIST models, [3, 32, 32] for vgg-small. */
  readonly inputShape?: Shape;
  /** Learnable batch-norm scale and shift; default false. */
  readonly batchNormAffine?: boolean;
  /** Surrogate gradient of the activation binarizer; default 'clipped-identity'. */
  readonly surrogate?: SignSurrogate;
  /**
   * A learnable per-output-channel scale (ChannelScale, VISPA's `Alpha`, init U(0, 1)) right after every
   * binary layer, named scale1, scale2, ...; default false.
   */
  readonly channelScale?: boolean;
}

/** A named model: a Sequential that knows its input shape and splits its parameters by kind. */
export class Model extends Sequential {
  constructor(
    name: string,
    layers: readonly Layer[],
    /** The per-example input shape the builder was made for. */
    readonly inputShape: Shape,
  ) {
    super(name, layers);
  }

  /** Plans for the builder's input shape. */
  planFor(backend: Backend, maxBatch: number): Shape {
    return this.plan(backend, this.inputShape, maxBatch);
  }

  /** Weights of the binary layers, which a training method owns. */
  binaryParameters(): Parameter[] {
    return this.parameters().filter((p) => p.kind === 'binary');
  }

  /** Real-valued parameters (batch-norm affine and the like), which an optimizer owns. */
  realParameters(): Parameter[] {
    return this.parameters().filter((p) => p.kind === 'real');
  }
}

interface BatchNormSettings {
  readonly eps: number;
  readonly momentum: number;
}

const MLP_BN: BatchNormSettings = { eps: 1e-4, momentum: 0.15 };
const DEFAULT_BN: BatchNormSettings = { eps: 1e-5, momentum: 0.1 };
const VGG_CONV_BN: BatchNormSettings = { eps: 1e-5, momentum: 0.2 };

/** Appends layers with generated names (fc1, bn1, act1, ...) and applies the activation rules. */
class Stack {
  readonly layers: Layer[] = [];
  private linear = 0;
  private readonly binaryActivations: boolean;
  private readonly surrogate: SignSurrogate;
  private readonly affine: boolean;
  private readonly channelScale: boolean;

  constructor(options: ModelOptions) {
    this.binaryActivations = (options.activations ?? 'real') === 'binary';
    this.surrogate = options.surrogate ?? 'clipped-identity';
    this.affine = options.batchNormAffine ?? false;
    this.channelScale = options.channelScale ?? false;
  }

  /** The optional per-channel scale after the binary layer just pushed. */
  private scale(): void {
    if (this.channelScale) this.layers.push(new ChannelScale(`scale${this.linear}`));
  }

  /** Every binary layer but the first binarizes its input when activations are binary. */
  private binarizer(): 'none' | 'sign' {
    return this.binaryActivations && this.linear > 1 ? 'sign' : 'none';
  }

  dense(units: number): this {
    this.linear++;
    this.layers.push(
      new BinaryDense(`fc${this.linear}`, { units, binarizer: this.binarizer(), surrogate: this.surrogate }),
    );
    this.scale();
    return this;
  }

  conv(filters: number): this {
    this.linear++;
    this.layers.push(
      new BinaryConv2d(`conv${this.linear}`, {
        filters,
        kernelSize: 3,
        padding: 1,
        binarizer: this.binarizer(),
        surrogate: this.surrogate,
      }),
    );
    this.scale();
    return this;
  }

  batchNorm(settings: BatchNormSettings): this {
    this.layers.push(new BatchNorm(`bn${this.linear}`, { ...settings, affine: this.affine }));
    return this;
  }

  activation(): this {
    const name = `act${this.linear}`;
    this.layers.push(this.binaryActivations ? new Hardtanh(name) : new ReLU(name));
    return this;
  }

  maxPool(): this {
    this.layers.push(new MaxPool2d(`pool${this.linear}`, { kernelSize: 2 }));
    return this;
  }

  dropout(p: number): this {
    this.layers.push(new Dropout(`drop${this.linear}`, p));
    return this;
  }

  flatten(): this {
    this.layers.push(new Flatten('flatten'));
    return this;
  }
}

function mlp(options: ModelOptions, hidden: readonly number[], dropout: number, classes: number): Layer[] {
  const s = new Stack(options).flatten();
  if (dropout > 0) s.dropout(dropout);
  for (const units of hidden) {
    s.dense(units).batchNorm(MLP_BN).activation();
    if (dropout > 0) s.dropout(dropout);
  }
  return s.dense(classes).batchNorm(MLP_BN).layers;
}

function cnnSmall(options: ModelOptions, classes: number): Layer[] {
  const s = new Stack(options);
  s.conv(16).batchNorm(DEFAULT_BN).activation().maxPool();
  s.conv(32).batchNorm(DEFAULT_BN).activation().maxPool();
  return s.flatten().dense(classes).batchNorm(DEFAULT_BN).layers;
}

function vggSmall(options: ModelOptions, classes: number): Layer[] {
  const s = new Stack(options);
  for (const filters of [128, 256, 512]) {
    s.conv(filters).batchNorm(VGG_CONV_BN).activation();
    s.conv(filters).maxPool().batchNorm(VGG_CONV_BN).activation();
  }
  s.flatten();
  s.dense(1024).batchNorm(DEFAULT_BN).activation();
  s.dense(1024).batchNorm(DEFAULT_BN).activation();
  return s.dense(classes).batchNorm(DEFAULT_BN).layers;
}

/** Builds the named model, unplanned: call plan (or planFor) and initialize before use. */
export function buildModel(name: ModelName, options: ModelOptions = {}): Model {
  const classes = options.classes ?? 10;
  if (!Number.isInteger(classes) || classes < 1)
    throw new RangeError(`classes must be a positive integer, got ${classes}`);
  const mnist: Shape = [1, 28, 28];
  switch (name) {
    case 'mlp-100':
      return new Model(name, mlp(options, [100, 100], 0, classes), options.inputShape ?? mnist);
    case 'mlp-2x2048':
      return new Model(name, mlp(options, [2048, 2048], 0, classes), options.inputShape ?? mnist);
    case 'mlp-3x2048':
      return new Model(name, mlp(options, [2048, 2048, 2048], 0.2, classes), options.inputShape ?? mnist);
    case 'cnn-small':
      return new Model(name, cnnSmall(options, classes), options.inputShape ?? mnist);
    case 'vgg-small':
      return new Model(name, vggSmall(options, classes), options.inputShape ?? [3, 32, 32]);
    default: {
      const unknown: never = name;
      throw new RangeError(`unknown model "${String(unknown)}"; known: ${MODEL_NAMES.join(', ')}`);
    }
  }
}
