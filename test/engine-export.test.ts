/**
 * Export and the bit-packed engine end to end: small models trained here (mlp-100, real and 1-bit
 * activations, on a Fashion-MNIST subset, or synthetic data when the data set is not installed) are exported
 * and run on the engine, which must agree with the training model in evaluation mode on every example of the
 * test set: the same predicted class everywhere, the same bits in every hidden layer whose input bits agree
 * (exact integer arithmetic), and, for 1-bit activations, bit-identical logits. Also: the ONNX export in
 * onnxruntime-node, the safetensors round trip, the .onebit size of mlp-2x2048, PNG prediction and the
 * other CLI commands, and export atomicity.
 */
import { ExportError } from '../src/errors.js';
import { strict as assert } from 'node:assert';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { lastJson, runCli } from './cli.js';
import type { Backend, FloatArray } from '../src/backend/backend.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import {
  DEBIAN_FASHION_MNIST_DIR,
  loadDataset,
  syntheticDataset,
  type Dataset,
} from '../src/data/dataset.js';
import { fillBatch, Normalizer } from '../src/data/pipeline.js';
import { argmax, createEngine, softmax } from '../src/engine/engine.js';
import { decodeOnebit, encodeOnebit, packedWords } from '../src/engine/format.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import {
  buildOnebitModel,
  describeNetwork,
  exportSource,
  openForExport,
  type ExportSource,
} from '../src/io/export.js';
import { checkpointSafetensors, exportCheckpoint } from '../src/io/export-file.js';
import { encodePngImage } from '../src/io/image.js';
import { encodeOnnx } from '../src/io/onnx.js';
import { decodeSafetensors, encodeSafetensors } from '../src/io/safetensors.js';
import type { Layer } from '../src/nn/layer.js';
import { parseModelSpec } from '../src/nn/spec.js';
import { Rng } from '../src/tensor/rng.js';
import {
  CHECKPOINT_MAGIC,
  CHECKPOINT_VERSION,
  loadCheckpoint,
  saveCheckpoint,
} from '../src/io/checkpoint.js';
import { writeTensorFile } from '../src/io/tensor-file.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../src/config/train-config.js';
import { createRun, disposeRun, runTensors } from '../src/train/run.js';
import { CHECKPOINT_FILE, train } from '../src/train/trainer.js';
import { upgradeCheckpoint } from '../src/train/upgrade.js';

const haveFashionMnist = existsSync(join(DEBIAN_FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'));
const DATA = haveFashionMnist ? 'fashion-mnist' : 'synthetic-mnist';

let dir = '';
let backend: Backend;
let trainSet: Dataset;
let testSet: Dataset;
const checkpoints: Record<'real' | 'binary', string> = { real: '', binary: '' };

async function trainSmall(activations: 'real' | 'binary'): Promise<string> {
  const config: TrainConfig = {
    ...TRAIN_DEFAULTS,
    data: DATA,
    model: 'mlp-100',
    method: 'ste',
    activations,
    epochs: 1,
    trainLimit: 3000,
    validationFraction: 0,
    seed: 7,
  };
  const outDir = join(dir, activations);
  await train({ config, backend, train: trainSet, test: testSet, outDir, resume: false });
  return join(outDir, CHECKPOINT_FILE);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-engine-'));
  backend = await createWasmBackend({ threads: 2 });
  if (haveFashionMnist) {
    const options = { cacheDir: join(dir, 'cache') };
    trainSet = await loadDataset('fashion-mnist', { ...options, split: 'train' });
    testSet = await loadDataset('fashion-mnist', { ...options, split: 'test' });
  } else {
    const common = { name: 'synthetic-mnist', shape: [1, 28, 28] as const, classes: 10, seed: 3 };
    trainSet = syntheticDataset({ ...common, split: 'train', count: 3000 });
    testSet = syntheticDataset({ ...common, split: 'test', count: 1000 });
  }
  checkpoints.real = await trainSmall('real');
  checkpoints.binary = await trainSmall('binary');
});

after(() => {
  backend.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** The training model's outputs in evaluation mode: the input of every binary layer, and the logits. */
function trainingForward(
  source: ExportSource,
  data: Dataset,
): { layerInputs: Float32Array[]; logits: Float32Array } {
  const model = source.model;
  const batch = source.maxBatch;
  const size = data.shape[0] * data.shape[1] * data.shape[2];
  const images = backend.alloc(batch * size);
  const normalizer = new Normalizer(data.shape, source.normalization);
  const order = Uint32Array.from({ length: data.count }, (_, i) => i);
  // The binary dense layers, found by their spec type; their input width from their weight's shape.
  const dense = model.layers.filter((_, i) => source.spec.layers[i].type === 'binaryDense');
  const inputWidth = (l: Layer): number =>
    (model.parameters().find((p) => p.name === `${l.name}.weight`)?.shape ?? [0, 0])[1];
  const layerInputs = dense.map((d) => new Float32Array(data.count * inputWidth(d)));
  const logits = new Float32Array(data.count * source.classes);
  const ctx = { training: false, rng: new Rng(0) };
  try {
    for (let start = 0; start < data.count; start += batch) {
      const n = fillBatch(
        data,
        order,
        start,
        { images, labels: new Int32Array(batch), capacity: batch },
        { normalizer },
      );
      let x: FloatArray = images;
      for (const layer of model.layers) {
        const i = dense.indexOf(layer);
        if (i >= 0) {
          const k = inputWidth(layer);
          layerInputs[i].set(x.subarray(0, n * k), start * k);
        }
        x = layer.forward(x, n, ctx);
      }
      logits.set(x.subarray(0, n * source.classes), start * source.classes);
    }
  } finally {
    backend.free(images);
  }
  return { layerInputs, logits };
}

describe('engine against the training model', { timeout: 600_000 }, () => {
  for (const activations of ['binary', 'real'] as const) {
    test(`${activations} activations: the same prediction on every test example`, async (t) => {
      const source = openForExport(checkpoints[activations], backend);
      try {
        const model = decodeOnebit(encodeOnebit(buildOnebitModel(source)));
        const reference = trainingForward(source, testSet);
        const engine = await createEngine(model, { threads: 2, maxBatch: 100 });
        try {
          const n = testSet.count;
          const logits = engine.logits(testSet.images, n);
          let agree = 0;
          for (let i = 0; i < n; i++)
            if (argmax(logits, i * 10, 10) === argmax(reference.logits, i * 10, 10)) agree++;
          assert.equal(agree, n, `engine and training model agree on ${agree} of ${n} examples`);

          // Hidden bits: the engine's packed outputs against sign() of the training model's binary-layer inputs.
          const denseLayers = model.layers.filter((l) => l.kind === 'dense');
          const bitLayers = denseLayers.flatMap((l, i) => (l.output.kind === 'bits' ? [i] : []));
          let tail = 0;
          let exactRows = 0;
          for (let start = 0; start < n; start += 100) {
            const rows = Math.min(100, n - start);
            const trace = engine.trace(testSet.images.subarray(start * 784, (start + rows) * 784), rows);
            for (let r = 0; r < rows; r++) {
              let inputsAgree = true;
              for (const li of bitLayers) {
                const tr = trace[li];
                if (tr.kind !== 'bits') throw new Error('expected bits');
                const features = tr.features;
                const words = packedWords(features);
                const want = reference.layerInputs[li + 1];
                let mismatches = 0;
                for (let j = 0; j < features; j++) {
                  const bit = (tr.bits[r * words + (j >>> 5)] >>> (j & 31)) & 1;
                  const expected = want[(start + r) * features + j] >= 0 ? 0 : 1;
                  if (bit !== expected) mismatches++;
                }
                // Bits-input layers compute exact integers: with the same input bits, the same output bits.
                if (li > 0 && inputsAgree) assert.equal(mismatches, 0, `layer ${li}, example ${start + r}`);
                if (mismatches > 0) {
                  tail += mismatches;
                  inputsAgree = false;
                }
              }
              if (inputsAgree && bitLayers.length > 0) {
                exactRows++;
                // Same bits into the last layer: its integer outputs, hence the logits, are identical.
                for (let j = 0; j < 10; j++)
                  assert.equal(logits[(start + r) * 10 + j], reference.logits[(start + r) * 10 + j]);
              }
            }
          }
          if (activations === 'binary') {
            assert.ok(tail <= n * 100 * 1e-4, `${tail} first-layer bits differ (float summation tail)`);
          } else {
            for (let i = 0; i < n * 10; i++)
              assert.ok(
                Math.abs(logits[i] - reference.logits[i]) < 1e-3 * Math.max(1, Math.abs(reference.logits[i])),
              );
          }
          t.diagnostic(
            `${agree}/${n} predictions agree; ${tail} hidden bits differ; ${exactRows} examples with bit-identical logits`,
          );
        } finally {
          engine.dispose();
        }
      } finally {
        source.dispose();
      }
    });
  }

  test("ONNX export runs in onnxruntime-node with the engine's predictions", async (t) => {
    for (const activations of ['binary', 'real'] as const) {
      const source = openForExport(checkpoints[activations], backend);
      try {
        const onnx = encodeOnnx(describeNetwork(source));
        const engine = await createEngine(buildOnebitModel(source), { threads: 1 });
        const session = await ort.InferenceSession.create(onnx, {
          intraOpNumThreads: 1,
          logSeverityLevel: 3,
        });
        try {
          const n = testSet.count;
          const { mean, std } = source.normalization;
          const x = Float32Array.from(testSet.images, (v) => (v / 255 - mean[0]) / std[0]);
          const out = await session.run({ input: new ort.Tensor('float32', x, [n, 1, 28, 28]) });
          const onnxLogits = out.logits.data as Float32Array;
          const engineLogits = engine.logits(testSet.images, n);
          let agree = 0;
          for (let i = 0; i < n; i++)
            if (argmax(onnxLogits, i * 10, 10) === argmax(engineLogits, i * 10, 10)) agree++;
          t.diagnostic(`${activations}: onnxruntime and the engine agree on ${agree}/${n}`);
          assert.ok(
            agree >= n - Math.ceil(n * 1e-3),
            `${activations}: onnxruntime and the engine agree on ${agree} of ${n}`,
          );
        } finally {
          await session.release();
          engine.dispose();
        }
      } finally {
        source.dispose();
      }
    }
  });

  test("ONNX sign maps 0 to +1 (Where(GreaterOrEqual)), as onebit's sign does", async () => {
    // A one-layer net x -> sign(x) W^T with W = identity-like signs, fed exact zeros and negative zeros.
    const source = openForExport(checkpoints.binary, backend);
    try {
      const net = describeNetwork(source);
      const ops = net.ops.filter((op) => op.kind === 'dense');
      assert.ok(ops.length === 3 && !ops[0].binarizeInput && ops[1].binarizeInput && ops[2].binarizeInput);
      const tiny = {
        ...net,
        inputShape: [1, 1, 2] as const,
        classes: 2,
        ops: [
          { kind: 'flatten' as const },
          {
            kind: 'dense' as const,
            name: 'id',
            inFeatures: 2,
            outFeatures: 2,
            binarizeInput: true,
            weight: Float32Array.from([1, 1, 1, -1]),
          },
        ],
      };
      const session = await ort.InferenceSession.create(encodeOnnx(tiny), { logSeverityLevel: 3 });
      const out = await session.run({
        input: new ort.Tensor('float32', Float32Array.from([0, -0, -1, 0]), [2, 1, 1, 2]),
      });
      // sign(0) = sign(-0) = +1: [1, 1] W^T = [2, 0]; [-1, +1] W^T = [0, -2].
      assert.deepEqual(Array.from(out.logits.data as Float32Array), [2, 0, 0, -2]);
      await session.release();
    } finally {
      source.dispose();
    }
  });

  test('safetensors holds every checkpoint tensor byte for byte', () => {
    const source = openForExport(checkpoints.binary, backend);
    try {
      const bytes = checkpointSafetensors(source);
      const file = decodeSafetensors(bytes);
      assert.equal(file.tensors.size, source.tensors.size);
      for (const [name, data] of source.tensors) {
        const t = file.tensors.get(name);
        assert.ok(t !== undefined, name);
        assert.equal(t.data.constructor, data.constructor, name);
        assert.deepEqual(
          new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
          new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
          name,
        );
      }
      assert.deepEqual(file.tensors.get('model/fc1.weight')?.shape, [100, 784]);
      assert.deepEqual(file.tensors.get('method/fc2.weight/latent')?.shape, [100, 100]);
      assert.equal(file.metadata.format, 'onebit-checkpoint');
      const again = encodeSafetensors(
        [...file.tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data })),
        { ...file.metadata },
      );
      assert.deepEqual(again, bytes, 're-encoding the decoded file gives the same bytes');
    } finally {
      source.dispose();
    }
  });
});

describe('.onebit size', () => {
  test('mlp-2x2048: the export is at most 1/25 of the float32 weights', async (t) => {
    for (const activations of ['binary', 'real'] as const) {
      const config: TrainConfig = {
        ...TRAIN_DEFAULTS,
        data: 'fashion-mnist',
        model: 'mlp-2x2048',
        method: 'ste',
        activations,
      };
      const run = createRun(
        config,
        backend,
        { inputShape: [1, 28, 28], classes: 10, stepsPerEpoch: 1, trainingExamples: 1 },
        100,
      );
      try {
        // The random initial network at its mode weights, exported from its spec and tensors (no checkpoint).
        run.learner.predict('mode', new Rng(0));
        const source = exportSource(
          {
            spec: run.spec,
            tensors: run.learner.stateTensors(),
            normalization: { mean: [0.286], std: [0.353] },
            name: 'mlp-2x2048',
          },
          backend,
        );
        let bytes: Uint8Array;
        let floatBytes: number;
        try {
          bytes = encodeOnebit(buildOnebitModel(source));
          floatBytes = 4 * source.model.binaryParameters().reduce((s, p) => s + p.value.length, 0);
        } finally {
          source.dispose();
        }
        const ratio = floatBytes / bytes.byteLength;
        t.diagnostic(
          `${activations}: ${bytes.byteLength} bytes, float32 weights ${floatBytes} bytes: ${ratio.toFixed(2)}x`,
        );
        assert.ok(ratio >= 25, `ratio ${ratio}`);
      } finally {
        disposeRun(run);
      }
    }
  });
});

describe('export atomicity', () => {
  test('a failing export leaves the old file untouched and no temporary file behind', () => {
    const out = join(dir, 'atomic');
    mkdirSync(out, { recursive: true });
    // A checkpoint of a model the exporter does not support (PReLU).
    const spec = parseModelSpec({
      input: [1, 28, 28],
      classes: 10,
      layers: [
        { type: 'flatten' },
        { type: 'binaryDense', units: 16 },
        { type: 'batchNorm' },
        { type: 'prelu' },
        { type: 'binaryDense', units: 10 },
        { type: 'batchNorm' },
      ],
    });
    const config: TrainConfig = {
      ...TRAIN_DEFAULTS,
      data: 'fashion-mnist',
      model: 'prelu.json',
      spec,
      method: 'ste',
    };
    const run = createRun(
      config,
      backend,
      { inputShape: [1, 28, 28], classes: 10, stepsPerEpoch: 1, trainingExamples: 1 },
      4,
    );
    const cnn = join(out, 'prelu.ckpt');
    try {
      run.learner.predict('mode', new Rng(0)); // as the trainer does before saving
      saveCheckpoint(
        cnn,
        {
          config: run.config,
          inference: 'float-model',
          epoch: 0,
          step: 0,
          rng: run.rng.getState(),
          methodScalars: {},
          optimizerScalars: {},
          normalization: { mean: [0.3], std: [0.35] },
        },
        runTensors(run),
      );
    } finally {
      disposeRun(run);
    }
    const target = join(out, 'model.onebit');
    writeFileSync(target, 'previous contents');
    const notYet = (error: unknown): boolean =>
      error instanceof ExportError && /layer act1 \(prelu\): PReLU/.test(error.message);
    assert.throws(() => exportCheckpoint(cnn, 'onebit', target, backend), notYet);
    assert.throws(() => exportCheckpoint(cnn, 'onnx', target, backend), notYet);
    assert.equal(readFileSync(target, 'utf8'), 'previous contents');
    // A write that fails at the rename (the target is a directory): the temporary file is removed.
    const blocked = join(out, 'blocked.onebit');
    mkdirSync(blocked);
    assert.throws(() => exportCheckpoint(checkpoints.binary, 'onebit', blocked, backend));
    assert.throws(() => writeFileAtomic(blocked, [new Uint8Array(10)]));
    // A successful export replaces the file in one step.
    exportCheckpoint(checkpoints.binary, 'onebit', target, backend);
    decodeOnebit(readFileSync(target));
    assert.deepEqual(readdirSync(out).sort(), ['blocked.onebit', 'model.onebit', 'prelu.ckpt']);
    assert.throws(() =>
      exportCheckpoint(checkpoints.binary, 'onebit', join(out, 'missing', 'x.onebit'), backend),
    );
    assert.deepEqual(readdirSync(out).sort(), ['blocked.onebit', 'model.onebit', 'prelu.ckpt']);
  });
});

describe('CLI: export, predict, bench', { timeout: 600_000 }, () => {
  test('export --format onebit, predict --data --json, predict --image, bench', async () => {
    const model = join(dir, 'cli.onebit');
    const e = await runCli(['export', checkpoints.binary, '--format', 'onebit', '--out', model]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /wrote .*cli\.onebit/);
    const onnx = await runCli([
      'export',
      checkpoints.binary,
      '--format',
      'onnx',
      '--out',
      join(dir, 'cli.onnx'),
      '--json',
    ]);
    assert.equal(onnx.code, 0, onnx.stderr);
    assert.equal(lastJson(onnx.stdout).format, 'onnx');

    const engine = await createEngine(decodeOnebit(readFileSync(model)), { threads: 1 });
    try {
      const limit = 500;
      const p = await runCli([
        'predict',
        model,
        '--data',
        DATA,
        '--split',
        'test',
        '--limit',
        String(limit),
        '--json',
        '--threads',
        '2',
      ]);
      assert.equal(p.code, 0, p.stderr);
      const result = lastJson(p.stdout);
      const predictions = engine.classify(testSet.images.subarray(0, limit * 784), limit);
      let correct = 0;
      for (let i = 0; i < limit; i++) if (predictions[i] === testSet.labels[i]) correct++;
      assert.equal(result.accuracy, correct / limit);
      assert.ok(typeof result.imagesPerSecond === 'number' && result.imagesPerSecond > 0);

      // One test image as a 28x28 grayscale PNG.
      const index = 3;
      const pixels = testSet.images.subarray(index * 784, (index + 1) * 784);
      const png = join(dir, 'image.png');
      writeFileSync(png, encodePngImage(pixels, [1, 28, 28]));
      const img = await runCli(['predict', model, '--image', png, '--json']);
      assert.equal(img.code, 0, img.stderr);
      const answer = lastJson(img.stdout);
      const logits = engine.logits(pixels, 1);
      assert.equal(answer.class, argmax(logits, 0, 10));
      const probabilities = answer.probabilities as number[];
      assert.deepEqual(probabilities, Array.from(softmax(logits, 0, 10)));
      const text = await runCli(['predict', model, '--image', png]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`class ${answer.class as number} \\(`));

      const b = await runCli(['bench', model, '--seconds', '0.05', '--threads', '1']);
      assert.equal(b.code, 0, b.stderr);
      assert.match(b.stdout, /batch +1: \d+ images\/s/);
      assert.match(b.stdout, /batch 100: \d+ images\/s/);

      const bad = join(dir, 'bad.onebit');
      writeFileSync(bad, readFileSync(model).subarray(0, 100));
      const r = await runCli(['predict', bad, '--image', png]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /bad\.onebit: byte 12: header of \d+ bytes runs past the end of the file/);
    } finally {
      engine.dispose();
    }
  });
});

describe('export from spec and tensors', () => {
  test('a missing or mis-sized model tensor is an ExportError naming it', () => {
    const checkpoint = loadCheckpoint(checkpoints.binary);
    const spec = checkpoint.meta.config.spec;
    assert.ok(spec !== undefined);
    const base = { spec, normalization: checkpoint.meta.normalization, name: 'mem' };
    const without = new Map(checkpoint.tensors);
    without.delete('model/bn2.running_var');
    assert.throws(
      () => exportSource({ ...base, tensors: without }, backend),
      (e: unknown) => e instanceof ExportError && /"model\/bn2\.running_var" is missing/.test(e.message),
    );
    const short = new Map(checkpoint.tensors);
    short.set('model/fc1.weight', new Float32Array(10));
    assert.throws(
      () => exportSource({ ...base, tensors: short }, backend),
      (e: unknown) =>
        e instanceof ExportError && /"model\/fc1\.weight".* 78400 values, found 10/.test(e.message),
    );
  });

  test('a version-1 checkpoint is refused until upgraded; the upgrade exports the same model', () => {
    const checkpoint = loadCheckpoint(checkpoints.binary);
    // The same run as a version-1 file: no spec, no inference field.
    const config: Record<string, unknown> = { ...checkpoint.meta.config };
    delete config.spec;
    const meta: Record<string, unknown> = { ...checkpoint.meta };
    delete meta.inference;
    const v1 = join(dir, 'v1.ckpt');
    writeTensorFile(
      v1,
      CHECKPOINT_MAGIC,
      1,
      { ...meta, config },
      [...checkpoint.tensors].map(([name, value]) => ({ name, value })),
    );
    assert.equal(loadCheckpoint(v1).meta.inference, 'stale');
    const target = join(dir, 'v1.onebit');
    assert.throws(
      () => exportCheckpoint(v1, 'onebit', target, backend),
      (e: unknown) => e instanceof ExportError && e.message.includes(`onebit upgrade ${v1}`),
    );
    assert.equal(existsSync(target), false);
    const upgraded = join(dir, 'v2.ckpt');
    assert.deepEqual(upgradeCheckpoint(v1, upgraded, backend), { upgraded: true });
    assert.equal(loadCheckpoint(upgraded).meta.inference, 'float-model');
    exportCheckpoint(upgraded, 'onebit', target, backend);
    const original = join(dir, 'original.onebit');
    exportCheckpoint(checkpoints.binary, 'onebit', original, backend);
    // STE's mode is the sign of its latent weights, which the trainer saved: the same file.
    assert.deepEqual(readFileSync(target), readFileSync(original));
  });

  test('a version-2 checkpoint (no checksums) loads, and upgrade rewrites it with them, tensors unchanged', () => {
    const checkpoint = loadCheckpoint(checkpoints.binary);
    const v2 = join(dir, 'v2-no-checksums.ckpt');
    const tensors = [...checkpoint.tensors].map(([name, value]) => ({ name, value }));
    writeTensorFile(v2, CHECKPOINT_MAGIC, 2, checkpoint.meta, tensors);
    assert.equal(loadCheckpoint(v2).version, 2);
    const upgraded = join(dir, 'v3.ckpt');
    assert.deepEqual(upgradeCheckpoint(v2, upgraded, backend), { upgraded: true });
    const current = loadCheckpoint(upgraded);
    assert.equal(current.version, CHECKPOINT_VERSION);
    assert.deepEqual(current.meta, checkpoint.meta);
    assert.deepEqual(current.tensors, checkpoint.tensors);
    // Already current: nothing to do, the file is left alone.
    assert.deepEqual(upgradeCheckpoint(upgraded, upgraded, backend), { upgraded: false });
  });
});

describe('calibration through export', { timeout: 600_000 }, () => {
  test("the .onebit and ONNX exports carry the checkpoint's temperature; their probabilities are the calibrated ones", async () => {
    // The binary run (trained without a validation split) with a temperature, as calibrate would store it.
    const checkpoint = loadCheckpoint(checkpoints.binary);
    const temperature = 0.45;
    const calibrated = join(dir, 'calibrated.ckpt');
    const record = { temperature, nllBefore: 1, nllAfter: 0.9, examples: 100 };
    saveCheckpoint(
      calibrated,
      { ...checkpoint.meta, calibration: { mode: record } },
      [...checkpoint.tensors].map(([name, value]) => ({ name, value })),
    );
    const source = openForExport(calibrated, backend);
    try {
      assert.equal(source.temperature, temperature);
      const model = decodeOnebit(encodeOnebit(buildOnebitModel(source)));
      assert.equal(model.temperature, temperature);
      const n = 500;
      const data = {
        ...testSet,
        images: testSet.images.subarray(0, n * 784),
        labels: testSet.labels.subarray(0, n),
        count: n,
      };
      // The calibrated checkpoint's probabilities: softmax(logits / T) of the training model.
      const reference = trainingForward(source, data);
      const engine = await createEngine(model, { threads: 1 });
      try {
        assert.equal(engine.temperature, temperature);
        const probabilities = engine.probabilities(data.images, n);
        let worst = 0;
        for (let i = 0; i < n; i++) {
          const expected = softmax(reference.logits, i * 10, 10, temperature);
          for (let c = 0; c < 10; c++)
            worst = Math.max(worst, Math.abs(probabilities[i * 10 + c] - expected[c]));
        }
        assert.ok(worst < 1e-6, `engine probabilities differ from the calibrated ones by ${worst}`);

        // ONNX: "probabilities" = Softmax(logits / T), as onnxruntime computes it.
        const net = describeNetwork(source);
        assert.equal(net.temperature, temperature);
        const session = await ort.InferenceSession.create(encodeOnnx(net), {
          intraOpNumThreads: 1,
          logSeverityLevel: 3,
        });
        const { mean, std } = source.normalization;
        const x = Float32Array.from(data.images, (v) => (v / 255 - mean[0]) / std[0]);
        const out = await session.run({ input: new ort.Tensor('float32', x, [n, 1, 28, 28]) });
        const onnx = out.probabilities.data as Float32Array;
        let onnxWorst = 0;
        for (let i = 0; i < n * 10; i++)
          onnxWorst = Math.max(onnxWorst, Math.abs(onnx[i] - probabilities[i]));
        assert.ok(onnxWorst < 1e-4, `onnxruntime probabilities differ by ${onnxWorst}`);
      } finally {
        engine.dispose();
      }
    } finally {
      source.dispose();
    }
  });

  test('a .onebit header temperature must be a positive finite number', () => {
    const source = openForExport(checkpoints.binary, backend);
    try {
      for (const bad of [0, -1, Number.POSITIVE_INFINITY]) {
        // The encoder reads back what it wrote, so the reader's check refuses it there already.
        assert.throws(
          () => encodeOnebit({ ...buildOnebitModel(source), temperature: bad }),
          (e: unknown) =>
            e instanceof Error && /header\.temperature: expected a finite number > 0/.test(e.message),
        );
      }
    } finally {
      source.dispose();
    }
  });
});
