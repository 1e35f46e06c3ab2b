/**
 * The bit-packed inference engine on its own (the `onebit/engine` entry point): the `.onebit` format and
 * its runtime. Imports nothing from the training code, so a browser bundle of it stays small. Re-exports
 * only, no side effects.
 */
export { OnebitFormatError, type OnebitErrorCode } from '../errors.js';
export {
  createEngine,
  defaultEngineBackend,
  borderCorrection,
  argmax,
  softmax,
  DEFAULT_POPCOUNT,
  ENGINE_KERNELS,
  type Engine,
  type EngineBackend,
  type EngineOptions,
  type NativeLevel,
  type FirstLayerKernel,
  type RealDenseKernel,
  type LayerTrace,
  type PopcountVariant,
  type WasmBytes,
  type WasmModule,
} from './engine.js';
export {
  BIT_CONVENTION,
  decodeOnebit,
  encodeOnebit,
  LIMITS as ONEBIT_LIMITS,
  ONEBIT_MAGIC,
  ONEBIT_VERSION,
  packSignRows,
  packedWords as onebitPackedWords,
  type Activation,
  type AffineLayer,
  type AvgPoolLayer,
  type ConvLayer,
  type DenseLayer,
  type DenseOutput,
  type FlattenLayer,
  type MaxPoolLayer,
  type MetadataValue,
  type OnebitInput,
  type OnebitLayer,
  type OnebitModel,
  type PoolWindow,
  type ResidualLayer,
  type ThresholdLayer,
} from './format.js';
export { measureThroughput, randomImages, type ThroughputOptions } from './measure.js';
