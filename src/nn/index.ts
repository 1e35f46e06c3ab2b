/** Layers, losses and model builders: re-exports only. */
export type { ForwardContext, Layer, Parameter, StateBuffer } from './layer.js';
export { LayerBase, ViewCache, checkBatchView, sameShape } from './base.js';
export { InputBinarizer } from './binarizer.js';
export type { BinarizerKind, BinarizerOptions } from './binarizer.js';
export { fillUniform, glorotUniform, initWeight, kaimingUniform } from './init.js';
export type { WeightInit } from './init.js';
export { Dense, DenseBase } from './dense.js';
export type { DenseConfig, DenseOptions } from './dense.js';
export { BinaryDense } from './binary-dense.js';
export type { BinaryDenseOptions } from './binary-dense.js';
export { Conv2d, Conv2dBase } from './conv2d.js';
export type { Conv2dConfig, Conv2dOptions } from './conv2d.js';
export { BinaryConv2d } from './binary-conv2d.js';
export type { BinaryConv2dOptions } from './binary-conv2d.js';
export { BatchNorm } from './batch-norm.js';
export type { BatchNormOptions } from './batch-norm.js';
export { ReLU } from './relu.js';
export { Hardtanh } from './hardtanh.js';
export { PReLU } from './prelu.js';
export { ChannelScale } from './channel-scale.js';
export type { ChannelScaleOptions } from './channel-scale.js';
export type { PReLUOptions } from './prelu.js';
export { MaxPool2d } from './max-pool2d.js';
export { AvgPool2d } from './avg-pool2d.js';
export type { Pool2dOptions } from './pool-options.js';
export { Dropout } from './dropout.js';
export { Flatten } from './flatten.js';
export { Sequential, prefixParameter, prefixState } from './sequential.js';
export { Residual } from './residual.js';
export { SoftmaxCrossEntropy, SquareHinge } from './losses.js';
export type { Labels, Loss } from './losses.js';
export {
  MODEL_NAMES,
  Model,
  buildModel,
  buildModelFromSpec,
  isModelName,
  modelSpecByName,
  namedModelSpec,
} from './models.js';
export * from './spec.js';
export type { ModelName, ModelOptions } from './models.js';
