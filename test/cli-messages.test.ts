/**
 * "Nothing lost, nothing silent" for eval, predict, export, summary, bench, model, data, upgrade and demo:
 * a file of the wrong kind says what it is and which command takes it; a run folder evaluates its
 * checkpoint; --out and --format must agree; output paths that cannot be written name the flag and the
 * path; and a flag that would do nothing in the combination given is refused, naming it. Refusals are
 * checked in-process on the commands themselves (as main.ts runs them), end-to-end behaviour through the
 * CLI.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Command } from 'commander';
import { ConfigError, OnebitError, OnebitFormatError, TensorFileError } from '../src/errors.js';
import { encodePngImage } from '../src/io/image.js';
import { benchCommand } from '../src/cli/bench-command.js';
import { dataCommand } from '../src/cli/data-command.js';
import { demoCommand } from '../src/cli/demo-command.js';
import { evalCommand } from '../src/cli/eval-command.js';
import { exportCommand } from '../src/cli/export-command.js';
import { modelCommand } from '../src/cli/model-command.js';
import { predictCommand } from '../src/cli/predict-command.js';
import { summaryCommand } from '../src/cli/summary-command.js';
import { upgradeCommand } from '../src/cli/upgrade-command.js';
import { lastJson, runCli } from './cli.js';
import { loadNativeAddon } from '../src/native/addon.js';

let dir = '';
let ste = ''; // a run folder of an STE run (checkpoint.ckpt)
let vispa = ''; // a run folder of a VISPA run with rank 2 (a weight distribution to sample)
let model = ''; // ste's checkpoint exported to .onebit
let image = ''; // a 28x28 grayscale PNG

/** What `onebit <args>` throws, run in-process on a fresh command (commander's own output silenced). */
async function failure(command: Command, args: readonly string[]): Promise<Error> {
  const silence = (c: Command): void => {
    c.exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    c.commands.forEach(silence);
  };
  silence(command);
  try {
    await command.parseAsync([...args], { from: 'user' });
  } catch (error) {
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail(`onebit ${command.name()} ${args.join(' ')} did not fail`);
}

/** Asserts that the command refuses `flag` with a ConfigError naming it. */
async function refuses(
  command: Command,
  args: readonly string[],
  flag: string,
  detail?: RegExp,
): Promise<void> {
  const error = await failure(command, args);
  assert.ok(error instanceof ConfigError, `${args.join(' ')}: ${error.name}: ${error.message}`);
  assert.equal(error.field, flag, error.message);
  if (detail !== undefined) assert.match(error.message, detail);
}

const STORE = ['--backend', 'reference', '--json'];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-messages-'));
  ste = join(dir, 'ste');
  vispa = join(dir, 'vispa');
  model = join(dir, 'ste.onebit');
  const common = ['--data', 'synthetic-mnist', '--model', 'mlp-100', '--epochs', '1', '--batch-size', '50'];
  const small = ['--train-limit', '200', '--test-limit', '100'];
  const [a, b] = await Promise.all([
    runCli(['train', ...common, ...small, ...STORE, '--out', ste]),
    runCli([
      ...['train', ...common, ...small, '--method', 'vispa', '--rank', '2', '--no-recalibrate-bn'],
      ...[...STORE, '--out', vispa],
    ]),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const exported = await runCli(['export', join(ste, 'checkpoint.ckpt'), '--out', model]);
  assert.equal(exported.code, 0, exported.stderr);
  image = join(dir, 'digit.png');
  writeFileSync(image, encodePngImage(new Uint8Array(28 * 28).fill(128), [1, 28, 28]));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('a file of the wrong kind says what it is and which command takes it', () => {
  test('onebit eval on an exported .onebit model: use onebit predict', async () => {
    const r = await runCli(['eval', model]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /this is an exported model file \(magic "ONEBITNN"\), not a training checkpoint/);
    assert.ok(r.stderr.includes(`onebit predict ${model} --data <name>`), r.stderr);
    assert.ok(r.stderr.includes(`onebit predict ${model} --image <file.png>`), r.stderr);
  });

  test('onebit predict on a training checkpoint: export it first, or evaluate it', async () => {
    const checkpoint = join(ste, 'checkpoint.ckpt');
    const r = await runCli(['predict', checkpoint, '--image', image]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /this is a training checkpoint \(magic "ONEBITCK"\), not an exported model/);
    assert.ok(r.stderr.includes(`onebit export ${checkpoint} --out m.onebit`), r.stderr);
    assert.ok(r.stderr.includes(`onebit eval ${checkpoint}`), r.stderr);
    // bench takes a model too.
    const bench = await failure(benchCommand(), [checkpoint, '--seconds', '0.01']);
    assert.ok(bench instanceof OnebitFormatError && bench.code === 'bad-magic', bench.message);
    assert.match(bench.message, /onebit bench cannot run it: export it first/);
  });

  test('checkpoint commands take a checkpoint, not a model (export, summary, upgrade too)', async () => {
    for (const command of [exportCommand(), summaryCommand(), upgradeCommand()]) {
      const error = await failure(command, [model]);
      assert.ok(error instanceof TensorFileError, error.message);
      assert.match(error.message, /exported model file .*onebit predict/);
    }
  });

  test('any other file: the magic expected, and what the file looks like', async () => {
    const json = join(dir, 'config.json');
    writeFileSync(json, '{"epochs": 3}\n');
    const asCheckpoint = await failure(evalCommand(), [json]);
    assert.ok(asCheckpoint instanceof TensorFileError);
    assert.equal(
      asCheckpoint.message,
      `${json}: not a onebit checkpoint: expected the magic "ONEBITCK" (a checkpoint written by onebit train), ` +
        `found bytes 7b 22 65 70 6f 63 68 73 ("{\\"epochs"), which looks like JSON text`,
    );
    const asModel = await failure(predictCommand(), [image, '--image', image]);
    assert.ok(asModel instanceof OnebitFormatError);
    assert.match(
      asModel.message,
      /expected the magic "ONEBITNN" .*found bytes 89 50 4e 47 .*which looks like a PNG image/,
    );
    const empty = join(dir, 'empty.ckpt');
    writeFileSync(empty, '');
    assert.match((await failure(evalCommand(), [empty])).message, /found an empty file \(0 bytes\)/);
    const missing = await failure(evalCommand(), [join(dir, 'nowhere.ckpt')]);
    assert.ok(missing instanceof TensorFileError);
    assert.match(missing.message, /no such file or folder/);
  });
});

describe('onebit eval of a run folder', () => {
  test('evaluates the checkpoint.ckpt in it, as the file itself (and writes --reliability, --entropies)', async () => {
    const reliability = join(dir, 'out', 'reliability.json');
    const entropies = join(dir, 'out', 'entropies.csv');
    const [byFolder, byFile] = await Promise.all([
      runCli([
        'eval',
        ste,
        '--test-limit',
        '100',
        ...STORE,
        '--reliability',
        reliability,
        '--entropies',
        entropies,
      ]),
      runCli(['eval', join(ste, 'checkpoint.ckpt'), '--test-limit', '100', ...STORE]),
    ]);
    assert.equal(byFolder.code, 0, byFolder.stderr);
    assert.equal(byFile.code, 0, byFile.stderr);
    const folder = lastJson(byFolder.stdout);
    assert.equal(folder.checkpoint, join(ste, 'checkpoint.ckpt'));
    assert.deepEqual(folder.mode, lastJson(byFile.stdout).mode);
    // The output flags took effect, in a folder made for them.
    const bins = (JSON.parse(readFileSync(reliability, 'utf8')) as { mode: { count: number }[] }).mode;
    assert.equal(bins.length, 15);
    assert.equal(
      bins.reduce((n, b) => n + b.count, 0),
      100,
    );
    const rows = readFileSync(entropies, 'utf8').trim().split('\n');
    assert.equal(rows[0], 'index,label,mode_entropy');
    assert.equal(rows.length, 101);
  });

  test('a folder without a checkpoint says what was looked for, and the checkpoints it holds', async () => {
    const runs = join(dir, 'runs');
    mkdirSync(runs);
    const empty = await failure(evalCommand(), [runs]);
    assert.ok(empty instanceof TensorFileError);
    assert.match(
      empty.message,
      /a folder without checkpoint\.ckpt: onebit eval takes a checkpoint file, or a run folder/,
    );
    writeFileSync(join(runs, 'task-2.ckpt'), '');
    writeFileSync(join(runs, 'task-10.ckpt'), '');
    writeFileSync(join(runs, 'task-1.ckpt'), '');
    assert.match(
      (await failure(evalCommand(), [runs])).message,
      /this folder holds task-1\.ckpt, task-2\.ckpt, task-10\.ckpt: give one of them/,
    );
  });
});

describe('onebit export: --out and --format agree', () => {
  test('an --out of another format than --format is refused, naming both; nothing is written', async () => {
    const out = join(dir, 'mismatch.onebit');
    const error = await failure(exportCommand(), [ste, '--format', 'onnx', '--out', out]);
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, '--out');
    assert.match(error.message, /--format onnx \(\.onnx\)/);
    assert.match(error.message, /extension \.onebit is that of --format onebit/);
    assert.equal(existsSync(out), false);
  });

  test('without --format, the extension of --out chooses it; an unknown extension keeps --format', async () => {
    const onnx = join(dir, 'by-extension.ONNX');
    const other = join(dir, 'weights.bin');
    const [a, b] = await Promise.all([
      runCli(['export', ste, '--out', onnx, '--json']),
      runCli(['export', ste, '--format', 'safetensors', '--out', other, '--json']),
    ]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(lastJson(a.stdout).format, 'onnx');
    assert.equal(readFileSync(onnx)[0], 0x08); // a protobuf ModelProto: ir_version first
    assert.equal(b.code, 0, b.stderr);
    assert.equal(lastJson(b.stdout).format, 'safetensors');
    assert.equal(readFileSync(other)[8], 0x7b); // the JSON header after its 8-byte length
  });

  test('--out naming the checkpoint itself is refused (it would be written over)', async () => {
    const checkpoint = join(ste, 'checkpoint.ckpt');
    const before = readFileSync(checkpoint);
    await refuses(exportCommand(), [checkpoint, '--format', 'safetensors', '--out', checkpoint], '--out');
    assert.deepEqual(readFileSync(checkpoint), before);
  });
});

describe('output paths that cannot be written name the flag and the path', () => {
  test('a parent that is a file (EEXIST/ENOTDIR), or a folder where a file goes (EISDIR)', async () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'x');
    const under = join(file, 'sub', 'm.onebit');
    const cases: [Command, string[], string, string][] = [
      [exportCommand(), [ste, '--out', under], '--out', under],
      [evalCommand(), [ste, '--reliability', join(file, 'r.json')], '--reliability', join(file, 'r.json')],
      [evalCommand(), [ste, '--entropies', join(file, 'e.csv')], '--entropies', join(file, 'e.csv')],
      [evalCommand(), [ste, '--reliability', dir], '--reliability', dir],
      [upgradeCommand(), [ste, '--out', under], '--out', under],
      [demoCommand(), ['--out', join(file, 'demo')], '--out', join(file, 'demo')],
      [dataCommand(), ['fetch', 'mnist', '--cache-dir', file], '--cache-dir', join(file, 'mnist')],
    ];
    for (const [command, args, flag, path] of cases) {
      const error = await failure(command, args);
      assert.ok(error instanceof ConfigError, `${args.join(' ')}: ${error.message}`);
      assert.equal(error.field, flag);
      assert.ok(error.message.includes(`"${path}"`), error.message);
      assert.doesNotMatch(error.message, /EEXIST|mkdir/);
    }
    assert.match(
      (await failure(exportCommand(), [ste, '--out', under])).message,
      new RegExp(`\\(${file.replace(/[.\\/]/g, '\\$&')} is a file, not a folder\\)`),
    );
  });

  test('--reliability and --entropies naming one file are refused (the second would replace the first)', async () => {
    const same = join(dir, 'same.json');
    await refuses(evalCommand(), [ste, '--reliability', same, '--entropies', same], '--entropies');
  });

  test('export creates the folders of --out', async () => {
    const out = join(dir, 'new', 'folder', 'm.onebit');
    const r = await runCli(['export', ste, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(out));
  });
});

describe('flags that would do nothing are refused', () => {
  test('eval: --test-samples, --average and --seed without sampled networks', async () => {
    await refuses(
      evalCommand(),
      [ste, '--test-samples', '3', ...STORE],
      '--test-samples',
      /ste has no weight distribution/,
    );
    await refuses(evalCommand(), [ste, '--average', 'probabilities', ...STORE], '--average');
    await refuses(evalCommand(), [ste, '--seed', '7', ...STORE], '--seed');
    // A method with a distribution, but no samples asked for.
    await refuses(evalCommand(), [vispa, '--average', 'logits', ...STORE], '--average', /--test-samples 0/);
    await refuses(evalCommand(), [vispa, '--seed', '2', ...STORE], '--seed');
    // Negative sample counts are not a silent "no samples".
    const negative = await failure(evalCommand(), [ste, '--test-samples', '-1']);
    assert.match(negative.message, /--test-samples expects an integer >= 0/);
  });

  test('eval: --average and --seed take effect with samples of a method that has a distribution', async () => {
    const args = ['eval', vispa, '--test-samples', '3', '--test-limit', '100', ...STORE];
    const [logits, probabilities, seed2] = await Promise.all([
      runCli(args),
      runCli([...args, '--average', 'probabilities']),
      runCli([...args, '--seed', '2']),
    ]);
    for (const r of [logits, probabilities, seed2]) assert.equal(r.code, 0, r.stderr);
    type Ensemble = { average: string; nll: number };
    const ensemble = (r: { stdout: string }): Ensemble => lastJson(r.stdout).ensemble as Ensemble;
    assert.equal(ensemble(logits).average, 'logits');
    assert.equal(ensemble(probabilities).average, 'probabilities');
    // Same samples (same seed), combined differently; other samples under another seed.
    assert.notEqual(ensemble(probabilities).nll, ensemble(logits).nll);
    assert.notEqual(ensemble(seed2).nll, ensemble(logits).nll);
  });

  test('eval: --data takes effect (a data set the network does not fit is refused)', async () => {
    const error = await failure(evalCommand(), [ste, '--data', 'synthetic-cifar', ...STORE]);
    assert.ok(error instanceof OnebitError, error.message);
    assert.match(error.message, /--data/);
  });

  test('predict --data: --limit and --batch take effect', async () => {
    const r = await runCli([
      ...['predict', model, '--data', 'synthetic-mnist', '--split', 'train', '--limit', '30'],
      ...['--batch', '7', '--threads', '1', '--json'],
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = lastJson(r.stdout);
    assert.deepEqual([result.count, result.batch, result.split, result.threads], [30, 7, 'train', 1]);
  });

  test('predict and bench --backend: the engine it names runs, with the same predictions; others are refused', async () => {
    const args = [
      'predict',
      model,
      '--data',
      'synthetic-mnist',
      '--split',
      'train',
      '--limit',
      '40',
      '--json',
    ];
    const backends = loadNativeAddon().available ? ['wasm', 'native'] : ['wasm'];
    const results = [];
    for (const backend of backends) {
      const r = await runCli([...args, '--backend', backend]);
      assert.equal(r.code, 0, r.stderr);
      const result = lastJson(r.stdout);
      assert.equal(result.backend, backend);
      results.push([result.correct, result.count]);
      const b = await runCli([
        'bench',
        model,
        '--seconds',
        '0.01',
        '--threads',
        '1',
        '--backend',
        backend,
        '--json',
      ]);
      assert.equal(b.code, 0, b.stderr);
      assert.equal(lastJson(b.stdout).backend, backend);
    }
    assert.equal(new Set(results.map((x) => x.join('/'))).size, 1, JSON.stringify(results));
    for (const [command, bad] of [
      [predictCommand(), 'gpu'],
      [benchCommand(), 'reference'],
    ] as const) {
      const error = await failure(command, [model, '--backend', bad]);
      assert.match(error.message, new RegExp(`--backend expects one of native, wasm, got "${bad}"`));
    }
  });

  test('eval: --threads with the reference backend, --data-dir for generated data', async () => {
    await refuses(evalCommand(), [ste, '--backend', 'reference', '--threads', '2'], '--threads');
    await refuses(
      evalCommand(),
      [ste, '--data-dir', dir, ...STORE],
      '--data-dir',
      /synthetic-mnist is generated/,
    );
  });

  test('summary of a checkpoint: --model, --method, --rank and --activations', async () => {
    for (const [flag, value] of [
      ['--model', 'mlp-2x2048'],
      ['--method', 'ste'],
      ['--rank', '4'],
      ['--activations', 'real'],
    ]) {
      await refuses(summaryCommand(), [vispa, flag, value], flag, /with a checkpoint/);
    }
  });

  test('bench: --seconds must be positive, and is the measure (no run cap cuts it short)', async () => {
    for (const seconds of ['0', '-1']) {
      const error = await failure(benchCommand(), [model, '--seconds', seconds]);
      assert.match(error.message, new RegExp(`--seconds expects a number > 0, got "${seconds}"`));
    }
    const started = performance.now();
    const r = await runCli(['bench', model, '--seconds', '2', '--threads', '1', '--json']);
    assert.equal(r.code, 0, r.stderr);
    // Two batch sizes, each timed for at least 2 s.
    assert.ok(performance.now() - started >= 4000, `bench took ${performance.now() - started} ms`);
  });

  test('predict --image: the data-set flags (--split, --limit, --batch, --data-dir)', async () => {
    for (const [flag, value] of [
      ['--split', 'train'],
      ['--limit', '5'],
      ['--batch', '10'],
      ['--data-dir', dir],
    ]) {
      await refuses(predictCommand(), [model, '--image', image, flag, value], flag, /with --image/);
    }
    await refuses(predictCommand(), [model, '--data', 'synthetic-mnist', '--data-dir', dir], '--data-dir');
  });

  test('model show of a spec file: the builder flags', async () => {
    const spec = join(dir, 'spec.json');
    const shown = await runCli(['model', 'show', 'mlp-100', '--json']);
    writeFileSync(spec, shown.stdout);
    for (const args of [
      ['--activations', 'binary'],
      ['--classes', '3'],
      ['--channel-scale'],
      ['--bn-affine'],
    ]) {
      await refuses(modelCommand(), ['show', spec, ...args], args[0], /with a spec file/);
    }
    // For a named model they take effect.
    const three = await runCli(['model', 'show', 'mlp-100', '--classes', '3', '--json']);
    assert.equal((JSON.parse(three.stdout) as { classes: number }).classes, 3);
  });

  test('demo: --threads with the reference backend; data fetch: a --base-url that is not http(s)', async () => {
    await refuses(
      demoCommand(),
      ['--backend', 'reference', '--threads', '2', '--out', join(dir, 'demo')],
      '--threads',
    );
    assert.equal(existsSync(join(dir, 'demo')), false);
    for (const url of ['ftp://mirror.example/mnist', 'not a url'])
      await refuses(dataCommand(), ['fetch', 'mnist', '--base-url', url, '--cache-dir', dir], '--base-url');
  });
});
