/**
 * The native engine (the addon's kernels, native-host.ts) against the wasm engine, bit for bit: logits and
 * every traced layer of random models at every instruction-set level this CPU runs, on 1 and 2 threads, with
 * batches that leave every remainder of the kernels' row tiles (1, 3, 5, 9, 37) and sizes that straddle their
 * channel blocks (16, 32, 64, 128) and pixel groups (4 and 5 pixels, 128-bit rows). The wasm engine's own
 * correctness is checked against a plain reading of the format in engine.test.ts and conv.test.ts.
 * Where the addon is not built the native cases are skipped with the reason (test/native.test.ts requires
 * it wherever clang and Node's headers are).
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { loadNativeAddon, type NativeLevel } from '../native/addon.js';
import { Rng } from '../tensor/rng.js';
import { createEngine, defaultEngineBackend, type EngineOptions, type LayerTrace } from './engine.js';
import { packSignRows, type DenseOutput, type OnebitLayer, type OnebitModel } from './format.js';
import { randomOutput, signs } from '../../test/engine-layers.js';

const status = loadNativeAddon();
const LEVELS: readonly NativeLevel[] = status.available ? status.levels : [];
const skip = status.available ? false : `native addon not available: ${status.reason}`;

const signRows = (rng: Rng, n: number, k: number): Uint32Array => packSignRows(signs(rng, n * k), n, k);

/** An MLP on [1, h, w] images: hidden widths `widths`, 1-bit or real activations, 10 classes. */
function mlp(rng: Rng, h: number, w: number, widths: number[], activations: 'bits' | 'real'): OnebitModel {
  const layers: OnebitLayer[] = [{ kind: 'flatten' }];
  let k = h * w;
  let input: 'real' | 'bits' = 'real';
  for (const [i, n] of [...widths, 10].entries()) {
    const last = i === widths.length;
    const out = last ? 'real' : activations;
    layers.push({
      kind: 'dense',
      name: `fc${i + 1}`,
      input,
      inFeatures: k,
      outFeatures: n,
      weights: signRows(rng, n, k),
      output: randomOutput(rng, n, out, input === 'bits', input === 'bits' ? 2 * Math.sqrt(k) : 8),
    });
    input = out === 'bits' ? 'bits' : 'real';
    k = n;
  }
  return { input: { shape: [1, h, w], mean: [0.3], std: [0.4] }, classes: 10, layers, metadata: {} };
}

/** A convnet on [c, 12, 10] images: conv (raw or float input), pools, a residual block, a threshold, dense. */
function convnet(rng: Rng, c: number, width: number): OnebitModel {
  const conv = (
    name: string,
    input: 'real' | 'bits',
    cin: number,
    n: number,
    kernel: number,
    stride: number,
    padding: number,
    output: DenseOutput,
  ): OnebitLayer => ({
    kind: 'conv2d',
    name,
    input,
    inChannels: cin,
    outChannels: n,
    kernel,
    stride,
    padding,
    weights: signRows(rng, n, kernel * kernel * cin),
    output,
  });
  const threshold = (name: string, channels: number): OnebitLayer => ({
    kind: 'threshold',
    name,
    channels,
    thresholds: Float32Array.from({ length: channels }, () => (rng.uniform() - 0.5) * 20),
    directions: Int8Array.from({ length: channels }, () => (rng.uniform() < 0.3 ? -1 : 1)),
  });
  const taps = 9 * width;
  const layers: OnebitLayer[] = [
    conv('conv1', 'real', c, width, 3, 1, 1, randomOutput(rng, width, 'bits', false, 4)),
    { kind: 'maxpool', name: 'pool1', kernel: 2, stride: 2, padding: 0 },
    conv('conv2', 'bits', width, 40, 3, 1, 1, randomOutput(rng, 40, 'real', true, 2 * Math.sqrt(taps))),
    {
      kind: 'residual',
      name: 'block',
      body: [
        threshold('sign3', 40),
        conv('conv3', 'bits', 40, 40, 3, 1, 1, randomOutput(rng, 40, 'real', true, 0)),
      ],
      shortcut: null,
    },
    { kind: 'avgpool', name: 'pool2', kernel: 2, stride: 2, padding: 1 },
    threshold('sign2', 40),
    conv('conv4', 'bits', 40, 33, 3, 2, 1, randomOutput(rng, 33, 'real', true, 0)),
    {
      kind: 'affine',
      name: 'bn4',
      channels: 33,
      scale: Float32Array.from({ length: 33 }, () => rng.uniform() - 0.3),
      bias: Float32Array.from({ length: 33 }, () => rng.uniform() - 0.5),
      activation: 'relu',
    },
    { kind: 'flatten', layout: 'chw' },
  ];
  const flat = 33 * 2 * 2;
  layers.push({
    kind: 'dense',
    name: 'fc',
    input: 'real',
    inFeatures: flat,
    outFeatures: 10,
    weights: signRows(rng, 10, flat),
    output: randomOutput(rng, 10, 'real', false, 0),
  });
  const mean = Array.from({ length: c }, () => 0.3);
  const std = Array.from({ length: c }, () => 0.4);
  return { input: { shape: [c, 12, 10], mean, std }, classes: 10, layers, metadata: {} };
}

function images(rng: Rng, count: number, size: number): Uint8Array {
  return Uint8Array.from({ length: count * size }, () =>
    rng.uniform() < 0.3 ? 0 : Math.floor(rng.uniform() * 256),
  );
}

function differences(a: LayerTrace[], b: LayerTrace[]): string[] {
  assert.deepEqual(
    b.map((t) => t.name),
    a.map((t) => t.name),
  );
  return a.flatMap((t, i) => {
    const u = b[i];
    const x = t.kind === 'bits' ? t.bits : t.values;
    const y = u.kind === 'bits' ? u.bits : u.values;
    let first = -1;
    for (let j = 0; j < x.length && first < 0; j++) if (!Object.is(x[j], y[j])) first = j;
    return x.length !== y.length || first >= 0 ? [`${t.name} (first difference at ${first})`] : [];
  });
}

const BATCHES = [1, 3, 5, 9, 37];

/** The native engine at every level and thread count gives the wasm engine's logits and traces, exactly. */
async function checkAgainstWasm(model: OnebitModel, options: EngineOptions = {}): Promise<void> {
  const rng = new Rng(7);
  const size = model.input.shape.reduce((a, b) => a * b, 1);
  const wasm = await createEngine(model, { ...options, backend: 'wasm', threads: 1, maxBatch: 40 });
  try {
    for (const level of LEVELS) {
      for (const threads of [1, 2]) {
        const native = await createEngine(model, {
          ...options,
          backend: 'native',
          level,
          threads,
          maxBatch: 40,
        });
        try {
          for (const batch of BATCHES) {
            const x = images(rng, batch, size);
            const where = `level ${level}, ${threads} thread(s), batch ${batch}`;
            assert.deepEqual(differences(wasm.trace(x), native.trace(x)), [], where);
            assert.deepEqual(native.logits(x), wasm.logits(x), where);
            const floats = Float32Array.from(x, (v) => (v / 255 - 0.3) / 0.4);
            assert.deepEqual(native.logitsNormalized(floats), wasm.logitsNormalized(floats), where);
          }
        } finally {
          native.dispose();
        }
      }
    }
  } finally {
    wasm.dispose();
  }
}

describe('native engine equals the wasm engine bit for bit', { skip }, () => {
  // 784 = 6 x 128 + 16 pixels; 126 leaves the last 5-pixel group past the row; widths straddle 16/32/64/128.
  for (const [h, w] of [
    [28, 28],
    [9, 14],
    [8, 16],
  ] as const) {
    test(`MLP on ${h}x${w} images, 1-bit activations`, async () => {
      await checkAgainstWasm(mlp(new Rng(h * w), h, w, [200, 45, 130], 'bits'));
    });
  }
  test('MLP with a 2304-input layer: XNOR weight blocks that are not a multiple of 16 channels wide', async () => {
    // 2304 inputs = 72 words a row: the wasm kernel's cache blocks of 452 rows split the 500 channels at 452.
    await checkAgainstWasm(mlp(new Rng(9), 8, 16, [2304, 500], 'bits'));
  });
  test('MLP, 1-bit activations, first layer by masked adds and scalar popcounts', async () => {
    await checkAgainstWasm(mlp(new Rng(3), 28, 28, [96, 33], 'bits'), {
      firstLayer: 'masked',
      popcount: 'scalar',
    });
  });
  test('MLP, real activations, table and sign-flip kernels', async () => {
    const model = mlp(new Rng(4), 9, 14, [150, 64, 17], 'real');
    await checkAgainstWasm(model, { realDense: 'lut' });
    await checkAgainstWasm(model, { realDense: 'signs' });
  });
  test('convnet on one-channel images (the byte first conv), pools, residual, threshold, affine', async () => {
    await checkAgainstWasm(convnet(new Rng(5), 1, 24));
  });
  test('convnet on three-channel images (float first conv)', async () => {
    await checkAgainstWasm(convnet(new Rng(6), 3, 36));
  });
});

describe('native engine options', { skip }, () => {
  const model = mlp(new Rng(8), 8, 8, [32], 'bits');
  test('reports its backend and level, and is the default where the addon loads', async () => {
    assert.equal(defaultEngineBackend(), 'native');
    const engine = await createEngine(model, { threads: 1 });
    try {
      assert.equal(engine.backend, 'native');
      assert.equal(engine.level, LEVELS[0]);
    } finally {
      engine.dispose();
    }
    const wasm = await createEngine(model, { backend: 'wasm', threads: 1 });
    try {
      assert.equal(wasm.backend, 'wasm');
      assert.equal(wasm.level, null);
    } finally {
      wasm.dispose();
    }
  });
  test('refuses an unknown level, a level on wasm and an unknown backend, naming what was given', async () => {
    await assert.rejects(
      createEngine(model, { backend: 'native', level: 'sse9' as NativeLevel }),
      /level must be one of avx512, avx2, baseline, got sse9/,
    );
    await assert.rejects(
      createEngine(model, { backend: 'wasm', level: 'baseline' }),
      /for backend 'native' only/,
    );
    await assert.rejects(
      createEngine(model, { backend: 'gpu' as 'wasm' }),
      /backend must be 'native' or 'wasm', got gpu/,
    );
  });
});
