/**
 * Properties every optimizer must have, whatever its rule (the optax habit of one shared test suite).
 * Add a new optimizer to `optimizers` below and it is held to all of them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backend, DType } from '../backend/backend.js';
import { createReferenceBackend } from '../backend/reference/index.js';
import type { Parameter } from '../nn/layer.js';
import { Rng } from '../tensor/rng.js';
import { adam } from './adam.js';
import {
  restoreOptimizerState,
  saveOptimizerState,
  type LearningRate,
  type Optimizer,
  type OptimizerState,
} from './optimizer.js';
import { sgd } from './sgd.js';

interface Hyper {
  readonly learningRate: LearningRate;
  readonly weightDecay: number;
}

const optimizers: ReadonlyArray<{ name: string; make: (b: Backend, h: Hyper) => Optimizer }> = [
  { name: 'adam', make: (b, h) => adam(b, h) },
  { name: 'sgd momentum', make: (b, h) => sgd(b, { ...h, momentum: 0.9 }) },
  { name: 'sgd nesterov', make: (b, h) => sgd(b, { ...h, momentum: 0.9, nesterov: true }) },
  { name: 'sgd no momentum', make: (b, h) => sgd(b, { ...h, momentum: 0 }) },
];

/** Counts alloc calls, to prove that update allocates nothing (not just that it frees what it takes). */
function countingBackend(dtype: DType): { backend: Backend; allocs: () => number } {
  const inner = createReferenceBackend(dtype);
  let allocs = 0;
  const backend: Backend = {
    ...inner,
    alloc: (n) => (allocs++, inner.alloc(n)),
    allocInt32: (n) => (allocs++, inner.allocInt32(n)),
    allocUint32: (n) => (allocs++, inner.allocUint32(n)),
  };
  return { backend, allocs: () => allocs };
}

/** A small model: a decayed weight matrix, a non-decayed bias, a one-element scale. */
function makeParams(b: Backend, seed: number): Parameter[] {
  const rng = new Rng(seed);
  const spec: Array<[string, number[], boolean]> = [
    ['fc.weight', [3, 4], true],
    ['fc.bias', [3], false],
    ['scale', [1], true],
  ];
  return spec.map(([name, shape, decay]) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const value = b.alloc(n);
    for (let i = 0; i < n; i++) value[i] = rng.normal();
    return { name, shape, kind: 'real', value, grad: b.alloc(n), decay };
  });
}

/** Writes the gradients of step `t` (a fixed pseudo-random sequence, identical across runs). */
function setGrads(params: readonly Parameter[], t: number): void {
  const rng = new Rng(1000 + t);
  for (const p of params) for (let i = 0; i < p.grad.length; i++) p.grad[i] = rng.normal();
}

function run(opt: Optimizer, params: Parameter[], state: OptimizerState, from: number, to: number): void {
  for (let t = from; t < to; t++) {
    setGrads(params, t);
    opt.update(state, params, { step: t });
  }
}

const snapshot = (xs: readonly { value: ArrayLike<number> }[]): number[][] =>
  xs.map((x) => Array.from(x.value));

for (const { name, make } of optimizers) {
  describe(`optimizer conformance: ${name}`, () => {
    const hyper: Hyper = { learningRate: 0.05, weightDecay: 0.01 };

    test('init: count 0, zeroed buffers named <parameter>/<slot>, parameters untouched', () => {
      const b = createReferenceBackend('float64');
      const params = makeParams(b, 1);
      const before = snapshot(params);
      const opt = make(b, hyper);
      const s = opt.init(params);
      assert.equal(s.count, 0);
      assert.deepEqual(s.paramNames, ['fc.weight', 'fc.bias', 'scale']);
      const names = s.buffers.map((x) => x.name);
      assert.equal(new Set(names).size, names.length, 'buffer names are unique');
      for (const buf of s.buffers) {
        const owner = params.find((p) => buf.name.startsWith(`${p.name}/`));
        assert.ok(owner, `buffer ${buf.name} is named after a parameter`);
        assert.equal(buf.value.length, owner.value.length, `${buf.name} has its parameter's length`);
        assert.ok(
          buf.value.every((x) => x === 0),
          `${buf.name} starts at zero`,
        );
      }
      assert.deepEqual(snapshot(params), before);
      opt.dispose(s);
    });

    for (const dtype of ['float64', 'float32'] as const) {
      test(`update allocates nothing and dispose frees everything (${dtype})`, () => {
        const { backend, allocs } = countingBackend(dtype);
        const params = makeParams(backend, 2);
        const base = backend.bytesInUse();
        const opt = make(backend, hyper);
        const s = opt.init(params);
        const afterInit = backend.bytesInUse();
        const allocsAfterInit = allocs();
        run(opt, params, s, 0, 5);
        assert.equal(backend.bytesInUse(), afterInit, 'bytesInUse unchanged across updates');
        assert.equal(allocs(), allocsAfterInit, 'no alloc call during updates');
        opt.dispose(s);
        assert.equal(backend.bytesInUse(), base, 'dispose frees the state');
        for (const p of params) for (const x of p.value) assert.ok(Number.isFinite(x));
      });
    }

    test('deterministic: the same inputs give bit-identical parameters and state', () => {
      const results = [0, 1].map(() => {
        const b = createReferenceBackend('float64');
        const params = makeParams(b, 3);
        const opt = make(b, hyper);
        const s = opt.init(params);
        run(opt, params, s, 0, 7);
        return { params: snapshot(params), buffers: snapshot(s.buffers), count: s.count };
      });
      assert.deepEqual(results[0], results[1]);
      assert.equal(results[0]!.count, 7);
    });

    test('zero gradients and no weight decay leave parameters unchanged', () => {
      const b = createReferenceBackend('float64');
      const params = makeParams(b, 4);
      const before = snapshot(params);
      const opt = make(b, { learningRate: 0.05, weightDecay: 0 });
      const s = opt.init(params);
      for (let t = 0; t < 3; t++) opt.update(s, params, { step: t }); // grads are zero from alloc
      assert.deepEqual(snapshot(params), before);
    });

    test('weight decay never touches parameters with decay = false', () => {
      // The same run with and without weight decay: fc.bias (decay = false) must come out bit-identical,
      // fc.weight (decay = true) must not.
      const runWith = (weightDecay: number): number[][] => {
        const b = createReferenceBackend('float64');
        const params = makeParams(b, 5);
        const opt = make(b, { learningRate: 0.05, weightDecay });
        run(opt, params, opt.init(params), 0, 4);
        return snapshot(params);
      };
      const plain = runWith(0);
      const decayed = runWith(0.1);
      assert.deepEqual(decayed[1], plain[1], 'fc.bias unaffected');
      assert.notDeepEqual(decayed[0], plain[0], 'fc.weight decayed');
    });

    test('the learning rate schedule is evaluated at ctx.step', () => {
      const b = createReferenceBackend('float64');
      const params = makeParams(b, 6);
      const asked: number[] = [];
      // lr 0 at every step: a schedule that says "do not move" must be obeyed (weight decay off).
      const opt = make(b, { learningRate: (step) => (asked.push(step), 0), weightDecay: 0 });
      const s = opt.init(params);
      const before = snapshot(params);
      run(opt, params, s, 10, 13);
      assert.deepEqual(asked, [10, 11, 12]);
      assert.deepEqual(snapshot(params), before);
    });

    test('save / restore resumes the exact trajectory', () => {
      const b = createReferenceBackend('float64');
      const opt = make(b, hyper);
      // Reference: 6 uninterrupted steps.
      const straight = makeParams(b, 7);
      run(opt, straight, opt.init(straight), 0, 6);
      // Interrupted: 3 steps, save (copying, as a file would), then a fresh state restored from it.
      const resumed = makeParams(b, 7);
      const first = opt.init(resumed);
      run(opt, resumed, first, 0, 3);
      const saved = saveOptimizerState(first);
      const file = {
        optimizer: saved.optimizer,
        count: saved.count,
        buffers: saved.buffers.map((x) => ({ name: x.name, value: Float64Array.from(x.value) })),
      };
      opt.dispose(first);
      const second = opt.init(resumed);
      restoreOptimizerState(second, file);
      assert.equal(second.count, 3);
      run(opt, resumed, second, 3, 6);
      assert.deepEqual(snapshot(resumed), snapshot(straight));
    });

    test('restore rejects a mismatched file and leaves the state unchanged', () => {
      const b = createReferenceBackend('float64');
      const params = makeParams(b, 8);
      const opt = make(b, hyper);
      const s = opt.init(params);
      run(opt, params, s, 0, 2);
      const before = { count: s.count, buffers: snapshot(s.buffers) };
      const good = {
        ...saveOptimizerState(s),
        buffers: s.buffers.map((x) => ({ ...x, value: [...x.value] })),
      };
      assert.throws(() => restoreOptimizerState(s, { ...good, optimizer: 'other' }), /other/);
      assert.throws(() => restoreOptimizerState(s, { ...good, count: -1 }), /count/);
      assert.throws(
        () =>
          restoreOptimizerState(s, { ...good, buffers: [...good.buffers, { name: 'ghost/m', value: [0] }] }),
        /ghost\/m/,
      );
      if (good.buffers.length > 0) {
        const [head, ...rest] = good.buffers;
        assert.throws(() => restoreOptimizerState(s, { ...good, buffers: rest }), new RegExp(head!.name));
        assert.throws(
          () =>
            restoreOptimizerState(s, { ...good, buffers: [{ name: head!.name, value: [1, 2] }, ...rest] }),
          /length 2/,
        );
      }
      assert.deepEqual({ count: s.count, buffers: snapshot(s.buffers) }, before);
    });

    test('update rejects a parameter list other than the one init saw', () => {
      const b = createReferenceBackend('float64');
      const params = makeParams(b, 9);
      const opt = make(b, hyper);
      const s = opt.init(params);
      assert.throws(() => opt.update(s, params.slice(1), { step: 0 }), /2 parameters/);
      assert.throws(() => opt.update(s, [params[1]!, params[0]!, params[2]!], { step: 0 }), /fc\.bias/);
      assert.throws(() => opt.init([params[0]!, params[0]!]), /fc\.weight.*twice/);
    });
  });
}
