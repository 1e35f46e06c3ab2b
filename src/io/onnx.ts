/**
 * ONNX export of an exported network (export.ts's NetworkDescription), for deployment outside onebit.
 *
 * The graph is the training model in evaluation mode, operator for operator:
 *   input [N, C, H, W] float32, normalised as in training ((v / 255 - mean) / std; the statistics are in
 *   the model's metadata_props "normalization")
 *   flatten:     Flatten(axis 1) ([N, C, H, W] -> [N, C*H*W] in the training layout; a dense layer on a 4-D
 *                tensor is flattened first)
 *   dense:       [sign of the input] MatMul(x, W^T) with W as +-1 float32 initialisers
 *   conv:        [sign of the input] Conv(x, W) with W as +-1 float32 initialisers [O, C, k, k], no bias,
 *                kernel_shape [k, k], strides [s, s], pads [p, p, p, p]: Conv zero-pads the signs, so
 *                padded taps contribute 0, as in training
 *   maxpool:     MaxPool (kernel_shape, strides, pads; padded positions never win)
 *   avgpool:     AveragePool with count_include_pad = 1 (every window divides by k^2)
 *   residual:    the body's operators and the shortcut's (or the identity) on the same input, then Add
 *   per channel: the channel scale and batch norm as the training layers compute them in evaluation, in
 *                double and rounded once to float32 (Cast, Mul, Add, Cast; invStd and shift as BatchNorm
 *                rounds them), then Relu or Clip(-1, 1) (hardtanh); they act on axis 1, so on [N, C, H, W]
 *                their initialisers are [C, 1, 1]. BatchNormalization would round differently, and a
 *                pre-activation exactly on the running mean (an integer sum of signs can be) would then
 *                get the other sign in some examples. `batchNorm: 'standard'` writes Mul and
 *                BatchNormalization instead: the usual graph, which onnxruntime fuses into the convolution
 *                (the engine benchmark's baseline), agreeing except at such ties
 *   output "logits" [N, classes], and "probabilities" = Softmax(logits / temperature).
 * The sign: ONNX Sign(0) = 0 while onebit's sign(0) = +1, so the binarizer is
 * Where(GreaterOrEqual(x, 0), 1, -1) (NaN -> -1, as onebit's). Opset 13, IR version 7.
 *
 * A network given as integer layers (float-free, from its `.onebit` model: float-free-export.ts) takes the
 * same normalised input and adds three operations: 'pixels' rounds it back to the 8-bit pixel and applies
 * the model's own centring (Mul, Add, Round, Sub: exact integers in float32), 'threshold' is the 1-bit
 * activation against per-unit thresholds (Where(GreaterOrEqual(z, t), 1, -1), ties to +1 as the method's),
 * and 'affine' is per-unit scale and bias (Mul, Add); both are per channel ([C, 1, 1]) on [N, C, H, W].
 * The MatMuls of +-1 values with small integers are exact in float32, so such a graph reproduces the
 * integer network's arithmetic exactly.
 *
 * Encoding uses protobufjs with the subset of onnx.proto (github.com/onnx/onnx, onnx/onnx.proto) that the
 * writer needs; field numbers are those of onnx.proto.
 */
import * as protobuf from 'protobufjs';
import type { NetworkDescription, NetworkOp } from './export.js';

const ONNX_PROTO = `
syntax = "proto2";
package onnx;
message AttributeProto {
  enum AttributeType { UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5; FLOATS = 6; INTS = 7; STRINGS = 8; }
  optional string name = 1;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  repeated float floats = 7;
  repeated int64 ints = 8;
}
message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}
message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  repeated AttributeProto attribute = 5;
}
message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}
message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
}
message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
}
message TensorProto {
  enum DataType { UNDEFINED = 0; FLOAT = 1; UINT8 = 2; INT8 = 3; UINT16 = 4; INT16 = 5; INT32 = 6; INT64 = 7; STRING = 8; BOOL = 9; }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  optional string name = 8;
  optional bytes raw_data = 9;
}
message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
  }
  repeated Dimension dim = 1;
}
message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
  }
}
message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}
`;

const FLOAT = 1;
const DOUBLE = 11;
const OPSET = 13;
const IR_VERSION = 7;

interface Node {
  input: string[];
  output: string[];
  name: string;
  opType: string;
  attribute: Record<string, unknown>[];
}

interface Initializer {
  name: string;
  dims: number[];
  dataType: number;
  rawData: Uint8Array;
}

let modelType: protobuf.Type | undefined;

function onnxModelType(): protobuf.Type {
  modelType ??= protobuf.parse(ONNX_PROTO, { keepCase: false }).root.lookupType('onnx.ModelProto');
  return modelType;
}

function floatTensor(name: string, dims: number[], values: ArrayLike<number>): Initializer {
  const data = Float32Array.from(values);
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) };
}

function doubleTensor(name: string, dims: number[], values: ArrayLike<number>): Initializer {
  const data = Float64Array.from(values);
  return { name, dims, dataType: DOUBLE, rawData: new Uint8Array(data.buffer) };
}

function valueInfo(name: string, dims: (number | string)[]): Record<string, unknown> {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** A value of the graph: its name and per-example shape ([C, H, W] or [features], without the batch axis). */
interface Value {
  readonly name: string;
  readonly shape: readonly number[];
}

const INT = 2;
const FLOAT_ATTR = 1;
const INTS = 7;

function intAttr(name: string, i: number): Record<string, unknown> {
  return { name, type: INT, i };
}

function intsAttr(name: string, ints: readonly number[]): Record<string, unknown> {
  return { name, type: INTS, ints: [...ints] };
}

/** Output side of a square window (kernel k, stride s, zero padding p on every side) over `size` inputs. */
function windowOutput(size: number, k: number, s: number, p: number): number {
  return Math.floor((size + 2 * p - k) / s) + 1;
}

/** Serialises the network as an ONNX model (protobuf bytes). */
export interface OnnxOptions {
  /** 'exact' (default): batch norm and channel scale in the training layers' arithmetic; 'standard': Mul and BatchNormalization. */
  readonly batchNorm?: 'exact' | 'standard';
  readonly producerVersion?: string;
}

export function encodeOnnx(net: NetworkDescription, options: OnnxOptions = {}): Uint8Array {
  const producerVersion = options.producerVersion ?? '0.1.0';
  const exact = (options.batchNorm ?? 'exact') === 'exact';
  const nodes: Node[] = [];
  const inits: Initializer[] = [];
  let counter = 0;
  const fresh = (base: string): string => `${base}_${counter++}`;
  const node = (
    opType: string,
    input: string[],
    name: string,
    attribute: Record<string, unknown>[] = [],
  ): string => {
    const output = fresh(name);
    nodes.push({ input, output: [output], name: output, opType, attribute });
    return output;
  };
  const initNames = new Set<string>(['temperature']);
  /**
   * Adds a float initialiser named `name` (or `name_2`, `name_3`, ... when taken: layers inside residual
   * branches may share a local name with another layer) and returns the name it got.
   */
  const initializer = (name: string, dims: number[], values: ArrayLike<number>, double = false): string => {
    let unique = name;
    for (let k = 2; initNames.has(unique); k++) unique = `${name}_${k}`;
    initNames.add(unique);
    inits.push((double ? doubleTensor : floatTensor)(unique, dims, values));
    return unique;
  };
  const constants = new Set<string>();
  /** A scalar initialiser, added the first time it is used. */
  const constant = (name: 'zero' | 'one' | 'minus_one'): string => {
    if (!constants.has(name)) {
      initNames.add(name);
      inits.push(floatTensor(name, [], [name === 'zero' ? 0 : name === 'one' ? 1 : -1]));
    }
    constants.add(name);
    return name;
  };
  const fail = (where: string, problem: string): never => {
    throw new Error(`onnx export: ${where}: ${problem}`);
  };
  /** sign(x) with sign(0) = +1: Where(GreaterOrEqual(x, 0), 1, -1). */
  const sign = (x: string, name: string): string => {
    const nonNegative = node('GreaterOrEqual', [x, constant('zero')], `${name}_nonneg`);
    return node('Where', [nonNegative, constant('one'), constant('minus_one')], `${name}_sign`);
  };
  const flatten = (x: Value): Value => ({
    name: node('Flatten', [x.name], 'flatten', [intAttr('axis', 1)]),
    shape: [x.shape.reduce((a, b) => a * b, 1)],
  });
  /**
   * A per-channel initialiser for a value of shape `shape`: [n] on [N, n], [n, 1, 1] on [N, n, H, W] (so
   * that it broadcasts over axis 1, not over the last axis).
   */
  const perChannel = (
    where: string,
    name: string,
    shape: readonly number[],
    values: ArrayLike<number>,
    double = false,
  ): string => {
    if (values.length !== shape[0])
      fail(where, `${values.length} per-channel values for ${shape[0]} channels ([${shape.join(', ')}])`);
    return initializer(name, shape.length === 3 ? [values.length, 1, 1] : [values.length], values, double);
  };
  /**
   * y = float32(x * mul + add) per channel, the product and sum in double: the training layers' own
   * arithmetic in evaluation (ob_channel_affine), so a value on a threshold gets the training model's sign.
   */
  const affineInDouble = (
    where: string,
    x: string,
    shape: readonly number[],
    mul: ArrayLike<number>,
    add: ArrayLike<number> | null,
    name: string,
  ): string => {
    let y = node('Cast', [x], `${name}_double`, [intAttr('to', DOUBLE)]);
    y = node('Mul', [y, perChannel(where, `${where}.mul`, shape, mul, true)], `${name}_mul`);
    if (add !== null)
      y = node('Add', [y, perChannel(where, `${where}.add`, shape, add, true)], `${name}_add`);
    return node('Cast', [y], name, [intAttr('to', FLOAT)]);
  };
  const window = (op: {
    readonly kernelSize: number;
    readonly stride: number;
    readonly padding: number;
  }): Record<string, unknown>[] => [
    intsAttr('kernel_shape', [op.kernelSize, op.kernelSize]),
    intsAttr('strides', [op.stride, op.stride]),
    intsAttr('pads', [op.padding, op.padding, op.padding, op.padding]),
  ];
  /** The ops in order from `input`; `prefix` names the initialisers of a residual block's branches. */
  const emit = (ops: readonly NetworkOp[], input: Value, prefix: string): Value => {
    let x = input;
    for (const op of ops) {
      const where = op.kind === 'flatten' ? `${prefix}flatten` : `${prefix}${op.name}`;
      switch (op.kind) {
        case 'flatten':
          x = flatten(x);
          break;
        case 'dense': {
          if (x.shape.length !== 1) x = flatten(x);
          if (x.shape[0] !== op.inFeatures)
            fail(where, `takes ${op.inFeatures} features, its input has ${x.shape[0]}`);
          const v = op.binarizeInput ? sign(x.name, op.name) : x.name;
          // W^T as [in, out] so that MatMul(x [N, in], W^T) gives [N, out].
          const wt = new Float32Array(op.inFeatures * op.outFeatures);
          for (let o = 0; o < op.outFeatures; o++) {
            for (let i = 0; i < op.inFeatures; i++)
              wt[i * op.outFeatures + o] = op.weight[o * op.inFeatures + i];
          }
          const weight = initializer(`${where}.weight_t`, [op.inFeatures, op.outFeatures], wt);
          x = { name: node('MatMul', [v, weight], op.name), shape: [op.outFeatures] };
          break;
        }
        case 'conv': {
          const { inChannels: c, outChannels: o, kernelSize: k, stride: s, padding: p } = op;
          if (x.shape.length !== 3 || x.shape[0] !== c)
            fail(where, `takes [${c}, H, W], its input is [${x.shape.join(', ')}]`);
          if (op.weight.length !== o * c * k * k)
            fail(
              where,
              `weight has ${op.weight.length} values, [${o}, ${c}, ${k}, ${k}] needs ${o * c * k * k}`,
            );
          // Conv pads the signs with zeros: padded taps contribute 0, as in training.
          const v = op.binarizeInput ? sign(x.name, op.name) : x.name;
          const weight = initializer(`${where}.weight`, [o, c, k, k], op.weight);
          const [, h, w] = x.shape;
          x = {
            name: node('Conv', [v, weight], op.name, window(op)),
            shape: [o, windowOutput(h, k, s, p), windowOutput(w, k, s, p)],
          };
          break;
        }
        case 'maxpool':
        case 'avgpool': {
          if (x.shape.length !== 3) fail(where, `pools [C, H, W], its input is [${x.shape.join(', ')}]`);
          const [c, h, w] = x.shape;
          const { kernelSize: k, stride: s, padding: p } = op;
          // MaxPool ignores padded positions; AveragePool with count_include_pad counts them as zeros.
          const name =
            op.kind === 'maxpool'
              ? node('MaxPool', [x.name], op.name, window(op))
              : node('AveragePool', [x.name], op.name, [...window(op), intAttr('count_include_pad', 1)]);
          x = { name, shape: [c, windowOutput(h, k, s, p), windowOutput(w, k, s, p)] };
          break;
        }
        case 'residual': {
          const body = emit(op.body, x, `${where}.body.`);
          const shortcut = op.shortcut === null ? x : emit(op.shortcut, x, `${where}.shortcut.`);
          if (body.shape.join(',') !== shortcut.shape.join(','))
            fail(where, `body gives [${body.shape.join(', ')}], shortcut [${shortcut.shape.join(', ')}]`);
          x = { name: node('Add', [body.name, shortcut.name], op.name), shape: body.shape };
          break;
        }
        case 'scale': {
          // As ChannelScale computes it: x * alpha in double, rounded once.
          x = exact
            ? { ...x, name: affineInDouble(where, x.name, x.shape, op.alpha, null, op.name) }
            : {
                ...x,
                name: node('Mul', [x.name, perChannel(where, `${where}.alpha`, x.shape, op.alpha)], op.name),
              };
          break;
        }
        case 'batchnorm': {
          // As BatchNorm computes it in evaluation (src/nn/batch-norm.ts), not as BatchNormalization would:
          // xhat = float32(x * invStd + shift) in double with invStd = float32(1 / sqrt(var + eps)) and
          // shift = float32(-mean * invStd), then float32(xhat * gamma + beta) when affine. A pre-activation on
          // the threshold (an integer z equal to the running mean) then gets exactly the training model's sign.
          const n = op.mean.length;
          if (n !== x.shape[0]) fail(where, `${n} channels, its input is [${x.shape.join(', ')}]`);
          if (!exact) {
            const names = [
              initializer(`${where}.scale`, [n], op.gamma ?? new Float32Array(n).fill(1)),
              initializer(`${where}.bias`, [n], op.beta ?? new Float32Array(n)),
              initializer(`${where}.mean`, [n], op.mean),
              initializer(`${where}.var`, [n], op.variance),
            ];
            x = {
              ...x,
              name: node('BatchNormalization', [x.name, ...names], op.name, [
                { name: 'epsilon', type: FLOAT_ATTR, f: op.eps },
              ]),
            };
            break;
          }
          const invStd = Float32Array.from(op.variance, (v) => 1 / Math.sqrt(v + op.eps));
          const shift = Float32Array.from(op.mean, (m, c) => -m * invStd[c]);
          const affine = op.gamma !== null && op.beta !== null;
          let y = affineInDouble(
            `${where}.normalize`,
            x.name,
            x.shape,
            invStd,
            shift,
            affine ? `${op.name}_xhat` : op.name,
          );
          if (op.gamma !== null && op.beta !== null)
            y = affineInDouble(`${where}.affine`, y, x.shape, op.gamma, op.beta, op.name);
          x = { ...x, name: y };
          break;
        }
        case 'relu':
          x = { ...x, name: node('Relu', [x.name], op.name) };
          break;
        case 'hardtanh':
          x = { ...x, name: node('Clip', [x.name, constant('minus_one'), constant('one')], op.name) };
          break;
        case 'pixels': {
          // v = Round(x * 255 std + 255 mean) per channel ([C, 1, 1] broadcasts over [N, C, H, W]): the
          // normalised input carries the pixel with an error far below 1/2, so rounding recovers it exactly.
          const { mean, std } = net.normalization;
          const scaled = node(
            'Mul',
            [
              x.name,
              perChannel(
                where,
                `${where}.pixel_scale`,
                x.shape,
                std.map((s) => 255 * s),
              ),
            ],
            `${op.name}_scale`,
          );
          const shifted = node(
            'Add',
            [
              scaled,
              perChannel(
                where,
                `${where}.pixel_shift`,
                x.shape,
                mean.map((m) => 255 * m),
              ),
            ],
            `${op.name}_shift`,
          );
          let v = node('Round', [shifted], `${op.name}_round`);
          // Then the model's own normalisation, (v - 255 mean') / (255 std'), as offset and gain in float32.
          const offset = op.model.mean.map((m) => Math.fround(255 * m));
          const gain = op.model.std.map((s) => Math.fround(1 / (255 * s)));
          if (offset.some((o) => o !== 0))
            v = node('Sub', [v, perChannel(where, `${where}.offset`, x.shape, offset)], `${op.name}_offset`);
          if (gain.some((g) => g !== 1))
            v = node('Mul', [v, perChannel(where, `${where}.gain`, x.shape, gain)], `${op.name}_gain`);
          x = { ...x, name: v };
          break;
        }
        case 'threshold': {
          // +1 iff d z >= d t: direction -1 turns z <= t into -z >= -t (exact: negation is).
          const flips = op.directions.some((d) => d === -1);
          let z = x.name;
          if (flips) {
            const d = perChannel(where, `${where}.direction`, x.shape, op.directions);
            z = node('Mul', [z, d], `${op.name}_direct`);
          }
          const t = perChannel(
            where,
            `${where}.threshold`,
            x.shape,
            Array.from(op.thresholds, (v, i) => v * op.directions[i]),
          );
          const on = node('GreaterOrEqual', [z, t], `${op.name}_on`);
          x = { ...x, name: node('Where', [on, constant('one'), constant('minus_one')], `${op.name}_sign`) };
          break;
        }
        case 'affine': {
          const scale = perChannel(where, `${where}.scale`, x.shape, op.scale);
          const bias = perChannel(where, `${where}.bias`, x.shape, op.bias);
          x = { ...x, name: node('Add', [node('Mul', [x.name, scale], `${op.name}_mul`), bias], op.name) };
          break;
        }
        default: {
          const unknown: never = op;
          throw new Error(`onnx export: unknown operation ${JSON.stringify(unknown)}`);
        }
      }
    }
    return x;
  };
  const [c, h, w] = net.inputShape;
  const output = emit(net.ops, { name: 'input', shape: [c, h, w] }, '');
  // The last node's output is the graph output "logits"; "probabilities" is softmax(logits / T), the
  // calibrated prediction (T = 1 when the checkpoint has no temperature).
  const last = nodes.at(-1);
  if (last !== undefined && last.output[0] === output.name) last.output = ['logits'];
  else
    nodes.push({
      input: [output.name],
      output: ['logits'],
      name: 'logits',
      opType: 'Identity',
      attribute: [],
    });
  inits.push(floatTensor('temperature', [], [net.temperature]));
  nodes.push({
    input: ['logits', 'temperature'],
    output: ['scaled_logits'],
    name: 'scaled_logits',
    opType: 'Div',
    attribute: [],
  });
  nodes.push({
    input: ['scaled_logits'],
    output: ['probabilities'],
    name: 'probabilities',
    opType: 'Softmax',
    attribute: [{ name: 'axis', type: 2, i: 1 }],
  });
  const model = {
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'onebit',
    producerVersion,
    docString:
      'Binary neural network exported by onebit: +-1 weights as float32, batch norm with running statistics.',
    graph: {
      name: 'onebit',
      node: nodes,
      initializer: inits,
      input: [valueInfo('input', ['N', c, h, w])],
      output: [
        valueInfo('logits', ['N', ...output.shape]),
        valueInfo('probabilities', ['N', ...output.shape]),
      ],
    },
    metadataProps: [
      { key: 'normalization', value: JSON.stringify(net.normalization) },
      ...Object.entries(net.metadata).map(([key, value]) => ({ key, value: String(value) })),
    ],
  };
  const type = onnxModelType();
  const problem = type.verify(model);
  if (problem !== null) throw new Error(`onnx export: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}
