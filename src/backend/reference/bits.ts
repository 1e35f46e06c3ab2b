/**
 * Reference bit kernels: sign packing and XNOR-popcount GEMM (bit convention in backend.ts:
 * a set bit is -1, a clear bit +1, rows padded to packedWords(cols) words with zero bits).
 */
import { packedWords } from '../backend.js';
import type { FloatArray } from '../backend.js';
import { need, sizes } from './check.js';

/** Number of set bits of a 32-bit word, one bit at a time (Kernighan: each step clears the lowest set bit). */
export function popcount32(word: number): number {
  let v = word >>> 0;
  let count = 0;
  while (v !== 0) {
    v = (v & (v - 1)) >>> 0;
    count++;
  }
  return count;
}

export function packSigns(x: FloatArray, rows: number, cols: number, out: Uint32Array): void {
  sizes('packSigns', { rows, cols });
  const words = packedWords(cols);
  need('packSigns', 'x', x, rows * cols);
  need('packSigns', 'out', out, rows * words);
  for (let r = 0; r < rows; r++) {
    for (let w = 0; w < words; w++) out[r * words + w] = 0; // padding bits stay 0
    for (let c = 0; c < cols; c++) {
      // sign(x) = -1 exactly when x >= 0 fails (zero is +1, a clear bit).
      if (!(x[r * cols + c] >= 0)) {
        const index = r * words + (c >>> 5);
        out[index] = (out[index] | (1 << (c & 31))) >>> 0;
      }
    }
  }
}

/** C[i, j] = k - 2 * popcount(A_i XOR B_j): the +-1 dot product of row i of A and row j of B. */
export function binaryGemm(
  m: number,
  n: number,
  k: number,
  a: Uint32Array,
  b: Uint32Array,
  c: Int32Array,
): void {
  sizes('binaryGemm', { m, n, k });
  const words = packedWords(k);
  need('binaryGemm', 'A', a, m * words);
  need('binaryGemm', 'B', b, n * words);
  need('binaryGemm', 'C', c, m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let differing = 0;
      for (let w = 0; w < words; w++) differing += popcount32(a[i * words + w] ^ b[j * words + w]);
      c[i * n + j] = k - 2 * differing;
    }
  }
}
