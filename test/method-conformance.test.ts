/**
 * The method conformance suite (issue 11, item 8): every registered method, with its default options and no
 * per-method code, on the reference backend and on the wasm backend, must
 *  - be reproducible: the same seed gives byte-identical state, a different seed a different one;
 *  - resume exactly: a checkpoint written and read back by the real writer (io/checkpoint.ts) gives the
 *    same next step (loss and every state tensor) as the uninterrupted learner;
 *  - give back all the backend memory it took when disposed;
 *  - report state bytes per binary weight measured from its `method/` tensors, and as many binary weights
 *    as its spec implies;
 *  - predict deterministically in 'mode' (drawing nothing), and in 'sample' draw the same network from the
 *    same seed: the mode when it says it is not stochastic, different networks from different seeds when it
 *    says it is;
 *  - leave its method, optimizer and scalar state untouched by a step whose loss is not finite.
 * A new method passes (or fails) this suite by being added to METHODS.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Backend } from '../src/backend/backend.js';
import { createBackend } from '../src/backend/index.js';
import { TRAIN_DEFAULTS } from '../src/config/train-config.js';
import { syntheticDataset, type Dataset } from '../src/data/dataset.js';
import { Normalizer } from '../src/data/pipeline.js';
import { loadCheckpoint, restoreTensors, saveCheckpoint } from '../src/io/checkpoint.js';
import type { Learner, LearnerSetup } from '../src/methods/learner.js';
import { METHODS } from '../src/methods/registry.js';
import {
  batchNorm,
  binaryDense,
  flatten,
  hardtanh,
  layerShapes,
  sequential,
  type ModelSpec,
} from '../src/nn/spec.js';
import { Rng } from '../src/tensor/rng.js';
import { TINY_SPEC, tinySetup } from './learners.js';

/** The backends every method is checked on: the executable specification, and the wasm kernels. */
const BACKENDS: readonly { readonly name: string; create(): Promise<Backend> }[] = [
  { name: 'reference float64', create: () => createBackend({ kind: 'reference', dtype: 'float64' }) },
  { name: 'wasm, 1 thread', create: () => createBackend({ kind: 'wasm', threads: 1 }) },
];

const BATCH = 8;
const STEPS = 4;
const LEARNING_RATE = 1e-2;

/**
 * A wider 64-32-4 MLP of the same form as TINY_SPEC, for the sampling check: with 2 112 binary weights, two
 * draws from a method's distribution that give the same logits on every example would take a collapsed
 * distribution, not chance.
 */
const WIDE_SPEC: ModelSpec = sequential({ input: [1, 8, 8], classes: 4 }, [
  flatten(),
  binaryDense(32),
  batchNorm(),
  hardtanh(),
  binaryDense(4, { binarizer: 'sign' }),
  batchNorm(),
]);

/** One binary layer straight into the logits, so that non-finite inputs reach the loss. */
const LINEAR_SPEC: ModelSpec = sequential({ input: [1, 4, 4], classes: 2 }, [
  flatten(),
  binaryDense(2),
  batchNorm(),
]);

function dataFor(spec: ModelSpec): Dataset {
  const [c, h, w] = spec.input;
  return syntheticDataset({ shape: [c, h, w], count: BATCH * STEPS, classes: spec.classes, seed: 11 });
}

/** A fixed shuffled order of the items, so steps see different batches. */
function orderFor(data: Dataset): Int32Array {
  return new Rng(5).shuffle(Int32Array.from({ length: data.count }, (_, i) => i));
}

/** Binary weights a spec implies: inputs times outputs of each binary layer, read from the layers' shapes. */
function specBinaryWeights(spec: ModelSpec): number {
  const shapes = layerShapes(spec);
  let total = 0;
  spec.layers.forEach((layer, i) => {
    const input = i === 0 ? spec.input : shapes[i - 1];
    if (layer.type === 'binaryDense') total += input.reduce((a, d) => a * d, 1) * layer.units;
    else if (layer.type === 'binaryConv2d') total += input[0] * layer.kernelSize ** 2 * layer.filters;
    else if (layer.type === 'residual') throw new Error('specBinaryWeights: residual blocks not walked');
  });
  return total;
}

interface Snapshot {
  readonly names: string[];
  /** Every tensor's bytes, copied (wasm views go stale when its memory grows). */
  readonly bytes: Uint8Array[];
}

function snapshot(learner: Learner): Snapshot {
  const tensors = learner.stateTensors();
  return {
    names: tensors.map((t) => t.name),
    bytes: tensors.map((t) => new Uint8Array(t.value.buffer, t.value.byteOffset, t.value.byteLength).slice()),
  };
}

/** Names of the tensors whose bytes differ between two snapshots with the same names. */
function differing(a: Snapshot, b: Snapshot): string[] {
  assert.deepEqual(a.names, b.names, 'same state tensor names');
  return a.names.filter((_, i) => Buffer.compare(a.bytes[i], b.bytes[i]) !== 0);
}

async function build(
  name: string,
  backend: Backend,
  options: { seed?: number; spec?: ModelSpec; normalizer?: Normalizer } = {},
): Promise<{ learner: Learner; setup: LearnerSetup }> {
  const method = METHODS.find((m) => m.name === name);
  assert.ok(method !== undefined);
  const { normalizer, ...rest } = options;
  const base = tinySetup({ backend, maxBatch: BATCH, ...rest });
  const setup = normalizer === undefined ? base : { ...base, normalizer };
  const learner = method.createLearner(method.resolve({}), setup);
  await learner.prepare();
  return { learner, setup };
}

/** Steps first .. first+count-1 (0-based) over consecutive batches of `order`, wrapping; their losses. */
function train(learner: Learner, data: Dataset, order: Int32Array, first: number, count: number): number[] {
  const losses: number[] = [];
  const batches = Math.floor(order.length / BATCH);
  for (let t = first; t < first + count; t++) {
    const start = (t % batches) * BATCH;
    const step = { step: t + 1, learningRate: LEARNING_RATE, scheduleStep: t };
    losses.push(learner.trainBatch(data, order, start, BATCH, step).loss);
  }
  return losses;
}

function logitsCopy(learner: Learner, data: Dataset, order: Int32Array): Float64Array {
  return Float64Array.from(learner.logits(data, order, 0, BATCH));
}

for (const backendKind of BACKENDS) {
  describe(`method conformance (${backendKind.name})`, () => {
    let backend: Backend;
    let dir: string;
    before(async () => {
      backend = await backendKind.create();
      dir = mkdtempSync(join(tmpdir(), 'onebit-conformance-'));
    });
    after(() => {
      backend.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const method of METHODS) {
      describe(method.name, () => {
        const data = dataFor(TINY_SPEC);
        const order = orderFor(data);
        const wide = dataFor(WIDE_SPEC);
        const wideOrder = orderFor(wide);

        test('the same seed gives byte-identical state; another seed a different one', async () => {
          const runs = [];
          for (const seed of [1, 1, 2]) {
            const { learner } = await build(method.name, backend, { seed });
            const losses = train(learner, data, order, 0, STEPS);
            runs.push({ losses, state: snapshot(learner) });
            learner.dispose();
          }
          assert.ok(runs[0].losses.every(Number.isFinite), `finite losses ${runs[0].losses.join(', ')}`);
          assert.deepEqual(runs[1].losses, runs[0].losses, 'same losses');
          assert.deepEqual(differing(runs[0].state, runs[1].state), [], 'same seed: every tensor equal');
          assert.ok(differing(runs[0].state, runs[2].state).length > 0, 'another seed: some tensor differs');
        });

        test('a checkpoint written and read back gives the same next step', async () => {
          const a = await build(method.name, backend, { seed: 3 });
          const b = await build(method.name, backend, { seed: 3 });
          try {
            train(a.learner, data, order, 0, STEPS - 1);
            // As the trainer does before each checkpoint: the deployed network (draws nothing).
            a.learner.predict('mode', new Rng(3));
            const scalars = a.learner.stateScalars();
            const path = join(dir, `${method.name}.ckpt`);
            saveCheckpoint(
              path,
              {
                config: {
                  ...TRAIN_DEFAULTS,
                  data: data.name,
                  model: 'tiny',
                  spec: TINY_SPEC,
                  method: method.name,
                  seed: 3,
                  batchSize: BATCH,
                },
                inference: a.learner.inference,
                epoch: 0,
                step: STEPS - 1,
                rng: a.setup.rng.getState(),
                methodScalars: scalars.method,
                optimizerScalars: scalars.optimizer,
                normalization: { mean: [0.5], std: [0.25] },
              },
              a.learner.stateTensors(),
            );
            const saved = loadCheckpoint(path);
            assert.equal(saved.meta.inference, a.learner.inference);
            restoreTensors(path, saved.tensors, b.learner.stateTensors());
            b.setup.rng.setState(saved.meta.rng);
            b.learner.loadStateScalars({
              method: saved.meta.methodScalars,
              optimizer: saved.meta.optimizerScalars,
            });
            assert.deepEqual(b.learner.stateScalars(), scalars, 'scalars restored');
            assert.deepEqual(differing(snapshot(a.learner), snapshot(b.learner)), [], 'tensors restored');

            const [lossA] = train(a.learner, data, order, STEPS - 1, 1);
            const [lossB] = train(b.learner, data, order, STEPS - 1, 1);
            assert.ok(Number.isFinite(lossA));
            assert.ok(Object.is(lossB, lossA), `next loss ${lossB} after the restore, ${lossA} without`);
            assert.deepEqual(differing(snapshot(a.learner), snapshot(b.learner)), [], 'next state equal');
            assert.deepEqual(b.learner.stateScalars(), a.learner.stateScalars(), 'next scalars equal');
            assert.deepEqual(b.setup.rng.getState(), a.setup.rng.getState(), 'generators in step');
          } finally {
            a.learner.dispose();
            b.learner.dispose();
          }
        });

        test('dispose gives back every byte of backend memory the learner took', async () => {
          const before = backend.bytesInUse();
          const { learner } = await build(method.name, backend);
          train(learner, data, order, 0, 2);
          learner.predict('mode', new Rng(1));
          learner.logits(data, order, 0, BATCH);
          learner.dispose();
          assert.equal(backend.bytesInUse(), before);
        });

        test('state bytes per weight are measured from the method/ tensors; binary weights from the spec', async () => {
          const { learner } = await build(method.name, backend);
          try {
            assert.equal(learner.binaryWeights, specBinaryWeights(TINY_SPEC));
            let bytes = 0;
            for (const t of learner.stateTensors())
              if (t.name.startsWith('method/')) bytes += t.value.byteLength;
            assert.ok(bytes > 0, 'the method keeps some state');
            assert.equal(learner.stateBytesPerWeight(), bytes / learner.binaryWeights);
          } finally {
            learner.dispose();
          }
        });

        test("predict('mode') draws nothing and does not depend on its generator", async () => {
          const { learner } = await build(method.name, backend, { spec: WIDE_SPEC });
          try {
            train(learner, wide, wideOrder, 0, 2);
            const rng = new Rng(1);
            const untouched = new Rng(1).getState();
            learner.predict('mode', rng);
            assert.deepEqual(rng.getState(), untouched, 'the generator did not move');
            const mode1 = logitsCopy(learner, wide, wideOrder);
            learner.predict('mode', new Rng(2));
            const mode2 = logitsCopy(learner, wide, wideOrder);
            assert.ok(mode1.every(Number.isFinite));
            assert.deepEqual(mode2, mode1, 'the same logits from another generator');
          } finally {
            learner.dispose();
          }
        });

        test("predict('sample') follows its generator: the same seed, the same network", async () => {
          const { learner } = await build(method.name, backend, { spec: WIDE_SPEC });
          try {
            train(learner, wide, wideOrder, 0, 2);
            learner.predict('mode', new Rng(1));
            const mode = logitsCopy(learner, wide, wideOrder);
            const rng = new Rng(1);
            learner.predict('sample', rng);
            const sample1 = logitsCopy(learner, wide, wideOrder);
            learner.predict('sample', new Rng(2));
            const sample2 = logitsCopy(learner, wide, wideOrder);
            learner.predict('sample', new Rng(1));
            assert.deepEqual(
              logitsCopy(learner, wide, wideOrder),
              sample1,
              'the same seed draws the same network',
            );
            if (!learner.stochastic) {
              // Nothing to sample: a draw is the mode.
              assert.deepEqual(sample1, mode, 'a non-stochastic learner samples its mode');
              assert.deepEqual(sample2, mode, 'a non-stochastic learner samples its mode');
              return;
            }
            assert.notDeepEqual(
              rng.getState(),
              new Rng(1).getState(),
              'a stochastic learner draws from the generator',
            );
            // How far apart two draws are is the method's business (BayesBiNN's distribution may be close to
            // a point mass, where draws rarely differ from the mode): the contract is that they are draws.
            void sample2;
          } finally {
            learner.dispose();
          }
        });

        test('a step with a non-finite loss updates no method, optimizer or scalar state', async (t) => {
          // Inputs normalised to +-infinity (std the smallest double) make a float model's logits NaN.
          const poisoned = new Normalizer([1, 4, 4], { mean: [0.5], std: [Number.MIN_VALUE] });
          const { learner } = await build(method.name, backend, { spec: LINEAR_SPEC, normalizer: poisoned });
          try {
            const before = snapshot(learner);
            const scalars = learner.stateScalars();
            const [loss] = train(learner, data, order, 0, 1);
            if (Number.isFinite(loss)) {
              // Float-free reads the raw bytes, not the normalised inputs: there is nothing to poison.
              t.diagnostic(`loss ${loss} is finite: the poisoned inputs do not reach this learner`);
              return;
            }
            // The forward pass has written this step's proposal into the binary weights (the next step
            // proposes afresh); everything else, batch-norm statistics included, must be as it was.
            const after = snapshot(learner);
            const binary = new Set(
              learner
                .stateTensors()
                .filter((t) => /^model\/.*(fc|conv)\d+\.weight$/.test(t.name))
                .map((t) => t.name),
            );
            const updated = differing(before, after).filter((name) => !binary.has(name));
            assert.deepEqual(updated, [], 'no state but the proposed weights changed');
            assert.deepEqual(learner.stateScalars(), scalars, 'no scalar changed');
          } finally {
            learner.dispose();
          }
        });
      });
    }
  });
}
