/**
 * The engine's kernels against a plain-TypeScript reading of the format (reference below), on random models
 * whose sizes straddle the word widths: exact for integer outputs (bits inputs, the byte first layer),
 * within float32 summation error for real inputs; thread counts, popcount variants and tilings give
 * identical results; padding bits of packed outputs stay zero.
 */
import { OnebitFormatError } from '../errors.js';
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { Rng } from '../tensor/rng.js';
import { createEngine, type LayerTrace } from './engine.js';
import {
  decodeOnebit,
  encodeOnebit,
  packedWords,
  packSignRows,
  type Activation,
  type DenseLayer,
  type OnebitModel,
} from './format.js';

function randomSigns(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.uniform() < 0.5 ? -1 : 1));
}

function dense(
  rng: Rng,
  name: string,
  input: 'real' | 'bits',
  k: number,
  n: number,
  out: 'bits' | 'real',
  activation: Activation = 'none',
): DenseLayer {
  const weights = packSignRows(randomSigns(rng, n * k), n, k);
  if (out === 'bits') {
    const directions = Int8Array.from({ length: n }, () => (rng.uniform() < 0.3 ? -1 : 1));
    // Thresholds near the middle of the pre-activation's range, plus some constant channels.
    const thresholds =
      input === 'bits'
        ? Int32Array.from({ length: n }, (_, j) =>
            j % 7 === 3 ? k + 1 : Math.round((rng.uniform() - 0.5) * Math.sqrt(k) * 2),
          )
        : Float32Array.from({ length: n }, (_, j) => (j % 7 === 3 ? -Infinity : (rng.uniform() - 0.5) * 8));
    return {
      kind: 'dense',
      name,
      input,
      inFeatures: k,
      outFeatures: n,
      weights,
      output: { kind: 'bits', thresholds, directions },
    };
  }
  const scale = Float32Array.from({ length: n }, () => (rng.uniform() - 0.3) * 0.2);
  const bias = Float32Array.from({ length: n }, () => rng.uniform() - 0.5);
  return {
    kind: 'dense',
    name,
    input,
    inFeatures: k,
    outFeatures: n,
    weights,
    output: { kind: 'real', scale, bias, activation },
  };
}

/** Input [1, h, w] with k = h * w features. */
function model(layers: DenseLayer[], h: number, w: number): OnebitModel {
  return {
    input: { shape: [1, h, w], mean: [0.3], std: [0.4] },
    classes: layers[layers.length - 1].outFeatures,
    layers: [{ kind: 'flatten' }, ...layers],
    metadata: { test: true },
  };
}

function bit(words: Uint32Array, offset: number, j: number): number {
  return (words[offset + (j >>> 5)] >>> (j & 31)) & 1;
}

type RefValue = { kind: 'bits'; bits: Uint32Array } | { kind: 'real'; values: Float64Array };

/** The format's semantics in plain TypeScript (float64 sums), one layer at a time. */
function reference(
  m: OnebitModel,
  images: Uint8Array,
  count: number,
): { traces: RefValue[]; preacts: Float64Array[] } {
  const k0 = m.input.shape[1] * m.input.shape[2];
  const a = 1 / (255 * m.input.std[0]);
  const c = -m.input.mean[0] / m.input.std[0];
  let current: RefValue = {
    kind: 'real',
    values: Float64Array.from(images.subarray(0, count * k0), (v) => v),
  };
  let first = true;
  const traces: RefValue[] = [];
  const preacts: Float64Array[] = [];
  for (const layer of m.layers) {
    if (layer.kind !== 'dense') continue;
    const { inFeatures: k, outFeatures: n, weights } = layer;
    const wWords = packedWords(k);
    const pre = new Float64Array(count * n);
    for (let r = 0; r < count; r++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        if (current.kind === 'bits') {
          let pop = 0;
          for (let i = 0; i < k; i++) pop += bit(current.bits, r * wWords, i) ^ bit(weights, j * wWords, i);
          s = k - 2 * pop;
        } else if (first) {
          // Raw bytes: exact integer sum_k w_k v_k, then the normalisation as the byte kernel applies it.
          let dot = 0;
          let wsum = 0;
          for (let i = 0; i < k; i++) {
            const w = bit(weights, j * wWords, i) ? -1 : 1;
            dot += w * current.values[r * k + i];
            wsum += w;
          }
          s = a * dot + c * wsum;
        } else {
          for (let i = 0; i < k; i++) s += (bit(weights, j * wWords, i) ? -1 : 1) * current.values[r * k + i];
        }
        pre[r * n + j] = s;
      }
    }
    preacts.push(pre);
    const out = layer.output;
    if (out.kind === 'bits') {
      const words = packedWords(n);
      const bits = new Uint32Array(count * words);
      for (let r = 0; r < count; r++) {
        for (let j = 0; j < n; j++) {
          const z = pre[r * n + j];
          const set = out.directions[j] > 0 ? z < out.thresholds[j] : z > out.thresholds[j];
          if (set) bits[r * words + (j >>> 5)] |= 1 << (j & 31);
        }
      }
      current = { kind: 'bits', bits };
    } else {
      const values = new Float64Array(count * n);
      for (let i = 0; i < count * n; i++) {
        const j = i % n;
        let y = Math.fround(pre[i] * out.scale[j] + out.bias[j]);
        if (out.activation === 'relu') y = y > 0 ? y : 0;
        else if (out.activation === 'hardtanh') y = Math.min(1, Math.max(-1, y));
        values[i] = y;
      }
      current = { kind: 'real', values };
    }
    traces.push(current);
    first = false;
  }
  return { traces, preacts };
}

function randomImages(rng: Rng, count: number, size: number): Uint8Array {
  return Uint8Array.from({ length: count * size }, () =>
    rng.uniform() < 0.4 ? 0 : Math.floor(rng.uniform() * 256),
  );
}

/**
 * Compares the engine's trace with the reference. The first `exactLayers` layers must match exactly; later
 * ones within 1e-4 (relative) for real values, and for bits except where the reference pre-activation lies
 * that close to the threshold.
 */
function compare(
  m: OnebitModel,
  got: LayerTrace[],
  want: ReturnType<typeof reference>,
  count: number,
  exactLayers: number,
): void {
  const dense = m.layers.filter((l): l is DenseLayer => l.kind === 'dense');
  assert.equal(got.length, dense.length);
  for (let li = 0; li < dense.length; li++) {
    const layer = dense[li];
    const g = got[li];
    const w = want.traces[li];
    const n = layer.outFeatures;
    const exact = li < exactLayers;
    if (g.kind === 'bits') {
      assert.equal(w.kind, 'bits');
      if (w.kind !== 'bits' || layer.output.kind !== 'bits') return;
      const words = packedWords(n);
      for (let r = 0; r < count; r++) {
        for (let j = 0; j < words * 32; j++) {
          const gb = bit(g.bits, r * words, j);
          if (j >= n) {
            assert.equal(gb, 0, `${layer.name}: padding bit ${j} of row ${r} is set`);
            continue;
          }
          const z = want.preacts[li][r * n + j];
          const near = Math.abs(z - layer.output.thresholds[j]) <= 1e-4 * Math.max(1, Math.abs(z));
          if (exact || !near)
            assert.equal(gb, bit(w.bits, r * words, j), `${layer.name}: bit ${j} of row ${r} (z = ${z})`);
        }
      }
    } else {
      assert.equal(w.kind, 'real');
      if (w.kind !== 'real') return;
      for (let i = 0; i < count * n; i++) {
        if (exact) assert.equal(g.values[i], w.values[i], `${layer.name}: value ${i}`);
        else
          assert.ok(
            Math.abs(g.values[i] - w.values[i]) <= 1e-4 * Math.max(1, Math.abs(w.values[i])),
            `${layer.name}: value ${i}: ${g.values[i]} vs ${w.values[i]}`,
          );
      }
    }
  }
}

describe('engine kernels against the reference', () => {
  const sides: [number, number][] = [
    [1, 1],
    [1, 31],
    [4, 8],
    [3, 11],
    [1, 127],
    [8, 16],
    [1, 129],
    [10, 30],
  ];
  const widths = [1, 3, 31, 32, 33, 64, 65, 130];

  test('1-bit activations: byte first layer (table and masked kernels), XNOR layers (SIMD and scalar), exact', async () => {
    const rng = new Rng(11);
    for (const [h, w] of sides) {
      const k = h * w;
      const n1 = widths[rng.int(widths.length)];
      const n2 = widths[rng.int(widths.length)];
      const m = model(
        [
          dense(rng, 'a', 'real', k, n1, 'bits'),
          dense(rng, 'b', 'bits', n1, n2, 'bits'),
          dense(rng, 'c', 'bits', n2, 1 + rng.int(12), 'real'),
        ],
        h,
        w,
      );
      for (const count of [1, 2, 5, 9]) {
        const images = randomImages(rng, count, k);
        const want = reference(m, images, count);
        for (const threads of [1, 2]) {
          for (const [popcount, firstLayer] of [
            ['simd', 'lut'],
            ['scalar', 'masked'],
          ] as const) {
            const engine = await createEngine(m, { threads, popcount, firstLayer, maxBatch: 9 });
            try {
              assert.equal(engine.firstLayer, firstLayer);
              compare(m, engine.trace(images, count), want, count, Infinity);
            } finally {
              engine.dispose();
            }
          }
        }
      }
    }
  });

  test('1-bit activations, one image: every run of channel blocks of the single-image paths, exact', async () => {
    // A batch of one (and a batch's last image) takes the single-image kernels: the table first layer four,
    // two, then one block of 16 channels at a time, and XNOR one row against four channels. These widths
    // end each path at every remainder, alone and with the channels split between two threads.
    const rng = new Rng(13);
    const k = 100;
    for (const n of [1, 16, 17, 33, 48, 49, 64, 65, 81, 97, 113, 130, 200]) {
      const m = model(
        [
          dense(rng, 'a', 'real', k, n, 'bits'),
          dense(rng, 'b', 'bits', n, n + 2, 'bits'),
          dense(rng, 'c', 'bits', n + 2, 10, 'real'),
        ],
        10,
        10,
      );
      for (const count of [1, 5]) {
        const images = randomImages(rng, count, k);
        const want = reference(m, images, count);
        for (const threads of [1, 2]) {
          const engine = await createEngine(m, { threads, maxBatch: count });
          try {
            compare(m, engine.trace(images, count), want, count, Infinity);
          } finally {
            engine.dispose();
          }
        }
      }
    }
  });

  test('real activations (1W32A): additions only, float32 sums within tolerance', async () => {
    const rng = new Rng(12);
    for (const [h, w] of sides) {
      const k = h * w;
      const n1 = widths[rng.int(widths.length)];
      const n2 = widths[rng.int(widths.length)];
      const m = model(
        [
          dense(rng, 'a', 'real', k, n1, 'real', 'relu'),
          dense(rng, 'b', 'real', n1, n2, 'real', 'hardtanh'),
          dense(rng, 'c', 'real', n2, 1 + rng.int(12), 'real'),
        ],
        h,
        w,
      );
      const count = 6;
      const images = randomImages(rng, count, k);
      const want = reference(m, images, count);
      for (const realDense of ['lut', 'signs'] as const) {
        const results: Float32Array[] = [];
        for (const threads of [1, 2]) {
          const engine = await createEngine(m, { threads, maxBatch: count, realDense });
          try {
            // The byte first layer is exact: only the later (float32-summed) layers get a tolerance.
            compare(m, engine.trace(images, count), want, count, 1);
            results.push(engine.logits(images, count));
          } finally {
            engine.dispose();
          }
        }
        assert.deepEqual(results[0], results[1], `${realDense}: threads 1 and 2 give identical logits`);
      }
    }
  });

  test("1W32A by table lookup: an image's logits do not depend on the batch, its place in a tile or the threads", async () => {
    const rng = new Rng(15);
    // k not a multiple of 4 or of 32 (a partial group and a partial word), n not a multiple of 4.
    const m = model(
      [
        dense(rng, 'a', 'real', 196, 70, 'real', 'relu'),
        dense(rng, 'b', 'real', 70, 37, 'real', 'hardtanh'),
        dense(rng, 'c', 'real', 37, 7, 'real'),
      ],
      14,
      14,
    );
    const count = 11;
    const images = randomImages(rng, count, 196);
    const one = await createEngine(m, { threads: 1, maxBatch: 1 });
    const alone = Array.from({ length: count }, (_, i) =>
      one.logits(images.subarray(i * 196, (i + 1) * 196), 1),
    );
    one.dispose();
    for (const [threads, maxBatch] of [
      [1, count],
      [2, count],
      [2, 5],
      [1, 3],
    ]) {
      const engine = await createEngine(m, { threads, maxBatch });
      try {
        const all = engine.logits(images, count);
        for (let i = 0; i < count; i++) {
          assert.deepEqual(
            all.subarray(i * 7, (i + 1) * 7),
            alone[i],
            `image ${i}, threads ${threads}, maxBatch ${maxBatch}`,
          );
        }
      } finally {
        engine.dispose();
      }
    }
  });

  test('the float first layer (normalised inputs) matches the byte first layer up to float32 rounding', async () => {
    const rng = new Rng(13);
    const m = model(
      [dense(rng, 'a', 'real', 784, 70, 'bits'), dense(rng, 'b', 'bits', 70, 10, 'real')],
      28,
      28,
    );
    const images = randomImages(rng, 7, 784);
    const want = reference(m, images, 7);
    const engine = await createEngine(m, { threads: 1, firstLayer: 'float', maxBatch: 4 });
    try {
      compare(m, engine.trace(images.subarray(0, 4 * 784), 4), reference(m, images, 4), 4, 0);
      const normalised = Float32Array.from(images, (v) => (v / 255 - 0.3) / 0.4);
      const a = engine.logitsNormalized(normalised, 7);
      const b = engine.logits(images, 7);
      assert.deepEqual(a, b, 'logitsNormalized on normalised images equals logits on the raw images');
      void want;
    } finally {
      engine.dispose();
    }
  });

  test('batches larger than maxBatch run in chunks with the same results', async () => {
    const rng = new Rng(14);
    const m = model(
      [
        dense(rng, 'a', 'real', 100, 40, 'bits'),
        dense(rng, 'b', 'bits', 40, 33, 'bits'),
        dense(rng, 'c', 'bits', 33, 5, 'real'),
      ],
      10,
      10,
    );
    const images = randomImages(rng, 23, 100);
    const small = await createEngine(m, { threads: 2, maxBatch: 4 });
    const large = await createEngine(encodeOnebit(m), { threads: 1, maxBatch: 32 });
    try {
      assert.deepEqual(small.logits(images), large.logits(images));
      assert.deepEqual(Array.from(small.classify(images)), Array.from(large.classify(images)));
      assert.throws(() => small.trace(images), RangeError);
      assert.throws(() => small.logits(images, 24), RangeError);
    } finally {
      small.dispose();
      large.dispose();
    }
    assert.throws(() => small.logits(images), /after dispose/);
  });

  test('an inconsistent model built in memory is refused before it reaches a kernel', async () => {
    const rng = new Rng(16);
    const m = model([dense(rng, 'a', 'real', 35, 33, 'bits'), dense(rng, 'b', 'bits', 33, 4, 'real')], 5, 7);
    const first = m.layers[1] as DenseLayer;
    const broken = {
      ...m,
      layers: [m.layers[0], { ...first, weights: first.weights.subarray(4) }, m.layers[2]],
    };
    await assert.rejects(createEngine(broken, { threads: 1 }), OnebitFormatError);
  });

  test('a model survives encode and decode unchanged', () => {
    const rng = new Rng(15);
    const m = model(
      [dense(rng, 'a', 'real', 35, 33, 'bits'), dense(rng, 'b', 'bits', 33, 4, 'real', 'relu')],
      5,
      7,
    );
    const back = decodeOnebit(encodeOnebit(m));
    assert.deepEqual(back, m);
  });
});

describe('engine stands alone', () => {
  test('its import graph reaches no training code and no Node module at load time', async () => {
    const { readFileSync } = await import('node:fs');
    const { dirname, join, relative } = await import('node:path');
    const root = join(import.meta.dirname, '..');
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(file, 'utf8');
      // Static value imports and re-exports (type-only imports vanish at compile time; dynamic ones are lazy).
      const pattern = /^\s*(?:import|export)\s+(?!type\b)[^;]*?from\s+'([^']+)'/gms;
      for (const match of source.matchAll(pattern)) {
        const spec = match[1];
        assert.ok(!spec.startsWith('node:'), `${relative(root, file)} imports ${spec} statically`);
        if (!spec.startsWith('.')) assert.fail(`${relative(root, file)} imports the package ${spec}`);
        visit(join(dirname(file), spec.replace(/\.js$/, '.ts')));
      }
    };
    visit(join(root, 'engine', 'index.ts'));
    const files = [...seen].map((f) => relative(root, f)).sort();
    // The native addon's loader: no Node import statement, no training code (it loads the addon on demand).
    for (const f of files)
      assert.match(f, /^((engine|wasm)\/|native\/addon\.ts$|errors\.ts$)/, `the engine reaches ${f}`);
    assert.ok(files.includes('engine/format.ts') && files.includes('wasm/pool.ts'), files.join(', '));
  });
});
