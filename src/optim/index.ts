/** Optimizers for real-valued parameters, learning-rate schedules and the parameter router. */
export { RoutingError } from '../errors.js';
export { adam, type AdamConfig, type AdamState } from './adam.js';
export { sgd, type SgdConfig, type SgdState } from './sgd.js';
export {
  restoreOptimizerState,
  saveOptimizerState,
  learningRateAt,
  type LearningRate,
  type Optimizer,
  type OptimizerState,
  type SavedOptimizerState,
  type StepContext,
} from './optimizer.js';
export {
  constantSchedule,
  cosineSchedule,
  warmupCosineSchedule,
  scheduleFromConfig,
  perIteration,
  type Schedule,
  type ScheduleConfig,
  type ScheduleKind,
} from './schedules.js';
export { routeParameters, type ParameterGroups, type ParameterMatcher, type RouteRule } from './router.js';
