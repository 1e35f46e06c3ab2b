/**
 * Export of binary convnets against the training model in evaluation mode: the `.onebit` model in the
 * bit-packed engine (its float first layer, fed the same normalised inputs) and the ONNX model in
 * onnxruntime-node, both on
 * cnn-small (real and 1-bit activations), the cnn-3conv example spec (stride 2, padding 0 and 1, average
 * pooling), vgg-small (1-bit activations) and a residual spec (identity and convolutional shortcuts, channel
 * scale, affine batch norm, padded max and average pooling, a binarized first layer).
 *
 * The models are built in-process with random +-1 weights, and their batch-norm running statistics are made
 * non-trivial: one training-mode pass with momentum 1 sets them to the batch statistics of the layer's
 * actual input, then each mean is moved by up to one standard deviation and each variance scaled by a
 * factor in [0.5, 2], so every channel's threshold cuts through its pre-activations.
 *
 * Inputs are on a grid of 1/32 (sums of them with +-1 weights are exact in float32, whatever the
 * summation order) and the running means are odd multiples of 1/64, so no pre-activation that is on the
 * grid lies within rounding of a batch-norm threshold: the two runtimes then take the same sign
 * everywhere and their logits differ by rounding only. The inputs include exact zeros and negative zeros
 * (sign(0) = +1) and large values on the image border (where zero padding matters).
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import * as ort from 'onnxruntime-node';
import type { Backend } from '../src/backend/backend.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { createEngine } from '../src/engine/engine.js';
import { decodeOnebit, encodeOnebit } from '../src/engine/format.js';
import { buildOnebitModel, describeNetwork, exportSource, type NetworkOp } from '../src/io/export.js';
import { encodeOnnx } from '../src/io/onnx.js';
import { buildModelFromSpec, namedModelSpec } from '../src/nn/models.js';
import { parseModelSpec, type ModelSpec } from '../src/nn/spec.js';
import { Rng } from '../src/tensor/rng.js';
import type { TensorData } from '../src/tensor/tensor-data.js';

/** Grid of the inputs (and of the first layer's pre-activations). */
const GRID = 32;
/** Relative tolerance on the logits, of max(1, |logit|). */
const TOLERANCE = 1e-4;

let backend: Backend;

before(async () => {
  backend = await createWasmBackend({ threads: 2 });
});

after(() => {
  backend.dispose();
});

/** Every op kind of a description, residual branches included. */
function opKinds(ops: readonly NetworkOp[]): Set<NetworkOp['kind']> {
  const kinds = new Set<NetworkOp['kind']>();
  for (const op of ops) {
    kinds.add(op.kind);
    if (op.kind === 'residual') {
      for (const k of opKinds(op.body)) kinds.add(k);
      for (const k of opKinds(op.shortcut ?? [])) kinds.add(k);
    }
  }
  return kinds;
}

/**
 * `batch` normalised inputs of shape [c, h, w] on the 1/32 grid: example 0 all zeros, 1 with half its
 * values exact zeros or negative zeros, 2 zero inside and +-3 on the border, the others random in [-2, 3]
 * with the border at +-3.
 */
function makeInputs(rng: Rng, batch: number, [c, h, w]: readonly [number, number, number]): Float32Array {
  const size = c * h * w;
  const x = new Float32Array(batch * size);
  const random = (): number => (rng.int(161) - 64) / GRID;
  const extreme = (): number => (rng.uniform() < 0.5 ? -3 : 3);
  for (let n = 0; n < batch; n++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          const border = i === 0 || j === 0 || i === h - 1 || j === w - 1;
          let v: number;
          if (n === 0) v = 0;
          else if (n === 1) v = rng.uniform() < 0.5 ? (rng.uniform() < 0.5 ? 0 : -0) : random();
          else if (n === 2) v = border ? extreme() : 0;
          else v = border ? extreme() : random();
          x[n * size + (ch * h + i) * w + j] = v;
        }
      }
    }
  }
  return x;
}

interface Comparison {
  /** The description's op kinds. */
  readonly kinds: Set<NetworkOp['kind']>;
}

/**
 * Builds the spec's model with random +-1 weights and randomised statistics, exports it to ONNX, and
 * checks onnxruntime's logits against the model's in evaluation mode on `batch` inputs.
 */
async function compareWithOnnx(
  t: TestContext,
  spec: ModelSpec,
  batch: number,
  seed: number,
): Promise<Comparison> {
  assert.equal(spec.input.length, 3, 'an image spec');
  const shape: [number, number, number] = [spec.input[0], spec.input[1], spec.input[2]];
  const rng = new Rng(seed);
  const model = buildModelFromSpec(spec);
  try {
    model.planFor(backend, batch);
    model.initialize(rng);
    for (const p of model.parameters()) {
      if (p.kind === 'binary') {
        for (let i = 0; i < p.value.length; i++) p.value[i] = rng.uniform() < 0.5 ? -1 : 1;
      } else if (p.name.endsWith('.bias')) {
        for (let i = 0; i < p.value.length; i++) p.value[i] = 2 * rng.uniform() - 1;
      } else {
        // Batch-norm gamma or channel scale: magnitude in [0.5, 1.5], either sign.
        for (let i = 0; i < p.value.length; i++)
          p.value[i] = (rng.uniform() < 0.3 ? -1 : 1) * (0.5 + rng.uniform());
      }
    }
    const x = makeInputs(rng, batch, shape);
    const input = backend.alloc(x.length);
    try {
      input.set(x);
      // Running statistics = the batch statistics of each batch norm's input, then moved off them.
      model.forward(input, batch, { training: true, rng, batchNormMomentum: 1 });
      const state = model.stateBuffers();
      const variances = new Map(
        state.filter((s) => s.name.endsWith('.running_var')).map((s) => [s.name, Float32Array.from(s.value)]),
      );
      assert.ok(variances.size > 0, 'the model has batch norms');
      for (const s of state) {
        if (s.name.endsWith('.running_mean')) {
          const v = variances.get(s.name.replace(/running_mean$/, 'running_var'));
          assert.ok(v !== undefined, `${s.name} has a variance`);
          for (let c = 0; c < s.value.length; c++) {
            const moved = s.value[c] + Math.sqrt(v[c]) * (2 * rng.uniform() - 1);
            s.value[c] = (Math.floor(moved * GRID) + 0.5) / GRID;
          }
        } else if (s.name.endsWith('.running_var')) {
          for (let c = 0; c < s.value.length; c++)
            s.value[c] = Math.max(s.value[c], 1e-2) * 2 ** (2 * rng.uniform() - 1);
        }
      }

      const expected = Float32Array.from(model.forward(input, batch, { training: false, rng }));
      assert.equal(expected.length, batch * spec.classes);

      const tensors = new Map<string, TensorData>();
      for (const p of model.parameters()) tensors.set(`model/${p.name}`, Float32Array.from(p.value));
      for (const s of model.stateBuffers()) tensors.set(`model/${s.name}`, Float32Array.from(s.value));
      const channels = shape[0];
      const source = exportSource(
        {
          spec,
          tensors,
          normalization: {
            mean: new Array<number>(channels).fill(0.5),
            std: new Array<number>(channels).fill(0.25),
          },
          name: 'convnet-onnx',
        },
        backend,
      );
      let onnx: Uint8Array;
      let standardOnnx: Uint8Array;
      let onebit: Uint8Array;
      let kinds: Set<NetworkOp['kind']>;
      try {
        const net = describeNetwork(source);
        kinds = opKinds(net.ops);
        onnx = encodeOnnx(net);
        standardOnnx = encodeOnnx(net, { batchNorm: 'standard' });
        onebit = encodeOnebit(buildOnebitModel(source));
      } finally {
        source.dispose();
      }
      const weights = model.binaryParameters().reduce((a, p) => a + p.value.length, 0);
      t.diagnostic(`.onebit ${onebit.byteLength} bytes, float32 weights ${4 * weights} bytes`);
      const engine = await createEngine(decodeOnebit(onebit), {
        threads: 2,
        firstLayer: 'float',
        maxBatch: batch,
      });
      let fromEngine: Float32Array;
      try {
        fromEngine = engine.logitsNormalized(x, batch);
      } finally {
        engine.dispose();
      }

      const runOnnx = async (bytes: Uint8Array): Promise<Float32Array> => {
        const session = await ort.InferenceSession.create(bytes, {
          intraOpNumThreads: 1,
          logSeverityLevel: 3,
        });
        try {
          const out = await session.run({ input: new ort.Tensor('float32', x, [batch, ...shape]) });
          assert.deepEqual(out.logits.dims, [batch, spec.classes]);
          return out.logits.data as Float32Array;
        } finally {
          await session.release();
        }
      };
      const actual = await runOnnx(onnx);
      // The usual graph (BatchNormalization) too: on these inputs no value sits on a threshold, so it agrees.
      const standard = await runOnnx(standardOnnx);

      const k = spec.classes;
      const argmax = (y: Float32Array, n: number): number => {
        let best = 0;
        for (let j = 1; j < k; j++) if (y[n * k + j] > y[n * k + best]) best = j;
        return best;
      };
      let worst = 0;
      const predicted = new Set<number>();
      for (let n = 0; n < batch; n++) {
        assert.equal(argmax(actual, n), argmax(expected, n), `example ${n}: the predicted class`);
        assert.equal(argmax(standard, n), argmax(expected, n), `example ${n}: the standard graph's class`);
        assert.equal(
          argmax(fromEngine, n),
          argmax(expected, n),
          `example ${n}: the engine's predicted class`,
        );
        for (let j = 0; j < k; j++) {
          const want = expected[n * k + j];
          const err = Math.abs(fromEngine[n * k + j] - want) / Math.max(1, Math.abs(want));
          assert.ok(
            err <= TOLERANCE,
            `example ${n}, logit ${j}: engine ${fromEngine[n * k + j]}, onebit ${want}`,
          );
        }
        predicted.add(argmax(expected, n));
        for (let j = 0; j < k; j++) {
          const want = expected[n * k + j];
          const err = Math.abs(actual[n * k + j] - want) / Math.max(1, Math.abs(want));
          worst = Math.max(worst, err);
          assert.ok(
            err <= TOLERANCE,
            `example ${n}, logit ${j}: onnxruntime ${actual[n * k + j]}, onebit ${want} (relative ${err})`,
          );
        }
      }
      t.diagnostic(
        `worst relative logit error ${worst.toExponential(2)}; ${predicted.size} distinct classes`,
      );
      return { kinds };
    } finally {
      backend.free(input);
    }
  } finally {
    model.dispose();
  }
}

/** A spec with residual blocks, on [1, 8, 8]. */
const RESIDUAL_SPEC = {
  input: [1, 8, 8],
  classes: 10,
  layers: [
    // A binarized first layer: sign(0) = +1 and zero padding after the sign.
    { type: 'binaryConv2d', filters: 4, kernelSize: 3, padding: 1, binarizer: 'sign' },
    { type: 'batchNorm' },
    { type: 'hardtanh' },
    {
      type: 'residual',
      body: [
        { type: 'binaryConv2d', filters: 4, kernelSize: 3, padding: 1, binarizer: 'sign' },
        { type: 'channelScale' },
        { type: 'batchNorm' },
      ],
    },
    { type: 'hardtanh' },
    {
      type: 'residual',
      body: [
        { type: 'binaryConv2d', filters: 8, kernelSize: 3, stride: 2, padding: 1, binarizer: 'sign' },
        { type: 'batchNorm', affine: true },
      ],
      shortcut: [{ type: 'binaryConv2d', filters: 8, kernelSize: 1, stride: 2 }, { type: 'batchNorm' }],
    },
    // Signed values into a padded max pool (padding must never win), then a padded average pool.
    { type: 'maxPool2d', kernelSize: 3, stride: 1, padding: 1 },
    { type: 'relu' },
    { type: 'avgPool2d', kernelSize: 2, stride: 1, padding: 1 },
    { type: 'flatten' },
    { type: 'binaryDense', units: 10 },
    { type: 'batchNorm' },
  ],
};

describe(
  'export of binary convnets (engine and ONNX) against the training model',
  { timeout: 300_000 },
  () => {
    for (const activations of ['real', 'binary'] as const) {
      test(`cnn-small, ${activations} activations: the engine and onnxruntime give the model's classes and logits`, async (t) => {
        const { kinds } = await compareWithOnnx(t, namedModelSpec('cnn-small', { activations }), 16, 11);
        for (const kind of ['conv', 'maxpool', 'batchnorm', 'flatten', 'dense'] as const)
          assert.ok(kinds.has(kind), `the description has a ${kind} op`);
        assert.ok(kinds.has(activations === 'real' ? 'relu' : 'hardtanh'));
      });
    }

    test("examples/specs/cnn-3conv.json (stride 2, padding 0 and 1, avgPool2d): the engine and onnxruntime give the model's classes and logits", async (t) => {
      const file = join(import.meta.dirname, '..', 'examples', 'specs', 'cnn-3conv.json');
      const spec = parseModelSpec(JSON.parse(readFileSync(file, 'utf8')) as unknown, file);
      const { kinds } = await compareWithOnnx(t, spec, 16, 12);
      assert.ok(kinds.has('conv') && kinds.has('maxpool') && kinds.has('avgpool'));
    });

    test("vgg-small, binary activations, 4 examples: the engine and onnxruntime give the model's classes and logits", async (t) => {
      const { kinds } = await compareWithOnnx(
        t,
        namedModelSpec('vgg-small', { activations: 'binary' }),
        4,
        13,
      );
      assert.ok(kinds.has('conv') && kinds.has('maxpool') && kinds.has('hardtanh'));
    });

    test("residual blocks (identity and conv shortcuts, channel scale, padded pools): the engine and onnxruntime give the model's classes and logits", async (t) => {
      const spec = parseModelSpec(RESIDUAL_SPEC, 'residual spec');
      const { kinds } = await compareWithOnnx(t, spec, 16, 14);
      for (const kind of ['residual', 'conv', 'scale', 'maxpool', 'avgpool', 'relu', 'hardtanh'] as const)
        assert.ok(kinds.has(kind), `the description has a ${kind} op`);
    });
  },
);
