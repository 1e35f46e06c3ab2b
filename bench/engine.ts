/**
 * Inference benchmark: the bit-packed engine (1 and 2 threads; native where the addon is built, and wasm)
 * against the same network exported to ONNX
 * (with BatchNormalization, `batchNorm: 'standard'`, the graph onnxruntime runs fastest) and run by
 * onnxruntime-node (2 threads, float32), at batch 1 and batch 100, for mlp-2x2048, cnn-small
 * (1x28x28) and vgg-small (3x32x32), each with 1-bit activations and with real activations. The networks are built here with random weights (speed does not
 * depend on the values) and random 8-bit images; the engine reads the raw bytes, onnxruntime the normalised
 * float32 images (what its graph takes).
 *
 * Each figure is the best of several timed runs after warm-up, taken in interleaved rounds (each backend's
 * engine on 1 thread and 2 threads, onnxruntime, and again) so that a noisy neighbour on a shared machine hits
 * all of them alike. "ratio" is engine (2 threads) / onnxruntime (2 threads), both measured in the same rounds;
 * "cores busy" is process CPU time over wall time during the timed runs (about 2 when two threads really ran
 * in parallel).
 *
 * With --json the rows are {"bench":"engine-vs-onnxruntime","backend":"native"|"wasm","level":..,"model":..,
 * "activations":"binary"|"real","batch":1|100,"engine1":..,"engine2":..,"onnxruntime":..,"ratio":..} (images/s),
 * after rows {"bench":"engine-variants",...} that time the wasm engine's kernel variants (XNOR popcount SIMD or
 * scalar, first layer by table lookup or by masked adds) and rows {"bench":"engine-real-dense",...} that time
 * its real-activation dense kernel (table lookup or sign flips) on one thread: the measurements behind its
 * defaults.
 */
import * as ort from 'onnxruntime-node';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { createEngine, type Engine, type EngineBackend } from '../src/engine/engine.js';
import { nativeUnavailableReason } from '../src/native/addon.js';
import { measureThroughput, randomImages } from '../src/engine/measure.js';
import { benchNetwork, normalizationOf } from './networks.js';
import { normalizedImages } from './normalize.js';

export interface EngineBenchOptions {
  readonly json: boolean;
  readonly print: (line: string) => void;
}

/** The benchmarked networks: name and per-example input shape. */
const MODELS: readonly { readonly name: string; readonly shape: readonly [number, number, number] }[] = [
  { name: 'mlp-2x2048', shape: [1, 28, 28] },
  { name: 'cnn-small', shape: [1, 28, 28] },
  { name: 'vgg-small', shape: [3, 32, 32] },
];

const ROUNDS = 3;
const SECONDS = 0.7;

interface Row {
  readonly bench: 'engine-vs-onnxruntime';
  readonly backend: EngineBackend;
  /** The native instruction-set level, or null on wasm. */
  readonly level: string | null;
  readonly model: string;
  readonly activations: 'binary' | 'real';
  readonly batch: number;
  readonly engine1: number;
  readonly engine2: number;
  readonly onnxruntime: number;
  readonly ratio: number;
  readonly coresBusy: { readonly engine2: number; readonly onnxruntime: number };
}

/** The dense kernel on real activations, 'lut' (the default) against 'signs', one thread (plan.ts). */
interface RealDenseVariant {
  readonly bench: 'engine-real-dense';
  readonly realDense: 'lut' | 'signs';
  readonly batch: number;
  readonly threads: number;
  readonly imagesPerSecond: number;
}

interface Variant {
  readonly bench: 'engine-variants';
  readonly popcount: 'simd' | 'scalar';
  readonly firstLayer: 'lut' | 'masked';
  readonly batch: number;
  readonly threads: number;
  readonly imagesPerSecond: number;
}

/** Best-of images/s of onnxruntime on a batch, and the cores it kept busy. */
async function measureOrt(
  session: ort.InferenceSession,
  input: Float32Array,
  batch: number,
  shape: readonly number[],
): Promise<{ ips: number; busy: number }> {
  const size = shape.reduce((a, b) => a * b, 1);
  const feed = { input: new ort.Tensor('float32', input.subarray(0, batch * size), [batch, ...shape]) };
  for (let i = 0; i < 3; i++) await session.run(feed);
  let best = Infinity;
  let runs = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  while (runs < 5 || (performance.now() - start) / 1000 < SECONDS) {
    const t = performance.now();
    await session.run(feed);
    best = Math.min(best, performance.now() - t);
    if (++runs >= 2000) break;
  }
  const cpu = process.cpuUsage(cpu0);
  return { ips: (batch * 1000) / best, busy: (cpu.user + cpu.system) / 1000 / (performance.now() - start) };
}

function measureEngine(engine: Engine, images: Uint8Array, batch: number): { ips: number; busy: number } {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const ips = measureThroughput(engine, images, batch, { minSeconds: SECONDS });
  const cpu = process.cpuUsage(cpu0);
  return { ips, busy: (cpu.user + cpu.system) / 1000 / (performance.now() - start) };
}

export async function runEngineBench(options: EngineBenchOptions): Promise<void> {
  const { json, print } = options;
  const backend = await createWasmBackend({ threads: 1 });
  const rows: Row[] = [];
  const variants: Variant[] = [];
  const realDenseVariants: RealDenseVariant[] = [];
  const missing = nativeUnavailableReason();
  if (missing !== null) print(`note: no native engine rows: ${missing}`);
  const backends: readonly EngineBackend[] = missing === null ? ['native', 'wasm'] : ['wasm'];
  try {
    for (const { name, shape } of MODELS) {
      const size = shape.reduce((a, b) => a * b, 1);
      const normalization = normalizationOf(shape[0]);
      const images = randomImages(100, size, 1);
      const normalised = normalizedImages(images, shape, normalization);
      for (const activations of ['binary', 'real'] as const) {
        const { model, onnx } = benchNetwork(name, shape, activations, backend);
        const engines = await Promise.all(
          backends.map(async (b) => ({
            backend: b,
            one: await createEngine(model, { backend: b, threads: 1, maxBatch: 100 }),
            two: await createEngine(model, { backend: b, threads: 2, maxBatch: 100 }),
          })),
        );
        const session = await ort.InferenceSession.create(onnx, {
          intraOpNumThreads: 2,
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
          logSeverityLevel: 3,
        });
        try {
          if (activations === 'binary' && name === 'mlp-2x2048') {
            // Kernel variants on one thread, batch 100, in interleaved rounds: the choices behind the defaults.
            const choices = [
              ['simd', 'lut'],
              ['scalar', 'lut'],
              ['simd', 'masked'],
            ] as const;
            const engines = await Promise.all(
              choices.map(([popcount, firstLayer]) =>
                createEngine(model, { backend: 'wasm', threads: 1, maxBatch: 100, popcount, firstLayer }),
              ),
            );
            const best = choices.map(() => 0);
            for (let round = 0; round < ROUNDS; round++) {
              engines.forEach((e, i) => (best[i] = Math.max(best[i], measureEngine(e, images, 100).ips)));
            }
            for (const e of engines) e.dispose();
            choices.forEach(([popcount, firstLayer], i) =>
              variants.push({
                bench: 'engine-variants',
                popcount,
                firstLayer,
                batch: 100,
                threads: 1,
                imagesPerSecond: best[i],
              }),
            );
          }
          if (activations === 'real' && name === 'mlp-2x2048') {
            const kinds = ['lut', 'signs'] as const;
            const engines = await Promise.all(
              kinds.map((realDense) =>
                createEngine(model, { backend: 'wasm', threads: 1, maxBatch: 100, realDense }),
              ),
            );
            for (const batch of [1, 100]) {
              const best = kinds.map(() => 0);
              for (let round = 0; round < ROUNDS; round++) {
                engines.forEach((e, i) => (best[i] = Math.max(best[i], measureEngine(e, images, batch).ips)));
              }
              kinds.forEach((realDense, i) =>
                realDenseVariants.push({
                  bench: 'engine-real-dense',
                  realDense,
                  batch,
                  threads: 1,
                  imagesPerSecond: best[i],
                }),
              );
            }
            for (const e of engines) e.dispose();
          }
          for (const batch of [1, 100]) {
            const best = engines.map(() => ({ one: 0, two: { ips: 0, busy: 0 } }));
            let o = { ips: 0, busy: 0 };
            for (let round = 0; round < ROUNDS; round++) {
              engines.forEach((e, i) => {
                best[i].one = Math.max(best[i].one, measureEngine(e.one, images, batch).ips);
                const m2 = measureEngine(e.two, images, batch);
                if (m2.ips > best[i].two.ips) best[i].two = m2;
              });
              const mo = await measureOrt(session, normalised, batch, shape);
              if (mo.ips > o.ips) o = mo;
            }
            engines.forEach((e, i) =>
              rows.push({
                bench: 'engine-vs-onnxruntime',
                backend: e.backend,
                level: e.two.level,
                model: name,
                activations,
                batch,
                engine1: best[i].one,
                engine2: best[i].two.ips,
                onnxruntime: o.ips,
                ratio: best[i].two.ips / o.ips,
                coresBusy: { engine2: best[i].two.busy, onnxruntime: o.busy },
              }),
            );
          }
        } finally {
          await session.release();
          for (const e of engines) {
            e.one.dispose();
            e.two.dispose();
          }
        }
      }
    }
  } finally {
    backend.dispose();
  }
  if (json) {
    for (const r of [...variants, ...realDenseVariants, ...rows]) print(JSON.stringify(r));
    return;
  }
  print('wasm engine kernel variants, mlp-2x2048 1-bit activations, batch 100, 1 thread (images/s):');
  for (const v of variants) {
    print(
      `  XNOR popcount ${v.popcount.padEnd(6)}  first layer ${v.firstLayer.padEnd(6)}  ${Math.round(v.imagesPerSecond)}`,
    );
  }
  print('wasm dense layers on real activations, mlp-2x2048, 1 thread (images/s):');
  for (const v of realDenseVariants) {
    print(
      `  ${v.realDense.padEnd(6)}  batch ${String(v.batch).padStart(3)}  ${Math.round(v.imagesPerSecond)}`,
    );
  }
  print('images/s (best of interleaved runs); ratio = engine 2 threads / onnxruntime 2 threads');
  print(
    'model        backend          activations  batch   engine 1t   engine 2t   onnxruntime 2t   ratio   cores busy (engine 2t / ort)',
  );
  for (const r of rows) {
    const where = r.level === null ? r.backend : `${r.backend} (${r.level})`;
    print(
      `${r.model.padEnd(11)}  ${where.padEnd(15)}  ${r.activations.padEnd(11)}  ${String(r.batch).padStart(5)}  ${Math.round(r.engine1).toString().padStart(10)}  ` +
        `${Math.round(r.engine2).toString().padStart(10)}  ${Math.round(r.onnxruntime).toString().padStart(15)}  ` +
        `${r.ratio.toFixed(2).padStart(6)}   ${r.coresBusy.engine2.toFixed(2)} / ${r.coresBusy.onnxruntime.toFixed(2)}`,
    );
  }
}
