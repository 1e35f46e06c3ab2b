/**
 * The named models as specs (spec.ts), and models built from any spec: the architectures the training
 * methods are compared on (docs/methods.md). `namedModelSpec` writes a named model as a spec;
 * `buildModelFromSpec` turns any valid spec into layers, named as spec.ts describes.
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
 *               (BayesBiNN MNIST); MLP batch norms use eps 1e-4, momentum 0.15 (docs/methods.md#bayesbinn);
 * - cnn-small:  our small MNIST CNN, sized so that an epoch of 60k images takes minutes:
 *                 conv 16 3x3 pad 1 -> BN -> act -> maxpool 2      (16 x 14 x 14)
 *                 conv 32 3x3 pad 1 -> BN -> act -> maxpool 2      (32 x 7 x 7)
 *                 flatten -> dense 10 -> BN
 *               about 1M multiply-adds per image forward; PyTorch batch-norm defaults;
 * - vgg-small:  the BinaryConnect-style VGG of BayesBiNN for 3x32x32 (docs/methods.md#bayesbinn):
 *                 conv 128 -> BN -> act; conv 128 -> maxpool -> BN -> act;
 *                 conv 256 -> BN -> act; conv 256 -> maxpool -> BN -> act;
 *                 conv 512 -> BN -> act; conv 512 -> maxpool -> BN -> act;
 *                 flatten -> FC 1024 -> BN -> act -> FC 1024 -> BN -> act -> FC classes -> BN
 *               (3x3 convs with padding 1; conv BNs eps 1e-5 momentum 0.2, FC BNs PyTorch defaults).
 */
import type { Backend, SignSurrogate } from '../backend/backend.js';
import { ConfigError } from '../errors.js';
import type { Shape } from '../tensor/shape.js';
import { AvgPool2d } from './avg-pool2d.js';
import { BatchNorm } from './batch-norm.js';
import { BinaryConv2d } from './binary-conv2d.js';
import { BinaryDense } from './binary-dense.js';
import { ChannelScale } from './channel-scale.js';
import { Conv2d } from './conv2d.js';
import { Dense } from './dense.js';
import { Dropout } from './dropout.js';
import { Flatten } from './flatten.js';
import { Hardtanh } from './hardtanh.js';
import type { Layer, Parameter } from './layer.js';
import { MaxPool2d } from './max-pool2d.js';
import { PReLU } from './prelu.js';
import { ReLU } from './relu.js';
import { Residual } from './residual.js';
import { Sequential } from './sequential.js';
import { parseModelSpec, type LayerSpec, type ModelSpec } from './spec.js';

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
  /** Class names stored in the spec; optional. */
  readonly classNames?: readonly string[];
}

/** A model built from a spec: a Sequential that knows its spec and input shape and splits its parameters by kind. */
export class Model extends Sequential {
  constructor(
    name: string,
    layers: readonly Layer[],
    /** The spec the model was built from. */
    readonly spec: ModelSpec,
  ) {
    super(name, layers);
  }

  /** The per-example input shape of the spec. */
  get inputShape(): Shape {
    return this.spec.input;
  }

  /** Plans for the spec's input shape. */
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

/** Appends layer specs and applies the named models' activation rules. */
class Stack {
  readonly layers: LayerSpec[] = [];
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

  /** The binarizer options of the next binary layer: every binary layer but the first binarizes its input. */
  private binarizer(): { binarizer?: 'sign'; surrogate?: SignSurrogate } {
    if (!(this.binaryActivations && this.linear > 1)) return {};
    return this.surrogate === 'clipped-identity'
      ? { binarizer: 'sign' }
      : { binarizer: 'sign', surrogate: this.surrogate };
  }

  private scale(): void {
    if (this.channelScale) this.layers.push({ type: 'channelScale' });
  }

  dense(units: number): this {
    this.linear++;
    this.layers.push({ type: 'binaryDense', units, ...this.binarizer() });
    this.scale();
    return this;
  }

  conv(filters: number): this {
    this.linear++;
    this.layers.push({ type: 'binaryConv2d', filters, kernelSize: 3, padding: 1, ...this.binarizer() });
    this.scale();
    return this;
  }

  batchNorm(settings: BatchNormSettings): this {
    this.layers.push({ type: 'batchNorm', ...(this.affine ? { affine: true } : {}), ...settings });
    return this;
  }

  activation(): this {
    this.layers.push({ type: this.binaryActivations ? 'hardtanh' : 'relu' });
    return this;
  }

  maxPool(): this {
    this.layers.push({ type: 'maxPool2d', kernelSize: 2 });
    return this;
  }

  dropout(rate: number): this {
    this.layers.push({ type: 'dropout', rate });
    return this;
  }

  flatten(): this {
    this.layers.push({ type: 'flatten' });
    return this;
  }
}

function mlp(
  options: ModelOptions,
  hidden: readonly number[],
  dropout: number,
  classes: number,
): LayerSpec[] {
  const s = new Stack(options).flatten();
  if (dropout > 0) s.dropout(dropout);
  for (const units of hidden) {
    s.dense(units).batchNorm(MLP_BN).activation();
    if (dropout > 0) s.dropout(dropout);
  }
  return s.dense(classes).batchNorm(MLP_BN).layers;
}

function cnnSmall(options: ModelOptions, classes: number): LayerSpec[] {
  const s = new Stack(options);
  s.conv(16).batchNorm(DEFAULT_BN).activation().maxPool();
  s.conv(32).batchNorm(DEFAULT_BN).activation().maxPool();
  return s.flatten().dense(classes).batchNorm(DEFAULT_BN).layers;
}

function vggSmall(options: ModelOptions, classes: number): LayerSpec[] {
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

/** The named model as a spec. */
export function namedModelSpec(name: ModelName, options: ModelOptions = {}): ModelSpec {
  const classes = options.classes ?? 10;
  if (!Number.isInteger(classes) || classes < 1)
    throw new RangeError(`classes must be a positive integer, got ${classes}`);
  const mnist: Shape = [1, 28, 28];
  let input: Shape = options.inputShape ?? mnist;
  let layers: LayerSpec[];
  switch (name) {
    case 'mlp-100':
      layers = mlp(options, [100, 100], 0, classes);
      break;
    case 'mlp-2x2048':
      layers = mlp(options, [2048, 2048], 0, classes);
      break;
    case 'mlp-3x2048':
      layers = mlp(options, [2048, 2048, 2048], 0.2, classes);
      break;
    case 'cnn-small':
      layers = cnnSmall(options, classes);
      break;
    case 'vgg-small':
      input = options.inputShape ?? [3, 32, 32];
      layers = vggSmall(options, classes);
      break;
    default: {
      const unknown: never = name;
      throw new RangeError(`unknown model "${String(unknown)}"; known: ${MODEL_NAMES.join(', ')}`);
    }
  }
  return parseModelSpec({
    input: [...input],
    classes,
    ...(options.classNames !== undefined ? { classNames: [...options.classNames] } : {}),
    layers,
  });
}

/** Generates the position-derived layer names of spec.ts (fc1, bn1, act1, pool1, conv2, block1, ...). */
class LayerNamer {
  private linear = 0;
  private blocks = 0;

  name(spec: LayerSpec): string {
    if (spec.name !== undefined) return spec.name;
    switch (spec.type) {
      case 'binaryDense':
      case 'dense':
        return `fc${++this.linear}`;
      case 'binaryConv2d':
      case 'conv2d':
        return `conv${++this.linear}`;
      case 'batchNorm':
        return `bn${this.linear}`;
      case 'relu':
      case 'hardtanh':
      case 'prelu':
        return `act${this.linear}`;
      case 'maxPool2d':
      case 'avgPool2d':
        return `pool${this.linear}`;
      case 'dropout':
        return `drop${this.linear}`;
      case 'channelScale':
        return `scale${this.linear}`;
      case 'flatten':
        return 'flatten';
      case 'residual':
        return `block${++this.blocks}`;
    }
  }
}

/** A layer spec with the name it gets, and its residual branches named the same way. */
interface NamedLayerSpec {
  readonly name: string;
  readonly spec: LayerSpec;
  readonly body?: readonly NamedLayerSpec[];
  readonly shortcut?: readonly NamedLayerSpec[];
}

/** Names a list of layers in the order they are built (a residual block before its branches). */
function nameLayers(specs: readonly LayerSpec[], namer: LayerNamer): NamedLayerSpec[] {
  const taken = new Set<string>();
  return specs.map((spec) => {
    const base = namer.name(spec);
    let name = base;
    // Two layers after the same linear layer (say two activations) get distinct names.
    for (let k = 2; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    if (spec.type !== 'residual') return { name, spec };
    const body = nameLayers(spec.body, namer);
    const shortcut = spec.shortcut === undefined ? undefined : nameLayers(spec.shortcut, namer);
    return { name, spec, body, ...(shortcut !== undefined ? { shortcut } : {}) };
  });
}

/** The names of a spec's top-level layers: those of the model buildModelFromSpec builds, and of its tensors. */
export function layerNames(spec: ModelSpec): string[] {
  return nameLayers(spec.layers, new LayerNamer()).map((n) => n.name);
}

function buildLayer({ name, spec, body, shortcut }: NamedLayerSpec): Layer {
  switch (spec.type) {
    case 'binaryDense':
      return new BinaryDense(name, spec);
    case 'binaryConv2d':
      return new BinaryConv2d(name, spec);
    case 'dense':
      return new Dense(name, spec);
    case 'conv2d':
      return new Conv2d(name, spec);
    case 'batchNorm':
      return new BatchNorm(name, { ...spec, affine: spec.affine ?? false });
    case 'relu':
      return new ReLU(name);
    case 'hardtanh':
      return new Hardtanh(name);
    case 'prelu':
      return new PReLU(name, spec);
    case 'maxPool2d':
      return new MaxPool2d(name, spec);
    case 'avgPool2d':
      return new AvgPool2d(name, spec);
    case 'dropout':
      return new Dropout(name, spec.rate);
    case 'flatten':
      return new Flatten(name);
    case 'channelScale':
      return new ChannelScale(name);
    case 'residual':
      return new Residual(
        name,
        new Sequential('body', (body ?? []).map(buildLayer)),
        shortcut === undefined ? null : new Sequential('shortcut', shortcut.map(buildLayer)),
      );
  }
}

/** Builds the layers of a valid spec, unplanned: call planFor and initialize before use. */
export function buildModelFromSpec(spec: ModelSpec, name = 'model'): Model {
  return new Model(name, nameLayers(spec.layers, new LayerNamer()).map(buildLayer), spec);
}

/** Builds the named model (or any spec), unplanned: call plan (or planFor) and initialize before use. */
export function buildModel(model: ModelName | ModelSpec, options: ModelOptions = {}): Model {
  if (typeof model === 'string') return buildModelFromSpec(namedModelSpec(model, options), model);
  return buildModelFromSpec(model);
}

/** The named model's spec, or a ConfigError naming `flag` for an unknown name. */
export function modelSpecByName(name: string, options: ModelOptions = {}, flag = '--model'): ModelSpec {
  if (!isModelName(name)) {
    throw new ConfigError(
      flag,
      `one of ${MODEL_NAMES.join(', ')}, or a path to a spec file (.json)`,
      JSON.stringify(name),
    );
  }
  return namedModelSpec(name, options);
}
