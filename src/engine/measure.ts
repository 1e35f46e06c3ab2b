/**
 * Throughput of an engine: images per second at a given batch size, the best of several timed runs after
 * warm-up (V8 tiers wasm up after the first calls; on a shared machine the best run is the least disturbed).
 */
import type { Engine } from './engine.js';

export interface ThroughputOptions {
  /** Keep timing until this many seconds have passed (default 1). */
  readonly minSeconds?: number;
  /** And at least this many runs (default 5). */
  readonly minRuns?: number;
  /** At most this many runs (default 1000). */
  readonly maxRuns?: number;
}

/** Seeded pseudo-random pixel bytes for `count` images of `size` values (xorshift32). */
export function randomImages(count: number, size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(count * size);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) & 255;
  }
  return out;
}

/** Best-of images/s of `engine.logits` on batches of `batch` images taken from `images`. */
export function measureThroughput(
  engine: Engine,
  images: Uint8Array,
  batch: number,
  options: ThroughputOptions = {},
): number {
  const minSeconds = options.minSeconds ?? 1;
  const minRuns = options.minRuns ?? 5;
  const maxRuns = options.maxRuns ?? 1000;
  const available = Math.floor(images.length / engine.inputSize);
  if (available < batch) throw new RangeError(`measureThroughput: ${available} images, batch ${batch}`);
  const input = images.subarray(0, batch * engine.inputSize);
  engine.logits(input, batch); // warm-up
  engine.logits(input, batch);
  let best = Infinity;
  let runs = 0;
  const start = performance.now();
  while (runs < maxRuns && (runs < minRuns || (performance.now() - start) / 1000 < minSeconds)) {
    const t = performance.now();
    engine.logits(input, batch);
    best = Math.min(best, performance.now() - t);
    runs++;
  }
  return (batch * 1000) / best;
}
