/**
 * onebit's public API in Node: everything of the browser entry (browser.ts), and what needs files or Node:
 * named data sets and their loaders, `fit`, run folders, checkpoints on disk and exports to files.
 * Re-exports only, no side effects.
 */
export * from './browser.js';
export * from './data/index.js';
export { createFloatModelLearner } from './methods/float-model.js';
export { SteMethod, STE_DEFAULTS, type SteOptions } from './methods/ste.js';
export type { TrainCallbacks } from './train/trainer.js';
export {
  fit,
  exportModel,
  type FitOptions,
  type FitResult,
  type FitSettings,
  type TrainedModel,
  type EarlyStopping,
} from './train/fit.js';
export { restoreRun } from './train/run.js';
export { loadCheckpoint, saveCheckpoint } from './io/checkpoint.js';
export {
  openForExport,
  exportSource,
  checkpointExportSource,
  buildOnebitModel,
  describeNetwork,
  type ExportInput,
} from './io/export.js';
export type { ExportSource, NetworkDescription, NetworkOp } from './io/export.js';
export { exportCheckpoint } from './io/export-file.js';
