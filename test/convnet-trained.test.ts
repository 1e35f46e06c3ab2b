/**
 * Trained convnets deployed: cnn-small with 1-bit and with real activations and the cnn-3conv example spec,
 * trained briefly here on Fashion-MNIST (synthetic images of its shape when the data set is not installed),
 * and vgg-small trained for a few steps on the synthetic CIFAR-shaped set. Each is exported from its
 * checkpoint; the engine (reading the raw bytes, as `onebit predict` does) and onnxruntime-node must give the
 * training model's predicted class (in evaluation mode, as `onebit eval` computes it) on every test example.
 * For 1-bit cnn-small, the packed signs after each pooling layer are compared with the training model's:
 * wherever the signs entering a binary layer agree, the signs it gives agree too (exact integer arithmetic).
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { Backend, FloatArray } from '../src/backend/backend.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../src/config/train-config.js';
import {
  DEBIAN_FASHION_MNIST_DIR,
  loadDataset,
  syntheticDataset,
  type Dataset,
} from '../src/data/dataset.js';
import { fillBatch, Normalizer } from '../src/data/pipeline.js';
import { argmax, createEngine } from '../src/engine/engine.js';
import { decodeOnebit, encodeOnebit, packedWords } from '../src/engine/format.js';
import { buildOnebitModel, describeNetwork, openForExport, type ExportSource } from '../src/io/export.js';
import { encodePngImage } from '../src/io/image.js';
import { encodeOnnx } from '../src/io/onnx.js';
import { parseModelSpec } from '../src/nn/spec.js';
import { Rng } from '../src/tensor/rng.js';
import { CHECKPOINT_FILE, train } from '../src/train/trainer.js';
import { lastJson, runCli } from './cli.js';

const haveFashionMnist = existsSync(join(DEBIAN_FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'));

let dir = '';
let backend: Backend;
let mnistTrain: Dataset;
let mnistTest: Dataset;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-convnets-'));
  backend = await createWasmBackend({ threads: 2 });
  if (haveFashionMnist) {
    const options = { cacheDir: join(dir, 'cache') };
    mnistTrain = await loadDataset('fashion-mnist', { ...options, split: 'train' });
    mnistTest = await loadDataset('fashion-mnist', { ...options, split: 'test' });
  } else {
    const common = { name: 'synthetic-mnist', shape: [1, 28, 28] as const, classes: 10, seed: 3 };
    mnistTrain = syntheticDataset({ ...common, split: 'train', count: 2000 });
    mnistTest = syntheticDataset({ ...common, split: 'test', count: 2000 });
  }
});

after(() => {
  backend.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function trainConvnet(
  name: string,
  overrides: Partial<TrainConfig>,
  trainSet: Dataset,
  testSet: Dataset,
): Promise<string> {
  const config: TrainConfig = {
    ...TRAIN_DEFAULTS,
    data: haveFashionMnist ? 'fashion-mnist' : 'synthetic-mnist',
    method: 'ste',
    epochs: 1,
    trainLimit: 2000,
    validationFraction: 0,
    seed: 5,
    ...overrides,
    model: overrides.model ?? 'cnn-small',
  };
  const outDir = join(dir, name);
  await train({ config, backend, train: trainSet, test: testSet, outDir, resume: false });
  return join(outDir, CHECKPOINT_FILE);
}

/** The training model in evaluation mode on every example: the output of every top-level layer by name. */
function trainingForward(
  source: ExportSource,
  data: Dataset,
  keep: readonly string[],
): Map<string, Float32Array> {
  const model = source.model;
  const batch = source.maxBatch;
  const size = data.shape[0] * data.shape[1] * data.shape[2];
  const images = backend.alloc(batch * size);
  const normalizer = new Normalizer(data.shape, source.normalization);
  const order = Uint32Array.from({ length: data.count }, (_, i) => i);
  const ctx = { training: false, rng: new Rng(0) };
  const outputs = new Map<string, Float32Array>();
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
        x = layer.forward(x, n, ctx);
        if (keep.includes(layer.name) || layer === model.layers[model.layers.length - 1]) {
          const per = x.length / batch;
          const name = layer === model.layers[model.layers.length - 1] ? 'logits' : layer.name;
          let all = outputs.get(name);
          if (all === undefined) outputs.set(name, (all = new Float32Array(data.count * per)));
          all.set(x.subarray(0, n * per), start * per);
        }
      }
    }
  } finally {
    backend.free(images);
  }
  return outputs;
}

/** Export, then the engine and onnxruntime against the training model on every example of `data`. */
async function checkAgreement(checkpoint: string, data: Dataset, what: string): Promise<string> {
  const source = openForExport(checkpoint, backend);
  try {
    const classes = source.classes;
    const onebit = encodeOnebit(buildOnebitModel(source));
    const onnx = encodeOnnx(describeNetwork(source));
    const reference = trainingForward(source, data, []).get('logits') as Float32Array;
    const engine = await createEngine(decodeOnebit(onebit), { threads: 2, maxBatch: 100 });
    let fromEngine: Float32Array;
    try {
      fromEngine = engine.logits(data.images, data.count);
    } finally {
      engine.dispose();
    }
    const { mean, std } = source.normalization;
    const [c, h, w] = data.shape;
    const plane = h * w;
    const x = Float32Array.from(data.images, (v, i) => {
      const ch = Math.floor(i / plane) % c;
      return (v / 255 - mean[ch]) / std[ch];
    });
    const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 2, logSeverityLevel: 3 });
    let fromOnnx: Float32Array;
    try {
      const out = await session.run({ input: new ort.Tensor('float32', x, [data.count, c, h, w]) });
      fromOnnx = out.logits.data as Float32Array;
    } finally {
      await session.release();
    }
    let engineAgrees = 0;
    let onnxAgrees = 0;
    let correct = 0;
    for (let i = 0; i < data.count; i++) {
      const want = argmax(reference, i * classes, classes);
      if (argmax(fromEngine, i * classes, classes) === want) engineAgrees++;
      if (argmax(fromOnnx, i * classes, classes) === want) onnxAgrees++;

      if (want === data.labels[i]) correct++;
    }
    assert.equal(
      engineAgrees,
      data.count,
      `${what}: the engine agrees with eval on ${engineAgrees}/${data.count}`,
    );
    assert.equal(
      onnxAgrees,
      data.count,
      `${what}: onnxruntime agrees with eval on ${onnxAgrees}/${data.count}`,
    );
    const weights = source.model.binaryParameters().reduce((a, p) => a + p.value.length, 0);
    return `${what}: ${data.count}/${data.count} predictions agree (accuracy ${(correct / data.count).toFixed(4)}); .onebit ${onebit.byteLength} bytes, ${((4 * weights) / onebit.byteLength).toFixed(1)}x smaller than its float32 weights`;
  } finally {
    source.dispose();
  }
}

describe(
  'trained convnets: engine, eval and onnxruntime agree on every test example',
  { timeout: 900_000 },
  () => {
    test('cnn-small, 1-bit activations, and its packed signs after each pooling layer', async (t) => {
      const checkpoint = await trainConvnet(
        'cnn-binary',
        { model: 'cnn-small', activations: 'binary' },
        mnistTrain,
        mnistTest,
      );
      t.diagnostic(await checkAgreement(checkpoint, mnistTest, 'cnn-small 1W1A'));
      // The signs entering conv2 and the dense layer, engine against training model, example by example.
      const source = openForExport(checkpoint, backend);
      try {
        const model = buildOnebitModel(source);
        const reference = trainingForward(source, mnistTest, ['pool1', 'pool2']);
        const engine = await createEngine(model, { threads: 2, maxBatch: 100 });
        try {
          let firstDiffer = 0;
          let exact = 0;
          for (let start = 0; start < mnistTest.count; start += 100) {
            const rows = Math.min(100, mnistTest.count - start);
            const trace = engine.trace(mnistTest.images.subarray(start * 784, (start + rows) * 784), rows);
            const signsOf = (name: string, r: number): { got: number[]; want: number[] } => {
              const tr = trace.find((x) => x.name === name);
              assert.ok(tr !== undefined && tr.kind === 'bits', `a bits trace ${name}`);
              const [ch, hh, ww] = tr.shape;
              const words = packedWords(ch);
              const want = reference.get(name) as Float32Array;
              const got: number[] = [];
              const expected: number[] = [];
              for (let c = 0; c < ch; c++) {
                for (let p = 0; p < hh * ww; p++) {
                  got.push((tr.bits[(r * hh * ww + p) * words + (c >>> 5)] >>> (c & 31)) & 1);
                  expected.push(want[(start + r) * ch * hh * ww + c * hh * ww + p] >= 0 ? 0 : 1);
                }
              }
              return { got, want: expected };
            };
            for (let r = 0; r < rows; r++) {
              const p1 = signsOf('pool1', r);
              if (p1.got.some((b, i) => b !== p1.want[i])) {
                firstDiffer++;
                continue;
              }
              // Same signs into conv2: its integer sums, hence every later sign, are the training model's.
              const p2 = signsOf('pool2', r);
              assert.deepEqual(p2.got, p2.want, `example ${start + r}: signs after pool2`);
              exact++;
            }
          }
          t.diagnostic(
            `${exact} examples with every sign identical; ${firstDiffer} with a first-layer sign off (float sums)`,
          );
          assert.ok(
            firstDiffer <= mnistTest.count * 0.01,
            `${firstDiffer} examples differ in the first layer's signs`,
          );
        } finally {
          engine.dispose();
        }
      } finally {
        source.dispose();
      }
    });

    test('cnn-small, real activations', async (t) => {
      const checkpoint = await trainConvnet(
        'cnn-real',
        { model: 'cnn-small', activations: 'real' },
        mnistTrain,
        mnistTest,
      );
      t.diagnostic(await checkAgreement(checkpoint, mnistTest, 'cnn-small 1W32A'));
    });

    test('the cnn-3conv example spec (stride 2, padding 0 and 1, average pooling)', async (t) => {
      const file = join(import.meta.dirname, '..', 'examples', 'specs', 'cnn-3conv.json');
      const spec = parseModelSpec(JSON.parse(readFileSync(file, 'utf8')) as unknown, file);
      const checkpoint = await trainConvnet('cnn-3conv', { model: file, spec }, mnistTrain, mnistTest);
      t.diagnostic(await checkAgreement(checkpoint, mnistTest, 'cnn-3conv.json'));
    });

    test('vgg-small on the synthetic CIFAR-shaped set, 1-bit and real activations', async (t) => {
      const common = { name: 'synthetic-cifar', shape: [3, 32, 32] as const, classes: 10, seed: 9 };
      const trainSet = syntheticDataset({ ...common, split: 'train', count: 100 });
      const testSet = syntheticDataset({ ...common, split: 'test', count: 100 });
      for (const activations of ['binary', 'real'] as const) {
        const checkpoint = await trainConvnet(
          `vgg-${activations}`,
          { model: 'vgg-small', data: 'synthetic-cifar', activations, batchSize: 50, trainLimit: null },
          trainSet,
          testSet,
        );
        t.diagnostic(await checkAgreement(checkpoint, testSet, `vgg-small ${activations}`));
        if (activations !== 'binary') continue;
        // The CLI on a 3-channel convnet: export, predict --image on an RGB PNG, bench.
        const model = join(dir, 'vgg.onebit');
        const exported = await runCli(['export', checkpoint, '--out', model]);
        assert.equal(exported.code, 0, exported.stderr);
        const png = join(dir, 'rgb.png');
        const first = testSet.images.subarray(0, 3 * 32 * 32);
        writeFileSync(png, encodePngImage(first, [3, 32, 32]));
        const predicted = await runCli(['predict', model, '--image', png, '--json']);
        assert.equal(predicted.code, 0, predicted.stderr);
        const engine = await createEngine(readFileSync(model), { threads: 1, maxBatch: 1 });
        try {
          assert.equal(lastJson(predicted.stdout).class, engine.classify(first, 1)[0]);
        } finally {
          engine.dispose();
        }
        const bench = await runCli(['bench', model, '--seconds', '0.2', '--json']);
        assert.equal(bench.code, 0, bench.stderr);
        assert.ok(Number(lastJson(bench.stdout).imagesPerSecond) > 0, bench.stdout);
      }
    });
  },
);
