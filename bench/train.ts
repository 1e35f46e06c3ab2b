/**
 * Training benchmark, side by side in one run: samples/s, ms/step and peak RSS of one epoch (54,000 examples
 * of Fashion-MNIST, batch 100, 2 threads) for each case below, on onebit's native backend (where the addon is
 * built) and wasm backend, and on PyTorch (Debian's python3-torch, bench/torch_train.py) with the same model,
 * method and batch:
 *   mlp-2x2048 STE, mlp-2x2048 BayesBiNN, cnn-small STE (real activations);
 * plus float-free training against STE on mlp-2x2048 with 1-bit activations, with the ratio of step times.
 * Each contender runs in its own process, so its peak RSS is its own.
 *
 * PyTorch's speed depends on the BLAS behind Debian's libblas.so.3: without libopenblas0-pthread it is the
 * slow reference BLAS, and every ratio against it is inflated. So the bench installs libopenblas0-pthread when
 * it is missing, prints the BLAS library PyTorch loaded, and reports no ratio against the reference BLAS.
 *
 * With --json, one row per onebit contender:
 *   {"bench":"train-vs-pytorch","model":..,"method":..,"backend":"native"|"wasm","threads":2,
 *    "samplesPerSecond":..,"pytorch":..|null,"ratio":..|null,"stepMilliseconds":..,"peakRssBytes":..}
 * and {"bench":"train-pytorch-blas","library":..,"kind":"openblas"|"reference"|...} first.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { nativeUnavailableReason } from '../src/backend/native/index.js';

interface RunFigures {
  readonly samplesPerSecond: number;
  readonly stepMilliseconds: number;
  readonly peakRssBytes: number;
}

interface Case {
  readonly model: 'mlp-2x2048' | 'cnn-small';
  readonly method: 'ste' | 'bayesbinn';
}

const CASES: readonly Case[] = [
  { model: 'mlp-2x2048', method: 'ste' },
  { model: 'mlp-2x2048', method: 'bayesbinn' },
  { model: 'cnn-small', method: 'ste' },
];
const THREADS = 2;
const EPOCHS = 1;
const here = import.meta.dirname;
const PYTHON = '/usr/bin/python3';

type Print = (line: string) => void;

function runFigures(command: readonly string[]): RunFigures | string {
  const [cmd, ...args] = command;
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0)
    return `failed: ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}`;
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as RunFigures;
}

function onebitRun(model: string, method: string, activations: string, backend: string): readonly string[] {
  const config = { model, method, activations, epochs: EPOCHS, batchSize: 100, backend, threads: THREADS };
  return [process.execPath, '--import', 'tsx', join(here, 'train-run.ts'), JSON.stringify(config)];
}

function torchRun(c: Case): readonly string[] {
  return [
    PYTHON,
    join(here, 'torch_train.py'),
    ...['--threads', String(THREADS), '--epochs', String(EPOCHS), '--model', c.model, '--method', c.method],
  ];
}

/** Installs libopenblas0-pthread when it is missing (Debian's apt-get, through sudo unless root), saying so. */
function ensureOpenBlas(print: Print, json: boolean): void {
  if (spawnSync('dpkg', ['-s', 'libopenblas0-pthread'], { stdio: 'ignore' }).status === 0) return;
  if (!json) print('installing libopenblas0-pthread (the BLAS a PyTorch user on Debian would have)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args: string[]) =>
    process.getuid?.() === 0
      ? spawnSync('apt-get', args, { env, encoding: 'utf8' })
      : spawnSync('sudo', ['apt-get', ...args], { env, encoding: 'utf8' });
  apt(['update', '-qq']);
  const install = apt(['install', '-y', '-qq', '--no-install-recommends', 'libopenblas0-pthread']);
  if (install.status !== 0 && !json)
    print(`(could not install libopenblas0-pthread: ${install.stderr.trim()})`);
}

/** The BLAS library PyTorch loads (from its process's memory map), and what kind it is. */
function torchBlas(): { library: string; kind: 'openblas' | 'reference' | 'mkl' | 'other' } | string {
  const probe = [
    'import json, torch',
    'torch.ones(64, 64) @ torch.ones(64, 64)',
    "maps = open('/proc/self/maps').read().splitlines()",
    "print(json.dumps(sorted({l.split()[-1] for l in maps if 'blas' in l.lower() or 'mkl' in l.lower()})))",
  ].join('\n');
  const r = spawnSync(PYTHON, ['-c', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `the BLAS probe failed: ${r.stderr.trim().split('\n').slice(-1)[0]}`;
  const libraries = (JSON.parse(r.stdout.trim()) as string[]).map((p) =>
    existsSync(p) ? realpathSync(p) : p,
  );
  const blas = libraries.find((p) => /libblas\.so/.test(p)) ?? libraries.find((p) => /openblas|mkl/.test(p));
  if (blas === undefined) return 'PyTorch loaded no BLAS library that the probe could see';
  const kind = /openblas/.test(blas)
    ? 'openblas'
    : /mkl/.test(blas)
      ? 'mkl'
      : /\/blas\//.test(blas)
        ? 'reference'
        : 'other';
  return { library: blas, kind };
}

export async function runTrainBench(opts: { json: boolean; print: Print }): Promise<void> {
  const { json, print } = opts;
  const nativeMissing = nativeUnavailableReason();
  const backends = nativeMissing === null ? ['native', 'wasm'] : ['wasm'];
  const torchFound =
    existsSync(PYTHON) && spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  let torchUsable = false;
  if (torchFound) {
    ensureOpenBlas(print, json);
    const blas = torchBlas();
    if (typeof blas === 'string') {
      print(
        json ? JSON.stringify({ bench: 'train-pytorch-blas', error: blas }) : `PyTorch: ${blas}; no ratios`,
      );
    } else {
      torchUsable = blas.kind !== 'reference';
      print(
        json
          ? JSON.stringify({ bench: 'train-pytorch-blas', ...blas })
          : `PyTorch's BLAS: ${blas.library} (${blas.kind})${torchUsable ? '' : ': the reference BLAS, so no ratio is reported'}`,
      );
    }
  } else if (!json) {
    print('(PyTorch not found at /usr/bin/python3: apt-get install python3-torch to compare)');
  }
  if (nativeMissing !== null && !json) print(`native backend: not measured (${nativeMissing})`);
  if (!json) {
    print(`training: ${EPOCHS} epoch of Fashion-MNIST (54,000 examples), batch 100, ${THREADS} threads`);
    print('model       method     contender  samples/s  ms/step  peak RSS   vs PyTorch');
  }
  for (const c of CASES) {
    const pytorch = torchUsable ? runFigures(torchRun(c)) : null;
    const base = pytorch !== null && typeof pytorch !== 'string' ? pytorch.samplesPerSecond : null;
    for (const backend of backends) {
      const f = runFigures(onebitRun(c.model, c.method, 'real', backend));
      if (typeof f === 'string') {
        print(
          json
            ? JSON.stringify({ bench: 'train-vs-pytorch', ...c, backend, error: f })
            : `${c.model} ${c.method} ${backend}: ${f}`,
        );
        continue;
      }
      const ratio = base !== null ? f.samplesPerSecond / base : null;
      if (json) {
        print(
          JSON.stringify({
            bench: 'train-vs-pytorch',
            model: c.model,
            method: c.method,
            backend,
            threads: THREADS,
            samplesPerSecond: f.samplesPerSecond,
            pytorch: base,
            ratio,
            stepMilliseconds: f.stepMilliseconds,
            peakRssBytes: f.peakRssBytes,
          }),
        );
      } else {
        print(row(c, `onebit ${backend}`, f, ratio));
      }
    }
    if (!json && pytorch !== null) {
      print(
        typeof pytorch === 'string'
          ? `${c.model} ${c.method} pytorch: ${pytorch}`
          : row(c, 'pytorch', pytorch, 1),
      );
    }
  }
  floatFreeAgainstSte(opts, backends[0]);
}

function row(c: Case, contender: string, f: RunFigures, ratio: number | null): string {
  return (
    `${c.model.padEnd(12)}${c.method.padEnd(11)}${contender.padEnd(14)}${f.samplesPerSecond.toFixed(0).padStart(7)}` +
    `  ${f.stepMilliseconds.toFixed(1).padStart(7)}  ${(f.peakRssBytes / 2 ** 20).toFixed(0).padStart(5)} MiB` +
    `  ${ratio === null ? '' : `${ratio.toFixed(2)}x`}`
  );
}

/** Float-free training against STE on the same 1-bit-activation model, back to back (docs/methods.md#float-free). */
function floatFreeAgainstSte(opts: { json: boolean; print: Print }, backend: string): void {
  const ste = runFigures(onebitRun('mlp-2x2048', 'ste', 'binary', backend));
  const floatFree = runFigures(onebitRun('mlp-2x2048', 'float-free', 'binary', backend));
  if (typeof ste === 'string' || typeof floatFree === 'string') {
    opts.print(`float-free vs STE: ${typeof ste === 'string' ? ste : String(floatFree)}`);
    return;
  }
  const ratio = ste.stepMilliseconds / floatFree.stepMilliseconds;
  opts.print(
    opts.json
      ? JSON.stringify({
          bench: 'train-float-free-vs-ste',
          backend,
          threads: THREADS,
          floatFreeStepMilliseconds: floatFree.stepMilliseconds,
          steStepMilliseconds: ste.stepMilliseconds,
          floatFreePeakRssBytes: floatFree.peakRssBytes,
          stePeakRssBytes: ste.peakRssBytes,
          speedup: ratio,
        })
      : `float-free step ${floatFree.stepMilliseconds.toFixed(1)} ms vs ste ${ste.stepMilliseconds.toFixed(1)} ms on mlp-2x2048 with 1-bit activations (${backend} backend): ${ratio.toFixed(2)}x ${ratio >= 1 ? 'faster' : 'slower'}`,
  );
}
