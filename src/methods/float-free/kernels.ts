/**
 * The kernels of the float-free training step, as one typed record with two implementations: `wasm`
 * (wasm/onebit-float-free.wasm, see wasm-kernels.ts) and `reference` (reference.ts, plain TypeScript).
 * Buffers come from the record's own allocators (views into the module's memory for wasm), so a kernel
 * call copies nothing. Arguments and layouts: reference.ts.
 */
import {
  ffBackwardInput,
  ffCenterMax,
  ffDenseBits,
  ffDensePixels,
  ffHidden,
  ffInput,
  ffOutputEval,
  ffOutputTrain,
  ffQuantize,
  ffUpdateBits,
  ffUpdatePixels,
} from './reference.js';

export type FfBuffer = Int8Array | Int16Array | Int32Array | Uint32Array;

export interface FfKernels {
  readonly kind: 'wasm' | 'native' | 'reference';
  /** Threads the kernels may use (the calling thread included). */
  readonly threads: number;
  int8(length: number): Int8Array;
  int16(length: number): Int16Array;
  int32(length: number): Int32Array;
  uint32(length: number): Uint32Array;
  /** The bytes of an int8 buffer, as a Uint8Array over the same memory (to copy pixel bytes in). */
  bytes(view: Int8Array): Uint8Array;
  /** Resolves when worker threads (if any) have started; kernels run on the calling thread until then. */
  ready(): Promise<void>;
  /** Bytes held by buffers from this record (for leak tests). */
  bytesInUse(): number;
  dispose(): void;

  input(n: number, k: number, p: number, x: Int8Array, xp: Uint32Array): void;
  densePixels(
    n: number,
    rows: number,
    p: number,
    x: Int8Array,
    h: Int16Array,
    z: Int32Array,
    zs: number,
  ): void;
  denseBits(
    n: number,
    rows: number,
    k: number,
    a: Uint32Array,
    w: Uint32Array,
    z: Int32Array,
    zs: number,
  ): void;
  hidden(
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
  ): void;
  outputTrain(
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
    /** Project the error off each class's centred logits (batch norm's variance term). */
    project: boolean,
  ): void;
  outputEval(
    n: number,
    classes: number,
    z: Int32Array,
    zs: number,
    running: Int32Array,
    raw: Int32Array,
  ): void;
  /**
   * ff_center_max then ff_quantize: the straight-through gate (or null), the centring's backward, the
   * projection off the output signs `act` (or null); returns the layer's exponent q (e = g / 2^q, rounded).
   */
  centerQuantize(
    n: number,
    cols: number,
    g: Int32Array,
    gs: number,
    gate: Uint32Array | null,
    center: boolean,
    act: Uint32Array | null,
    e: Int8Array,
    es: number,
    pairs: Uint32Array | null,
  ): number;
  backwardInput(
    n: number,
    rows: number,
    p: number,
    h: Int16Array,
    e: Int8Array,
    es: number,
    ex: Int32Array,
  ): void;
  /** `act`: the layer's input signs, packed [n][words(cols)]. */
  updateBits(
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
  ): void;
  updatePixels(
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
  ): void;
}

/** The reference kernels over ordinary typed arrays. */
export function createReferenceKernels(): FfKernels {
  let bytes = 0;
  const track = <T extends FfBuffer>(view: T): T => {
    bytes += view.byteLength;
    return view;
  };
  return {
    kind: 'reference',
    threads: 1,
    int8: (length) => track(new Int8Array(length)),
    int16: (length) => track(new Int16Array(length)),
    int32: (length) => track(new Int32Array(length)),
    uint32: (length) => track(new Uint32Array(length)),
    bytes: (view) => new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
    ready: () => Promise.resolve(),
    bytesInUse: () => bytes,
    dispose: () => {
      bytes = 0;
    },
    input: ffInput,
    densePixels: ffDensePixels,
    denseBits: ffDenseBits,
    hidden: ffHidden,
    outputTrain: ffOutputTrain,
    outputEval: ffOutputEval,
    centerQuantize(n, cols, g, gs, gate, center, act, e, es, pairs) {
      const max = ffCenterMax(n, cols, g, gs, gate, center, act);
      return ffQuantize(n, cols, g, gs, max, e, es, pairs);
    },
    backwardInput: ffBackwardInput,
    updateBits: ffUpdateBits,
    updatePixels: ffUpdatePixels,
  };
}
