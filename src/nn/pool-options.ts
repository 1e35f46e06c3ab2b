/** Window options and shape rules shared by the pooling layers. */
import { ShapeError } from '../errors.js';
import { convOutputSize } from '../backend/backend.js';
import type { Conv2dGeometry } from '../backend/backend.js';
import { formatShape } from '../tensor/shape.js';
import type { Shape } from '../tensor/shape.js';

export interface Pool2dOptions {
  /** Square window side. */
  readonly kernelSize: number;
  /** Default: the window side (non-overlapping windows). */
  readonly stride?: number;
  /** Implicit padding on every side, at most kernelSize / 2; default 0. */
  readonly padding?: number;
}

/** Validated window geometry for one [C, H, W] example, and its output size. */
export function poolGeometry(
  layer: string,
  options: Pool2dOptions,
  inputShape: Shape,
): { g: Conv2dGeometry; outH: number; outW: number } {
  const k = options.kernelSize;
  const stride = options.stride ?? k;
  const padding = options.padding ?? 0;
  if (!Number.isInteger(k) || k < 1)
    throw new RangeError(`${layer}: kernelSize must be a positive integer, got ${k}`);
  if (!Number.isInteger(stride) || stride < 1)
    throw new RangeError(`${layer}: stride must be a positive integer, got ${stride}`);
  if (!Number.isInteger(padding) || padding < 0 || 2 * padding > k) {
    throw new RangeError(`${layer}: padding must be an integer in 0..${Math.floor(k / 2)}, got ${padding}`);
  }
  const expected = `[C, H, W] with H, W >= ${k - 2 * padding}`;
  if (inputShape.length !== 3) throw new ShapeError(layer, expected, formatShape(inputShape));
  const [channels, height, width] = inputShape;
  const g: Conv2dGeometry = { channels, height, width, kernelH: k, kernelW: k, stride, padding };
  const { outH, outW } = convOutputSize(g);
  if (outH < 1 || outW < 1) throw new ShapeError(layer, expected, formatShape(inputShape));
  return { g, outH, outW };
}
