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
 * col[(c*kh + i)*kw + j][b*outH*outW + oy*outW + ox] = image_b[c][oy*stride - pad + i][ox*stride - pad + j],
 * or 0 where that position lies outside the image; the `batch` images lie one after another.
 */
export function im2col(images: FloatArray, g: Conv2dGeometry, col: FloatArray, batch = 1): void {
  const { outH, outW } = checkGeometry('im2col', g);
  const { channels, height, width, kernelH, kernelW, stride, padding } = g;
  checkBatch('im2col', batch);
  need('im2col', 'images', images, channels * height * width * batch);
  need('im2col', 'col', col, channels * kernelH * kernelW * outH * outW * batch);
  const positions = outH * outW;
  const plane = channels * height * width;
  for (let c = 0; c < channels; c++) {
    for (let i = 0; i < kernelH; i++) {
      for (let j = 0; j < kernelW; j++) {
        const row = (c * kernelH + i) * kernelW + j;
        for (let b = 0; b < batch; b++) {
          for (let oy = 0; oy < outH; oy++) {
            for (let ox = 0; ox < outW; ox++) {
              const y = oy * stride - padding + i;
              const x = ox * stride - padding + j;
              const inside = y >= 0 && y < height && x >= 0 && x < width;
              col[(row * batch + b) * positions + oy * outW + ox] = inside
                ? images[b * plane + (c * height + y) * width + x]
                : 0;
            }
          }
        }
      }
    }
  }
}

/** The adjoint of im2col: images = 0, then every col entry is added to the image position it was read from. */
export function col2im(col: FloatArray, g: Conv2dGeometry, images: FloatArray, batch = 1): void {
  const { outH, outW } = checkGeometry('col2im', g);
  const { channels, height, width, kernelH, kernelW, stride, padding } = g;
  checkBatch('col2im', batch);
  need('col2im', 'images', images, channels * height * width * batch);
  need('col2im', 'col', col, channels * kernelH * kernelW * outH * outW * batch);
  const plane = channels * height * width;
  images.fill(0, 0, plane * batch);
  const positions = outH * outW;
  for (let b = 0; b < batch; b++) {
    for (let c = 0; c < channels; c++) {
      for (let i = 0; i < kernelH; i++) {
        for (let j = 0; j < kernelW; j++) {
          const row = (c * kernelH + i) * kernelW + j;
          for (let oy = 0; oy < outH; oy++) {
            for (let ox = 0; ox < outW; ox++) {
              const y = oy * stride - padding + i;
              const x = ox * stride - padding + j;
              if (y >= 0 && y < height && x >= 0 && x < width) {
                images[b * plane + (c * height + y) * width + x] +=
                  col[(row * batch + b) * positions + oy * outW + ox];
              }
            }
          }
        }
      }
    }
  }
}

function checkBatch(kernel: string, batch: number): void {
  if (!Number.isInteger(batch) || batch < 1)
    throw new RangeError(`${kernel}: batch must be a positive integer, got ${batch}`);
}

/** dst[(j*a + i)*inner + q] = src[(i*b + j)*inner + q] for i < a, j < b: the two outer axes of [a, b, inner] swapped. */
export function swapAxes(src: FloatArray, a: number, b: number, inner: number, dst: FloatArray): void {
  sizes('swapAxes', { a, b, inner });
  need('swapAxes', 'src', src, a * b * inner);
  need('swapAxes', 'dst', dst, a * b * inner);
  for (let i = 0; i < a; i++) {
    for (let j = 0; j < b; j++) {
      const from = (i * b + j) * inner;
      const to = (j * a + i) * inner;
      for (let q = 0; q < inner; q++) dst[to + q] = src[from + q];
    }
  }
}
