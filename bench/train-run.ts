/**
 * One training benchmark run in its own process, so its peak RSS is its own. Reads a JSON config from
 * argv[2], trains for its epochs on Fashion-MNIST and prints one JSON line with samples/s, ms/step and
 * the process's peak resident set size.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createBackend } from '../src/backend/index.js';
import { loadDataset } from '../src/data/dataset.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../src/config/train-config.js';
import { train } from '../src/train/trainer.js';

interface BenchRunConfig {
  readonly model: string;
  readonly method: string;
  readonly activations: 'real' | 'binary';
  readonly epochs: number;
  readonly batchSize: number;
  readonly backend: 'wasm' | 'native' | 'reference';
  readonly threads: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as BenchRunConfig;
const config: TrainConfig = {
  ...TRAIN_DEFAULTS,
  data: 'fashion-mnist',
  model: spec.model,
  method: spec.method,
  activations: spec.activations,
  epochs: spec.epochs,
  batchSize: spec.batchSize,
  testLimit: 1000,
};
const cacheDir = join(process.env.HOME ?? tmpdir(), '.cache', 'onebit');
const [trainSet, testSet] = await Promise.all([
  loadDataset('fashion-mnist', { split: 'train', cacheDir }),
  loadDataset('fashion-mnist', { split: 'test', cacheDir }),
]);
const backend = await createBackend(
  spec.backend === 'reference'
    ? { kind: 'reference', dtype: 'float32' }
    : { kind: spec.backend, threads: spec.threads },
);
const outDir = mkdtempSync(join(tmpdir(), 'onebit-bench-'));
try {
  const result = await train({ config, backend, train: trainSet, test: testSet, outDir, resume: false });
  const last = result.epochs[result.epochs.length - 1];
  process.stdout.write(
    `${JSON.stringify({
      samplesPerSecond: result.samplesPerSecond,
      stepMilliseconds: last.stepMilliseconds,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      trainAccuracy: last.trainAccuracy,
    })}\n`,
  );
} finally {
  backend.dispose();
  rmSync(outDir, { recursive: true, force: true });
}
