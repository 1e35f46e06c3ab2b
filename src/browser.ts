/**
 * onebit in a browser (the package's `browser` condition; docs/browser.md): the engine, the models and
 * methods, and training on data sets held in memory, with nothing that imports a `node:` module. What
 * needs files (named data sets, run folders, checkpoints on disk, `fit`'s data loading) is Node only and
 * not here. A page hands the loader the WebAssembly modules it fetched with `provideModule`. Re-exports
 * only, no side effects.
 */
export * from './errors.js';
export type * from './backend/backend.js';
export { convOutputSize, packedWords } from './backend/backend.js';
export { createBackend, createReferenceBackend, type BackendOptions } from './backend/index.js';
export { Rng, type RngState } from './tensor/rng.js';
export { shapeSize, type Shape } from './tensor/shape.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './data/in-memory.js';
export { channelStats, subsetDataset } from './data/pipeline.js';
export type { BinaryMethod, MethodContext, MethodStep, PredictionKind } from './methods/method.js';
export {
  createLearner,
  METHOD_NAMES,
  METHODS,
  methodDefinition,
  resolveMethodConfig,
} from './methods/registry.js';
export type { Learner, LearnerSetup, LearnerStep, StepResult } from './methods/learner.js';
export { TRAIN_DEFAULTS, validateConfig, type TrainConfig } from './config/train-config.js';
export { trainConfig } from './train/run-config.js';
export { train, type TrainOptions, type TrainResult, type EpochRecord } from './train/trainer.js';
export { trainEpoch, type BatchProgress, type CallbackAnswer } from './train/epoch.js';
export { createRun, disposeRun, runSnapshot, type Run, type RunShape } from './train/run.js';
export { evaluate, type Evaluation, type EvaluationOptions } from './train/evaluate.js';
export { MetricsAccumulator, type ClassificationMetrics, type ReliabilityBin } from './train/metrics.js';
export { decodeCheckpoint, encodeCheckpoint, type Checkpoint, type CheckpointMeta } from './io/checkpoint.js';
export { summarizeModel, type ModelSummary, type LayerSummary } from './train/summary.js';
export * from './engine/index.js';
export { checkpointExportBytes, exportBytes, EXPORT_FORMATS, type ExportFormat } from './io/export-file.js';
export { encodeOnnx } from './io/onnx.js';
export { decodeSafetensors, encodeSafetensors } from './io/safetensors.js';
export { provideModule, PACKAGED_WASM_FILES, type PackagedWasmFile } from './wasm/loader.js';
