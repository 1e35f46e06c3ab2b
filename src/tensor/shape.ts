/** Shapes and the error every layer raises when one does not fit. */

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** A tensor did not have the shape a layer expected; names the layer, the expectation and what came. */
export class ShapeError extends Error {
  constructor(
    readonly layer: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${layer}: expected input of shape ${expected}, got ${actual}`);
    this.name = 'ShapeError';
  }
}
