/**
 * Benchmark entry point: `npm run bench -- <name> [--json]`. Benchmarks are never run as tests.
 *   kernels   GEMM and binary GEMM throughput per backend and thread count (bench/kernels.ts)
 *   engine    the bit-packed inference engine against onnxruntime-node, mlp-2x2048 (bench/engine.ts)
 *   train     training samples/s and peak RSS against PyTorch (bench/train.ts)
 *   vispa     VISPA's step time and training state at ranks 0, 1, 4, 8 against STE (bench/vispa.ts)
 *   browser   the engine against onnxruntime-web in headless Chromium, mlp-2x2048 (bench/browser.ts)
 */
import { runBrowserBench } from './browser.js';
import { runEngineBench } from './engine.js';
import { runKernelBench } from './kernels.js';
import { runTrainBench } from './train.js';
import { runVispaBench } from './vispa.js';

type BenchFn = (opts: { json: boolean; print: (line: string) => void }) => Promise<void>;

const BENCHES: Record<string, BenchFn> = {
  kernels: runKernelBench,
  engine: runEngineBench,
  train: runTrainBench,
  vispa: runVispaBench,
  browser: runBrowserBench,
};

const args = process.argv.slice(2);
const json = args.includes('--json');
const names = args.filter((a) => !a.startsWith('--'));
const name = names[0];
const bench = name === undefined ? undefined : BENCHES[name];
if (bench === undefined) {
  console.error(`usage: npm run bench -- <${Object.keys(BENCHES).join('|')}> [--json]`);
  process.exit(1);
}
await bench({ json, print: (line) => console.log(line) });
