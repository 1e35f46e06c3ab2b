/** `onebit bench <model.onebit>`: engine throughput (images/s) at batch 1 and batch 100. */
import { Command } from 'commander';
import type { EngineBackend } from '../engine/engine.js';
import { measureThroughput, randomImages } from '../engine/measure.js';
import { describeEngine, engineBackendOption, openEngine } from './engine-backend.js';
import { parsePositiveInteger, parsePositiveNumber } from './options.js';
import { readModelFile } from './predict-command.js';

interface BenchFlags {
  backend: EngineBackend;
  threads?: number;
  seconds: number;
  json: boolean;
}

export function benchCommand(): Command {
  return new Command('bench')
    .description('measure the bit-packed engine on a .onebit model: images/s at batch 1 and batch 100')
    .argument('<model>', 'a .onebit file written by onebit export')
    .option(
      '--threads <n>',
      'engine threads (default: the number of cores, at most 8)',
      parsePositiveInteger('--threads'),
    )
    .option(
      '--seconds <s>',
      'time each batch size for at least this long (best run counts)',
      parsePositiveNumber('--seconds'),
      2,
    )
    .addOption(engineBackendOption())
    .option('--json', 'one JSON object per batch size', false)
    .action(async (path: string, flags: BenchFlags) => {
      const model = readModelFile(path, 'bench');
      const engine = await openEngine(model, {
        backend: flags.backend,
        threads: flags.threads,
        maxBatch: 100,
      });
      try {
        const images = randomImages(100, engine.inputSize, 1);
        for (const batch of [1, 100]) {
          const imagesPerSecond = measureThroughput(engine, images, batch, {
            minSeconds: flags.seconds,
            // --seconds is the measure: no cap on the number of runs cuts it short on a small model.
            maxRuns: Number.MAX_SAFE_INTEGER,
          });
          if (flags.json) {
            process.stdout.write(
              `${JSON.stringify({ type: 'bench', model: path, batch, backend: engine.backend, level: engine.level, threads: engine.threads, imagesPerSecond })}\n`,
            );
          } else {
            process.stdout.write(
              `batch ${String(batch).padStart(3)}: ${Math.round(imagesPerSecond)} images/s (${describeEngine(engine)})\n`,
            );
          }
        }
      } finally {
        engine.dispose();
      }
    });
}
