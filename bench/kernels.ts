/**
 * Kernel benchmark: single-precision GEMM and binary (XNOR-popcount) GEMM on the reference backend, and on
 * the wasm and native backends (native where the addon is built, at its best level) with 1 and 2 threads
 * (and all cores, when there are more).
 *
 * Shapes are those of the MLP benchmarks: a batch of 100 through a 784 -> 2048 and a 2048 -> 2048 dense
 * layer, in the layout the dense forward pass uses (x * W^T with W stored out x in, i.e. 'nt'), plus a
 * square 1024^3; 'nn' is reported for the 2048 layer. Each figure is the best of several timed runs after
 * warm-up (V8 tiers wasm up to its optimizing compiler after the first calls), because the machines this
 * runs on are shared and the best run is the least disturbed one. "cores busy" (process CPU time over wall
 * time) shows whether the threads really ran in parallel: on a loaded machine two threads may share one
 * core, and then no speed-up is possible.
 */
import { availableParallelism } from 'node:os';
import { packedWords } from '../src/backend/backend.js';
import type { Backend, FloatArray, GemmLayout } from '../src/backend/backend.js';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import { createNativeBackend, nativeLevels, nativeUnavailableReason } from '../src/backend/native/index.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { Rng } from '../src/tensor/rng.js';

export interface KernelBenchOptions {
  /** One JSON object per line instead of a table. */
  readonly json: boolean;
  readonly print: (line: string) => void;
}

interface Result {
  readonly bench: string;
  readonly backend: string;
  readonly threads: number;
  readonly value: number;
  readonly unit: string;
}

interface Contender {
  readonly backend: Backend;
  readonly label: string;
}

interface Timing {
  /** Best seconds per call. */
  readonly seconds: number;
  /** Process CPU time over wall time during the timed runs: how many cores the threads really got. */
  readonly coresBusy: number;
}

/** Times `fn` after warm-up, over at least `minRuns` runs and `minSeconds` (at most 50 runs). */
function timeBest(fn: () => void, minRuns: number, minSeconds: number): Timing {
  fn(); // warm-up: V8 runs the first calls in its baseline tier and tiers up in the background
  fn();
  let best = Infinity;
  let runs = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  while (runs < minRuns || (performance.now() - start) / 1000 < minSeconds) {
    const t = performance.now();
    fn();
    best = Math.min(best, (performance.now() - t) / 1000);
    runs++;
    if (runs >= 50) break;
  }
  const cpu = process.cpuUsage(cpu0);
  const wallUs = (performance.now() - start) * 1000;
  return { seconds: best, coresBusy: (cpu.user + cpu.system) / wallUs };
}

function randomFill(x: FloatArray, rng: Rng): void {
  for (let i = 0; i < x.length; i++) x[i] = rng.uniform() * 2 - 1;
}

/** Throughput in 1e9 operations per second, and the cores the run kept busy. */
interface Measure {
  readonly value: number;
  readonly coresBusy: number;
}

function benchGemm(c: Contender, layout: GemmLayout, m: number, n: number, k: number, rng: Rng): Measure {
  const be = c.backend;
  const a = be.alloc(m * k);
  const b = be.alloc(k * n);
  const out = be.alloc(m * n);
  randomFill(a, rng);
  randomFill(b, rng);
  const slow = be.name === 'reference';
  const t = timeBest(() => be.gemm(layout, m, n, k, a, b, out, false), slow ? 1 : 5, slow ? 0 : 0.5);
  for (const x of [a, b, out]) be.free(x);
  return { value: (2 * m * n * k) / t.seconds / 1e9, coresBusy: t.coresBusy };
}

function benchBinaryGemm(c: Contender, m: number, n: number, k: number, rng: Rng): Measure {
  const be = c.backend;
  const words = packedWords(k);
  const a = be.allocUint32(m * words);
  const b = be.allocUint32(n * words);
  const out = be.allocInt32(m * n);
  const signs = be.alloc(Math.max(m, n) * k);
  randomFill(signs, rng);
  be.packSigns(signs, m, k, a);
  be.packSigns(signs, n, k, b);
  const slow = be.name === 'reference';
  const t = timeBest(() => be.binaryGemm(m, n, k, a, b, out), slow ? 1 : 10, slow ? 0 : 0.5);
  for (const x of [a, b, out, signs]) be.free(x);
  return { value: (2 * m * n * k) / t.seconds / 1e9, coresBusy: t.coresBusy };
}

export async function runKernelBench(opts: KernelBenchOptions): Promise<void> {
  const threadCounts = [...new Set([1, 2, availableParallelism()])].sort((x, y) => x - y);
  const contenders: Contender[] = [{ backend: createReferenceBackend('float32'), label: 'reference' }];
  for (const threads of threadCounts) {
    contenders.push({ backend: await createWasmBackend({ threads }), label: 'wasm' });
  }
  const missing = nativeUnavailableReason();
  if (missing === null) {
    for (const threads of threadCounts)
      contenders.push({ backend: createNativeBackend({ threads }), label: 'native' });
    if (!opts.json) opts.print(`native backend: level ${nativeLevels()[0]}`);
  } else if (!opts.json) {
    opts.print(`native backend: not measured (${missing})`);
  }
  const rng = new Rng(2024);
  const results: Result[] = [];

  const cases: { bench: string; unit: string; run: (c: Contender) => Measure }[] = [
    { bench: 'sgemm nt 100x2048x784', unit: 'GFLOP/s', run: (c) => benchGemm(c, 'nt', 100, 2048, 784, rng) },
    {
      bench: 'sgemm nt 100x2048x2048',
      unit: 'GFLOP/s',
      run: (c) => benchGemm(c, 'nt', 100, 2048, 2048, rng),
    },
    {
      bench: 'sgemm nn 100x2048x2048',
      unit: 'GFLOP/s',
      run: (c) => benchGemm(c, 'nn', 100, 2048, 2048, rng),
    },
    {
      bench: 'sgemm nt 1024x1024x1024',
      unit: 'GFLOP/s',
      run: (c) => benchGemm(c, 'nt', 1024, 1024, 1024, rng),
    },
    {
      bench: 'binary gemm 100x2048x2048',
      unit: 'GOPS',
      run: (c) => benchBinaryGemm(c, 100, 2048, 2048, rng),
    },
  ];

  const header = [
    'bench',
    'backend',
    'threads',
    'value',
    'unit',
    'vs reference',
    'vs 1 thread',
    'cores busy',
  ];
  const widths = [28, 10, 8, 10, 8, 13, 12, 11];
  const row = (cells: string[]) =>
    cells.map((s, i) => (i < 2 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join(' ');
  if (!opts.json) {
    opts.print(row(header));
    opts.print(row(widths.map((w) => '-'.repeat(w))));
  }

  for (const benchCase of cases) {
    let reference = NaN;
    const oneThread = new Map<string, number>();
    for (const c of contenders) {
      const { value, coresBusy } = benchCase.run(c);
      const threads = c.backend.threads;
      if (c.label === 'reference') reference = value;
      else if (threads === 1) oneThread.set(c.label, value);
      const result: Result = {
        bench: benchCase.bench,
        backend: c.label,
        threads,
        value: round(value),
        unit: benchCase.unit,
      };
      results.push(result);
      const vsRef = c.label === 'reference' ? NaN : value / reference;
      const vsOne = c.label !== 'reference' && threads > 1 ? value / (oneThread.get(c.label) ?? NaN) : NaN;
      const fmt = (v: number) => (Number.isNaN(v) ? '' : `${v.toFixed(2)}x`);
      if (opts.json) {
        const extra: [number, string][] = [
          [vsRef, 'x reference'],
          [vsOne, 'x 1 thread'],
          [coresBusy, 'cores busy'],
        ];
        opts.print(JSON.stringify(result));
        for (const [v, unit] of extra) {
          if (!Number.isNaN(v)) opts.print(JSON.stringify({ ...result, value: round(v), unit }));
        }
      } else {
        const value2 = value.toFixed(2);
        const cells = [
          benchCase.bench,
          c.label,
          String(threads),
          value2,
          benchCase.unit,
          fmt(vsRef),
          fmt(vsOne),
        ];
        opts.print(row([...cells, coresBusy.toFixed(2)]));
      }
    }
  }
  for (const c of contenders) c.backend.dispose();
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
