/**
 * ONNX export of an exported network (export.ts's NetworkDescription), for deployment outside onebit.
 *
 * The graph is the training model in evaluation mode, operator for operator:
 *   input [N, C, H, W] float32, normalised as in training ((v / 255 - mean) / std; the statistics are in
 *   the model's metadata_props "normalization")
 *   Flatten(axis 1)
 *   per dense layer: [sign of the input] MatMul(x, W^T) with W as +-1 float32 initialisers,
 *                    [Mul by the channel scale] BatchNormalization(running statistics, epsilon),
 *                    Relu or Clip(-1, 1) (hardtanh)
 *   output "logits" [N, classes].
 * The sign: ONNX Sign(0) = 0 while onebit's sign(0) = +1, so the binarizer is
 * Where(GreaterOrEqual(x, 0), 1, -1) (NaN -> -1, as onebit's). Opset 13, IR version 7.
 *
 * A network given as integer layers (float-free, from its `.onebit` model: float-free-export.ts) takes the
 * same normalised input and adds three operations: 'pixels' rounds it back to the 8-bit pixel and applies
 * the model's own centring (Mul, Add, Round, Sub: exact integers in float32), 'threshold' is the 1-bit
 * activation against per-unit thresholds (Where(GreaterOrEqual(z, t), 1, -1), ties to +1 as the method's),
 * and 'affine' is per-unit scale and bias (Mul, Add). The MatMuls of +-1 values with small integers are
 * exact in float32, so such a graph reproduces the integer network's arithmetic exactly.
 *
 * Encoding uses protobufjs with the subset of onnx.proto (github.com/onnx/onnx, onnx/onnx.proto) that the
 * writer needs; field numbers are those of onnx.proto.
 */
import * as protobuf from 'protobufjs';
import type { NetworkDescription } from './export.js';

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

/** Serialises the network as an ONNX model (protobuf bytes). */
export function encodeOnnx(net: NetworkDescription, producerVersion = '0.1.0'): Uint8Array {
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
  const constants = new Set<string>();
  /** A scalar initialiser, added the first time it is used. */
  const constant = (name: 'zero' | 'one' | 'minus_one'): string => {
    if (!constants.has(name))
      inits.push(floatTensor(name, [], [name === 'zero' ? 0 : name === 'one' ? 1 : -1]));
    constants.add(name);
    return name;
  };
  const [c, h, w] = net.inputShape;
  let x = 'input';
  let features = c * h * w;
  let flattened = false;
  for (const op of net.ops) {
    switch (op.kind) {
      case 'flatten':
        x = node('Flatten', [x], 'flatten', [{ name: 'axis', type: 2, i: 1 }]);
        flattened = true;
        break;
      case 'dense': {
        if (!flattened) x = node('Flatten', [x], 'flatten', [{ name: 'axis', type: 2, i: 1 }]);
        flattened = true;
        if (op.binarizeInput) {
          const nonNegative = node('GreaterOrEqual', [x, constant('zero')], `${op.name}_nonneg`);
          x = node('Where', [nonNegative, constant('one'), constant('minus_one')], `${op.name}_sign`);
        }
        // W^T as [in, out] so that MatMul(x [N, in], W^T) gives [N, out].
        const wt = new Float32Array(op.inFeatures * op.outFeatures);
        for (let o = 0; o < op.outFeatures; o++) {
          for (let i = 0; i < op.inFeatures; i++)
            wt[i * op.outFeatures + o] = op.weight[o * op.inFeatures + i];
        }
        const weightName = `${op.name}.weight_t`;
        inits.push(floatTensor(weightName, [op.inFeatures, op.outFeatures], wt));
        x = node('MatMul', [x, weightName], op.name);
        features = op.outFeatures;
        break;
      }
      case 'scale': {
        const name = `${op.name}.alpha`;
        inits.push(floatTensor(name, [op.alpha.length], op.alpha));
        x = node('Mul', [x, name], op.name);
        break;
      }
      case 'batchnorm': {
        const n = op.mean.length;
        const names = ['scale', 'bias', 'mean', 'var'].map((s) => `${op.name}.${s}`);
        inits.push(
          floatTensor(names[0], [n], op.gamma ?? new Float32Array(n).fill(1)),
          floatTensor(names[1], [n], op.beta ?? new Float32Array(n)),
          floatTensor(names[2], [n], op.mean),
          floatTensor(names[3], [n], op.variance),
        );
        x = node('BatchNormalization', [x, ...names], op.name, [{ name: 'epsilon', type: 1, f: op.eps }]);
        break;
      }
      case 'relu':
        x = node('Relu', [x], op.name);
        break;
      case 'hardtanh':
        x = node('Clip', [x, constant('minus_one'), constant('one')], op.name);
        break;
      case 'pixels': {
        // v = Round(x * 255 std + 255 mean) per channel ([C, 1, 1] broadcasts over [N, C, H, W]): the
        // normalised input carries the pixel with an error far below 1/2, so rounding recovers it exactly.
        const { mean, std } = net.normalization;
        const perChannel = (suffix: string, values: readonly number[]): string => {
          const name = `${op.name}.${suffix}`;
          inits.push(floatTensor(name, [values.length, 1, 1], values));
          return name;
        };
        x = node(
          'Mul',
          [
            x,
            perChannel(
              'pixel_scale',
              std.map((s) => 255 * s),
            ),
          ],
          `${op.name}_scale`,
        );
        x = node(
          'Add',
          [
            x,
            perChannel(
              'pixel_shift',
              mean.map((m) => 255 * m),
            ),
          ],
          `${op.name}_shift`,
        );
        x = node('Round', [x], `${op.name}_round`);
        // Then the model's own normalisation, (v - 255 mean') / (255 std'), as offset and gain in float32.
        const offset = op.model.mean.map((m) => Math.fround(255 * m));
        const gain = op.model.std.map((s) => Math.fround(1 / (255 * s)));
        if (offset.some((o) => o !== 0))
          x = node('Sub', [x, perChannel('offset', offset)], `${op.name}_offset`);
        if (gain.some((g) => g !== 1)) x = node('Mul', [x, perChannel('gain', gain)], `${op.name}_gain`);
        break;
      }
      case 'threshold': {
        // +1 iff d z >= d t: direction -1 turns z <= t into -z >= -t (exact: negation is).
        const n = op.thresholds.length;
        const flips = op.directions.some((d) => d === -1);
        let z = x;
        if (flips) {
          const d = `${op.name}.direction`;
          inits.push(floatTensor(d, [n], op.directions));
          z = node('Mul', [x, d], `${op.name}_direct`);
        }
        const t = `${op.name}.threshold`;
        inits.push(
          floatTensor(
            t,
            [n],
            Array.from(op.thresholds, (v, i) => v * op.directions[i]),
          ),
        );
        const on = node('GreaterOrEqual', [z, t], `${op.name}_on`);
        x = node('Where', [on, constant('one'), constant('minus_one')], `${op.name}_sign`);
        break;
      }
      case 'affine': {
        const n = op.scale.length;
        const scale = `${op.name}.scale`;
        const bias = `${op.name}.bias`;
        inits.push(floatTensor(scale, [n], op.scale), floatTensor(bias, [n], op.bias));
        x = node('Add', [node('Mul', [x, scale], `${op.name}_mul`), bias], op.name);
        break;
      }
    }
  }
  // The last node's output is the graph output "logits"; "probabilities" is softmax(logits / T), the
  // calibrated prediction (T = 1 when the checkpoint has no temperature).
  nodes[nodes.length - 1].output = ['logits'];
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
      output: [valueInfo('logits', ['N', features]), valueInfo('probabilities', ['N', features])],
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
