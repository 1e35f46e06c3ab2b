/**
 * The page of `npm run bench -- browser` (bench/browser.ts): in one Chromium page, the engine against
 * onnxruntime-web (its wasm backend, the same thread count) on the same networks, at batch 1 and 100. The
 * thread count comes from the URL (`?threads=N`), because onnxruntime-web fixes its own when its first
 * session starts. Each figure is the best time per call over interleaved rounds, as in bench/engine.ts.
 */
import * as ort from 'onnxruntime-web/wasm';
import { createEngine, randomImages } from '../../src/engine/index.js';
import { normalizedImages } from '../normalize.js';
import type { BrowserBenchRow } from './rows.js';

const ROUNDS = 3;
const SECONDS = 0.5;

/**
 * The best time of one call, in ms. A cross-origin-isolated page's clock ticks every 5 microseconds, too
 * coarse for a call of tens of them, so each sample times enough calls in a row to last about 2 ms.
 */
async function bestOf(call: () => unknown): Promise<number> {
  for (let i = 0; i < 3; i++) await call();
  const t0 = performance.now();
  await call();
  const reps = Math.max(1, Math.ceil(2 / Math.max(performance.now() - t0, 0.005)));
  let best = Infinity;
  let samples = 0;
  const start = performance.now();
  while (samples < 5 || (performance.now() - start) / 1000 < SECONDS) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) await call();
    best = Math.min(best, (performance.now() - t) / reps);
    if (++samples >= 2000) break;
  }
  return best;
}

async function fetchBytes(path: string): Promise<Uint8Array> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function run(): Promise<BrowserBenchRow[]> {
  const threads = Number(new URLSearchParams(location.search).get('threads') ?? '1');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = '/ort/';
  ort.env.wasm.proxy = false;
  const module = await WebAssembly.compileStreaming(fetch('/engine.wasm'));
  const rows: BrowserBenchRow[] = [];
  for (const activations of ['binary', 'real'] as const) {
    const engine = await createEngine(await fetchBytes(`/models/${activations}.onebit`), {
      module,
      threads,
      maxBatch: 100,
    });
    const session = await ort.InferenceSession.create(await fetchBytes(`/models/${activations}.onnx`), {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
    });
    try {
      const [c, h, w] = engine.model.input.shape;
      const size = c * h * w;
      const raw = randomImages(100, size, 1);
      const normalised = normalizedImages(raw, [c, h, w], engine.model.input);
      for (const batch of [1, 100]) {
        const feed = {
          input: new ort.Tensor('float32', normalised.subarray(0, batch * size), [batch, c, h, w]),
        };
        let engineMs = Infinity;
        let ortMs = Infinity;
        for (let round = 0; round < ROUNDS; round++) {
          engineMs = Math.min(engineMs, await bestOf(() => engine.logits(raw, batch)));
          ortMs = Math.min(ortMs, await bestOf(() => session.run(feed)));
        }
        rows.push({
          bench: 'browser-engine-vs-onnxruntime-web',
          model: 'mlp-2x2048',
          activations,
          batch,
          threads,
          crossOriginIsolated,
          engine: (batch * 1000) / engineMs,
          onnxruntimeWeb: (batch * 1000) / ortMs,
          ratio: ortMs / engineMs,
        });
      }
    } finally {
      engine.dispose();
      await session.release();
    }
  }
  return rows;
}

(globalThis as unknown as { benchRows: Promise<BrowserBenchRow[]> }).benchRows = run();
