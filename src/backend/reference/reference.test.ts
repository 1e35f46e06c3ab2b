/** Hand-worked cases for the reference backend: the specification's specification. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { packedWords } from '../backend.js';
import type { Conv2dGeometry, FloatArray } from '../backend.js';
import { Rng } from '../../tensor/rng.js';
import { createReferenceBackend, popcount32 } from './index.js';

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `entry ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('reference backend: memory', () => {
  it('allocates the dtype and tracks bytes', () => {
    const b64 = createReferenceBackend();
    const x = b64.alloc(3);
    assert.ok(x instanceof Float64Array);
    const b32 = createReferenceBackend('float32');
    const y = b32.alloc(3);
    assert.ok(y instanceof Float32Array);
    const i = b64.allocInt32(2);
    const u = b64.allocUint32(5);
    assert.equal(b64.bytesInUse(), 24 + 8 + 20);
    b64.free(i);
    b64.free(x);
    b64.free(u);
    assert.equal(b64.bytesInUse(), 0);
  });
  it('throws on double free, foreign buffers and views', () => {
    const b = createReferenceBackend();
    const x = b.alloc(4);
    const notOurs = /free\(\) of a buffer that this backend did not allocate or already freed/;
    assert.throws(() => b.free(new Float64Array(4)), notOurs);
    assert.throws(() => b.free(x.subarray(1)), notOurs);
    b.free(x);
    assert.throws(() => b.free(x), notOurs);
    assert.throws(() => b.alloc(-1), { name: 'RangeError', message: /alloc: bad length -1/ });
    assert.throws(() => b.allocInt32(2.5), { name: 'RangeError', message: /alloc: bad length 2\.5/ });
    assert.equal(b.bytesInUse(), 0, 'a failed free or alloc changes nothing');
  });
  it('refuses use after dispose', () => {
    const b = createReferenceBackend();
    const x = b.alloc(2);
    b.dispose();
    assert.throws(() => b.alloc(1), /used after dispose\(\)/);
    assert.throws(() => b.free(x), /used after dispose\(\)/);
  });
});

describe('reference backend: gemm', () => {
  // A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]]: A*B = [[58,64],[139,154]].
  const A = [1, 2, 3, 4, 5, 6];
  const At = [1, 4, 2, 5, 3, 6];
  const B = [7, 8, 9, 10, 11, 12];
  const Bt = [7, 9, 11, 8, 10, 12];
  const AB = [58, 64, 139, 154];
  const be = createReferenceBackend();
  const f = (v: number[]): FloatArray => Float64Array.from(v);

  it("'nn'", () => {
    const c = new Float64Array(4);
    be.gemm('nn', 2, 2, 3, f(A), f(B), c, false);
    close(c, AB);
  });
  it("'nt'", () => {
    const c = new Float64Array(4);
    be.gemm('nt', 2, 2, 3, f(A), f(Bt), c, false);
    close(c, AB);
  });
  it("'tn'", () => {
    const c = new Float64Array(4);
    be.gemm('tn', 2, 2, 3, f(At), f(B), c, false);
    close(c, AB);
  });
  it('accumulates, and overwrites without accumulate', () => {
    const c = f([1, -1, 2, 0]);
    be.gemm('nn', 2, 2, 3, f(A), f(B), c, true);
    close(c, [59, 63, 141, 154]);
    be.gemm('nt', 2, 2, 3, f(A), f(Bt), c, false);
    close(c, AB);
  });
  it('non-square shapes: a 3x1 by 1x2 outer product', () => {
    const c = new Float64Array(6);
    be.gemm('nn', 3, 2, 1, f([1, 2, 3]), f([10, 20]), c, false);
    close(c, [10, 20, 20, 40, 30, 60]);
  });
  it('rejects short buffers', () => {
    assert.throws(() => be.gemm('nn', 2, 2, 3, f(A), f([1, 2]), new Float64Array(4), false), {
      name: 'RangeError',
      message: /^gemm: B has 2 entries, needs 6$/,
    });
  });
});

describe('reference backend: im2col / col2im', () => {
  const be = createReferenceBackend();
  const g: Conv2dGeometry = {
    channels: 1,
    height: 3,
    width: 3,
    kernelH: 3,
    kernelW: 3,
    stride: 1,
    padding: 1,
  };
  const image = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);

  it('3x3 image, 3x3 kernel, padding 1 (worked by hand)', () => {
    const col = new Float64Array(81);
    be.im2col(image, g, col);
    // Row (i, j) holds image[oy - 1 + i][ox - 1 + j] for the 9 output positions.
    const expected = [
      [0, 0, 0, 0, 1, 2, 0, 4, 5], // (0,0)
      [0, 0, 0, 1, 2, 3, 4, 5, 6], // (0,1)
      [0, 0, 0, 2, 3, 0, 5, 6, 0], // (0,2)
      [0, 1, 2, 0, 4, 5, 0, 7, 8], // (1,0)
      [1, 2, 3, 4, 5, 6, 7, 8, 9], // (1,1)
      [2, 3, 0, 5, 6, 0, 8, 9, 0], // (1,2)
      [0, 4, 5, 0, 7, 8, 0, 0, 0], // (2,0)
      [4, 5, 6, 7, 8, 9, 0, 0, 0], // (2,1)
      [5, 6, 0, 8, 9, 0, 0, 0, 0], // (2,2)
    ].flat();
    close(col, expected);
  });
  it('col2im of ones counts the taps that read each pixel, and overwrites the image', () => {
    const out = Float64Array.from([100, 100, 100, 100, 100, 100, 100, 100, 100]);
    be.col2im(new Float64Array(81).fill(1), g, out);
    close(out, [4, 6, 4, 6, 9, 6, 4, 6, 4]);
  });
  it('stride 2, two channels, no padding', () => {
    // 2 x 4 x 4 image, 2x2 windows with stride 2: each row of col is one tap over the 4 windows.
    const img = new Float64Array(32);
    for (let i = 0; i < 32; i++) img[i] = i;
    const g2: Conv2dGeometry = {
      channels: 2,
      height: 4,
      width: 4,
      kernelH: 2,
      kernelW: 2,
      stride: 2,
      padding: 0,
    };
    const col = new Float64Array(8 * 4);
    be.im2col(img, g2, col);
    close(col.subarray(0, 4), [0, 2, 8, 10]); // c0 tap (0,0)
    close(col.subarray(12, 16), [5, 7, 13, 15]); // c0 tap (1,1)
    close(col.subarray(16, 20), [16, 18, 24, 26]); // c1 tap (0,0)
    const back = new Float64Array(32);
    be.col2im(col, g2, back);
    close(back, img); // non-overlapping windows: col2im inverts im2col
  });
  it('col2im is the adjoint of im2col: <im2col(x), y> = <x, col2im(y)>', () => {
    const rng = new Rng(1);
    const g3: Conv2dGeometry = {
      channels: 2,
      height: 5,
      width: 4,
      kernelH: 3,
      kernelW: 2,
      stride: 2,
      padding: 1,
    };
    const x = new Float64Array(40).map(() => rng.normal());
    const outH = 3;
    const outW = 3;
    const y = new Float64Array(2 * 3 * 2 * outH * outW).map(() => rng.normal());
    const col = new Float64Array(y.length);
    be.im2col(x, g3, col);
    const img = new Float64Array(40);
    be.col2im(y, g3, img);
    let lhs = 0;
    let rhs = 0;
    for (let i = 0; i < y.length; i++) lhs += col[i] * y[i];
    for (let i = 0; i < x.length; i++) rhs += x[i] * img[i];
    assert.ok(Math.abs(lhs - rhs) < 1e-10);
  });
});

describe('reference backend: elementwise and reductions', () => {
  const be = createReferenceBackend();
  it('sign maps 0 and -0 to +1', () => {
    const out = new Float64Array(5);
    be.sign(Float64Array.from([0, -0, -1e-300, 3, -2]), out, 5);
    close(out, [1, 1, -1, 1, -1]);
  });
  it('signBackward surrogates at 0, the clip edges and between', () => {
    const x = Float64Array.from([0, 1, -1, 0.5, -0.25, 1.5, -3]);
    const g = new Float64Array(7).fill(2);
    const out = new Float64Array(7);
    be.signBackward(x, g, out, 'identity', 7);
    close(out, [2, 2, 2, 2, 2, 2, 2]);
    be.signBackward(x, g, out, 'clipped-identity', 7);
    close(out, [2, 2, 2, 2, 2, 0, 0]);
    be.signBackward(x, g, out, 'approx-sign', 7);
    close(out, [4, 0, 0, 2, 3, 0, 0]);
  });
  it('relu, hardtanh and their backward passes', () => {
    const x = Float64Array.from([-2, -1, 0, 0.5, 1, 3]);
    const out = new Float64Array(6);
    be.relu(x, out, 6);
    close(out, [0, 0, 0, 0.5, 1, 3]);
    be.reluBackward(x, Float64Array.from([1, 1, 1, 1, 1, 1]), out, 6);
    close(out, [0, 0, 0, 1, 1, 1]);
    be.hardtanh(x, out, 6);
    close(out, [-1, -1, 0, 0.5, 1, 1]);
    be.hardtanhBackward(x, Float64Array.from([1, 1, 1, 1, 1, 1]), out, 6);
    close(out, [0, 1, 1, 1, 1, 0]);
  });
  it('fill, copy, axpy, scale, multiply, clip work on the first `length` entries only', () => {
    const x = Float64Array.from([1, 2, 3, 4]);
    const y = Float64Array.from([10, 20, 30, 40]);
    be.axpy(2, x, y, 3);
    close(y, [12, 24, 36, 40]);
    be.scale(x, -1, 2);
    close(x, [-1, -2, 3, 4]);
    be.multiply(x, y, y, 4);
    close(y, [-12, -48, 108, 160]);
    be.clip(y, -20, 100, 4);
    close(y, [-12, -20, 100, 100]);
    be.copy(x, y, 2);
    close(y, [-1, -2, 100, 100]);
    be.fill(y, 7, 3);
    close(y, [7, 7, 7, 100]);
    assert.equal(be.sum(y, 3), 21);
    assert.equal(be.sumSquares(Float64Array.from([3, 4, 100]), 2), 25);
  });
  it('channelSums and channelAffine over (n, channels, spatial)', () => {
    // n = 2, channels = 2, spatial = 2: x[i][c][s]
    const x = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const sums = new Float64Array(2);
    const sumsB = new Float64Array(2);
    be.channelSums(x, null, 2, 2, 2, sums, sumsB);
    close(sums, [1 + 2 + 5 + 6, 3 + 4 + 7 + 8]);
    close(sumsB, [1 + 4 + 25 + 36, 9 + 16 + 49 + 64]);
    const y = Float64Array.from([1, 1, 0, 1, 2, 0, 1, 0]);
    be.channelSums(x, y, 2, 2, 2, sums, sumsB);
    close(sumsB, [1 + 2 + 10, 4 + 7]);
    const out = new Float64Array(8);
    be.channelAffine(x, Float64Array.from([2, -1]), Float64Array.from([1, 0]), 2, 2, 2, out);
    close(out, [3, 5, -3, -4, 11, 13, -7, -8]);
  });
});

describe('reference backend: adam', () => {
  it('two hand-worked AdamW steps', () => {
    const be = createReferenceBackend();
    const p = Float64Array.from([1]);
    const m = new Float64Array(1);
    const v = new Float64Array(1);
    const hp = { learningRate: 0.1, beta1: 0.9, beta2: 0.999, epsilon: 0, weightDecay: 0, step: 1 };
    // Step 1, g = 0.5: m = 0.05, v = 0.00025, mhat = 0.5, vhat = 0.25, so p = 1 - 0.1 * 1 = 0.9.
    be.adam(p, Float64Array.from([0.5]), m, v, hp, 1);
    close(m, [0.05]);
    close(v, [0.00025]);
    close(p, [0.9]);
    // Step 2, g = -1, wd = 0.1: m = -0.055, v = 0.00124975, mhat = -0.055/0.19, vhat = 0.00124975/0.001999,
    // p = 0.9 - 0.1 * (mhat/sqrt(vhat) + 0.1 * 0.9) = 0.9 - 0.1 * (-0.366103527... + 0.09).
    be.adam(p, Float64Array.from([-1]), m, v, { ...hp, step: 2, weightDecay: 0.1 }, 1);
    close(m, [-0.055]);
    close(v, [0.00124975]);
    close(p, [0.9276103527035844], 1e-12);
  });
});

describe('reference backend: bits', () => {
  const be = createReferenceBackend();
  it('popcount', () => {
    assert.equal(popcount32(0), 0);
    assert.equal(popcount32(0xffffffff), 32);
    assert.equal(popcount32(0x80000001), 2);
    assert.equal(popcount32(-1), 32);
  });
  it('packSigns: zero is +1 (clear bit), negatives set bits, padding bits zero', () => {
    assert.equal(packedWords(1), 4);
    assert.equal(packedWords(128), 4);
    assert.equal(packedWords(129), 8);
    const out = new Uint32Array(8).fill(0xdeadbeef);
    be.packSigns(Float64Array.from([0, -1, 2, -0.5, -0, 5, 5, 5]), 2, 4, out);
    assert.deepEqual([...out], [0b1010, 0, 0, 0, 0, 0, 0, 0]);
    const neg33 = new Float64Array(33).fill(-1);
    const out33 = new Uint32Array(4).fill(0xffffffff);
    be.packSigns(neg33, 1, 33, out33);
    assert.deepEqual([...out33], [0xffffffff, 1, 0, 0]);
  });
  it('binaryGemm equals the naive +-1 dot product across word-width sizes', () => {
    const rng = new Rng(7);
    for (const k of [1, 31, 32, 33, 63, 64, 65, 128]) {
      const m = 3;
      const n = 2;
      const a = new Float64Array(m * k).map(() => (rng.uniform() < 0.5 ? -1 : 1));
      const b = new Float64Array(n * k).map(() => (rng.uniform() < 0.5 ? -1 : 1));
      if (k > 1) a[1] = 0; // zero counts as +1
      const words = packedWords(k);
      const pa = new Uint32Array(m * words);
      const pb = new Uint32Array(n * words);
      be.packSigns(a, m, k, pa);
      be.packSigns(b, n, k, pb);
      // Padding bits past column k stay zero.
      for (let r = 0; r < m; r++) {
        for (let col = k; col < words * 32; col++) {
          assert.equal((pa[r * words + (col >>> 5)] >>> (col & 31)) & 1, 0, `padding bit ${col} of row ${r}`);
        }
      }
      const c = new Int32Array(m * n);
      be.binaryGemm(m, n, k, pa, pb, c);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let p = 0; p < k; p++) dot += (a[i * k + p] >= 0 ? 1 : -1) * b[j * k + p];
          assert.equal(c[i * n + j], dot, `k=${k} (${i},${j})`);
        }
      }
    }
  });
});
