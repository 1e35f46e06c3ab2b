/**
 * The integer reference of every float-free kernel: plain TypeScript, one function per kernel of
 * src/kernels/float-free, each the exact specification of its twin (randomized equality tests bind them).
 * All arithmetic is on integers well inside the range where JavaScript numbers are exact (|x| < 2^53);
 * 32-bit wrap-around never occurs for the sizes the method accepts, and 32-bit mixing uses Math.imul.
 *
 * Layouts (row-major; p-strides are multiples of 16, packed rows follow backend.ts's bit convention:
 * words(k) = ceil(k/128)*4 uint32 words per row, bit j of word w is column 32w + j, a set bit is -1):
 *   x      int8  [n][p]        centred pixels (byte - 128), 0 past the k features
 *   xp     uint32[ceil(n/2)][p] example pairs of x: low int16 half example 2q, high half 2q+1
 *   h      int16 [rows][p]     counters; the weight is sgn(h) = -1 for h < 0, +1 otherwise; 0 past the columns
 *   w      uint32[rows][words(cols)] packed sgn(h)
 *   z      int32 [n][zs]       pre-activations
 *   act, gate uint32 [n][words(rows)] packed signs and straight-through gates of a hidden layer
 *   g, ex  int32 [n][gs]       errors before quantisation
 *   e      int8  [n][es]       quantised errors
 *   pairs  uint32[es][ceil(n/2)] example pairs of e (as xp)
 */

/** floor(a / b) for b > 0, exact for safe integers. */
export function floorDiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  while (q * b > a) q--;
  while ((q + 1) * b <= a) q++;
  return q;
}

/** ceil(a / b) for b > 0. */
export function ceilDiv(a: number, b: number): number {
  return -floorDiv(-a, b);
}

/** Number of significant bits of v >= 0. */
export function bitLength(v: number): number {
  let bits = 0;
  while (v >= 1) {
    v = Math.floor(v / 2);
    bits++;
  }
  return bits;
}

/** Power-of-two exponent nearest to t: k = floor(log2 t), plus one when t >= 1.5 * 2^k; 0 for t <= 1. */
export function roundLog2(t: number): number {
  if (t <= 1) return 0;
  const k = bitLength(t) - 1;
  return Math.floor(t / 2 ** (k - 1)) % 2 === 1 ? k + 1 : k;
}

/** The murmur3 finalizer (a bijection of 32-bit integers). */
export function fmix32(h: number): number {
  h = (h ^ (h >>> 16)) >>> 0;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Seed of lane `lane` of row `row`'s stream under `key`; never 0. */
export function laneSeed(key: number, row: number, lane: number): number {
  const s = fmix32((key ^ fmix32((Math.imul(row, 4) + lane + 0x9e3779b9) >>> 0)) >>> 0);
  return s === 0 ? 0x6d2b79f5 : s;
}

/** One xorshift32 step (shifts 13, 17, 5). */
export function xorshift32(x: number): number {
  x = (x ^ (x << 13)) >>> 0;
  x = (x ^ (x >>> 17)) >>> 0;
  return (x ^ (x << 5)) >>> 0;
}

/** 32-bit words of a packed row of `cols` signs. */
export function words(cols: number): number {
  return Math.ceil(cols / 128) * 4;
}

/** Round up to a multiple of 16. */
export function pad16(n: number): number {
  return Math.ceil(n / 16) * 16;
}

/**
 * The row stride the method uses for n columns: a multiple of 16, plus 16 when that is a multiple of 256, so
 * that rows of 2048 int16 counters are not 4 KiB apart (a power-of-two stride maps the column walks of the
 * backward kernels onto a few cache sets).
 */
export function rowStride(n: number): number {
  const p = pad16(n);
  return p % 256 === 0 ? p + 16 : p;
}

/**
 * The softmax table of powers of two: lut[f] = round(65536 * 2^(-f/256)), f = 0..255. A constant of the
 * method (computed once here; the kernels read it as data).
 */
export function powerTable(): Int32Array {
  const lut = new Int32Array(256);
  for (let f = 0; f < 256; f++) lut[f] = Math.round(65536 * 2 ** (-f / 256));
  return lut;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

function bit(bits: Uint32Array, base: number, j: number): number {
  return (bits[base + (j >>> 5)] >>> (j & 31)) & 1;
}

/** ff_input: x = byte - 128 in place (columns < k), 0 beyond; xp = example pairs. */
export function ffInput(n: number, k: number, p: number, x: Int8Array, xp: Uint32Array): void {
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < p; j++) x[b * p + j] = j < k ? (x[b * p + j] & 0xff) - 128 : 0;
  }
  for (let q = 0; q < Math.ceil(n / 2); q++) {
    for (let j = 0; j < p; j++) {
      const lo = x[2 * q * p + j] & 0xffff;
      const hi = 2 * q + 1 < n ? x[(2 * q + 1) * p + j] & 0xffff : 0;
      xp[q * p + j] = (lo | (hi << 16)) >>> 0;
    }
  }
}

/** ff_dense_pixels: z[b][i] = sum_j sgn(h[i][j]) x[b][j]. */
export function ffDensePixels(
  n: number,
  rows: number,
  p: number,
  x: Int8Array,
  h: Int16Array,
  z: Int32Array,
  zs: number,
): void {
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let j = 0; j < p; j++) s += h[i * p + j] < 0 ? -x[b * p + j] : x[b * p + j];
      z[b * zs + i] = s;
    }
  }
}

/** ff_dense_bits: z[b][i] = k - 2 popcount(a[b] XOR w[i]), i.e. the +-1 dot product over k columns. */
export function ffDenseBits(
  n: number,
  rows: number,
  k: number,
  a: Uint32Array,
  w: Uint32Array,
  z: Int32Array,
  zs: number,
): void {
  const wd = words(k);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let j = 0; j < k; j++) s += bit(a, b * wd, j) === bit(w, i * wd, j) ? 1 : -1;
      z[b * zs + i] = s;
    }
  }
}

/** ff_hidden: integer centring, the sign activation and the straight-through gate (see forward.c). */
export function ffHidden(
  n: number,
  rows: number,
  z: Int32Array,
  zs: number,
  mode: 0 | 1,
  running: Int32Array,
  shift: number,
  mu: Int32Array,
  gexp: Int32Array,
  act: Uint32Array,
  gate: Uint32Array,
): void {
  const wd = words(rows);
  for (let i = 0; i < rows; i++) {
    if (mode === 0) {
      mu[i] = ceilDiv(running[i], 256);
      continue;
    }
    let s = 0;
    for (let b = 0; b < n; b++) s += z[b * zs + i];
    const m = ceilDiv(s, n);
    let dev = 0;
    for (let b = 0; b < n; b++) dev += Math.abs(z[b * zs + i] - m);
    mu[i] = m;
    gexp[i] = roundLog2(Math.floor((5 * dev) / (4 * n)));
    const m8 = floorDiv(s * 256, n);
    running[i] += (m8 - running[i]) >> shift;
  }
  for (let b = 0; b < n; b++) {
    for (let w = 0; w < wd; w++) {
      act[b * wd + w] = 0;
      if (mode !== 0) gate[b * wd + w] = 0;
    }
    for (let i = 0; i < rows; i++) {
      const d = z[b * zs + i] - mu[i];
      const word = b * wd + (i >>> 5);
      if (d < 0) act[word] = (act[word] | (1 << (i & 31))) >>> 0;
      if (mode !== 0 && Math.abs(d) <= 2 ** gexp[i]) gate[word] = (gate[word] | (1 << (i & 31))) >>> 0;
    }
  }
}

/** ff_output_train: centred logits (Q8), the integer softmax and its error (see forward.c). */
export function ffOutputTrain(
  n: number,
  classes: number,
  z: Int32Array,
  zs: number,
  labels: Int32Array,
  lut: Int32Array,
  running: Int32Array,
  shift: number,
  stats: Int32Array,
  mu: Int32Array,
  u: Int32Array,
  g: Int32Array,
  project: boolean,
): void {
  let dev = 0;
  for (let k = 0; k < classes; k++) {
    let s = 0;
    for (let b = 0; b < n; b++) s += z[b * zs + k];
    const m = ceilDiv(s, n);
    mu[k] = m;
    for (let b = 0; b < n; b++) dev += Math.abs(z[b * zs + k] - m);
    running[k] += (floorDiv(s * 256, n) - running[k]) >> shift;
  }
  const t = Math.floor((5 * dev) / (4 * n * classes));
  const e = roundLog2(t);
  stats[0] += (Math.min(t, 2 ** 22) * 256 - stats[0]) >> shift;
  stats[1] = e;
  for (let b = 0; b < n; b++) {
    let top = -(2 ** 31);
    for (let k = 0; k < classes; k++) {
      const v = ((z[b * zs + k] - mu[k]) * 256) >> e;
      u[b * classes + k] = v;
      if (v > top) top = v;
    }
    let sum = 0;
    for (let k = 0; k < classes; k++) {
      const d = Math.floor(((top - u[b * classes + k]) * 369) / 256);
      const ek = d >= 17 * 256 ? 0 : lut[d & 255] >> (d >> 8);
      g[b * classes + k] = ek;
      sum += ek;
    }
    for (let k = 0; k < classes; k++) {
      const pk = Math.floor((g[b * classes + k] * 65536) / sum);
      g[b * classes + k] = pk - (k === labels[b] ? 65536 : 0);
    }
  }
  if (project) {
    for (let k = 0; k < classes; k++) {
      let su = 0;
      for (let b = 0; b < n; b++) su += u[b * classes + k];
      const mean = floorDiv(su, n);
      let num = 0n;
      let den = 0n;
      for (let b = 0; b < n; b++) {
        const c = BigInt(u[b * classes + k] - mean);
        num += BigInt(g[b * classes + k]) * c;
        den += c * c;
      }
      while (num >= 1n << 46n || -num >= 1n << 46n) {
        num /= 2n; // BigInt division truncates toward zero, as C's does
        den /= 2n;
      }
      if (den <= 0n) continue;
      const ratio = (num * 65536n) / den;
      for (let b = 0; b < n; b++) {
        const c = BigInt(u[b * classes + k] - mean);
        g[b * classes + k] -= Number((c * ratio) >> 16n);
      }
    }
  }
}

/** ff_output_eval: raw[b][k] = 256 z - running_k. */
export function ffOutputEval(
  n: number,
  classes: number,
  z: Int32Array,
  zs: number,
  running: Int32Array,
  raw: Int32Array,
): void {
  for (let b = 0; b < n; b++) {
    for (let k = 0; k < classes; k++) raw[b * classes + k] = z[b * zs + k] * 256 - running[k];
  }
}

/**
 * ff_center_max: gate; centre each column (floor of its mean); with `act` (the output signs), project each
 * column off its sign pattern (minus a * floor(sum_b g a / n)). Returns max |g|.
 */
export function ffCenterMax(
  n: number,
  cols: number,
  g: Int32Array,
  gs: number,
  gate: Uint32Array | null,
  center: boolean,
  act: Uint32Array | null,
): number {
  const wd = words(cols);
  let max = 0;
  const sign = (b: number, j: number): number => (act !== null && bit(act, b * wd, j) === 1 ? -1 : 1);
  for (let j = 0; j < cols; j++) {
    let s = 0;
    for (let b = 0; b < n; b++) {
      if (gate !== null && bit(gate, b * wd, j) === 0) g[b * gs + j] = 0;
      s += g[b * gs + j];
    }
    const c = center ? floorDiv(s, n) : 0;
    let proj = 0;
    for (let b = 0; b < n; b++) {
      g[b * gs + j] -= c;
      proj += sign(b, j) * g[b * gs + j];
    }
    proj = act !== null ? floorDiv(proj, n) : 0;
    for (let b = 0; b < n; b++) {
      g[b * gs + j] -= sign(b, j) * proj;
      max = Math.max(max, Math.abs(g[b * gs + j]));
    }
  }
  return max;
}

/** ff_quantize: e = clamp(round(g / 2^q), -127, 127) with q = max(0, bitlen(max) - 7); returns q. */
export function ffQuantize(
  n: number,
  cols: number,
  g: Int32Array,
  gs: number,
  max: number,
  e: Int8Array,
  es: number,
  pairs: Uint32Array | null,
): number {
  const q = Math.max(0, bitLength(max) - 7);
  const half = q > 0 ? 2 ** (q - 1) : 0;
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < es; j++) e[b * es + j] = j < cols ? clamp((g[b * gs + j] + half) >> q, -127, 127) : 0;
  }
  if (pairs !== null) {
    const hn = Math.ceil(n / 2);
    for (let j = 0; j < es; j++) {
      for (let r = 0; r < hn; r++) {
        const lo = e[2 * r * es + j] & 0xffff;
        const hi = 2 * r + 1 < n ? e[(2 * r + 1) * es + j] & 0xffff : 0;
        pairs[j * hn + r] = (lo | (hi << 16)) >>> 0;
      }
    }
  }
  return q;
}

/** ff_backward_input: ex[b][j] = sum_i sgn(h[i][j]) e[b][i], every column j < p. */
export function ffBackwardInput(
  n: number,
  rows: number,
  p: number,
  h: Int16Array,
  e: Int8Array,
  es: number,
  ex: Int32Array,
): void {
  for (let b = 0; b < n; b++) {
    for (let j = 0; j < p; j++) {
      let s = 0;
      for (let i = 0; i < rows; i++) s += h[i * p + j] < 0 ? -e[b * es + i] : e[b * es + i];
      ex[b * p + j] = s;
    }
  }
}

/**
 * One row's random stream: returns r(j) for j = 0.. in order. Lane j % 4 of the (j/4 + 1)-th xorshift32 step
 * of the row's four lanes.
 */
function rowStream(key: number, row: number): (j: number) => number {
  const lanes = [0, 1, 2, 3].map((l) => laneSeed(key, row, l));
  return (j) => {
    if (j % 4 === 0) for (let l = 0; l < 4; l++) lanes[l] = xorshift32(lanes[l]);
    return lanes[j % 4];
  };
}

/** The counter update of one weight: h - ((dw + (r mod 2^shift)) >> shift), clamped to [-clip, clip]. */
export function counterUpdate(h: number, dw: number, r: number, shift: number, clip: number): number {
  const mask = 2 ** shift - 1;
  const delta = Math.floor((dw + (r % (mask + 1))) / 2 ** shift);
  return clamp(h - delta, -clip, clip);
}

/**
 * ff_update_bits (with ff_row_tables and ff_act_nibbles): dW = e^T x for the +-1 inputs given as packed signs
 * act ([n][words(cols)]), counters updated with stochastic rounding, packed signs w rewritten.
 */
export function ffUpdateBits(
  n: number,
  rows: number,
  cols: number,
  p: number,
  e: Int8Array,
  es: number,
  act: Uint32Array,
  h: Int16Array,
  w: Uint32Array,
  key: number,
  shift: number,
  clip: number,
): void {
  const wd = words(cols);
  for (let i = 0; i < rows; i++) {
    const next = rowStream(key, i);
    for (let ww = 0; ww < wd; ww++) w[i * wd + ww] = 0;
    for (let j = 0; j < p; j++) {
      const r = next(j);
      if (j >= cols) continue;
      let dw = 0;
      for (let b = 0; b < n; b++) dw += bit(act, b * wd, j) === 1 ? -e[b * es + i] : e[b * es + i];
      const v = counterUpdate(h[i * p + j], dw, r, shift, clip);
      h[i * p + j] = v;
      if (v < 0) w[i * wd + (j >>> 5)] = (w[i * wd + (j >>> 5)] | (1 << (j & 31))) >>> 0;
    }
  }
}

/** ff_update_pixels: dW = e^T x for the centred pixels, from the pair layouts; counters updated. */
export function ffUpdatePixels(
  n: number,
  rows: number,
  cols: number,
  p: number,
  ep: Uint32Array,
  xp: Uint32Array,
  h: Int16Array,
  key: number,
  shift: number,
  clip: number,
): void {
  const hn = Math.ceil(n / 2);
  const lo16 = (v: number): number => (v << 16) >> 16;
  const hi16 = (v: number): number => v >> 16;
  for (let i = 0; i < rows; i++) {
    const next = rowStream(key, i);
    for (let j = 0; j < p; j++) {
      const r = next(j);
      if (j >= cols) continue;
      let dw = 0;
      for (let q = 0; q < hn; q++) {
        const a = ep[i * hn + q];
        const x = xp[q * p + j];
        dw += lo16(a) * lo16(x) + hi16(a) * hi16(x);
      }
      h[i * p + j] = counterUpdate(h[i * p + j], dw, r, shift, clip);
    }
  }
}
