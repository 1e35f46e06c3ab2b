/**
 * The optimizer contract, in the optax style: an optimizer is a pair of functions
 * `init(params) -> state` and `update(state, params, ctx)`, and its state is plain data.
 *
 * - `init` allocates every buffer the optimizer will ever need (zero-filled, from the backend), so
 *   `update` allocates nothing and a training step stays allocation-free.
 * - `update` reads each parameter's `grad` and changes its `value` in place; the moment buffers and
 *   the update count in the state change in place too.
 * - The state is typed arrays plus numbers. `state.buffers` names every buffer, so a checkpoint writes
 *   `{ count, buffers }` and `restoreOptimizerState` reads it back into a freshly initialised state.
 *
 * Optimizers are for real-valued parameters. Binary weights belong to a training method (see
 * docs/architecture.md); the router (`router.ts`) decides which parameter goes where.
 */
import type { FloatArray } from '../backend/backend.js';
import type { Parameter, StateBuffer } from '../nn/layer.js';
import { shapeSize } from '../tensor/shape.js';
import type { Schedule } from './schedules.js';

/** A fixed learning rate, or a schedule evaluated at `StepContext.step`. */
export type LearningRate = number | Schedule;

/** What an update needs to know about where training is. */
export interface StepContext {
  /**
   * 0-based index of this training iteration over the whole run (epoch * itersPerEpoch + iteration).
   * Learning-rate schedules are evaluated here. Bias correction does not use it: it uses the state's own
   * count, so an optimizer that joins a run late, or is restored from a checkpoint, stays correct.
   */
  readonly step: number;
}

/** Fields every optimizer state has; concrete states add typed views of the same buffers. */
export interface OptimizerState {
  /** Which optimizer made this state ('adam', 'sgd'); restoring checks it. */
  readonly optimizer: string;
  /** Number of updates applied so far. */
  count: number;
  /** Names of the parameters `init` saw, in order; `update` must be given the same list. */
  readonly paramNames: readonly string[];
  /** Every buffer of the state, named `<parameter>/<slot>` (e.g. `fc1.weight/m`): the checkpoint view. */
  readonly buffers: readonly StateBuffer[];
}

export interface Optimizer<S extends OptimizerState = OptimizerState> {
  readonly name: string;
  /** Allocates a zeroed state for these parameters. */
  init(params: readonly Parameter[]): S;
  /** Applies one update in place to every parameter's value, from its grad. Allocates nothing. */
  update(state: S, params: readonly Parameter[], ctx: StepContext): void;
  /** Frees the state's buffers; the state is unusable afterwards. */
  dispose(state: S): void;
}

/** What a checkpoint stores of an optimizer state. */
export interface SavedOptimizerState {
  readonly optimizer: string;
  readonly count: number;
  readonly buffers: ReadonlyArray<{ readonly name: string; readonly value: ArrayLike<number> }>;
}

/** The state's named buffers and count, for a checkpoint writer. The arrays are the live buffers, not copies. */
export function saveOptimizerState(state: OptimizerState): SavedOptimizerState {
  return { optimizer: state.optimizer, count: state.count, buffers: state.buffers };
}

/**
 * Copies saved buffers and count into `state` (made by `init` for the same parameters).
 * Throws, naming the buffer, when a buffer is missing, unexpected or of the wrong length, or when the
 * saved state comes from another optimizer; on error `state` is left unchanged.
 */
export function restoreOptimizerState(state: OptimizerState, saved: SavedOptimizerState): void {
  if (saved.optimizer !== state.optimizer) {
    throw new Error(`cannot restore a '${saved.optimizer}' optimizer state into a '${state.optimizer}' one`);
  }
  if (!Number.isInteger(saved.count) || saved.count < 0) {
    throw new Error(`optimizer state count must be a non-negative integer, got ${saved.count}`);
  }
  const byName = new Map(state.buffers.map((b) => [b.name, b.value]));
  const seen = new Set<string>();
  // Validate everything before writing anything, so a bad file cannot leave a half-restored state.
  for (const b of saved.buffers) {
    const target = byName.get(b.name);
    if (target === undefined) throw new Error(`optimizer state: unexpected buffer '${b.name}'`);
    if (seen.has(b.name)) throw new Error(`optimizer state: buffer '${b.name}' appears twice`);
    if (b.value.length !== target.length) {
      throw new Error(
        `optimizer state: buffer '${b.name}' has length ${b.value.length}, expected ${target.length}`,
      );
    }
    seen.add(b.name);
  }
  for (const name of byName.keys()) {
    if (!seen.has(name)) throw new Error(`optimizer state: missing buffer '${name}'`);
  }
  for (const b of saved.buffers) {
    const target = byName.get(b.name) as FloatArray;
    for (let i = 0; i < target.length; i++) target[i] = b.value[i];
  }
  state.count = saved.count;
}

/** Evaluates a learning rate at a step. */
export function learningRateAt(lr: LearningRate, step: number): number {
  return typeof lr === 'number' ? lr : lr(step);
}

/** Number of entries of a parameter; checks that its buffers are large enough. */
export function parameterSize(p: Parameter): number {
  const n = shapeSize(p.shape);
  if (p.value.length < n || p.grad.length < n) {
    throw new Error(`parameter '${p.name}': value/grad buffers shorter than its shape (${n})`);
  }
  return n;
}

/** Names of parameters, rejecting duplicates (two parameters with one name would share a state slot). */
export function parameterNames(params: readonly Parameter[]): string[] {
  const names = params.map((p) => p.name);
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new Error(`parameter '${n}' appears twice in the optimizer's parameter list`);
    seen.add(n);
  }
  return names;
}

/**
 * Throws unless `params` is the list the state was initialised with (same names, same order).
 * Cheap: string comparisons only, no allocation on success.
 */
export function checkSameParameters(state: OptimizerState, params: readonly Parameter[]): void {
  if (params.length !== state.paramNames.length) {
    throw new Error(
      `${state.optimizer}: update got ${params.length} parameters, state was initialised with ${state.paramNames.length}`,
    );
  }
  for (let i = 0; i < params.length; i++) {
    if (params[i].name !== state.paramNames[i]) {
      throw new Error(
        `${state.optimizer}: parameter ${i} is '${params[i].name}', state expects '${state.paramNames[i]}'`,
      );
    }
  }
}

/** Throws a RangeError naming the hyperparameter unless lo <= value < hi (or <= hi when `hiInclusive`). */
export function checkRange(
  optimizer: string,
  name: string,
  value: number,
  lo: number,
  hi: number,
  hiInclusive = false,
): void {
  const ok = Number.isFinite(value) ? value >= lo && (hiInclusive ? value <= hi : value < hi) : false;
  if (!ok) {
    const interval = `[${lo}, ${hi}${hiInclusive ? ']' : ')'}`;
    throw new RangeError(`${optimizer}: ${name} must be in ${interval}, got ${value}`);
  }
}
