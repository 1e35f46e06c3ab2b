/** onebit's public API: re-exports only, no side effects. */
export * from './errors.js';
export type * from './backend/backend.js';
export { convOutputSize, packedWords } from './backend/backend.js';
export { createBackend, createReferenceBackend, type BackendOptions } from './backend/index.js';
export { Rng, type RngState } from './tensor/rng.js';
export { shapeSize, type Shape } from './tensor/shape.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './data/index.js';
export type { BinaryMethod, MethodContext, MethodStep, PredictionKind } from './methods/method.js';
export {
  createLearner,
  METHOD_NAMES,
  METHODS,
  methodDefinition,
  resolveMethodConfig,
} from './methods/registry.js';
export type { Learner, LearnerSetup, LearnerStep, StepResult } from './methods/learner.js';
export { createFloatModelLearner } from './methods/float-model.js';
export { SteMethod, STE_DEFAULTS, type SteOptions } from './methods/ste.js';
export { TRAIN_DEFAULTS, validateConfig, type TrainConfig } from './config/train-config.js';
export { train, type TrainOptions, type TrainResult, type EpochRecord } from './train/trainer.js';
export {
  fit,
  exportModel,
  type FitOptions,
  type FitResult,
  type FitSettings,
  type TrainedModel,
  type EarlyStopping,
} from './train/fit.js';
export { createRun, disposeRun, restoreRun, type Run, type RunShape } from './train/run.js';
export type { TrainCallbacks } from './train/trainer.js';
export { trainEpoch, type BatchProgress, type CallbackAnswer } from './train/epoch.js';
export { evaluate, type Evaluation, type EvaluationOptions } from './train/evaluate.js';
export { MetricsAccumulator, type ClassificationMetrics, type ReliabilityBin } from './train/metrics.js';
export { loadCheckpoint, saveCheckpoint, type Checkpoint, type CheckpointMeta } from './io/checkpoint.js';
export { summarizeModel, type ModelSummary, type LayerSummary } from './train/summary.js';
export * from './engine/index.js';
export {
  openForExport,
  exportSource,
  checkpointExportSource,
  buildOnebitModel,
  describeNetwork,
  type ExportInput,
} from './io/export.js';
export type { ExportSource, NetworkDescription, NetworkOp } from './io/export.js';
export { exportCheckpoint, exportBytes, EXPORT_FORMATS, type ExportFormat } from './io/export-file.js';
export { encodeOnnx } from './io/onnx.js';
export { decodeSafetensors, encodeSafetensors } from './io/safetensors.js';
