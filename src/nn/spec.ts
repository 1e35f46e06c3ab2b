/**
 * Architecture as data: a network is a plain, JSON-serialisable spec (docs/architecture.md, "Model specs").
 *
 * A spec names the per-example input shape, the number of classes (and optionally their names) and an ordered
 * list of layers with their options. It is what checkpoints and model files store, what `onebit train --model
 * FILE.json` reads, and what `onebit model show NAME` prints; `buildModelFromSpec` (model.ts) turns it into
 * layers. `parseModelSpec` validates untrusted JSON field by field, and infers every layer's output shape, so
 * a mistake is reported as `layers[3].filters: expected a positive integer, found 0` before anything is built.
 *
 * Layer names (and so the checkpoint's tensor names) are derived from the position when a layer has no `name`:
 * a counter of linear layers (dense and conv, binary or real) numbers them fc1, conv2, ...; the layers after
 * linear layer k are bn<k>, act<k>, pool<k>, drop<k>, scale<k>; flatten is "flatten"; residual blocks are
 * block1, block2, ... with children "body" and "shortcut". These are the names the named models always had.
 */
import type { SignSurrogate } from '../backend/backend.js';
import type { BinarizerKind } from './binarizer.js';
import { SpecError } from '../errors.js';
import type { Shape } from '../tensor/shape.js';

export interface BinaryDenseSpec {
  readonly type: 'binaryDense';
  readonly units: number;
  /** 'sign' binarizes the layer's input (1-bit activations); default 'none'. */
  readonly binarizer?: BinarizerKind;
  /** Surrogate gradient of the input binarizer; default 'clipped-identity'. */
  readonly surrogate?: SignSurrogate;
  readonly name?: string;
}

export interface BinaryConv2dSpec {
  readonly type: 'binaryConv2d';
  readonly filters: number;
  readonly kernelSize: number;
  /** Default 1. */
  readonly stride?: number;
  /** Zero padding on each side; default 0. */
  readonly padding?: number;
  readonly binarizer?: BinarizerKind;
  readonly surrogate?: SignSurrogate;
  readonly name?: string;
}

export interface DenseSpec {
  readonly type: 'dense';
  readonly units: number;
  /** Default true. */
  readonly bias?: boolean;
  readonly name?: string;
}

export interface Conv2dSpec {
  readonly type: 'conv2d';
  readonly filters: number;
  readonly kernelSize: number;
  readonly stride?: number;
  readonly padding?: number;
  readonly bias?: boolean;
  readonly name?: string;
}

export interface BatchNormSpec {
  readonly type: 'batchNorm';
  /** Learnable scale and shift; default false. */
  readonly affine?: boolean;
  /** Default 1e-5. */
  readonly eps?: number;
  /** Running-statistics momentum (PyTorch convention); default 0.1. */
  readonly momentum?: number;
  readonly name?: string;
}

export interface ActivationSpec {
  readonly type: 'relu' | 'hardtanh' | 'flatten' | 'channelScale';
  readonly name?: string;
}

export interface PReLUSpec {
  readonly type: 'prelu';
  /** Initial slope; default 0.25. */
  readonly init?: number;
  readonly name?: string;
}

export interface Pool2dSpec {
  readonly type: 'maxPool2d' | 'avgPool2d';
  readonly kernelSize: number;
  /** Default kernelSize. */
  readonly stride?: number;
  /** Default 0. */
  readonly padding?: number;
  readonly name?: string;
}

export interface DropoutSpec {
  readonly type: 'dropout';
  /** Probability of zeroing an activation in training, in [0, 1). */
  readonly rate: number;
  readonly name?: string;
}

/** y = body(x) + shortcut(x), the shortcut being the identity when absent. */
export interface ResidualSpec {
  readonly type: 'residual';
  readonly body: readonly LayerSpec[];
  readonly shortcut?: readonly LayerSpec[];
  readonly name?: string;
}

export type LayerSpec =
  | BinaryDenseSpec
  | BinaryConv2dSpec
  | DenseSpec
  | Conv2dSpec
  | BatchNormSpec
  | ActivationSpec
  | PReLUSpec
  | Pool2dSpec
  | DropoutSpec
  | ResidualSpec;

export type LayerType = LayerSpec['type'];

export interface ModelSpec {
  /** Per-example input shape: [channels, height, width] for images, [features] for vectors. */
  readonly input: Shape;
  readonly classes: number;
  /** One name per class, for reports and predictions; optional. */
  readonly classNames?: readonly string[];
  readonly layers: readonly LayerSpec[];
}

const SURROGATES: readonly SignSurrogate[] = ['identity', 'clipped-identity'];

/** The fields each layer type accepts besides `type` and `name`, with their checks. */
type FieldCheck = (value: unknown) => string | null;

const positiveInteger: FieldCheck = (v) =>
  typeof v === 'number' && Number.isInteger(v) && v > 0 ? null : 'a positive integer';
const nonNegativeInteger: FieldCheck = (v) =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 ? null : 'an integer >= 0';
const boolean: FieldCheck = (v) => (typeof v === 'boolean' ? null : 'true or false');
const oneOf =
  (values: readonly string[]): FieldCheck =>
  (v) =>
    typeof v === 'string' && values.includes(v) ? null : `one of ${values.map((x) => `"${x}"`).join(', ')}`;
const positiveNumber: FieldCheck = (v) =>
  typeof v === 'number' && Number.isFinite(v) && v > 0 ? null : 'a positive number';
const fraction: FieldCheck = (v) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'a number in [0, 1)');
const finiteNumber: FieldCheck = (v) => (typeof v === 'number' && Number.isFinite(v) ? null : 'a number');
const momentum: FieldCheck = (v) => (typeof v === 'number' && v > 0 && v <= 1 ? null : 'a number in (0, 1]');

interface FieldRule {
  readonly check: FieldCheck;
  readonly required: boolean;
}

const req = (check: FieldCheck): FieldRule => ({ check, required: true });
const opt = (check: FieldCheck): FieldRule => ({ check, required: false });

const binarizerFields = {
  binarizer: opt(oneOf(['none', 'sign'])),
  surrogate: opt(oneOf(SURROGATES)),
};
const convFields = {
  filters: req(positiveInteger),
  kernelSize: req(positiveInteger),
  stride: opt(positiveInteger),
  padding: opt(nonNegativeInteger),
};
const poolFields = {
  kernelSize: req(positiveInteger),
  stride: opt(positiveInteger),
  padding: opt(nonNegativeInteger),
};

/** Every layer type and its fields (besides `type` and `name`; residual's body and shortcut are checked apart). */
const LAYER_FIELDS: Readonly<Record<LayerType, Readonly<Record<string, FieldRule>>>> = {
  binaryDense: { units: req(positiveInteger), ...binarizerFields },
  binaryConv2d: { ...convFields, ...binarizerFields },
  dense: { units: req(positiveInteger), bias: opt(boolean) },
  conv2d: { ...convFields, bias: opt(boolean) },
  batchNorm: { affine: opt(boolean), eps: opt(positiveNumber), momentum: opt(momentum) },
  relu: {},
  hardtanh: {},
  prelu: { init: opt(finiteNumber) },
  maxPool2d: poolFields,
  avgPool2d: poolFields,
  dropout: { rate: req(fraction) },
  flatten: {},
  channelScale: {},
  residual: {},
};

export const LAYER_TYPES = Object.keys(LAYER_FIELDS) as LayerType[];

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function shapeText(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Output size of a convolution or pooling window along one axis; <= 0 when the window does not fit. */
function windowOutput(size: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - kernel) / stride) + 1;
}

class SpecReader {
  constructor(private readonly file: string | null) {}

  fail(where: string, expected: string, found: string): never {
    throw new SpecError(where, expected, found, this.file);
  }

  /** Validates one layer list, returning it with the output shape after the last layer. */
  layers(value: unknown, where: string, input: Shape): { layers: LayerSpec[]; shape: Shape } {
    if (!Array.isArray(value)) this.fail(where, 'a list of layers', describe(value));
    let shape = input;
    const layers: LayerSpec[] = [];
    value.forEach((item: unknown, i) => {
      const at = `${where}[${i}]`;
      const layer = this.layer(item, at);
      shape = this.outputShape(layer, at, shape);
      layers.push(layer);
    });
    return { layers, shape };
  }

  layer(value: unknown, at: string): LayerSpec {
    if (!isRecord(value)) this.fail(at, 'a layer object with a "type"', describe(value));
    const type = value.type;
    if (typeof type !== 'string' || !Object.hasOwn(LAYER_FIELDS, type)) {
      this.fail(`${at}.type`, `one of ${LAYER_TYPES.join(', ')}`, describe(type));
    }
    const fields = LAYER_FIELDS[type as LayerType];
    const allowed = new Set(['type', 'name', ...Object.keys(fields)]);
    if (type === 'residual') allowed.add('body').add('shortcut');
    for (const key of Object.keys(value)) {
      if (!allowed.has(key)) {
        this.fail(
          `${at}.${key}`,
          `one of the fields of ${type} (${[...allowed].join(', ')})`,
          `"${key}", an unknown field`,
        );
      }
    }
    if (value.name !== undefined) {
      if (typeof value.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(value.name)) {
        this.fail(`${at}.name`, 'a name of letters, digits, "_" or "-" (no ".")', describe(value.name));
      }
    }
    for (const [key, rule] of Object.entries(fields)) {
      const v = value[key];
      if (v === undefined) {
        if (rule.required) this.fail(`${at}.${key}`, rule.check(undefined) ?? 'a value', 'nothing');
        continue;
      }
      const problem = rule.check(v);
      if (problem !== null) this.fail(`${at}.${key}`, problem, describe(v));
    }
    return value as unknown as LayerSpec;
  }

  /** The per-example output shape of `layer` on `input`, or a SpecError naming the layer. */
  outputShape(layer: LayerSpec, at: string, input: Shape): Shape {
    const needImage = (): readonly [number, number, number] => {
      if (input.length !== 3) this.fail(at, `an image input [C, H, W] for ${layer.type}`, shapeText(input));
      return input as readonly [number, number, number];
    };
    switch (layer.type) {
      case 'binaryDense':
      case 'dense':
        if (input.length !== 1) {
          this.fail(
            at,
            `a flat input [features] for ${layer.type} (add a flatten layer before it)`,
            shapeText(input),
          );
        }
        return [layer.units];
      case 'binaryConv2d':
      case 'conv2d':
      case 'maxPool2d':
      case 'avgPool2d': {
        const [c, h, w] = needImage();
        const stride =
          layer.stride ?? (layer.type === 'maxPool2d' || layer.type === 'avgPool2d' ? layer.kernelSize : 1);
        const padding = layer.padding ?? 0;
        if ((layer.type === 'maxPool2d' || layer.type === 'avgPool2d') && 2 * padding > layer.kernelSize) {
          this.fail(
            `${at}.padding`,
            `at most half the kernel size (${Math.floor(layer.kernelSize / 2)})`,
            String(padding),
          );
        }
        const outH = windowOutput(h, layer.kernelSize, stride, padding);
        const outW = windowOutput(w, layer.kernelSize, stride, padding);
        if (outH < 1 || outW < 1) {
          this.fail(
            at,
            `an input of at least ${layer.kernelSize - 2 * padding} x ${layer.kernelSize - 2 * padding} for kernel ${layer.kernelSize}, padding ${padding}`,
            shapeText(input),
          );
        }
        const channels = layer.type === 'binaryConv2d' || layer.type === 'conv2d' ? layer.filters : c;
        return [channels, outH, outW];
      }
      case 'batchNorm':
      case 'channelScale':
      case 'prelu':
        if (input.length !== 1 && input.length !== 3) {
          this.fail(at, `an input [C] or [C, H, W] for ${layer.type}`, shapeText(input));
        }
        return input;
      case 'relu':
      case 'hardtanh':
      case 'dropout':
        return input;
      case 'flatten':
        return [input.reduce((a, b) => a * b, 1)];
      case 'residual': {
        const record = layer as unknown as Record<string, unknown>;
        const body = this.layers(record.body, `${at}.body`, input);
        if (body.layers.length === 0) this.fail(`${at}.body`, 'at least one layer', '[]');
        const shortcut =
          record.shortcut === undefined
            ? { layers: null, shape: input }
            : this.layers(record.shortcut, `${at}.shortcut`, input);
        if (shapeText(body.shape) !== shapeText(shortcut.shape)) {
          this.fail(
            at,
            `body and shortcut outputs of one shape (body gives ${shapeText(body.shape)})`,
            `shortcut ${shapeText(shortcut.shape)}`,
          );
        }
        return body.shape;
      }
    }
  }
}

/**
 * Validates untrusted JSON (a parsed spec file, a checkpoint's header) as a ModelSpec. Errors name the place
 * (`layers[2].kernelSize`), what was expected and what was found, and the file when given.
 */
export function parseModelSpec(value: unknown, file: string | null = null): ModelSpec {
  const reader: SpecReader = new SpecReader(file);
  if (!isRecord(value)) reader.fail('spec', 'an object with input, classes and layers', describe(value));
  for (const key of Object.keys(value)) {
    if (!['input', 'classes', 'classNames', 'layers'].includes(key)) {
      reader.fail(key, 'one of the fields input, classes, classNames, layers', `"${key}", an unknown field`);
    }
  }
  const input = value.input;
  if (
    !Array.isArray(input) ||
    (input.length !== 3 && input.length !== 1) ||
    !input.every((d) => positiveInteger(d) === null)
  ) {
    reader.fail(
      'input',
      'a per-example shape [channels, height, width] or [features] of positive integers',
      describe(input),
    );
  }
  if (positiveInteger(value.classes) !== null)
    reader.fail('classes', 'a positive integer', describe(value.classes));
  const classes = value.classes as number;
  const classNames = value.classNames;
  if (classNames !== undefined) {
    if (!Array.isArray(classNames) || !classNames.every((n) => typeof n === 'string')) {
      reader.fail('classNames', `a list of ${classes} strings`, describe(classNames));
    }
    if (classNames.length !== classes)
      reader.fail('classNames', `${classes} names (one per class)`, `${classNames.length}`);
  }
  const shape = [...(input as number[])];
  const { layers, shape: out } = reader.layers(value.layers, 'layers', shape);
  if (layers.length === 0) reader.fail('layers', 'at least one layer', '[]');
  if (out.length !== 1 || out[0] !== classes) {
    reader.fail(
      'layers',
      `a last layer with output [${classes}] (one logit per class)`,
      `output ${shapeText(out)}`,
    );
  }
  return {
    input: shape,
    classes,
    ...(classNames !== undefined ? { classNames: [...(classNames as string[])] } : {}),
    layers,
  };
}

/** Per-example output shape of every top-level layer of a valid spec, in order. */
export function layerShapes(spec: ModelSpec): Shape[] {
  const reader: SpecReader = new SpecReader(null);
  const shapes: Shape[] = [];
  let shape: Shape = spec.input;
  spec.layers.forEach((layer, i) => {
    shape = reader.outputShape(layer, `layers[${i}]`, shape);
    shapes.push(shape);
  });
  return shapes;
}

/** Per-example output shape of one layer of a valid spec (a residual block included) given its input shape. */
export function layerOutputShape(layer: LayerSpec, input: Shape): Shape {
  return new SpecReader(null).outputShape(layer, 'layer', input);
}

/** Whether a layer type has weights a training method owns. */
export function isBinaryLayer(spec: LayerSpec): spec is BinaryDenseSpec | BinaryConv2dSpec {
  return spec.type === 'binaryDense' || spec.type === 'binaryConv2d';
}

// ---------------------------------------------------------------------------------------------------------
// The builder API: the same specs, written in TypeScript.

type Named<T> = Omit<T, 'type'>;

export const binaryDense = (
  units: number,
  options: Omit<Named<BinaryDenseSpec>, 'units'> = {},
): BinaryDenseSpec => ({
  type: 'binaryDense',
  units,
  ...options,
});
export const binaryConv2d = (
  filters: number,
  options: Omit<Named<BinaryConv2dSpec>, 'filters' | 'kernelSize'> & { readonly kernelSize?: number } = {},
): BinaryConv2dSpec => ({ type: 'binaryConv2d', filters, kernelSize: options.kernelSize ?? 3, ...options });
export const dense = (units: number, options: Omit<Named<DenseSpec>, 'units'> = {}): DenseSpec => ({
  type: 'dense',
  units,
  ...options,
});
export const conv2d = (
  filters: number,
  options: Omit<Named<Conv2dSpec>, 'filters' | 'kernelSize'> & { readonly kernelSize?: number } = {},
): Conv2dSpec => ({ type: 'conv2d', filters, kernelSize: options.kernelSize ?? 3, ...options });
export const batchNorm = (options: Named<BatchNormSpec> = {}): BatchNormSpec => ({
  type: 'batchNorm',
  ...options,
});
export const relu = (name?: string): ActivationSpec => ({
  type: 'relu',
  ...(name !== undefined ? { name } : {}),
});
export const hardtanh = (name?: string): ActivationSpec => ({
  type: 'hardtanh',
  ...(name !== undefined ? { name } : {}),
});
export const prelu = (options: Named<PReLUSpec> = {}): PReLUSpec => ({ type: 'prelu', ...options });
export const flatten = (): ActivationSpec => ({ type: 'flatten' });
export const channelScale = (): ActivationSpec => ({ type: 'channelScale' });
export const maxPool2d = (
  kernelSize = 2,
  options: Omit<Named<Pool2dSpec>, 'kernelSize'> = {},
): Pool2dSpec => ({
  type: 'maxPool2d',
  kernelSize,
  ...options,
});
export const avgPool2d = (
  kernelSize = 2,
  options: Omit<Named<Pool2dSpec>, 'kernelSize'> = {},
): Pool2dSpec => ({
  type: 'avgPool2d',
  kernelSize,
  ...options,
});
export const dropout = (rate: number): DropoutSpec => ({ type: 'dropout', rate });
export const residual = (body: readonly LayerSpec[], shortcut?: readonly LayerSpec[]): ResidualSpec => ({
  type: 'residual',
  body,
  ...(shortcut !== undefined ? { shortcut } : {}),
});

/**
 * A validated spec from its parts: `sequential({ input: [1, 28, 28], classes: 10 }, [flatten(), binaryDense(256),
 * batchNorm(), hardtanh(), ...])`. Throws SpecError as parseModelSpec does.
 */
export function sequential(
  head: {
    readonly input: Shape;
    readonly classes: number;
    readonly classNames?: readonly string[];
  },
  layers: readonly LayerSpec[],
): ModelSpec {
  return parseModelSpec(JSON.parse(JSON.stringify({ ...head, layers })));
}
