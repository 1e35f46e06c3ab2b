/**
 * The engine's convolution, pooling, threshold, affine, flatten and residual kernels against a plain
 * TypeScript reading of the format (`reference` below: +-1 values in float64, zero padding as in training),
 * on random models whose shapes straddle the word widths (channels 3, 16, 32, 33, 40), with every stride,
 * kernel size and padding mode, so border pixels are exercised: exact for every integer output (bits
 * inputs, the byte first layer), within float32 summation error for real inputs; the border correction on
 * its own; thread counts and batch chunking give identical results.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { Rng } from '../tensor/rng.js';
import { borderCorrection, createEngine, type LayerTrace } from './engine.js';
import {
  encodeOnebit,
  decodeOnebit,
  packedWords,
  packSignRows,
  type ConvLayer,
  type DenseOutput,
  type OnebitLayer,
  type OnebitModel,
} from './format.js';
import { randomOutput, signs } from '../../test/engine-layers.js';

type Value = { shape: number[]; data: Float64Array; bits: boolean };

const signOf = (words: Uint32Array, offset: number, j: number): number =>
  (words[offset + (j >>> 5)] >>> (j & 31)) & 1 ? -1 : 1;

function outputOf(out: DenseOutput, z: number, j: number): number {
  if (out.kind === 'bits') {
    const set = out.directions[j] > 0 ? z < out.thresholds[j] : z > out.thresholds[j];
    return set ? -1 : 1;
  }
  let y = Math.fround(z * out.scale[j] + out.bias[j]);
  if (out.activation === 'relu') y = y > 0 ? y : 0;
  else if (out.activation === 'hardtanh') y = Math.min(1, Math.max(-1, y));
  return y;
}

/** One example through the layers, in C, H, W order; `pre` collects every conv/dense pre-activation. */
function referenceLayers(
  layers: readonly OnebitLayer[],
  x0: Value,
  trace: Map<string, Value>,
  path: string,
  first: { bytes: Uint8Array | null; a: number; c: number },
): Value {
  let x = x0;
  for (const layer of layers) {
    switch (layer.kind) {
      case 'flatten': {
        const [c, h, w] = x.shape;
        if (x.shape.length === 1) break;
        const data = new Float64Array(c * h * w);
        const hwc = layer.layout === 'hwc';
        for (let ch = 0; ch < c; ch++)
          for (let p = 0; p < h * w; p++) data[hwc ? p * c + ch : ch * h * w + p] = x.data[ch * h * w + p];
        x = { shape: [c * h * w], data, bits: x.bits };
        break;
      }
      case 'dense': {
        const { inFeatures: k, outFeatures: n, weights, output } = layer;
        const words = packedWords(k);
        const data = new Float64Array(n);
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let i = 0; i < k; i++) s += signOf(weights, j * words, i) * x.data[i];
          data[j] = outputOf(output, s, j);
        }
        x = { shape: [n], data, bits: output.kind === 'bits' };
        trace.set(path + layer.name, x);
        break;
      }
      case 'conv2d': {
        const [c, h, w] = x.shape;
        const { kernel: k, stride, padding, outChannels: n, weights, output } = layer;
        const oh = Math.floor((h + 2 * padding - k) / stride) + 1;
        const ow = Math.floor((w + 2 * padding - k) / stride) + 1;
        const words = packedWords(k * k * c);
        const data = new Float64Array(n * oh * ow);
        for (let o = 0; o < n; o++) {
          for (let oy = 0; oy < oh; oy++) {
            for (let ox = 0; ox < ow; ox++) {
              let s = 0;
              let bytes = 0;
              let valid = 0;
              for (let i = 0; i < k; i++) {
                for (let j = 0; j < k; j++) {
                  const y = oy * stride - padding + i;
                  const xx = ox * stride - padding + j;
                  if (y < 0 || y >= h || xx < 0 || xx >= w) continue; // zero padding
                  for (let ch = 0; ch < c; ch++) {
                    const sw = signOf(weights, o * words, (i * k + j) * c + ch);
                    if (first.bytes !== null) {
                      bytes += sw * first.bytes[ch * h * w + y * w + xx];
                      valid += sw;
                    } else s += sw * x.data[ch * h * w + y * w + xx];
                  }
                }
              }
              if (first.bytes !== null) s = first.a * bytes + first.c * valid;
              data[o * oh * ow + oy * ow + ox] = outputOf(output, s, o);
            }
          }
        }
        first.bytes = null;
        x = { shape: [n, oh, ow], data, bits: output.kind === 'bits' };
        trace.set(path + layer.name, x);
        break;
      }
      case 'maxpool':
      case 'avgpool': {
        const [c, h, w] = x.shape;
        const { kernel: k, stride, padding } = layer;
        const oh = Math.floor((h + 2 * padding - k) / stride) + 1;
        const ow = Math.floor((w + 2 * padding - k) / stride) + 1;
        const data = new Float64Array(c * oh * ow);
        for (let ch = 0; ch < c; ch++) {
          for (let oy = 0; oy < oh; oy++) {
            for (let ox = 0; ox < ow; ox++) {
              let best = -Infinity;
              let sum = 0;
              for (let i = 0; i < k; i++) {
                for (let j = 0; j < k; j++) {
                  const y = oy * stride - padding + i;
                  const xx = ox * stride - padding + j;
                  if (y < 0 || y >= h || xx < 0 || xx >= w) continue;
                  const v = x.data[ch * h * w + y * w + xx];
                  best = Math.max(best, v);
                  sum += v;
                }
              }
              data[ch * oh * ow + oy * ow + ox] =
                layer.kind === 'maxpool' ? best : Math.fround(sum / (k * k));
            }
          }
        }
        x = { shape: [c, oh, ow], data, bits: x.bits };
        trace.set(path + layer.name, x);
        break;
      }
      case 'threshold':
      case 'affine': {
        const c = x.shape[0];
        const per = x.data.length / c;
        const data = new Float64Array(x.data.length);
        const out: DenseOutput =
          layer.kind === 'threshold'
            ? { kind: 'bits', thresholds: layer.thresholds, directions: layer.directions }
            : { kind: 'real', scale: layer.scale, bias: layer.bias, activation: layer.activation };
        for (let i = 0; i < data.length; i++) {
          const ch = Math.floor(i / per);
          data[i] = outputOf(out, x.data[i], ch);
        }
        x = { shape: x.shape, data, bits: layer.kind === 'threshold' };
        trace.set(path + layer.name, x);
        break;
      }
      case 'residual': {
        const prefix = `${path}${layer.name}/`;
        const body = referenceLayers(layer.body, x, trace, `${prefix}body/`, first);
        const shortcut =
          layer.shortcut === null
            ? x
            : referenceLayers(layer.shortcut, x, trace, `${prefix}shortcut/`, first);
        const data = body.data.map((v, i) => Math.fround(v + shortcut.data[i]));
        x = { shape: body.shape, data, bits: false };
        trace.set(path + layer.name, x);
        break;
      }
    }
  }
  return x;
}

function reference(m: OnebitModel, image: Uint8Array, bytesFirst: boolean): Map<string, Value> {
  const [c, h, w] = m.input.shape;
  const data = new Float64Array(c * h * w);
  for (let ch = 0; ch < c; ch++)
    for (let p = 0; p < h * w; p++)
      data[ch * h * w + p] = Math.fround((image[ch * h * w + p] / 255 - m.input.mean[ch]) / m.input.std[ch]);
  const trace = new Map<string, Value>();
  const first = {
    bytes: bytesFirst ? image : null,
    a: 1 / (255 * m.input.std[0]),
    c: -m.input.mean[0] / m.input.std[0],
  };
  trace.set('logits', referenceLayers(m.layers, { shape: [c, h, w], data, bits: false }, trace, '', first));
  return trace;
}

/** The engine's trace of one example as values in C, H, W order (bits as +-1). */
function unpack(t: LayerTrace, example: number): Float64Array {
  if (t.kind === 'real')
    return Float64Array.from(t.values.subarray(example * t.features, (example + 1) * t.features));
  const out = new Float64Array(t.features);
  if (t.shape.length === 1) {
    const words = packedWords(t.features);
    for (let j = 0; j < t.features; j++) out[j] = signOf(t.bits, example * words, j);
    return out;
  }
  const [c, h, w] = t.shape;
  const words = packedWords(c);
  for (let p = 0; p < h * w; p++) {
    const offset = (example * h * w + p) * words;
    for (let ch = 0; ch < c; ch++) out[ch * h * w + p] = signOf(t.bits, offset, ch);
    // Padding bits past the last channel stay clear.
    for (let ch = c; ch < words * 32; ch++) assert.equal((t.bits[offset + (ch >>> 5)] >>> (ch & 31)) & 1, 0);
  }
  return out;
}

function conv(
  rng: Rng,
  name: string,
  input: 'real' | 'bits',
  c: number,
  n: number,
  geometry: { kernel: number; stride: number; padding: number },
  output: DenseOutput,
): ConvLayer {
  const taps = geometry.kernel * geometry.kernel * c;
  return {
    kind: 'conv2d',
    name,
    input,
    inChannels: c,
    outChannels: n,
    ...geometry,
    weights: packSignRows(signs(rng, n * taps), n, taps),
    output,
  };
}

/** The identity output stage: z itself as float32 (exact for integers). */
const identity = (n: number): DenseOutput => ({
  kind: 'real',
  scale: new Float32Array(n).fill(1),
  bias: new Float32Array(n),
  activation: 'none',
});

const GEOMETRIES = [
  { kernel: 3, stride: 1, padding: 1 },
  { kernel: 3, stride: 2, padding: 1 },
  { kernel: 3, stride: 1, padding: 0 },
  { kernel: 2, stride: 2, padding: 0 },
  { kernel: 5, stride: 1, padding: 2 },
  { kernel: 1, stride: 1, padding: 0 },
  { kernel: 4, stride: 3, padding: 3 },
] as const;

const outSide = (size: number, g: { kernel: number; stride: number; padding: number }): number =>
  Math.floor((size + 2 * g.padding - g.kernel) / g.stride) + 1;

/** A 1W1A network: byte conv -> bits, max pool on bits, bits conv (C straddling words), its integer z, ... */
function binaryNet(
  rng: Rng,
  h: number,
  w: number,
  c2: number,
  g1: (typeof GEOMETRIES)[number],
  g2: (typeof GEOMETRIES)[number],
  layout: 'hwc' | 'chw',
): OnebitModel {
  const c1 = c2;
  const layers: OnebitLayer[] = [];
  layers.push(conv(rng, 'conv1', 'real', 1, c1, g1, randomOutput(rng, c1, 'bits', false, 4)));
  let [hh, ww] = [outSide(h, g1), outSide(w, g1)];
  if (hh >= 2 && ww >= 2) {
    layers.push({ kind: 'maxpool', name: 'pool1', kernel: 2, stride: 1, padding: 1 });
    [hh, ww] = [hh + 1, ww + 1];
  }
  const taps = g2.kernel * g2.kernel * c1;
  layers.push(
    conv(rng, 'conv2', 'bits', c1, 40, g2, randomOutput(rng, 40, 'bits', true, Math.sqrt(taps) * 2)),
  );
  [hh, ww] = [outSide(hh, g2), outSide(ww, g2)];
  // The integer pre-activations of a bits conv, as reals, then pooled and thresholded.
  layers.push(conv(rng, 'conv3', 'bits', 40, 33, { kernel: 3, stride: 1, padding: 1 }, identity(33)));
  layers.push({ kind: 'maxpool', name: 'pool3', kernel: 2, stride: 2, padding: hh >= 2 && ww >= 2 ? 0 : 1 });
  const ph = hh >= 2 && ww >= 2 ? Math.floor(hh / 2) : Math.floor((hh + 2 - 2) / 2) + 1;
  const pw = hh >= 2 && ww >= 2 ? Math.floor(ww / 2) : Math.floor((ww + 2 - 2) / 2) + 1;
  layers.push({
    kind: 'threshold',
    name: 'sign3',
    channels: 33,
    thresholds: Float32Array.from({ length: 33 }, () => Math.round((rng.uniform() - 0.5) * 20)),
    directions: Int8Array.from({ length: 33 }, () => (rng.uniform() < 0.3 ? -1 : 1)),
  });
  layers.push({ kind: 'flatten', layout });
  const flat = 33 * ph * pw;
  layers.push({
    kind: 'dense',
    name: 'fc',
    input: 'bits',
    inFeatures: flat,
    outFeatures: 10,
    weights: packSignRows(signs(rng, 10 * flat), 10, flat),
    output: identity(10),
  });
  return { input: { shape: [1, h, w], mean: [0.25], std: [0.35] }, classes: 10, layers, metadata: {} };
}

function images(rng: Rng, count: number, size: number): Uint8Array {
  // Zeros (as padding would give) and full-range pixels, so border pixels see both.
  return Uint8Array.from({ length: count * size }, () =>
    rng.uniform() < 0.3 ? 0 : Math.floor(rng.uniform() * 256),
  );
}

function checkTrace(
  m: OnebitModel,
  got: LayerTrace[],
  pictures: Uint8Array,
  count: number,
  bytes: boolean,
  tolerance: number,
): void {
  const size = m.input.shape.reduce((a, b) => a * b, 1);
  for (let e = 0; e < count; e++) {
    const want = reference(m, pictures.subarray(e * size, (e + 1) * size), bytes);
    for (const t of got) {
      const expected = want.get(t.name);
      assert.ok(expected !== undefined, `reference has ${t.name}`);
      assert.deepEqual([...t.shape], expected.shape, `${t.name} shape`);
      const values = unpack(t, e);
      for (let i = 0; i < values.length; i++) {
        const err = Math.abs(values[i] - expected.data[i]);
        if (!(err <= tolerance * Math.max(1, Math.abs(expected.data[i]))))
          assert.fail(`example ${e}, ${t.name}[${i}]: engine ${values[i]}, reference ${expected.data[i]}`);
      }
    }
  }
}

describe('engine convnets', () => {
  test("the border correction is the padded taps' weight sum, and zero inside the image", () => {
    const rng = new Rng(5);
    const layer = conv(rng, 'c', 'bits', 3, 5, { kernel: 3, stride: 1, padding: 1 }, identity(5));
    const { index, sums } = borderCorrection(layer, 4, 4);
    const words = packedWords(27);
    for (let oy = 0; oy < 4; oy++) {
      for (let ox = 0; ox < 4; ox++) {
        const inside = oy > 0 && oy < 3 && ox > 0 && ox < 3;
        assert.equal(index[oy * 4 + ox] < 0, inside, `pixel ${oy},${ox}`);
        for (let o = 0; o < 5; o++) {
          let want = 0;
          for (let i = 0; i < 3; i++)
            for (let j = 0; j < 3; j++) {
              const y = oy - 1 + i;
              const x = ox - 1 + j;
              if (y >= 0 && y < 4 && x >= 0 && x < 4) continue;
              for (let c = 0; c < 3; c++) want += signOf(layer.weights, o * words, (i * 3 + j) * 3 + c);
            }
          const got = inside ? 0 : sums[index[oy * 4 + ox] * 5 + o];
          assert.equal(got, want, `pixel ${oy},${ox} channel ${o}`);
        }
      }
    }
  });

  test('1-bit convnets: every layer exactly as the reference, at every stride, kernel and padding', async () => {
    const rng = new Rng(11);
    for (const [i, g1] of GEOMETRIES.entries()) {
      const g2 = GEOMETRIES[(i + 3) % GEOMETRIES.length];
      const c = [3, 16, 32, 33, 40, 7, 64][i];
      const h = 7 + i;
      const w = 9 - (i % 3);
      const m = binaryNet(rng, h, w, c, g1, g2, i % 2 === 0 ? 'hwc' : 'chw');
      const bytes = encodeOnebit(m);
      const count = 5;
      const pictures = images(rng, count, h * w);
      for (const threads of [1, 3]) {
        const engine = await createEngine(bytes, { threads, maxBatch: count });
        try {
          assert.equal(engine.firstLayer, 'direct');
          checkTrace(decodeOnebit(bytes), engine.trace(pictures, count), pictures, count, true, 0);
          // Normalised inputs take the float kernel: the same logits as an engine whose first layer is float.
          const normalised = Float32Array.from(pictures, (v) => (v / 255 - 0.25) / 0.35);
          const float = await createEngine(bytes, { threads, maxBatch: count, firstLayer: 'float' });
          try {
            assert.deepEqual(
              engine.logitsNormalized(normalised, count),
              float.logitsNormalized(normalised, count),
            );
            // ... and raw bytes still the byte kernel afterwards.
            checkTrace(decodeOnebit(bytes), engine.trace(pictures, count), pictures, count, true, 0);
          } finally {
            float.dispose();
          }
        } finally {
          engine.dispose();
        }
      }
    }
  });

  test('real-input convnets (3 channels, float path): within float32 error; pools, affine, residual', async () => {
    const rng = new Rng(12);
    const g = { kernel: 3, stride: 1, padding: 1 };
    const layers: OnebitLayer[] = [
      conv(rng, 'conv1', 'real', 3, 8, g, randomOutput(rng, 8, 'real', false, 0)),
      { kind: 'avgpool', name: 'pool1', kernel: 2, stride: 2, padding: 1 },
      conv(rng, 'conv2', 'real', 8, 12, { kernel: 3, stride: 2, padding: 0 }, identity(12)),
      { kind: 'maxpool', name: 'pool2', kernel: 3, stride: 1, padding: 1 },
      {
        kind: 'affine',
        name: 'bn2',
        channels: 12,
        scale: Float32Array.from({ length: 12 }, () => rng.uniform() * 0.2),
        bias: Float32Array.from({ length: 12 }, () => rng.uniform() - 0.5),
        activation: 'relu',
      },
      {
        kind: 'residual',
        name: 'block1',
        body: [
          {
            kind: 'threshold',
            name: 'sign',
            channels: 12,
            thresholds: new Float32Array(12),
            directions: new Int8Array(12).fill(1),
          },
          conv(rng, 'conv3', 'bits', 12, 12, g, identity(12)),
        ],
        shortcut: [conv(rng, 'conv4', 'real', 12, 12, { kernel: 1, stride: 1, padding: 0 }, identity(12))],
      },
      { kind: 'flatten', layout: 'hwc' },
    ];
    // Shapes: 10x10 -> pool 6x6 -> conv2 2x2 -> 2x2.
    const flat = 12 * 2 * 2;
    layers.push({
      kind: 'dense',
      name: 'fc',
      input: 'real',
      inFeatures: flat,
      outFeatures: 4,
      weights: packSignRows(signs(rng, 4 * flat), 4, flat),
      output: identity(4),
    });
    const m: OnebitModel = {
      input: { shape: [3, 10, 10], mean: [0.4, 0.5, 0.3], std: [0.2, 0.25, 0.3] },
      classes: 4,
      layers,
      metadata: {},
    };
    const count = 7;
    const pictures = images(rng, count, 300);
    for (const threads of [1, 2]) {
      const engine = await createEngine(m, { threads, maxBatch: 3 });
      try {
        assert.equal(engine.firstLayer, 'float');
        checkTrace(m, engine.trace(pictures.subarray(0, 3 * 300), 3), pictures, 3, false, 1e-4);
        // Chunked runs (7 examples through maxBatch 3) give the same logits as one at a time.
        const all = engine.logits(pictures, count);
        for (let e = 0; e < count; e++) {
          const one = engine.logits(pictures.subarray(e * 300, (e + 1) * 300), 1);
          assert.deepEqual([...all.subarray(e * 4, (e + 1) * 4)], [...one]);
        }
      } finally {
        engine.dispose();
      }
    }
  });
});
