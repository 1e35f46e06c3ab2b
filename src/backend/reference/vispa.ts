/**
 * VISPA's projection (docs/methods.md#vispa) as the method ran it with elementwise kernels, the
 * specification of ob_vispa_project (src/kernels/methods.c): a = m^2 + sum_k z_k^2 / S, each product and sum
 * stored in the backend's dtype as the elementwise kernels store it; f = 1 / sqrt(a) (0 when a = 0); m *= f,
 * z_k *= f; a = 0 restarts the weight at m = +1 (sign(0) = +1), and a NaN a is left to show in the loss.
 */
import type { FloatArray } from '../backend.js';
import { need, sizes } from './check.js';
import { axpy, multiply } from './elementwise.js';

export function vispaProject(
  m: FloatArray,
  z: FloatArray | null,
  rank: number,
  invScale: number,
  length: number,
): void {
  sizes('vispaProject', { rank, length });
  need('vispaProject', 'm', m, length);
  if (rank > 0) {
    if (z === null) throw new TypeError(`vispaProject: z is null with rank ${rank}`);
    need('vispaProject', 'z', z, rank * length);
  }
  const make = (n: number): FloatArray =>
    m instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  const a = make(length);
  const sq = make(length);
  const rows = Array.from({ length: rank }, (_, k) =>
    (z as FloatArray).subarray(k * length, (k + 1) * length),
  );
  multiply(m, m, a, length);
  for (const zk of rows) {
    multiply(zk, zk, sq, length);
    axpy(invScale, sq, a, length);
  }
  for (let i = 0; i < length; i++) {
    const ai = a[i];
    a[i] = ai > 0 ? 1 / Math.sqrt(ai) : ai === 0 ? 0 : Number.NaN;
  }
  multiply(m, a, m, length);
  for (const zk of rows) multiply(zk, a, zk, length);
  for (let i = 0; i < length; i++) if (a[i] === 0) m[i] = 1;
}
