/**
 * Reference max pooling over planes of NCHW batches, the specification of ob_max_pool (src/kernels/pool.c):
 * each window's maximum over its in-image taps and the flat input index of the first maximum (strict >:
 * the first of equal values wins, a NaN first tap stays); a window with no in-image tap gives -infinity
 * and index -1. Backward adds each output gradient to its index.
 */
import { convOutputSize, type Conv2dGeometry, type FloatArray } from '../backend.js';
import { need, sizes } from './check.js';

function outputOf(kernel: string, batch: number, g: Conv2dGeometry): { outH: number; outW: number } {
  sizes(kernel, { batch, ...g });
  if (g.stride < 1) throw new RangeError(`${kernel}: stride must be >= 1, got ${g.stride}`);
  const out = convOutputSize(g);
  if (out.outH < 1 || out.outW < 1) throw new RangeError(`${kernel}: window does not fit the padded image`);
  return out;
}

export function maxPool(
  input: FloatArray,
  batch: number,
  g: Conv2dGeometry,
  out: FloatArray,
  argmax: Int32Array,
): void {
  const { outH, outW } = outputOf('maxPool', batch, g);
  const { channels, height, width, kernelH, kernelW, stride, padding } = g;
  const planes = batch * channels;
  need('maxPool', 'input', input, planes * height * width);
  need('maxPool', 'out', out, planes * outH * outW);
  need('maxPool', 'argmax', argmax, planes * outH * outW);
  let o = 0;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * height * width;
    for (let oy = 0; oy < outH; oy++) {
      for (let ox = 0; ox < outW; ox++) {
        let best = -Infinity;
        let bestIndex = -1;
        for (let i = 0; i < kernelH; i++) {
          const y = oy * stride - padding + i;
          if (y < 0 || y >= height) continue;
          for (let j = 0; j < kernelW; j++) {
            const x = ox * stride - padding + j;
            if (x < 0 || x >= width) continue;
            const index = base + y * width + x;
            if (bestIndex < 0 || input[index] > best) {
              best = input[index];
              bestIndex = index;
            }
          }
        }
        out[o] = best;
        argmax[o] = bestIndex;
        o++;
      }
    }
  }
}

export function maxPoolBackward(
  gradOut: FloatArray,
  argmax: Int32Array,
  batch: number,
  g: Conv2dGeometry,
  gradIn: FloatArray,
): void {
  const { outH, outW } = outputOf('maxPoolBackward', batch, g);
  const planes = batch * g.channels;
  const n = planes * outH * outW;
  need('maxPoolBackward', 'gradOut', gradOut, n);
  need('maxPoolBackward', 'argmax', argmax, n);
  need('maxPoolBackward', 'gradIn', gradIn, planes * g.height * g.width);
  gradIn.fill(0, 0, planes * g.height * g.width);
  for (let o = 0; o < n; o++) if (argmax[o] >= 0) gradIn[argmax[o]] += gradOut[o];
}
