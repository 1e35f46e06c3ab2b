/**
 * The float-free wasm kernels, and the native ones at every instruction-set level this CPU runs, against their
 * integer reference (reference.ts): exact equality on random inputs, for sizes that straddle the SIMD widths (8 and 16 lanes), the 32-bit words and 128-bit rows, the
 * 4-example and 2-row blocks, and the int16 chunk flushes (256 examples, rows or vectors); on one thread and
 * split across three threads. Plus a hand-worked counter update with stochastic rounding.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../../tensor/rng.js';
import { createReferenceKernels, type FfBuffer, type FfKernels } from './kernels.js';
import {
  counterUpdate,
  laneSeed,
  pad16,
  powerTable,
  roundLog2,
  rowStride,
  words,
  xorshift32,
} from './reference.js';
import { loadNativeAddon } from '../../native/addon.js';
import { createNativeKernels } from './native-kernels.js';
import { createWasmKernels } from './wasm-kernels.js';

const native = loadNativeAddon();
const NATIVE_LEVELS = native.available ? native.levels : [];

type Kind = 'int8' | 'int16' | 'int32' | 'uint32';

/** Two buffers with the same contents: one from the kernels under test, one from the reference. */
function twin<K extends Kind>(
  fast: FfKernels,
  ref: FfKernels,
  kind: K,
  length: number,
  fill: (i: number) => number,
): [ReturnType<FfKernels[K]>, ReturnType<FfKernels[K]>] {
  const a = fast[kind](length) as ReturnType<FfKernels[K]>;
  const b = ref[kind](length) as ReturnType<FfKernels[K]>;
  for (let i = 0; i < length; i++) {
    const v = fill(i);
    a[i] = v;
    b[i] = v;
  }
  return [a, b];
}

function same(what: string, a: FfBuffer, b: FfBuffer): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${what}[${i}]: wasm ${a[i]}, reference ${b[i]}`);
  }
}

/** Random packed sign rows with zero padding bits. */
function bitsFill(rng: Rng, cols: number): (i: number) => number {
  const wd = words(cols);
  return (i) => {
    const w = i % wd;
    const valid = Math.max(0, Math.min(32, cols - 32 * w));
    const r = rng.nextUint32();
    return valid === 32 ? r : valid === 0 ? 0 : (r & ((1 << valid) - 1)) >>> 0;
  };
}

/** Random int16 counters (some exactly 0) with zero padding columns. */
function countersFill(rng: Rng, cols: number, p: number, bound = 3000): (i: number) => number {
  return (i) => (i % p >= cols ? 0 : rng.int(5) === 0 ? 0 : rng.int(2 * bound + 1) - bound);
}

const SIZES: readonly [number, number, number][] = [
  // [n, rows, cols]
  [1, 1, 1],
  [2, 2, 15],
  [3, 3, 16],
  [4, 4, 17],
  [5, 5, 31],
  [7, 7, 32],
  [8, 8, 33],
  [9, 17, 63],
  [4, 33, 64],
  [6, 10, 65],
  [5, 9, 127],
  [3, 6, 128],
  [9, 13, 129],
  [3, 6, 256], // a counter row stride (272) past the packed row (256 bits): cols a multiple of 256
  [2, 5, 512],
  [2, 3, 2100], // pixel-layer vector chunks (8 * 256 columns)
  [300, 5, 40], // example chunks of 256 in the update
  [5, 300, 24], // row chunks of 256 in the backward input
];

const SETUPS: { label: string; create: () => FfKernels }[] = [
  { label: 'wasm, one thread', create: () => createWasmKernels() },
  { label: 'wasm, three threads', create: () => createWasmKernels({ threads: 3, alwaysParallel: true }) },
  ...NATIVE_LEVELS.flatMap((level) => [
    { label: `native ${level}, one thread`, create: () => createNativeKernels({ level }) },
    {
      label: `native ${level}, three threads`,
      create: () => createNativeKernels({ level, threads: 3, alwaysParallel: true }),
    },
  ]),
];

for (const setup of SETUPS) {
  describe(`float-free kernels = integer reference (${setup.label})`, () => {
    let fast: FfKernels;
    const ref = createReferenceKernels();
    before(async () => {
      fast = setup.create();
      await fast.ready();
    });
    after(() => fast.dispose());

    it('ff_input: centred pixels and example pairs', () => {
      const rng = new Rng(11);
      for (const [n, , cols] of SIZES) {
        const p = pad16(cols);
        const [xa, xb] = twin(fast, ref, 'int8', n * p, () => rng.int(256) - 128);
        const [pa, pb] = twin(fast, ref, 'uint32', Math.ceil(n / 2) * p, () => rng.nextUint32());
        fast.input(n, cols, p, xa, pa);
        ref.input(n, cols, p, xb, pb);
        same(`x n=${n} k=${cols}`, xa, xb);
        same(`xp n=${n} k=${cols}`, pa, pb);
      }
    });

    it('ff_dense_pixels: 8-bit inputs against +-1 weights', () => {
      const rng = new Rng(12);
      for (const [n, rows, cols] of SIZES) {
        const p = pad16(cols);
        const [xa, xb] = twin(fast, ref, 'int8', n * p, (i) => (i % p < cols ? rng.int(256) - 128 : 0));
        const [ha, hb] = twin(fast, ref, 'int16', rows * p, countersFill(rng, cols, p));
        const zs = pad16(rows) + 3;
        const [za, zb] = twin(fast, ref, 'int32', n * zs, () => -7);
        fast.densePixels(n, rows, p, xa, ha, za, zs);
        ref.densePixels(n, rows, p, xb, hb, zb, zs);
        same(`z n=${n} rows=${rows} cols=${cols}`, za, zb);
      }
    });

    it('ff_dense_bits: XNOR/popcount', () => {
      const rng = new Rng(13);
      for (const [n, rows, cols] of SIZES) {
        const wd = words(cols);
        const [aa, ab] = twin(fast, ref, 'uint32', n * wd, bitsFill(rng, cols));
        const [wa, wb] = twin(fast, ref, 'uint32', rows * wd, bitsFill(rng, cols));
        const zs = rows + 1;
        const [za, zb] = twin(fast, ref, 'int32', n * zs, () => 5);
        fast.denseBits(n, rows, cols, aa, wa, za, zs);
        ref.denseBits(n, rows, cols, ab, wb, zb, zs);
        same(`z n=${n} rows=${rows} k=${cols}`, za, zb);
      }
    });

    it('ff_hidden: centring, signs, gates and running means (training and evaluation)', () => {
      const rng = new Rng(14);
      for (const [n, , cols] of SIZES) {
        const rows = cols; // channels
        for (const mode of [1, 0] as const) {
          const zs = pad16(rows);
          const spread = 1 + rng.int(3000);
          const [za, zb] = twin(
            fast,
            ref,
            'int32',
            n * zs,
            () => rng.int(2 * spread + 1) - spread + rng.int(50),
          );
          const [ra, rb] = twin(fast, ref, 'int32', rows, () => rng.int(20001) - 10000);
          const [ma, mb] = twin(fast, ref, 'int32', rows, () => 0);
          const [ga, gb] = twin(fast, ref, 'int32', rows, () => 0);
          const wd = words(rows);
          const [aa, ab] = twin(fast, ref, 'uint32', n * wd, () => 0xdeadbeef);
          const [ta, tb] = twin(fast, ref, 'uint32', n * wd, () => 0xdeadbeef);
          fast.hidden(n, rows, za, zs, mode, ra, 3, ma, ga, aa, ta);
          ref.hidden(n, rows, zb, zs, mode, rb, 3, mb, gb, ab, tb);
          const tag = `mode=${mode} n=${n} rows=${rows}`;
          same(`act ${tag}`, aa, ab);
          same(`gate ${tag}`, ta, tb);
          same(`mu ${tag}`, ma, mb);
          same(`gexp ${tag}`, ga, gb);
          same(`running ${tag}`, ra, rb);
        }
      }
    });

    it('ff_output_train and ff_output_eval: integer softmax and its error', () => {
      const rng = new Rng(15);
      const lut = powerTable();
      for (const [n, rows] of SIZES) {
        const classes = Math.max(2, rows % 12);
        const k = 1 + rng.int(3000);
        const zs = pad16(classes);
        const [za, zb] = twin(fast, ref, 'int32', n * zs, () => rng.int(2 * k + 1) - k);
        const [la, lb] = twin(fast, ref, 'int32', n, () => rng.int(classes));
        const [ta, tb] = twin(fast, ref, 'int32', 256, (i) => lut[i]);
        const [ra, rb] = twin(fast, ref, 'int32', classes, () => rng.int(2001) - 1000);
        const [sa, sb] = twin(fast, ref, 'int32', 2, () => rng.int(100000));
        const [ma, mb] = twin(fast, ref, 'int32', classes, () => 0);
        const [ua, ub] = twin(fast, ref, 'int32', n * classes, () => 0);
        const [ga, gb] = twin(fast, ref, 'int32', n * classes, () => 0);
        const project = n % 2 === 0;
        fast.outputTrain(n, classes, za, zs, la, ta, ra, 3, sa, ma, ua, ga, project);
        ref.outputTrain(n, classes, zb, zs, lb, tb, rb, 3, sb, mb, ub, gb, project);
        const tag = `n=${n} classes=${classes} project=${project}`;
        for (const [w, r, what] of [
          [ua, ub, 'u'],
          [ga, gb, 'g'],
          [ma, mb, 'mu'],
          [ra, rb, 'running'],
          [sa, sb, 'stats'],
        ] as const) {
          same(`${what} ${tag}`, w, r);
        }
        // Without the projection, each error row sums to about 0 (p sums to about 65536) and the label's
        // entry is p - 65536 < 0.
        for (let b = 0; b < n && !project; b++) {
          let s = 0;
          for (let c = 0; c < classes; c++) s += gb[b * classes + c];
          assert.ok(Math.abs(s) <= classes, `row ${b} sums to ${s}`);
          assert.ok(gb[b * classes + lb[b]] <= 0);
        }
        fast.outputEval(n, classes, za, zs, ra, ua);
        ref.outputEval(n, classes, zb, zs, rb, ub);
        same(`raw ${tag}`, ua, ub);
      }
    });

    it('ff_center_max + ff_quantize: gate, centring and int8 errors with a power-of-two scale', () => {
      const rng = new Rng(16);
      for (const [n, , cols] of SIZES) {
        for (const [center, gated, magnitude, project] of [
          [true, true, 100000, true],
          [false, true, 90, false],
          [true, false, 1 << 20, true],
          [false, false, 127, false],
          [true, true, 127, true],
        ] as const) {
          const gs = pad16(cols) + 16;
          const es = pad16(cols);
          const [ga, gb] = twin(fast, ref, 'int32', n * gs, () => rng.int(2 * magnitude + 1) - magnitude);
          const wd = words(cols);
          const [ba, bb] = twin(fast, ref, 'uint32', n * wd, bitsFill(rng, cols));
          const [sa, sb] = twin(fast, ref, 'uint32', n * wd, bitsFill(rng, cols));
          const [ea, eb] = twin(fast, ref, 'int8', n * es, () => 99);
          const hn = Math.ceil(n / 2);
          const [pa, pb] = twin(fast, ref, 'uint32', es * hn, () => 1);
          const qa = fast.centerQuantize(
            n,
            cols,
            ga,
            gs,
            gated ? ba : null,
            center,
            project ? sa : null,
            ea,
            es,
            pa,
          );
          const qb = ref.centerQuantize(
            n,
            cols,
            gb,
            gs,
            gated ? bb : null,
            center,
            project ? sb : null,
            eb,
            es,
            pb,
          );
          const tag = `n=${n} cols=${cols} center=${center} gate=${gated} project=${project}`;
          assert.equal(qa, qb, `q ${tag}`);
          same(`g ${tag}`, ga, gb);
          same(`e ${tag}`, ea, eb);
          same(`pairs ${tag}`, pa, pb);
          for (const v of eb) assert.ok(v >= -127 && v <= 127);
        }
      }
    });

    it('ff_backward_input: W^T e by masked additions', () => {
      const rng = new Rng(17);
      for (const [n, rows, cols] of SIZES) {
        const p = pad16(cols);
        const es = pad16(rows);
        const [ha, hb] = twin(fast, ref, 'int16', rows * p, countersFill(rng, cols, p));
        const [ea, eb] = twin(fast, ref, 'int8', n * es, (i) => (i % es < rows ? rng.int(255) - 127 : 0));
        const [xa, xb] = twin(fast, ref, 'int32', n * p, () => 3);
        fast.backwardInput(n, rows, p, ha, ea, es, xa);
        ref.backwardInput(n, rows, p, hb, eb, es, xb);
        same(`ex n=${n} rows=${rows} cols=${cols}`, xa, xb);
      }
    });

    it('ff_update_bits (row tables, input nibbles): counters, stochastic rounding and packed signs', () => {
      const rng = new Rng(18);
      for (const [n, rows, cols] of SIZES) {
        for (const [shift, clip] of [
          [rng.int(9), 32767],
          [rng.int(4), 40],
          [9 + rng.int(9), 32767],
        ] as const) {
          const p = rowStride(cols);
          const es = rowStride(rows);
          const wd = words(cols);
          const [aa, ab] = twin(fast, ref, 'uint32', n * wd, bitsFill(rng, cols));
          const [ea, eb] = twin(fast, ref, 'int8', n * es, (i) => (i % es < rows ? rng.int(255) - 127 : 0));
          const [ha, hb] = twin(fast, ref, 'int16', rows * p, countersFill(rng, cols, p, clip));
          const [wa, wb] = twin(fast, ref, 'uint32', rows * wd, () => 0xffffffff);
          const key = rng.nextUint32();
          fast.updateBits(n, rows, cols, p, ea, es, aa, ha, wa, key, shift, clip);
          ref.updateBits(n, rows, cols, p, eb, es, ab, hb, wb, key, shift, clip);
          const tag = `n=${n} rows=${rows} cols=${cols} shift=${shift} clip=${clip}`;
          same(`h ${tag}`, ha, hb);
          same(`w ${tag}`, wa, wb);
        }
      }
    });

    it('ff_update_pixels: int8 errors x 8-bit pixels, counters with stochastic rounding', () => {
      const rng = new Rng(19);
      for (const [n, rows, cols] of SIZES) {
        const p = pad16(cols);
        const es = pad16(rows);
        const hn = Math.ceil(n / 2);
        // Build the pair layouts through the reference (their own equality is tested above).
        const x = new Int8Array(n * p).map(() => rng.int(256) - 128);
        const xpRef = new Uint32Array(hn * p);
        ref.input(n, cols, p, x, xpRef);
        const g = new Int32Array(n * es).map(() => rng.int(2001) - 1000);
        const e = new Int8Array(n * es);
        const epRef = new Uint32Array(es * hn);
        ref.centerQuantize(n, rows, g, es, null, false, null, e, es, epRef);
        const [xa, xb] = twin(fast, ref, 'uint32', hn * p, (i) => xpRef[i]);
        const [pa, pb] = twin(fast, ref, 'uint32', es * hn, (i) => epRef[i]);
        const shift = 4 + rng.int(8);
        const [ha, hb] = twin(fast, ref, 'int16', rows * p, countersFill(rng, cols, p));
        const key = rng.nextUint32();
        fast.updatePixels(n, rows, cols, p, pa, xa, ha, key, shift, 32767);
        ref.updatePixels(n, rows, cols, p, pb, xb, hb, key, shift, 32767);
        same(`h n=${n} rows=${rows} cols=${cols} shift=${shift}`, ha, hb);
      }
    });
  });
}

describe('float-free integer helpers', () => {
  it('a counter update worked by hand: stochastic rounding of dW / 2^shift', () => {
    // dW = -37, shift 3: dW / 8 = -4.625, so delta is -5 with probability 5/8 and -4 with probability 3/8:
    // delta = floor((-37 + r) / 8) with r = the low 3 bits of the random number.
    // r = 0..2: floor(-37/8) = -5, floor(-36/8) = -5, floor(-35/8) = -5; r = 3..7: -34/8 .. -30/8 -> -5, -4 ...
    // (-37 + 3 = -34 -> -5; -37 + 5 = -32 -> -4): delta = -5 for r in 0..4, -4 for r in 5..7.
    const h = 100;
    assert.equal(counterUpdate(h, -37, 0b000, 3, 32767), 105);
    assert.equal(counterUpdate(h, -37, 0b100, 3, 32767), 105);
    assert.equal(counterUpdate(h, -37, 0b101, 3, 32767), 104);
    assert.equal(counterUpdate(h, -37, 0xfffffff7, 3, 32767), 104); // only the low 3 bits count
    // Expectation over r = 0..7: (5 * 5 + 3 * 4) / 8 = 4.625 = 37 / 8.
    let sum = 0;
    for (let r = 0; r < 8; r++) sum += counterUpdate(0, -37, r, 3, 32767);
    assert.equal(sum / 8, 37 / 8);
    // Positive dW, and clamping at the clip.
    assert.equal(counterUpdate(10, 12, 0, 2, 32767), 7); // 12/4 = 3 exactly, whatever r
    assert.equal(counterUpdate(10, 12, 3, 2, 32767), 7);
    assert.equal(counterUpdate(32760, -800, 0, 4, 32767), 32767);
    assert.equal(counterUpdate(-32760, 800, 15, 4, 32767), -32767);
  });

  it('the same update through the wasm kernel, with the random number it draws', () => {
    // One row, one column, one example: dW = e * x = -37 (x = +1), shift 3; the kernel draws r from lane 0
    // of row 0's stream: r = xorshift32(laneSeed(key, 0, 0)).
    const wasm = createWasmKernels();
    try {
      const key = 0x12345678;
      const r = xorshift32(laneSeed(key, 0, 0));
      const expected = counterUpdate(100, -37, r, 3, 32767);
      assert.ok(expected === 104 || expected === 105);
      const e = wasm.int8(16);
      e[0] = -37;
      const act = wasm.uint32(4); // bit clear: x = +1
      const h = wasm.int16(16);
      h[0] = 100;
      const w = wasm.uint32(4);
      wasm.updateBits(1, 1, 1, 16, e, 16, act, h, w, key, 3, 32767);
      assert.equal(h[0], expected);
      assert.equal(w[0], 0); // still positive
    } finally {
      wasm.dispose();
    }
  });

  it('roundLog2 rounds to the nearer power of two (ratio sense, 1.5 * 2^k rounds up)', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 1000].map(roundLog2),
      [0, 0, 1, 2, 2, 2, 3, 3, 3, 3, 4, 10],
    );
  });

  it('the power table holds 2^16 * 2^(-f/256)', () => {
    const lut = powerTable();
    assert.equal(lut[0], 65536);
    assert.equal(lut[128], Math.round(65536 / Math.SQRT2));
    assert.equal(lut[255], Math.round(65536 * 2 ** (-255 / 256)));
  });
});
