/**
 * Every kernel of each backend under test (test/backends.ts), in each of its setups, against its executable
 * specification, the reference backend in float32.
 *
 * Exact equality for the integer (bit) kernels, for im2col/col2im, Adam and every elementwise kernel (a
 * fast backend mirrors the reference's float/double arithmetic; for wasm see src/kernels/elementwise.c); a
 * stated tolerance for GEMM (float accumulation in another order) and the sums (double accumulation in
 * another order). Sizes straddle the 32-bit word and the 128-bit row padding of packed signs, and the cache
 * blocks of the GEMM. The setups cover the serial path and the threaded paths (including threads with empty
 * shares); GEMM must give bit-identical results at every thread count (within one native instruction-set
 * level: their tiles and fused multiply-adds round differently). The memory contract every backend shares
 * (zero-filled buffers, byte accounting, refusing bad frees and use after dispose) is checked here too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { convOutputSize, packedWords } from '../src/backend/backend.js';
import type {
  Backend,
  Conv2dGeometry,
  FloatArray,
  GemmLayout,
  SignSurrogate,
} from '../src/backend/backend.js';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import { Rng } from '../src/tensor/rng.js';
import { BACKENDS_UNDER_TEST, describeSetup } from './backends.js';

const ref = createReferenceBackend('float32');

/** Edge values every elementwise kernel must treat exactly like the reference. */
const SPECIALS = [
  0,
  -0,
  1,
  -1,
  0.5,
  -0.5,
  2,
  -2,
  1.0000001,
  -1.0000001,
  0.99999994,
  -0.99999994,
  1e-30,
  -1e-30,
  3e38,
  -3e38,
  Infinity,
  -Infinity,
  NaN,
];

function randomValues(rng: Rng, length: number, specials = true): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = specials && rng.uniform() < 0.1 ? SPECIALS[rng.int(SPECIALS.length)] : rng.normal() * 1.5;
  }
  return out;
}

function same(a: number, b: number): boolean {
  return a === b || (Number.isNaN(a) && Number.isNaN(b));
}

function assertExact(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!same(actual[i], expected[i]))
      assert.fail(`${what}: entry ${i} is ${actual[i]}, reference ${expected[i]}`);
  }
}

/** |actual - expected| <= tol(i) for every entry. */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: (i: number) => number,
  what: string,
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= tol(i)))
      assert.fail(`${what}: entry ${i} is ${actual[i]}, reference ${expected[i]} (tol ${tol(i)})`);
  }
}

/** The same float32 contents in a buffer of each backend. */
function pair(be: Backend, values: Float32Array): [FloatArray, FloatArray] {
  const w = be.alloc(values.length);
  w.set(values);
  const r = ref.alloc(values.length);
  r.set(values);
  return [w, r];
}

for (const backend of BACKENDS_UNDER_TEST) {
  for (const setup of backend.setups) {
    describe(`${describeSetup(backend, setup)}: kernels against the reference`, () => {
      let be: Backend;
      let rng: Rng;
      before(async () => {
        be = await backend.create(setup);
        rng = new Rng(12345);
      });
      after(() => be.dispose());

      it('reports its kind and threads', () => {
        assert.equal(be.name, backend.name);
        assert.equal(be.dtype, 'float32');
        assert.equal(be.threads, setup.threads);
      });

      it('gemm: every layout, odd and blocked sizes, with and without accumulate', () => {
        const shapes: [number, number, number][] = [
          [1, 1, 1],
          [3, 5, 7],
          [4, 8, 256],
          [5, 9, 257],
          [17, 33, 65],
          [64, 64, 64],
          [33, 130, 300],
          [100, 70, 128],
          [3, 37, 301],
          [1, 100, 50],
          [130, 3, 40],
          [2, 1, 1000],
          // Long inner dimension, small C: 'nt' takes unpacked dot products on FMA levels (edges, tails).
          [6, 9, 3001],
          [13, 5, 20000],
          [7, 0, 3],
          [0, 5, 3],
          [3, 4, 0],
        ];
        const layouts: GemmLayout[] = ['nn', 'nt', 'tn'];
        for (const [m, n, k] of shapes) {
          for (const layout of layouts) {
            for (const accumulate of [false, true]) {
              const [a, ra] = pair(be, randomValues(rng, m * k, false));
              const [b, rb] = pair(be, randomValues(rng, k * n, false));
              const [c, rc] = pair(be, randomValues(rng, m * n, false));
              be.gemm(layout, m, n, k, a, b, c, accumulate);
              ref.gemm(layout, m, n, k, ra, rb, rc, accumulate);
              // Float accumulation error grows like sqrt(k) times the size of the terms.
              const tol = (i: number) => 1e-5 * Math.sqrt(Math.max(k, 1)) * Math.max(1, Math.abs(rc[i]));
              assertClose(c, rc, tol, `gemm ${layout} ${m}x${n}x${k} acc=${accumulate}`);
              for (const x of [a, b, c]) be.free(x);
              for (const x of [ra, rb, rc]) ref.free(x);
            }
          }
        }
      });

      it('gemm: shapes larger than the cache blocks (MC=128, KC=256, NC=1024)', () => {
        const [m, n, k] = [131, 1030, 259];
        for (const layout of ['nn', 'nt', 'tn'] as GemmLayout[]) {
          const [a, ra] = pair(be, randomValues(rng, m * k, false));
          const [b, rb] = pair(be, randomValues(rng, k * n, false));
          const [c, rc] = pair(be, randomValues(rng, m * n, false));
          be.gemm(layout, m, n, k, a, b, c, true);
          ref.gemm(layout, m, n, k, ra, rb, rc, true);
          assertClose(c, rc, (i) => 1e-5 * Math.sqrt(k) * Math.max(1, Math.abs(rc[i])), `gemm ${layout} big`);
          for (const x of [a, b, c]) be.free(x);
          for (const x of [ra, rb, rc]) ref.free(x);
        }
      });

      it('im2col and col2im match exactly over many geometries', () => {
        const geometries: Conv2dGeometry[] = [];
        for (const [channels, height, width] of [
          [1, 1, 1],
          [1, 3, 3],
          [2, 5, 4],
          [3, 8, 7],
          [4, 9, 9],
        ]) {
          for (const [kernelH, kernelW] of [
            [1, 1],
            [3, 3],
            [2, 3],
            [5, 5],
          ]) {
            for (const stride of [1, 2, 3]) {
              for (const padding of [0, 1, 2]) {
                const g = { channels, height, width, kernelH, kernelW, stride, padding };
                const { outH, outW } = convOutputSize(g);
                if (outH >= 1 && outW >= 1) geometries.push(g);
              }
            }
          }
        }
        geometries.push({
          channels: 16,
          height: 32,
          width: 32,
          kernelH: 3,
          kernelW: 3,
          stride: 1,
          padding: 1,
        });
        // One image, and batches (images side by side in each row of col) of 2 and 5.
        for (const [index, g] of geometries.entries()) {
          const batch = [1, 2, 5][index % 3];
          const { outH, outW } = convOutputSize(g);
          const colLength = g.channels * g.kernelH * g.kernelW * outH * outW * batch;
          const imageLength = g.channels * g.height * g.width * batch;
          const [image, rImage] = pair(be, randomValues(rng, imageLength, false));
          const [col, rCol] = pair(be, randomValues(rng, colLength, false));
          const what = `${JSON.stringify(g)}, batch ${batch}`;
          be.im2col(image, g, col, batch);
          ref.im2col(rImage, g, rCol, batch);
          assertExact(col, rCol, `im2col ${what}`);
          const [grad, rGrad] = pair(be, randomValues(rng, colLength, false));
          be.col2im(grad, g, image, batch);
          ref.col2im(rGrad, g, rImage, batch);
          assertExact(image, rImage, `col2im ${what}`);
          for (const x of [image, col, grad]) be.free(x);
          for (const x of [rImage, rCol, rGrad]) ref.free(x);
        }
      });

      it("a batch of im2col columns holds each image's columns side by side", () => {
        const g = { channels: 3, height: 6, width: 5, kernelH: 3, kernelW: 3, stride: 2, padding: 1 };
        const { outH, outW } = convOutputSize(g);
        const positions = outH * outW;
        const rows = g.channels * 9;
        const imageLength = g.channels * g.height * g.width;
        const images = be.alloc(3 * imageLength);
        images.set(randomValues(rng, 3 * imageLength, false));
        const all = be.alloc(rows * 3 * positions);
        const one = be.alloc(rows * positions);
        be.im2col(images, g, all, 3);
        for (let b = 0; b < 3; b++) {
          be.im2col(images.subarray(b * imageLength), g, one);
          for (let r = 0; r < rows; r++) {
            const row = Array.from(all.subarray((r * 3 + b) * positions, (r * 3 + b + 1) * positions));
            assert.deepEqual(row, Array.from(one.subarray(r * positions, (r + 1) * positions)), `image ${b}`);
          }
        }
        for (const x of [images, all, one]) be.free(x);
      });

      it('maxPool, maxPoolBackward and swapAxes match exactly (ties, NaN, infinities, empty windows)', () => {
        const geometries: Conv2dGeometry[] = [
          { channels: 3, height: 7, width: 6, kernelH: 2, kernelW: 2, stride: 2, padding: 0 },
          { channels: 2, height: 5, width: 5, kernelH: 3, kernelW: 3, stride: 1, padding: 1 },
          { channels: 4, height: 9, width: 8, kernelH: 3, kernelW: 2, stride: 2, padding: 1 },
          // Padding as wide as the window: corner windows hold no in-image tap (-infinity, index -1).
          { channels: 1, height: 4, width: 4, kernelH: 2, kernelW: 2, stride: 3, padding: 2 },
          { channels: 16, height: 28, width: 28, kernelH: 2, kernelW: 2, stride: 2, padding: 0 },
        ];
        for (const [index, g] of geometries.entries()) {
          const batch = [1, 3, 2][index % 3];
          const { outH, outW } = convOutputSize(g);
          const inLength = batch * g.channels * g.height * g.width;
          const outLength = batch * g.channels * outH * outW;
          // Few distinct values, so windows hold ties; specials (NaN, +-infinity, -0) included.
          const values = randomValues(rng, inLength).map((v) => (Number.isFinite(v) ? Math.round(v) : v));
          const [input, rInput] = pair(be, values);
          const [out, rOut] = pair(be, new Float32Array(outLength));
          const arg = be.allocInt32(outLength);
          const rArg = ref.allocInt32(outLength);
          const what = `${JSON.stringify(g)}, batch ${batch}`;
          be.maxPool(input, batch, g, out, arg);
          ref.maxPool(rInput, batch, g, rOut, rArg);
          assertExact(out, rOut, `maxPool ${what}`);
          assert.deepEqual(Array.from(arg), Array.from(rArg), `maxPool argmax ${what}`);
          const [grad, rGrad] = pair(be, randomValues(rng, outLength, false));
          be.maxPoolBackward(grad, arg, batch, g, input);
          ref.maxPoolBackward(rGrad, rArg, batch, g, rInput);
          assertExact(input, rInput, `maxPoolBackward ${what}`);
          for (const x of [input, out, grad, arg]) be.free(x);
          for (const x of [rInput, rOut, rGrad, rArg]) ref.free(x);
        }
        for (const [a, b, inner] of [
          [1, 1, 1],
          [3, 5, 7],
          [32, 100, 196],
          [7, 1, 13],
        ]) {
          const [src, rSrc] = pair(be, randomValues(rng, a * b * inner));
          const [dst, rDst] = pair(be, new Float32Array(a * b * inner));
          be.swapAxes(src, a, b, inner, dst);
          ref.swapAxes(rSrc, a, b, inner, rDst);
          assertExact(dst, rDst, `swapAxes ${a}x${b}x${inner}`);
          for (const x of [src, dst]) be.free(x);
          for (const x of [rSrc, rDst]) ref.free(x);
        }
      });

      const LENGTHS = [0, 1, 3, 4, 5, 17, 1000, 70001];

      it('elementwise kernels match exactly (specials included)', () => {
        const surrogates: SignSurrogate[] = ['identity', 'clipped-identity', 'approx-sign'];
        for (const length of LENGTHS) {
          const x = randomValues(rng, length);
          const y = randomValues(rng, length);
          type Case = [string, (b: Backend, x: FloatArray, y: FloatArray, out: FloatArray) => void];
          const cases: Case[] = [
            ['fill', (b, _x, _y, out) => b.fill(out, 0.1, length)],
            ['copy', (b, x, _y, out) => b.copy(x, out, length)],
            ['axpy', (b, x, y) => b.axpy(-0.37, x, y, length)],
            ['scale', (b, x) => b.scale(x, 0.1, length)],
            ['multiply', (b, x, y, out) => b.multiply(x, y, out, length)],
            ['clip', (b, x) => b.clip(x, -0.3, 0.7, length)],
            ['sign', (b, x, _y, out) => b.sign(x, out, length)],
            ...surrogates.map((s): Case => [
              `signBackward ${s}`,
              (b, x, y, out) => b.signBackward(x, y, out, s, length),
            ]),
            ['relu', (b, x, _y, out) => b.relu(x, out, length)],
            ['reluBackward', (b, x, y, out) => b.reluBackward(x, y, out, length)],
            ['hardtanh', (b, x, _y, out) => b.hardtanh(x, out, length)],
            ['hardtanhBackward', (b, x, y, out) => b.hardtanhBackward(x, y, out, length)],
          ];
          for (const [name, apply] of cases) {
            const [wx, rx] = pair(be, x);
            const [wy, ry] = pair(be, y);
            const [wo, ro] = pair(be, randomValues(rng, length));
            apply(be, wx, wy, wo);
            apply(ref, rx, ry, ro);
            assertExact(wx, rx, `${name} (x) length ${length}`);
            assertExact(wy, ry, `${name} (y) length ${length}`);
            assertExact(wo, ro, `${name} (out) length ${length}`);
            for (const v of [wx, wy, wo]) be.free(v);
            for (const v of [rx, ry, ro]) ref.free(v);
          }
        }
      });

      it('elementwise kernels work in place and on subarray views', () => {
        const x = randomValues(rng, 1001);
        const [wx, rx] = pair(be, x);
        be.sign(wx.subarray(3), wx.subarray(3), 998);
        ref.sign(rx.subarray(3), rx.subarray(3), 998);
        assertExact(wx, rx, 'sign in place on a subarray');
        // Overlapping copy has memmove semantics like the reference's forward loop only when dst < src.
        be.copy(wx.subarray(5), wx.subarray(1), 900);
        ref.copy(rx.subarray(5), rx.subarray(1), 900);
        assertExact(wx, rx, 'overlapping copy');
        be.free(wx);
        ref.free(rx);
      });

      it('sum and sumSquares agree to double rounding', () => {
        for (const length of LENGTHS) {
          const x = randomValues(rng, length, false);
          const [wx, rx] = pair(be, x);
          let absSum = 0;
          for (let i = 0; i < length; i++) absSum += Math.abs(x[i]) + x[i] * x[i];
          // Double accumulation in another order: differences are a few ulps of the absolute sum.
          const tol = 1e-13 * (absSum + 1);
          assert.ok(Math.abs(be.sum(wx, length) - ref.sum(rx, length)) <= tol, `sum ${length}`);
          assert.ok(
            Math.abs(be.sumSquares(wx, length) - ref.sumSquares(rx, length)) <= tol,
            `sumSquares ${length}`,
          );
          be.free(wx);
          ref.free(rx);
        }
      });

      it('channelSums (to float rounding) and channelAffine (exactly)', () => {
        for (const [n, channels, spatial] of [
          [1, 1, 1],
          [2, 3, 5],
          [4, 16, 49],
          [3, 5, 7],
          [8, 64, 144],
        ]) {
          const total = n * channels * spatial;
          const [x, rx] = pair(be, randomValues(rng, total, false));
          const [y, ry] = pair(be, randomValues(rng, total, false));
          for (const useY of [false, true]) {
            const [s, rs] = pair(be, new Float32Array(channels));
            const [sb, rsb] = pair(be, new Float32Array(channels));
            be.channelSums(x, useY ? y : null, n, channels, spatial, s, sb);
            ref.channelSums(rx, useY ? ry : null, n, channels, spatial, rs, rsb);
            // The double sums differ by reassociation only; after rounding to float, by at most one ulp.
            const tol = (v: number) => 2.4e-7 * Math.abs(v) + 1e-9 * total;
            assertClose(s, rs, (i) => tol(rs[i]), `channelSums sums ${n}x${channels}x${spatial}`);
            assertClose(
              sb,
              rsb,
              (i) => tol(rsb[i]),
              `channelSums sumsB ${n}x${channels}x${spatial} y=${useY}`,
            );
            for (const v of [s, sb]) be.free(v);
            for (const v of [rs, rsb]) ref.free(v);
          }
          const [mul, rmul] = pair(be, randomValues(rng, channels, false));
          const [add, radd] = pair(be, randomValues(rng, channels, false));
          const [out, rout] = pair(be, new Float32Array(total));
          be.channelAffine(x, mul, add, n, channels, spatial, out);
          ref.channelAffine(rx, rmul, radd, n, channels, spatial, rout);
          assertExact(out, rout, `channelAffine ${n}x${channels}x${spatial}`);
          for (const v of [x, y, mul, add, out]) be.free(v);
          for (const v of [rx, ry, rmul, radd, rout]) ref.free(v);
        }
      });

      it('adam matches exactly (with and without weight decay)', () => {
        for (const length of [1, 7, 1000, 20001]) {
          for (const [step, weightDecay] of [
            [1, 0],
            [10, 0.01],
          ]) {
            const hp = { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, step, weightDecay };
            const [p, rp] = pair(be, randomValues(rng, length, false));
            const [g, rg] = pair(be, randomValues(rng, length, false));
            const [m, rm] = pair(
              be,
              randomValues(rng, length, false).map((v) => v * 0.1),
            );
            const [v, rv] = pair(
              be,
              randomValues(rng, length, false).map((u) => u * u * 0.01),
            );
            for (let t = 0; t < 3; t++) {
              be.adam(p, g, m, v, { ...hp, step: step + t }, length);
              ref.adam(rp, rg, rm, rv, { ...hp, step: step + t }, length);
            }
            assertExact(m, rm, `adam m ${length}`);
            assertExact(v, rv, `adam v ${length}`);
            assertExact(p, rp, `adam param ${length}`);
            for (const x of [p, g, m, v]) be.free(x);
            for (const x of [rp, rg, rm, rv]) ref.free(x);
          }
        }
      });

      /** BayesBiNN natural parameters around every threshold the kernels test: 0, 9.5 (tanh), 18.5 (skip). */
      function lambdas(length: number): Float32Array {
        const edges = [0, 9.5, -9.5, 9.4999995, -9.4999995, 18.5, -18.5, 18.500002, 10, -10, 1e7, -1e7];
        return Float32Array.from({ length }, () =>
          rng.uniform() < 0.2 ? edges[rng.int(edges.length)] : (rng.uniform() * 2 - 1) * 25,
        );
      }

      it('vispaProject matches exactly: ranks 0 to 5, zero and NaN weights, threads split', () => {
        for (const [rank, length] of [
          [0, 7],
          [1, 1000],
          [3, 70001],
          [5, 33],
        ]) {
          const mValues = randomValues(rng, length, false);
          const zValues = randomValues(rng, rank * length, false);
          // A weight with m = z = 0 restarts at +1; one with a NaN stays NaN; a tiny m whose square underflows.
          mValues[0] = 0;
          for (let k = 0; k < rank; k++) zValues[k * length] = 0;
          if (length > 2) mValues[1] = Number.NaN;
          if (length > 3) mValues[2] = 1e-30;
          const [m, rm] = pair(be, mValues);
          const [z, rz] = pair(be, zValues.length > 0 ? zValues : new Float32Array(1));
          const invScale = 1 / 7;
          be.vispaProject(m, rank > 0 ? z : null, rank, invScale, length);
          ref.vispaProject(rm, rank > 0 ? rz : null, rank, invScale, length);
          assertExact(m, rm, `vispaProject m, rank ${rank}, length ${length}`);
          assertExact(z, rz, `vispaProject z, rank ${rank}, length ${length}`);
          assert.equal(m[0], 1);
          for (const x of [m, z]) be.free(x);
          for (const x of [rm, rz]) ref.free(x);
        }
      });

      it('bopUpdate matches exactly: the same momentum, flips and count', () => {
        for (const length of [1, 7, 1000, 20001]) {
          for (const [gamma, threshold] of [
            [1e-4, 1e-8],
            [0.5, 0],
          ]) {
            const signs = Float32Array.from({ length }, () => (rng.uniform() < 0.5 ? 1 : -1));
            const [w, rw] = pair(be, signs);
            const [m, rm] = pair(
              be,
              randomValues(rng, length, false).map((v) => v * 1e-7),
            );
            const [g, rg] = pair(
              be,
              randomValues(rng, length, false).map((v) => v * 1e-4),
            );
            let flips = 0;
            let rflips = 0;
            for (let t = 0; t < 3; t++) {
              flips += be.bopUpdate(w, m, g, gamma, threshold, length);
              rflips += ref.bopUpdate(rw, rm, rg, gamma, threshold, length);
            }
            const what = `bopUpdate ${length}, gamma ${gamma}`;
            assert.equal(flips, rflips, `${what}: flips`);
            assert.ok(
              length < 100 || (flips > 0 && flips < 3 * length),
              `${what}: some weights flip, not all`,
            );
            assertExact(m, rm, `${what}: m`);
            assertExact(w, rw, `${what}: w`);
            for (const x of [w, m, g]) be.free(x);
            for (const x of [rw, rm, rg]) ref.free(x);
          }
        }
      });

      it('bayesBinnSaturated matches exactly: the same samples and the same pending list', () => {
        for (const length of [1, 7, 1000, 20001]) {
          const [lambda, rlambda] = pair(be, lambdas(length));
          const [sample, rsample] = pair(be, randomValues(rng, length, false));
          const pending = be.allocInt32(length);
          const rpending = ref.allocInt32(length);
          const skip = 18.5 + 10 * 1e-10;
          const count = be.bayesBinnSaturated(lambda, sample, skip, pending, length);
          assert.equal(
            count,
            ref.bayesBinnSaturated(rlambda, rsample, skip, rpending, length),
            `count ${length}`,
          );
          assert.ok(length < 100 || (count > 0 && count < length), 'both kinds of weight occur');
          assertExact(sample, rsample, `bayesBinnSaturated sample ${length}`);
          assertExact(pending.subarray(0, count), rpending.subarray(0, count), `pending ${length}`);
          for (const x of [lambda, sample, pending]) be.free(x);
          for (const x of [rlambda, rsample, rpending]) ref.free(x);
        }
      });

      it('bayesBinnUpdate matches exactly (float32 scale, with and without momentum): lambda, mu, velocity, pending', () => {
        for (const length of [1, 7, 1000, 20001]) {
          for (const momentum of [0, 0.9]) {
            const values = lambdas(length);
            const [lambda, rlambda] = pair(be, values);
            const [mu, rmu] = pair(
              be,
              values.map((l) => Math.fround(Math.tanh(l))),
            );
            const [prior, rprior] = pair(be, lambdas(length));
            const [grad, rgrad] = pair(
              be,
              randomValues(rng, length, false).map((g) => g * 1e-3),
            );
            // Relaxed samples: mostly +-1, some inside (-1, 1).
            const samples = Float32Array.from({ length }, () =>
              rng.uniform() < 0.7 ? (rng.uniform() < 0.5 ? 1 : -1) : rng.uniform() * 2 - 1,
            );
            const [sample, rsample] = pair(be, samples);
            const [velocity, rvelocity] = pair(be, randomValues(rng, length, false));
            const pending = be.allocInt32(length);
            const rpending = ref.allocInt32(length);
            const pendingLambda = be.alloc(length);
            const rpendingLambda = ref.alloc(length);
            const hp = {
              temperature: 1e-10,
              trainSetSize: 54000,
              learningRate: 1e-4,
              klReweight: 1,
              momentum,
              correction: momentum > 0 ? 1 - momentum ** 3 : 1,
            };
            const v = momentum > 0 ? velocity : null;
            const rv = momentum > 0 ? rvelocity : null;
            const count = be.bayesBinnUpdate(
              lambda,
              mu,
              prior,
              grad,
              sample,
              v,
              hp,
              pending,
              pendingLambda,
              length,
            );
            const rcount = ref.bayesBinnUpdate(
              rlambda,
              rmu,
              rprior,
              rgrad,
              rsample,
              rv,
              hp,
              rpending,
              rpendingLambda,
              length,
            );
            const what = `bayesBinnUpdate ${length}, momentum ${momentum}`;
            assert.equal(count, rcount, `${what}: count`);
            assertExact(lambda, rlambda, `${what}: lambda`);
            assertExact(mu, rmu, `${what}: mu`);
            assertExact(velocity, rvelocity, `${what}: velocity`);
            assertExact(pending.subarray(0, count), rpending.subarray(0, count), `${what}: pending`);
            assertExact(
              pendingLambda.subarray(0, count),
              rpendingLambda.subarray(0, count),
              `${what}: pending lambda`,
            );
            for (const x of [lambda, mu, prior, grad, sample, velocity, pending, pendingLambda]) be.free(x);
            for (const x of [rlambda, rmu, rprior, rgrad, rsample, rvelocity, rpending, rpendingLambda])
              ref.free(x);
          }
        }
      });

      const WIDTHS = [1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200];

      it('packSigns matches exactly and writes zero padding', () => {
        for (const rows of [1, 2, 3, 7]) {
          for (const cols of WIDTHS) {
            const words = packedWords(cols);
            const [x, rx] = pair(be, randomValues(rng, rows * cols));
            const out = be.allocUint32(rows * words);
            out.fill(0xffffffff); // padding must be overwritten, not left alone
            const rout = ref.allocUint32(rows * words);
            be.packSigns(x, rows, cols, out);
            ref.packSigns(rx, rows, cols, rout);
            assertExact(out, rout, `packSigns ${rows}x${cols}`);
            for (let r = 0; r < rows; r++) {
              for (let c = cols; c < words * 32; c++) {
                const bit = (out[r * words + (c >>> 5)] >>> (c & 31)) & 1;
                assert.equal(bit, 0, `packSigns ${rows}x${cols}: padding bit ${c} of row ${r} is set`);
              }
            }
            be.free(x);
            be.free(out);
            ref.free(rx);
            ref.free(rout);
          }
        }
      });

      /** Packs random signs of an rows x k matrix in both backends. */
      function packedPair(rows: number, k: number): [Uint32Array, Uint32Array] {
        const [x, rx] = pair(be, randomValues(rng, rows * k));
        const words = packedWords(k);
        const w = be.allocUint32(rows * words);
        const r = ref.allocUint32(rows * words);
        be.packSigns(x, rows, k, w);
        ref.packSigns(rx, rows, k, r);
        be.free(x);
        ref.free(rx);
        return [w, r];
      }

      it('binaryGemm matches exactly across word-straddling k and odd row counts', () => {
        const shapes: [number, number, number][] = [];
        for (const k of [...WIDTHS, 300]) {
          for (const [m, n] of [
            [1, 1],
            [2, 4],
            [3, 5],
            [5, 9],
            [7, 3],
            [4, 8],
          ])
            shapes.push([m, n, k]);
        }
        shapes.push([33, 65, 2048], [3, 600, 2048], [9, 7, 4000], [0, 3, 5], [3, 0, 5], [2, 3, 0]);
        for (const [m, n, k] of shapes) {
          const [a, ra] = packedPair(m, k);
          const [b, rb] = packedPair(n, k);
          const c = be.allocInt32(m * n);
          const rc = ref.allocInt32(m * n);
          be.binaryGemm(m, n, k, a, b, c);
          ref.binaryGemm(m, n, k, ra, rb, rc);
          assertExact(c, rc, `binaryGemm ${m}x${n}x${k}`);
          for (const x of [a, b, c]) be.free(x);
          for (const x of [ra, rb, rc]) ref.free(x);
        }
      });

      it('binaryGemm equals the +-1 dot product of the signs', () => {
        const [m, n, k] = [3, 5, 70];
        const x = randomValues(rng, m * k);
        const y = randomValues(rng, n * k);
        const [wx] = pair(be, x);
        const [wy] = pair(be, y);
        const a = be.allocUint32(m * packedWords(k));
        const b = be.allocUint32(n * packedWords(k));
        const c = be.allocInt32(m * n);
        be.packSigns(wx, m, k, a);
        be.packSigns(wy, n, k, b);
        be.binaryGemm(m, n, k, a, b, c);
        const s = (v: number) => (v >= 0 ? 1 : -1);
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let dot = 0;
            for (let p = 0; p < k; p++) dot += s(x[i * k + p]) * s(y[j * k + p]);
            assert.equal(c[i * n + j], dot);
          }
        }
        for (const v of [wx, wy, a, b, c]) be.free(v);
      });
    });
  }
}

for (const backend of BACKENDS_UNDER_TEST) {
  const setup = backend.setups[backend.setups.length - 1];
  describe(`${describeSetup(backend, setup)}: memory`, () => {
    let be: Backend;
    before(async () => {
      be = await backend.create(setup);
    });
    after(() => be.dispose());

    it('allocates zero-filled buffers of each type, even when reusing freed blocks, and counts their bytes', () => {
      assert.equal(be.bytesInUse(), 0);
      const x = be.alloc(100);
      x.fill(7);
      be.free(x);
      const y = be.alloc(100);
      assert.ok(y instanceof Float32Array);
      assert.ok(y.every((v) => v === 0));
      const i = be.allocInt32(3);
      const u = be.allocUint32(5);
      assert.ok(i instanceof Int32Array && u instanceof Uint32Array);
      assert.ok(i.every((v) => v === 0) && u.every((v) => v === 0));
      assert.equal(be.bytesInUse(), 400 + 12 + 20);
      for (const v of [y, i, u]) be.free(v);
      assert.equal(be.bytesInUse(), 0);
    });

    it('throws on double free, foreign buffers, subarrays and bad lengths', () => {
      const x = be.alloc(8);
      assert.throws(() => be.free(new Float32Array(8)), /did not allocate/);
      assert.throws(() => be.free(x.subarray(1)), /did not allocate/);
      be.free(x);
      assert.throws(() => be.free(x), /did not allocate/);
      assert.throws(() => be.alloc(-1), RangeError);
      assert.throws(() => be.alloc(1.5), RangeError);
      assert.equal(be.bytesInUse(), 0);
    });

    it('leaks nothing over a series of allocations and kernel calls', () => {
      const start = be.bytesInUse();
      const held = be.alloc(10); // something alive across the series
      for (let round = 0; round < 20; round++) {
        const a = be.alloc(64 * 64);
        const b = be.alloc(64 * 64);
        const c = be.alloc(64 * 64);
        be.fill(a, 1, a.length);
        be.fill(b, 2, b.length);
        be.gemm('nt', 64, 64, 64, a, b, c, false);
        const bits = be.allocUint32(64 * packedWords(64));
        be.packSigns(c, 64, 64, bits);
        const out = be.allocInt32(64 * 64);
        be.binaryGemm(64, 64, 64, bits, bits, out);
        be.sum(c, c.length);
        for (const v of [a, b, c, bits, out]) be.free(v);
      }
      be.free(held);
      assert.equal(be.bytesInUse(), start);
    });

    it('refuses use after dispose', async () => {
      const other = await backend.create(setup);
      const x = other.alloc(4);
      other.dispose();
      assert.throws(() => other.fill(x, 1, 4), /after dispose/);
      assert.throws(() => other.alloc(1), /after dispose/);
    });
  });
}

for (const backend of BACKENDS_UNDER_TEST) {
  describe(`${backend.name}: results do not depend on the setup`, () => {
    it(`gemm gives bit-identical results at every thread count (${backend.setups.length} setups)`, async () => {
      const instances = await Promise.all(backend.setups.map((s) => backend.create(s)));
      const rng = new Rng(7);
      try {
        for (const [m, n, k] of [
          [100, 300, 200],
          [300, 20, 50],
          [3, 50, 70],
          [9, 9, 9],
          [13, 9, 3001],
        ]) {
          for (const layout of ['nn', 'nt', 'tn'] as GemmLayout[]) {
            const values = [
              randomValues(rng, m * k, false),
              randomValues(rng, k * n, false),
              randomValues(rng, m * n, false),
            ];
            const results = instances.map((be) => {
              const [a, b, c] = values.map((v) => {
                const x = be.alloc(v.length);
                x.set(v);
                return x;
              });
              be.gemm(layout, m, n, k, a, b, c, true);
              const out = Float32Array.from(c);
              for (const x of [a, b, c]) be.free(x);
              return out;
            });
            // Within one instruction-set level (the native levels' tiles and fused multiply-adds differ).
            results.forEach((r, i) => {
              const first = backend.setups.findIndex((s) => s.level === backend.setups[i].level);
              assertExact(
                r,
                results[first],
                `gemm ${layout} ${m}x${n}x${k}, ${describeSetup(backend, backend.setups[i])}`,
              );
            });
          }
        }
      } finally {
        for (const be of instances) be.dispose();
      }
    });
  });
}
