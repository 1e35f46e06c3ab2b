/**
 * `onebit predict <model.onebit>`: run an exported model with the bit-packed engine, on a data set split
 * (accuracy and images/s) or on one PNG image (class and probabilities). The flags of the data-set mode
 * (--split, --limit, --batch, --data-dir) are refused with --image, where they would do nothing.
 */
import { ConfigError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { modelArgument } from './file-kind.js';
import { checkDataDirFlag } from './flag-checks.js';
import { DATASET_NAMES, isDatasetName, loadDataset } from '../data/dataset.js';
import { softmax, argmax, type Engine, type EngineBackend } from '../engine/engine.js';
import { describeEngine, engineBackendOption, openEngine } from './engine-backend.js';
import { decodeOnebit, type OnebitModel } from '../engine/format.js';
import { readPngImage } from '../io/image.js';
import { defaultCacheDir, optionGiven, parseChoice, parsePositiveInteger } from './options.js';

interface PredictFlags {
  data?: string;
  dataDir?: string;
  split: 'train' | 'test';
  image?: string;
  limit?: number;
  batch: number;
  backend: EngineBackend;
  threads?: number;
  json: boolean;
}

/** Class names of the data sets onebit knows, by the name recorded in the model's metadata. */
export const CLASS_NAMES: Readonly<Record<string, readonly string[]>> = {
  'fashion-mnist': [
    'T-shirt/top',
    'Trouser',
    'Pullover',
    'Dress',
    'Coat',
    'Sandal',
    'Shirt',
    'Sneaker',
    'Bag',
    'Ankle boot',
  ],
  mnist: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  cifar10: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
};

/**
 * Reads and validates a .onebit file; a training checkpoint or any other file is refused before the reader
 * runs, saying what it is (file-kind.ts). `command` names the command in the advice.
 */
export function readModelFile(path: string, command = 'predict'): OnebitModel {
  return readModelBytes(path, command).model;
}

/** `readModelFile`, with the file's bytes too (for a command that hands the file on as it is). */
export function readModelBytes(path: string, command: string): { bytes: Uint8Array; model: OnebitModel } {
  modelArgument(path, command);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new ConfigError(
      '<model>',
      'a .onebit model file written by onebit export',
      `${path}, which cannot be read (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  return { bytes, model: decodeOnebit(bytes, path) };
}

function className(model: OnebitModel, index: number): string {
  const data = model.metadata.data;
  const names = typeof data === 'string' ? CLASS_NAMES[data] : undefined;
  return names !== undefined && names.length === model.classes ? names[index] : String(index);
}

async function predictDataset(
  engine: Engine,
  path: string,
  flags: PredictFlags,
  data: string,
): Promise<void> {
  if (!isDatasetName(data)) throw new ConfigError('--data', `one of ${DATASET_NAMES.join(', ')}`, data);
  const ds = await loadDataset(data, {
    split: flags.split,
    cacheDir: defaultCacheDir(),
    ...(flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {}),
  });
  const [c, h, w] = engine.model.input.shape;
  if (ds.shape[0] !== c || ds.shape[1] !== h || ds.shape[2] !== w) {
    throw new ConfigError(
      '--data',
      `images of shape [${c}, ${h}, ${w}] (the model's input)`,
      `[${ds.shape.join(', ')}]`,
    );
  }
  const count = Math.min(ds.count, flags.limit ?? ds.count);
  const images = ds.images.subarray(0, count * engine.inputSize);
  const start = performance.now();
  const predictions = engine.classify(images, count);
  const seconds = (performance.now() - start) / 1000;
  let correct = 0;
  for (let i = 0; i < count; i++) if (predictions[i] === ds.labels[i]) correct++;
  const accuracy = correct / count;
  const imagesPerSecond = count / seconds;
  if (!flags.json) {
    process.stdout.write(
      `${path} on ${data} ${flags.split} (${count} images): accuracy ${accuracy.toFixed(4)}, ` +
        `${Math.round(imagesPerSecond)} images/s (${describeEngine(engine)}, batch ${engine.maxBatch})\n`,
    );
    return;
  }
  process.stdout.write(
    `${JSON.stringify({ type: 'predict', model: path, data, split: flags.split, count, correct, accuracy, imagesPerSecond, backend: engine.backend, level: engine.level, threads: engine.threads, batch: engine.maxBatch })}\n`,
  );
}

function predictImage(engine: Engine, file: string, json: boolean): void {
  const model = engine.model;
  const pixels = readPngImage(file, model.input.shape);
  const logits = engine.logits(pixels, 1);
  // At the model's temperature (calibrated when it was trained).
  const p = softmax(logits, 0, model.classes, model.temperature ?? 1);
  const best = argmax(logits, 0, model.classes);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ type: 'predict', image: file, class: best, label: className(model, best), probabilities: Array.from(p) })}\n`,
    );
    return;
  }
  process.stdout.write(
    `${file}: class ${best} (${className(model, best)}), probability ${p[best].toFixed(4)}\n`,
  );
  const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a]);
  for (const j of order)
    process.stdout.write(
      `  ${String(j).padStart(3)}  ${className(model, j).padEnd(14)} ${p[j].toFixed(4)}\n`,
    );
}

export function predictCommand(): Command {
  return new Command('predict')
    .description('classify with an exported .onebit model on the bit-packed engine (native or WebAssembly)')
    .argument('<model>', 'a .onebit file written by onebit export')
    .option(
      '--data <name>',
      `data set to classify (${DATASET_NAMES.join(', ')}); prints accuracy and images/s`,
    )
    .option(
      '--data-dir <dir>',
      "folder holding the data set's files (the only place looked in; default: ~/.cache/onebit, then the system copy)",
    )
    .option('--split <split>', 'train or test', parseChoice('--split', ['train', 'test'] as const), 'test')
    .option('--limit <n>', 'only the first n images', parsePositiveInteger('--limit'))
    .option('--image <file>', "classify one PNG image (the model's input size, e.g. 28x28 grayscale)")
    .option('--batch <n>', 'images per engine call', parsePositiveInteger('--batch'), 100)
    .option(
      '--threads <n>',
      'engine threads (default: the number of cores, at most 8)',
      parsePositiveInteger('--threads'),
    )
    .addOption(engineBackendOption())
    .option('--json', 'JSON output (the last line holds accuracy and imagesPerSecond)', false)
    .action(async (path: string, flags: PredictFlags, command: Command) => {
      if ((flags.image === undefined) === (flags.data === undefined)) {
        throw new ConfigError('predict', 'exactly one of --data <name> or --image <file>', 'both or neither');
      }
      if (flags.image !== undefined) {
        // One image: the data-set flags would do nothing.
        for (const [key, flag] of [
          ['split', '--split'],
          ['limit', '--limit'],
          ['batch', '--batch'],
          ['dataDir', '--data-dir'],
        ] as const) {
          if (optionGiven(command, key)) {
            throw new ConfigError(
              flag,
              `no ${flag} with --image (it applies to --data)`,
              String(command.getOptionValue(key)),
            );
          }
        }
      } else {
        checkDataDirFlag(flags.data as string, flags.dataDir);
      }
      const model = readModelFile(path);
      const engine = await openEngine(model, {
        backend: flags.backend,
        threads: flags.threads,
        maxBatch: flags.batch,
      });
      try {
        if (flags.image !== undefined) predictImage(engine, flags.image, flags.json);
        else await predictDataset(engine, path, flags, flags.data as string);
      } finally {
        engine.dispose();
      }
    });
}
