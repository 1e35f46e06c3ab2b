/**
 * Reference GEMM, im2col and col2im: plain loops, the executable specification of the fast kernels.
 * Row-major everywhere; see backend.ts for the layouts.
 */
import { convOutputSize } from '../backend.js';
import type { Conv2dGeometry, FloatArray, GemmLayout } from '../backend.js';
import { need, sizes } from './check.js';

/**
 * C (m x n) = op(A) op(B), or C += op(A) op(B) when `accumulate`.
 * 'nn': A m x k, B k x n; 'nt': A m x k, B n x k; 'tn': A k x m, B k x n.
 */
export function gemm(
  layout: GemmLayout,
  m: number,
  n: number,
  k: number,
  a: FloatArray,
  b: FloatArray,
  c: FloatArray,
  accumulate: boolean,
): void {
  sizes('gemm', { m, n, k });
  need('gemm', 'A', a, m * k);
  need('gemm', 'B', b, k * n);
  need('gemm', 'C', c, m * n);
  // Strides of op(A)[i][p] and op(B)[p][j] in the stored arrays, so one loop serves every layout.
  const aRow = layout === 'tn' ? 1 : k;
  const aCol = layout === 'tn' ? m : 1;
  const bRow = layout === 'nt' ? 1 : n;
  const bCol = layout === 'nt' ? k : 1;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      // Sum in a JS double and round once on store (this matters for float32 buffers).
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * aRow + p * aCol] * b[p * bRow + j * bCol];
      c[i * n + j] = accumulate ? c[i * n + j] + s : s;
    }
  }
}

function checkGeometry(kernel: string, g: Conv2dGeometry): { outH: number; outW: number } {
  sizes(kernel, { ...g });
  if (g.stride < 1) throw new RangeError(`${kernel}: stride must be >= 1, got ${g.stride}`);
  const { outH, outW } = convOutputSize(g);
  if (outH < 1 || outW < 1) throw new RangeError(`${kernel}: window does not fit the padded image`);
  return { outH, outW };
}

/**
 * col[(c*kh + i)*kw + j][oy*outW + ox] = image[c][oy*stride - pad + i][ox*stride - pad + j],
 * or 0 where that position lies outside the image.
 */
export function im2col(image: FloatArray, g: Conv2dGeometry, col: FloatArray): void {
  const { outH, outW } = checkGeometry('im2col', g);
  const { channels, height, width, kernelH, kernelW, stride, padding } = g;
  need('im2col', 'image', image, channels * height * width);
  need('im2col', 'col', col, channels * kernelH * kernelW * outH * outW);
  const positions = outH * outW;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < kernelH; i++) {
      for (let j = 0; j < kernelW; j++) {
        const row = (c * kernelH + i) * kernelW + j;
        for (let oy = 0; oy < outH; oy++) {
          for (let ox = 0; ox < outW; ox++) {
            const y = oy * stride - padding + i;
            const x = ox * stride - padding + j;
            const inside = y >= 0 && y < height && x >= 0 && x < width;
            col[row * positions + oy * outW + ox] = inside ? image[(c * height + y) * width + x] : 0;
          }
        }
      }
    }
  }
}

/** The adjoint of im2col: image = 0, then every col entry is added to the image position it was read from. */
export function col2im(col: FloatArray, g: Conv2dGeometry, image: FloatArray): void {
  const { outH, outW } = checkGeometry('col2im', g);
  const { channels, height, width, kernelH, kernelW, stride, padding } = g;
  need('col2im', 'image', image, channels * height * width);
  need('col2im', 'col', col, channels * kernelH * kernelW * outH * outW);
  image.fill(0, 0, channels * height * width);
  const positions = outH * outW;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < kernelH; i++) {
      for (let j = 0; j < kernelW; j++) {
        const row = (c * kernelH + i) * kernelW + j;
        for (let oy = 0; oy < outH; oy++) {
          for (let ox = 0; ox < outW; ox++) {
            const y = oy * stride - padding + i;
            const x = ox * stride - padding + j;
            if (y >= 0 && y < height && x >= 0 && x < width) {
              image[(c * height + y) * width + x] += col[row * positions + oy * outW + ox];
            }
          }
        }
      }
    }
  }
}
