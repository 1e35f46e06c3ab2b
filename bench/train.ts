/**
 * Training benchmark: samples/s, ms/step and peak RSS of one epoch of mlp-2x2048 + STE at batch 100 on
 * Fashion-MNIST, for the wasm backend with 1 and 2 threads (and the native backend with 2, where the addon
 * is built), side by side with the same model and method in
 * PyTorch (Debian's python3-torch, 2 threads) measured in the same run; and float-free training against STE
 * on the same model with 1-bit activations (2 threads each), with the ratio of their step times. Each contender runs in its own
 * process so its peak RSS is its own. Ratios are against PyTorch when it is installed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { nativeUnavailableReason } from '../src/backend/native/index.js';

interface RunFigures {
  readonly samplesPerSecond: number;
  readonly stepMilliseconds: number;
  readonly peakRssBytes: number;
}

interface Contender {
  readonly label: string;
  readonly threads: number;
  readonly command: readonly string[];
}

const here = import.meta.dirname;
const STE_BINARY = 'onebit wasm ste 1-bit act';
const FLOAT_FREE = 'onebit wasm float-free';
const PYTHON = '/usr/bin/python3';

function runContender(c: Contender): RunFigures | string {
  const [cmd, ...args] = c.command;
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0)
    return `failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}`;
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as RunFigures;
}

export async function runTrainBench(opts: { json: boolean; print: (line: string) => void }): Promise<void> {
  const epochs = 1;
  const onebit = (
    threads: number,
    method = 'ste',
    activations = 'real',
    backend = 'wasm',
  ): readonly string[] => [
    process.execPath,
    '--import',
    'tsx',
    join(here, 'train-run.ts'),
    JSON.stringify({
      model: 'mlp-2x2048',
      method,
      activations,
      epochs,
      batchSize: 100,
      backend,
      threads,
    }),
  ];
  const contenders: Contender[] = [
    { label: 'onebit wasm ste', threads: 1, command: onebit(1) },
    { label: 'onebit wasm ste', threads: 2, command: onebit(2) },
    ...(nativeUnavailableReason() === null
      ? [{ label: 'onebit native ste', threads: 2, command: onebit(2, 'ste', 'real', 'native') }]
      : []),
    // Float-free against STE on the same 1-bit-activation model, back to back (docs/methods.md#float-free).
    { label: STE_BINARY, threads: 2, command: onebit(2, 'ste', 'binary') },
    { label: FLOAT_FREE, threads: 2, command: onebit(2, 'float-free', 'binary') },
  ];
  const torchAvailable =
    existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  if (torchAvailable) {
    contenders.push({
      label: 'pytorch ste',
      threads: 2,
      command: [PYTHON, join(here, 'torch_train.py'), '--threads', '2', '--epochs', String(epochs)],
    });
  }
  const results: { label: string; threads: number; figures: RunFigures | string }[] = [];
  for (const c of contenders) results.push({ label: c.label, threads: c.threads, figures: runContender(c) });
  const baseline = results.find((r) => r.label.startsWith('pytorch') && typeof r.figures !== 'string');
  const baseSps = baseline !== undefined ? (baseline.figures as RunFigures).samplesPerSecond : null;
  if (!opts.json) {
    opts.print(`training: mlp-2x2048, batch 100, ${epochs} epoch of Fashion-MNIST (54,000 examples)`);
    opts.print('contender                 threads  samples/s  ms/step  peak RSS   vs PyTorch');
  }
  for (const r of results) {
    if (typeof r.figures === 'string') {
      opts.print(
        opts.json
          ? JSON.stringify({ bench: 'train', contender: r.label, threads: r.threads, error: r.figures })
          : `${r.label.padEnd(26)}${String(r.threads).padStart(7)}  ${r.figures}`,
      );
      continue;
    }
    const f = r.figures;
    const ratio = baseSps !== null ? f.samplesPerSecond / baseSps : null;
    if (opts.json) {
      opts.print(
        JSON.stringify({
          bench: 'train-samples-per-second',
          contender: r.label,
          threads: r.threads,
          value: f.samplesPerSecond,
          unit: 'samples/s',
          ratioVsPytorch: ratio,
        }),
      );
      opts.print(
        JSON.stringify({
          bench: 'train-peak-rss',
          contender: r.label,
          threads: r.threads,
          value: f.peakRssBytes,
          unit: 'bytes',
        }),
      );
    } else {
      opts.print(
        `${r.label.padEnd(26)}${String(r.threads).padStart(7)}  ${f.samplesPerSecond.toFixed(0).padStart(9)}  ${f.stepMilliseconds.toFixed(1).padStart(7)}  ${(f.peakRssBytes / 2 ** 20).toFixed(0).padStart(5)} MiB  ${ratio === null ? '' : `${ratio.toFixed(2)}x`}`,
      );
    }
  }
  const steBinary = results.find((r) => r.label === STE_BINARY)?.figures;
  const floatFree = results.find((r) => r.label === FLOAT_FREE)?.figures;
  if (
    steBinary !== undefined &&
    floatFree !== undefined &&
    typeof steBinary !== 'string' &&
    typeof floatFree !== 'string'
  ) {
    const ratio = steBinary.stepMilliseconds / floatFree.stepMilliseconds;
    opts.print(
      opts.json
        ? JSON.stringify({
            bench: 'train-float-free-vs-ste',
            threads: 2,
            floatFreeStepMilliseconds: floatFree.stepMilliseconds,
            steStepMilliseconds: steBinary.stepMilliseconds,
            speedup: ratio,
          })
        : `float-free step ${floatFree.stepMilliseconds.toFixed(1)} ms vs ste ${steBinary.stepMilliseconds.toFixed(1)} ms on the 1-bit-activation model: ${ratio.toFixed(2)}x ${ratio >= 1 ? 'faster' : 'slower'}`,
    );
  }
  if (!torchAvailable && !opts.json)
    opts.print('(PyTorch not found at /usr/bin/python3: apt-get install python3-torch to compare)');
}
