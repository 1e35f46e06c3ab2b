/**
 * The example spec files (examples/specs) through the command line, for every method that trains them:
 * train, resume from an epoch-1 checkpoint (byte-identical to the uninterrupted run), eval (same accuracy as
 * the run's own test), summary (binary parameter count worked out from the spec file here), and for the
 * 1-bit MLP export to .onebit, ONNX and safetensors whose predictions equal the checkpoint's on every test
 * example. Fashion-MNIST subsets when the data set is installed, synthetic-mnist otherwise.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { lastJson, runCli } from './cli.js';
import { defaultBackendKind } from '../src/backend/native/index.js';
import { loadSplits, openBackend } from '../src/cli/train-command.js';
import type { BackendKind, TrainConfig } from '../src/config/train-config.js';
import { DEBIAN_FASHION_MNIST_DIR, type Dataset } from '../src/data/dataset.js';
import { argmax, createEngine } from '../src/engine/index.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { decodeSafetensors } from '../src/io/safetensors.js';
import { rowStride } from '../src/methods/float-free/reference.js';
import { Rng } from '../src/tensor/rng.js';
import { createRun, disposeRun, restoreRun } from '../src/train/run.js';
import { CHECKPOINT_FILE, RUN_FILE, train } from '../src/train/trainer.js';

const haveFashionMnist = existsSync(join(DEBIAN_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
const DATA = haveFashionMnist ? 'fashion-mnist' : 'synthetic-mnist';
const SPEC_DIR = join(import.meta.dirname, '..', 'examples', 'specs');

interface SpecCase {
  readonly file: string;
  readonly methods: readonly string[];
  readonly trainLimit: number;
  readonly testLimit: number;
  /** Export to .onebit, ONNX and safetensors and compare predictions (the engine and ONNX take MLPs). */
  readonly export: boolean;
}

// The CNN costs about ten times the MLP per example, so it gets smaller subsets.
const CASES: readonly SpecCase[] = [
  {
    file: 'mlp-256x2-binary.json',
    methods: ['ste', 'vispa', 'bayesbinn', 'bop', 'float-free'],
    trainLimit: 500,
    testLimit: 300,
    export: true,
  },
  {
    file: 'cnn-3conv.json',
    methods: ['ste', 'vispa', 'bayesbinn', 'bop'],
    trainLimit: 200,
    testLimit: 100,
    export: false,
  },
];

interface Trained {
  readonly dir: string;
  /** The uninterrupted run's checkpoint and its final JSON line. */
  readonly checkpoint: string;
  readonly result: Record<string, unknown>;
  /** The run stopped after epoch 1 and resumed with `train --resume`. */
  readonly resumedCheckpoint: string;
  readonly resumed: Record<string, unknown>;
}

let root = '';
let splits: Promise<{ train: Dataset; test: Dataset }> | null = null;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'onebit-spec-models-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** The data set's splits, read once: every case trains on the same data set (only the limits differ). */
function dataFor(config: TrainConfig): Promise<{ train: Dataset; test: Dataset }> {
  splits ??= loadSplits(config);
  return splits;
}

/**
 * Trains one (spec, method) case: 2 epochs straight through the CLI; then the same config in the library,
 * stopped by a callback after epoch 1 (its checkpoint written), and finished by `onebit train --resume`.
 */
async function trainCase(spec: SpecCase, method: string): Promise<Trained> {
  const dir = join(root, `${spec.file.replace(/\.json$/, '')}-${method}`);
  const args = [
    'train',
    '--data',
    DATA,
    '--model',
    join(SPEC_DIR, spec.file),
    '--method',
    method,
    '--epochs',
    '2',
    '--batch-size',
    '50',
    '--validation',
    '0',
    '--train-limit',
    String(spec.trainLimit),
    '--test-limit',
    String(spec.testLimit),
    '--seed',
    '11',
    '--json',
    // One thread per process: the cases train two at a time on two cores.
    '--threads',
    '1',
    // No --activations: the spec sets each layer's binarizer (for float-free, 1-bit after the first).
  ];
  const straight = await runCli([...args, '--out', join(dir, 'whole')]);
  assert.equal(straight.code, 0, straight.stderr);
  const checkpoint = join(dir, 'whole', CHECKPOINT_FILE);

  // The interrupted run uses the exact config the CLI stored, on the backend the CLI chose by default
  // (native where its addon is built, else wasm), as its run.json records.
  const config = loadCheckpoint(checkpoint).meta.config;
  const data = await dataFor(config);
  const { backend: kind } = JSON.parse(readFileSync(join(dir, 'whole', RUN_FILE), 'utf8')) as {
    backend: BackendKind;
  };
  const backend = await openBackend(kind, 1);
  const broken = join(dir, 'broken');
  try {
    await assert.rejects(
      train({
        config,
        backend,
        train: data.train,
        test: data.test,
        outDir: broken,
        resume: false,
        callbacks: {
          onEpoch(record) {
            if (record.epoch === 1) throw new Error('interrupted after epoch 1');
          },
        },
      }),
      /interrupted after epoch 1/,
    );
  } finally {
    backend.dispose();
  }
  assert.equal(loadCheckpoint(join(broken, CHECKPOINT_FILE)).meta.epoch, 1);
  const resumed = await runCli(['train', '--resume', broken, '--threads', '1', '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  return {
    dir,
    checkpoint,
    result: lastJson(straight.stdout),
    resumedCheckpoint: join(broken, CHECKPOINT_FILE),
    resumed: lastJson(resumed.stdout),
  };
}

/** Binary weights of a spec, counted from the file's layers with the usual shape arithmetic. */
function binaryWeightsOfSpecFile(path: string): number {
  interface Layer {
    type: string;
    units?: number;
    filters?: number;
    kernelSize?: number;
    stride?: number;
    padding?: number;
  }
  const spec = JSON.parse(readFileSync(path, 'utf8')) as { input: number[]; layers: Layer[] };
  let shape = [...spec.input];
  let weights = 0;
  const out = (size: number, l: Layer, defaultStride: number): number =>
    Math.floor((size + 2 * (l.padding ?? 0) - l.kernelSize!) / (l.stride ?? defaultStride)) + 1;
  for (const l of spec.layers) {
    switch (l.type) {
      case 'flatten':
        shape = [shape.reduce((a, b) => a * b, 1)];
        break;
      case 'binaryDense':
        weights += l.units! * shape[0];
        shape = [l.units!];
        break;
      case 'binaryConv2d':
        weights += l.filters! * shape[0] * l.kernelSize! * l.kernelSize!;
        shape = [l.filters!, out(shape[1], l, 1), out(shape[2], l, 1)];
        break;
      case 'maxPool2d':
      case 'avgPool2d':
        shape = [shape[0], out(shape[1], l, l.kernelSize!), out(shape[2], l, l.kernelSize!)];
        break;
      case 'batchNorm':
      case 'relu':
      case 'hardtanh':
        break;
      default:
        throw new Error(`binaryWeightsOfSpecFile: no rule for layer type ${l.type}`);
    }
  }
  return weights;
}

/**
 * The checkpoint's own test-time predictions on the first `limit` test examples, as `onebit eval` computes
 * them: the run rebuilt from the checkpoint, the method's deterministic network, argmax of the logits.
 */
async function checkpointPredictions(path: string, test: Dataset, limit: number): Promise<Uint8Array> {
  const checkpoint = loadCheckpoint(path);
  const backend = await openBackend(defaultBackendKind(), 1);
  try {
    const run = createRun(
      checkpoint.meta.config,
      backend,
      { inputShape: test.shape, classes: test.classes, stepsPerEpoch: 1, trainingExamples: 1 },
      100,
      checkpoint.meta.normalization,
    );
    try {
      restoreRun(run, path, checkpoint);
      run.learner.predict('mode', new Rng(1));
      const classes = run.spec.classes;
      const order = Uint32Array.from({ length: limit }, (_, i) => i);
      const predictions = new Uint8Array(limit);
      for (let start = 0; start < limit; start += run.maxBatch) {
        const n = Math.min(run.maxBatch, limit - start);
        const logits = run.learner.logits(test, order, start, n);
        for (let i = 0; i < n; i++) predictions[start + i] = argmax(logits, i * classes, classes);
      }
      return predictions;
    } finally {
      disposeRun(run);
    }
  } finally {
    backend.dispose();
  }
}

function mismatches(a: ArrayLike<number>, b: ArrayLike<number>): number[] {
  assert.equal(a.length, b.length);
  const bad: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) bad.push(i);
  return bad;
}

/** `onebit eval`'s mode accuracy per case, recorded by the eval test for the tests after it. */
const evalAccuracy = new Map<string, number>();

/**
 * The first `testLimit` test images and the checkpoint's predictions on them, which score eval's accuracy
 * (checked here, so the exports are compared with eval's network).
 */
async function referenceFor(
  spec: SpecCase,
  t: Trained,
): Promise<{ images: Uint8Array; reference: Uint8Array; testSet: Dataset }> {
  const config = loadCheckpoint(t.checkpoint).meta.config;
  const { test: testSet } = await dataFor(config);
  const n = spec.testLimit;
  const reference = await checkpointPredictions(t.checkpoint, testSet, n);
  let correct = 0;
  for (let i = 0; i < n; i++) if (reference[i] === testSet.labels[i]) correct++;
  const evaluated = evalAccuracy.get(`${spec.file}/${config.method}`);
  assert.ok(evaluated !== undefined, 'the eval test runs first');
  assert.equal(correct / n, evaluated);
  const size = testSet.shape[0] * testSet.shape[1] * testSet.shape[2];
  return { images: testSet.images.subarray(0, n * size), reference, testSet };
}

// Each (spec, method) trains once, two at a time (one per core), started by the first test that needs it.
const pending: { key: string; start: () => Promise<Trained> }[] = [];
const trained = new Map<string, Promise<Trained>>();
let workersStarted = false;

function trainedCase(spec: SpecCase, method: string): Promise<Trained> {
  const key = `${spec.file}/${method}`;
  if (!workersStarted) {
    workersStarted = true;
    const queue = [...pending];
    const worker = async (): Promise<void> => {
      for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
        // Errors surface in the tests that await this case.
        await job.start().catch(() => undefined);
      }
    };
    void Promise.all([worker(), worker()]);
  }
  return trained.get(key)!;
}

for (const spec of CASES) {
  for (const method of spec.methods) {
    const key = `${spec.file}/${method}`;
    let resolve!: (t: Trained) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<Trained>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Marked handled here; each test awaits it and reports the failure.
    promise.catch(() => undefined);
    trained.set(key, promise);
    pending.push({
      key,
      start: () => {
        const run = trainCase(spec, method);
        run.then(resolve, reject);
        return run;
      },
    });
  }
}

for (const spec of CASES) {
  describe(`examples/specs/${spec.file} on ${DATA}`, () => {
    for (const method of spec.methods) {
      test(`${method}: trains, and resuming after epoch 1 ends byte-identical`, async () => {
        const t = await trainedCase(spec, method);
        const a = loadCheckpoint(t.checkpoint);
        const b = loadCheckpoint(t.resumedCheckpoint);
        assert.equal(a.meta.epoch, 2);
        assert.equal(b.meta.epoch, 2);
        assert.equal(b.meta.step, a.meta.step);
        assert.deepEqual(b.meta.methodScalars, a.meta.methodScalars);
        assert.deepEqual([...b.tensors.keys()], [...a.tensors.keys()]);
        assert.ok(a.tensors.size > 0);
        for (const [name, value] of a.tensors) {
          const other = b.tensors.get(name)!;
          assert.ok(
            Buffer.from(value.buffer, value.byteOffset, value.byteLength).equals(
              Buffer.from(other.buffer, other.byteOffset, other.byteLength),
            ),
            `tensor ${name} differs after resume`,
          );
        }
        assert.equal(t.resumed.testAccuracy, t.result.testAccuracy);
        // Two epochs on a few hundred examples: well above the 10% of guessing, whatever the method.
        assert.ok((t.result.testAccuracy as number) > 0.2, `test accuracy ${String(t.result.testAccuracy)}`);
      });

      test(`${method}: eval and summary read the checkpoint`, async () => {
        const t = await trainedCase(spec, method);
        const [evaluated, summary] = await Promise.all([
          runCli(['eval', t.checkpoint, '--test-limit', String(spec.testLimit), '--threads', '1', '--json']),
          runCli(['summary', t.checkpoint, '--json']),
        ]);
        assert.equal(evaluated.code, 0, evaluated.stderr);
        const mode = lastJson(evaluated.stdout).mode as Record<string, number>;
        assert.equal(mode.count, spec.testLimit);
        evalAccuracy.set(`${spec.file}/${method}`, mode.accuracy);

        assert.equal(summary.code, 0, summary.stderr);
        const s = lastJson(summary.stdout);
        assert.equal(s.method, method);
        const totals = s.totals as Record<string, number>;
        assert.equal(totals.binaryParameters, binaryWeightsOfSpecFile(join(SPEC_DIR, spec.file)));
      });

      test(`${method}: eval of the final checkpoint scores the run's own test accuracy`, async () => {
        const t = await trainedCase(spec, method);
        assert.equal(evalAccuracy.get(`${spec.file}/${method}`), t.result.testAccuracy);
      });

      if (spec.export) {
        test(`${method}: the .onebit export predicts as eval on every test example`, async () => {
          const t = await trainedCase(spec, method);
          const file = join(t.dir, 'model.onebit');
          const r = await runCli(['export', t.checkpoint, '--format', 'onebit', '--out', file, '--json']);
          assert.equal(r.code, 0, r.stderr);
          const { images, reference } = await referenceFor(spec, t);
          const engine = await createEngine(new Uint8Array(readFileSync(file)), { threads: 1 });
          try {
            const classes = engine.classify(images, spec.testLimit);
            assert.deepEqual(mismatches(classes, reference), [], '.onebit predictions differ');
          } finally {
            engine.dispose();
          }
        });

        test(`${method}: the ONNX and safetensors exports hold the checkpoint's network`, async () => {
          const t = await trainedCase(spec, method);
          const out = (ext: string): string => join(t.dir, `model.${ext}`);
          const exports = await Promise.all(
            (['onnx', 'safetensors'] as const).map((format) =>
              runCli(['export', t.checkpoint, '--format', format, '--out', out(format), '--json']),
            ),
          );
          for (const r of exports) assert.equal(r.code, 0, r.stderr);
          const { images, reference, testSet } = await referenceFor(spec, t);
          const checkpoint = loadCheckpoint(t.checkpoint);
          const { mean, std } = checkpoint.meta.normalization;
          const n = spec.testLimit;
          const session = await ort.InferenceSession.create(readFileSync(out('onnx')), {
            intraOpNumThreads: 1,
            logSeverityLevel: 3,
          });
          try {
            const x = Float32Array.from(images, (v) => (v / 255 - mean[0]) / std[0]);
            const result = await session.run({
              input: new ort.Tensor('float32', x, [n, ...testSet.shape]),
            });
            const logits = result.logits.data as Float32Array;
            const classes = checkpoint.meta.config.spec!.classes;
            const onnxClasses = Array.from({ length: n }, (_, i) => argmax(logits, i * classes, classes));
            assert.deepEqual(mismatches(onnxClasses, reference), [], 'ONNX predictions differ');
          } finally {
            await session.release();
          }

          const file = decodeSafetensors(new Uint8Array(readFileSync(out('safetensors'))));
          // The network's tensors: the float model's, or float-free's integer network (method state).
          const floatFree = checkpoint.meta.inference === 'float-free';
          const modelTensors = [...checkpoint.tensors.keys()].filter((k) =>
            k.startsWith(floatFree ? 'method/' : 'model/'),
          );
          assert.ok(modelTensors.length >= 6, modelTensors.join());
          for (const name of modelTensors) {
            const stored = file.tensors.get(name);
            assert.ok(stored !== undefined, `safetensors lacks ${name}`);
            let saved = Array.from(checkpoint.tensors.get(name)!);
            if (floatFree && name.endsWith('/counters')) {
              // Stored [out, in], the checkpoint's rows without their padding to rowStride(in).
              const [rows, cols] = stored.shape;
              const p = rowStride(cols);
              assert.equal(saved.length, rows * p, name);
              saved = Array.from({ length: rows }, (_, i) => saved.slice(i * p, i * p + cols)).flat();
            }
            assert.deepEqual(Array.from(stored.data), saved, name);
          }
        });
      }
    }
  });
}
