/**
 * Reference elementwise kernels and reductions. Each works on the first `length` entries; in-place use
 * (an output that is also an input) is fine because every entry depends only on the same index.
 */
import type { FloatArray, SignSurrogate } from '../backend.js';
import { need, sizes } from './check.js';

export function fill(x: FloatArray, value: number, length: number): void {
  need('fill', 'x', x, length);
  for (let i = 0; i < length; i++) x[i] = value;
}

export function copy(src: FloatArray, dst: FloatArray, length: number): void {
  need('copy', 'src', src, length);
  need('copy', 'dst', dst, length);
  for (let i = 0; i < length; i++) dst[i] = src[i];
}

/** y += alpha * x */
export function axpy(alpha: number, x: FloatArray, y: FloatArray, length: number): void {
  need('axpy', 'x', x, length);
  need('axpy', 'y', y, length);
  for (let i = 0; i < length; i++) y[i] += alpha * x[i];
}

/** x *= alpha */
export function scale(x: FloatArray, alpha: number, length: number): void {
  need('scale', 'x', x, length);
  for (let i = 0; i < length; i++) x[i] *= alpha;
}

export function multiply(a: FloatArray, b: FloatArray, out: FloatArray, length: number): void {
  need('multiply', 'a', a, length);
  need('multiply', 'b', b, length);
  need('multiply', 'out', out, length);
  for (let i = 0; i < length; i++) out[i] = a[i] * b[i];
}

export function clip(x: FloatArray, lo: number, hi: number, length: number): void {
  need('clip', 'x', x, length);
  for (let i = 0; i < length; i++) x[i] = Math.min(hi, Math.max(lo, x[i]));
}

/** +1 for x >= 0 (zero counts as positive), -1 otherwise. */
export function sign(x: FloatArray, out: FloatArray, length: number): void {
  need('sign', 'x', x, length);
  need('sign', 'out', out, length);
  for (let i = 0; i < length; i++) out[i] = x[i] >= 0 ? 1 : -1;
}

/** d sign(x)/dx as each surrogate defines it (docs/methods.md#surrogate-gradients). */
export function surrogateDerivative(surrogate: SignSurrogate, x: number): number {
  switch (surrogate) {
    case 'identity':
      return 1;
    case 'clipped-identity':
      return Math.abs(x) <= 1 ? 1 : 0;
    case 'approx-sign':
      return Math.max(0, 2 - 2 * Math.abs(x));
  }
}

export function signBackward(
  x: FloatArray,
  gradOutput: FloatArray,
  gradInput: FloatArray,
  surrogate: SignSurrogate,
  length: number,
): void {
  need('signBackward', 'x', x, length);
  need('signBackward', 'gradOutput', gradOutput, length);
  need('signBackward', 'gradInput', gradInput, length);
  for (let i = 0; i < length; i++) gradInput[i] = gradOutput[i] * surrogateDerivative(surrogate, x[i]);
}

export function relu(x: FloatArray, out: FloatArray, length: number): void {
  need('relu', 'x', x, length);
  need('relu', 'out', out, length);
  for (let i = 0; i < length; i++) out[i] = x[i] > 0 ? x[i] : 0;
}

/** gradInput = gradOutput * 1[x > 0] */
export function reluBackward(
  x: FloatArray,
  gradOutput: FloatArray,
  gradInput: FloatArray,
  length: number,
): void {
  need('reluBackward', 'x', x, length);
  need('reluBackward', 'gradOutput', gradOutput, length);
  need('reluBackward', 'gradInput', gradInput, length);
  for (let i = 0; i < length; i++) gradInput[i] = x[i] > 0 ? gradOutput[i] : 0;
}

export function hardtanh(x: FloatArray, out: FloatArray, length: number): void {
  need('hardtanh', 'x', x, length);
  need('hardtanh', 'out', out, length);
  for (let i = 0; i < length; i++) out[i] = Math.min(1, Math.max(-1, x[i]));
}

/** gradInput = gradOutput * 1[|x| <= 1] (the edges pass gradient, matching the clipped-identity surrogate). */
export function hardtanhBackward(
  x: FloatArray,
  gradOutput: FloatArray,
  gradInput: FloatArray,
  length: number,
): void {
  need('hardtanhBackward', 'x', x, length);
  need('hardtanhBackward', 'gradOutput', gradOutput, length);
  need('hardtanhBackward', 'gradInput', gradInput, length);
  for (let i = 0; i < length; i++) gradInput[i] = Math.abs(x[i]) <= 1 ? gradOutput[i] : 0;
}

export function sum(x: FloatArray, length: number): number {
  need('sum', 'x', x, length);
  let s = 0;
  for (let i = 0; i < length; i++) s += x[i];
  return s;
}

export function sumSquares(x: FloatArray, length: number): number {
  need('sumSquares', 'x', x, length);
  let s = 0;
  for (let i = 0; i < length; i++) s += x[i] * x[i];
  return s;
}

/**
 * Over an (n, channels, spatial) array: sums[c] = sum of x over n and spatial;
 * sumsB[c] = sum of x*y when y is given, else sum of x*x.
 */
export function channelSums(
  x: FloatArray,
  y: FloatArray | null,
  n: number,
  channels: number,
  spatial: number,
  sums: FloatArray,
  sumsB: FloatArray,
): void {
  sizes('channelSums', { n, channels, spatial });
  const total = n * channels * spatial;
  need('channelSums', 'x', x, total);
  if (y !== null) need('channelSums', 'y', y, total);
  need('channelSums', 'sums', sums, channels);
  need('channelSums', 'sumsB', sumsB, channels);
  for (let c = 0; c < channels; c++) {
    let s = 0;
    let sb = 0;
    for (let i = 0; i < n; i++) {
      const base = (i * channels + c) * spatial;
      for (let p = 0; p < spatial; p++) {
        const v = x[base + p];
        s += v;
        sb += v * (y === null ? v : y[base + p]);
      }
    }
    sums[c] = s;
    sumsB[c] = sb;
  }
}

/** out[i, c, s] = x[i, c, s] * mul[c] + add[c] over an (n, channels, spatial) array. */
export function channelAffine(
  x: FloatArray,
  mul: FloatArray,
  add: FloatArray,
  n: number,
  channels: number,
  spatial: number,
  out: FloatArray,
): void {
  sizes('channelAffine', { n, channels, spatial });
  const total = n * channels * spatial;
  need('channelAffine', 'x', x, total);
  need('channelAffine', 'mul', mul, channels);
  need('channelAffine', 'add', add, channels);
  need('channelAffine', 'out', out, total);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) {
      const base = (i * channels + c) * spatial;
      for (let p = 0; p < spatial; p++) out[base + p] = x[base + p] * mul[c] + add[c];
    }
  }
}
