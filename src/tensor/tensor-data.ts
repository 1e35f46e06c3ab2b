/** Typed arrays as the state of layers, methods and optimizers: what checkpoints and exports store. */

export type TensorDType = 'float32' | 'float64' | 'int32' | 'uint32' | 'int16' | 'int8' | 'uint8';
export type TensorData =
  Float32Array | Float64Array | Int32Array | Uint32Array | Int16Array | Int8Array | Uint8Array;

/** One state array and its name in a checkpoint ("model/fc1.weight", "method/fc1.weight/latent"). */
export interface NamedTensor {
  readonly name: string;
  readonly value: TensorData;
}
