/**
 * The flags the flag inventory (docs/cli-flags.md) found no test for, each shown to take effect: every
 * method flag changes what its method computes in a few training steps (test/training-flags.test.ts shows
 * every training flag of train and continual reaches the config, or is refused); and the program's own flags, the output flags of model, summary, data fetch, upgrade and bench, and train's --backend on
 * resume change what the command does. In-process where a command's action is synchronous or fails early;
 * through the CLI (a handful of short runs) where it must print or write files.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { CommanderError, type Command } from 'commander';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import { dataCommand } from '../src/cli/data-command.js';
import { modelCommand } from '../src/cli/model-command.js';
import { buildProgram } from '../src/cli/program.js';
import { summaryCommand } from '../src/cli/summary-command.js';
import { checkConfig, configFromFlags, trainCommand, type TrainFlags } from '../src/cli/train-command.js';
import { syntheticDataset } from '../src/data/dataset.js';
import { DATASET_SOURCES } from '../src/data/fetch.js';
import { FetchError } from '../src/errors.js';
import { CHECKPOINT_MAGIC, CHECKPOINT_VERSION, loadCheckpoint } from '../src/io/checkpoint.js';
import { writeTensorFile } from '../src/io/tensor-file.js';
import { METHODS } from '../src/methods/registry.js';
import { MODEL_NAMES } from '../src/nn/models.js';
import { Rng } from '../src/tensor/rng.js';
import { createRun, disposeRun } from '../src/train/run.js';
import { runCli } from './cli.js';
import { methodBase, methodFlagValue, parseFlags } from './flags.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-flag-effects-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Where a flag's generic other value shows nothing within a few steps, the words that make its effect
 * visible: STE's latent clip only acts once latent weights reach +-1 (a large --lr gets them there), and
 * --surrogate clipped-identity differs from identity only without the clip (with it on, every latent weight
 * is in [-1, 1] when its gradient arrives: src/methods/ste.test.ts). A counter clip of 32766 is never
 * reached in three steps; 64 is.
 */
const METHOD_FLAG_CASES: Record<string, { context?: string[]; value?: string[] }> = {
  '--surrogate': { context: ['--lr', '0.5', '--no-clip-latent'] },
  '--no-clip-latent': { context: ['--lr', '0.5'] },
  '--ff-clip': { value: ['--ff-clip', '64'] },
};

const SHAPE = [1, 28, 28] as const;
const STEPS = 3;
const BATCH = 20;
const steps = syntheticDataset({ shape: SHAPE, count: STEPS * BATCH, classes: 10, seed: 2 });
const stepOrder = Uint32Array.from({ length: STEPS * BATCH }, (_, i) => i);

/**
 * SHA-256 of what a run built from `onebit train <args>` holds after three training steps of mlp-100 on
 * synthetic data: every state tensor, the learner's scalars and the test-time logits of the mode.
 */
async function afterSteps(args: readonly string[]): Promise<string> {
  const flags = await parseFlags<TrainFlags>(trainCommand(), [
    ...['--data', 'synthetic-mnist', '--model', 'mlp-100', '--epochs', '1', '--seed', '3'],
    ...args,
  ]);
  const config = configFromFlags(flags);
  checkConfig(config);
  const backend = createReferenceBackend('float32');
  const shape = { inputShape: SHAPE, classes: 10, stepsPerEpoch: STEPS, trainingExamples: STEPS * BATCH };
  const run = createRun(config, backend, shape, BATCH);
  try {
    await run.learner.prepare();
    for (let s = 0; s < STEPS; s++) {
      run.learner.trainBatch(steps, stepOrder, s * BATCH, BATCH, {
        step: s + 1,
        learningRate: run.schedule(s),
        scheduleStep: s,
      });
    }
    const hash = createHash('sha256');
    for (const t of run.learner.stateTensors()) {
      hash.update(new Uint8Array(t.value.buffer, t.value.byteOffset, t.value.byteLength));
    }
    hash.update(JSON.stringify(run.learner.stateScalars()));
    run.learner.predict('mode', new Rng(1));
    hash.update(Float64Array.from(run.learner.logits(steps, stepOrder, 0, BATCH)));
    return hash.digest('hex');
  } finally {
    disposeRun(run);
    backend.dispose();
  }
}

describe('method flags change what the method computes', () => {
  test('each method flag, given with its method, changes its state or logits within three training steps', async () => {
    let checked = 0;
    for (const method of METHODS) {
      const base = methodBase(method.name);
      const plain = await afterSteps(base);
      for (const d of method.options) {
        const { context = [], value = methodFlagValue(d) } = METHOD_FLAG_CASES[d.flag] ?? {};
        const baseline = context.length === 0 ? plain : await afterSteps([...base, ...context]);
        const given = await afterSteps([...base, ...context, ...value]);
        assert.notEqual(
          given,
          baseline,
          `${method.name} ${[...context, ...value].join(' ')} changed nothing`,
        );
        checked++;
      }
    }
    assert.equal(checked, METHODS.flatMap((m) => m.options).length);
  });
});

/**
 * What a command with a synchronous action prints on stdout, run in-process. The capture lasts only for
 * the synchronous parse, so nothing else (the test runner's own output) can be caught in it.
 */
function printed(t: TestContext, command: Command, args: readonly string[]): string {
  let out = '';
  const write = t.mock.method(process.stdout, 'write', (chunk: string | Uint8Array): boolean => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  });
  try {
    command.exitOverride().parse([...args], { from: 'user' });
  } finally {
    write.mock.restore();
  }
  return out;
}

/** `onebit <args>` on the whole program in-process, for help and version: what it printed and how it ended. */
function programOutput(args: readonly string[]): { out: string; code: string } {
  let out = '';
  const program = buildProgram()
    .exitOverride()
    .configureOutput({ writeOut: (s) => (out += s), writeErr: () => undefined });
  try {
    program.parse([...args], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return { out, code: error.code };
    throw error;
  }
  return assert.fail(`onebit ${args.join(' ')} did not end`);
}

describe('program flags', () => {
  test('--version prints the version of package.json', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    assert.deepEqual(programOutput(['--version']), { out: `${pkg.version}\n`, code: 'commander.version' });
  });

  test('--help lists every command and the program flags', () => {
    const { out, code } = programOutput(['--help']);
    assert.equal(code, 'commander.helpDisplayed');
    for (const command of buildProgram().commands)
      assert.match(out, new RegExp(`^  ${command.name()}\\b`, 'm'));
    for (const flag of ['--verbose', '--version', '--help']) assert.ok(out.includes(flag), flag);
  });

  test('--verbose adds the stack trace to an error', async () => {
    const missing = join(dir, 'no-such.ckpt');
    const [plain, verbose] = await Promise.all([
      runCli(['eval', missing]),
      runCli(['--verbose', 'eval', missing]),
    ]);
    for (const r of [plain, verbose]) {
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^onebit: .*no-such\.ckpt/);
    }
    assert.doesNotMatch(plain.stderr, /\n {4}at /);
    assert.match(verbose.stderr, /\n {4}at /);
  });
});

describe('model and summary flags', () => {
  test('model list --json: one object with every model name; without it, one name a line', (t) => {
    assert.deepEqual(JSON.parse(printed(t, modelCommand(), ['list', '--json'])), { models: MODEL_NAMES });
    assert.equal(printed(t, modelCommand(), ['list']), `${MODEL_NAMES.join('\n')}\n`);
  });

  test('model show: --activations, --channel-scale and --bn-affine change the named model; --json prints one line', (t) => {
    const show = (args: string[]): string => printed(t, modelCommand(), ['show', 'mlp-100', ...args]);
    const plain = show(['--json']);
    assert.equal(plain.trim().split('\n').length, 1);
    const indented = show([]);
    assert.ok(indented.trim().split('\n').length > 1);
    assert.deepEqual(JSON.parse(indented), JSON.parse(plain));
    const shown = [['--activations', 'binary'], ['--channel-scale'], ['--bn-affine']].map((args) =>
      show([...args, '--json']),
    );
    for (const s of shown) assert.notEqual(s, plain);
    assert.equal(new Set(shown).size, shown.length, 'each flag changes the spec its own way');
    assert.match(shown[1], /"channelScale"/);
    assert.match(shown[2], /"affine":true/);
  });

  test('summary --model, --method, --rank and --activations each change the summary; --json is one object', (t) => {
    const summary = (args: string[]): Record<string, unknown> =>
      JSON.parse(printed(t, summaryCommand(), ['--model', 'mlp-100', ...args, '--json'])) as Record<
        string,
        unknown
      >;
    const ste = summary([]);
    assert.equal(ste.type, 'summary');
    assert.deepEqual([ste.model, ste.method, ste.activations], ['mlp-100', 'ste', 'real']);
    const bigger = summary(['--model', 'mlp-2x2048']);
    assert.equal(bigger.model, 'mlp-2x2048');
    assert.notDeepEqual(bigger.totals, ste.totals);
    const vispa = summary(['--method', 'vispa']);
    const rank2 = summary(['--method', 'vispa', '--rank', '2']);
    assert.equal(vispa.method, 'vispa');
    // m and Z (K columns) per weight and their momentum, float32: 8 (1 + K) bytes.
    assert.equal(vispa.stateBytesPerBinaryWeight, 8 * (1 + 4));
    assert.equal(rank2.stateBytesPerBinaryWeight, 8 * (1 + 2));
    const binary = summary(['--activations', 'binary']);
    assert.equal(binary.activations, 'binary');
    assert.notDeepEqual(binary.activationBytesPerExample, ste.activationBytesPerExample);
    // Without --json: the table as text.
    assert.throws(
      () => JSON.parse(printed(t, summaryCommand(), ['--model', 'mlp-100'])) as unknown,
      SyntaxError,
    );
  });
});

describe('data fetch flags', () => {
  test('data fetch: --cache-dir is where it looks, --json prints one object; --force downloads again, from --base-url', async () => {
    // CIFAR-10's members already in a cache folder: nothing to download without --force.
    const cache = join(dir, 'cache');
    mkdirSync(join(cache, 'cifar10'), { recursive: true });
    const members = DATASET_SOURCES.cifar10.files.flatMap((f) => f.extract ?? [f.name]);
    for (const m of members) writeFileSync(join(cache, 'cifar10', m), 'cached');
    const r = await runCli(['data', 'fetch', 'cifar10', '--cache-dir', cache, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { type: string; dir: string; files: { downloaded: boolean }[] };
    assert.equal(result.type, 'fetch');
    assert.equal(result.dir, join(cache, 'cifar10'));
    assert.ok(result.files.length > 0 && result.files.every((f) => !f.downloaded));

    // --force downloads all the same, from the mirror given (nothing listens there).
    const mirror = 'http://127.0.0.1:9/mirror';
    const command = dataCommand();
    command.commands.forEach((c) => c.exitOverride().configureOutput({ writeErr: () => undefined }));
    const error = await command
      .parseAsync(['fetch', 'cifar10', '--cache-dir', cache, '--force', '--base-url', mirror], {
        from: 'user',
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    assert.ok(error instanceof FetchError, String(error));
    assert.equal(error.url, `${mirror}/${DATASET_SOURCES.cifar10.files[0].name}`);
    for (const m of members) assert.equal(readFileSync(join(cache, 'cifar10', m), 'utf8'), 'cached');
  });
});

describe('flags of commands that read a trained run', () => {
  let run = '';
  before(async () => {
    run = join(dir, 'run');
    const r = await runCli([
      ...['train', '--data', 'synthetic-mnist', '--model', 'mlp-100', '--epochs', '1', '--batch-size', '50'],
      ...['--train-limit', '200', '--test-limit', '100', '--backend', 'reference', '--out', run],
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('calibrate --data-dir is refused for generated data', async () => {
    const r = await runCli(['calibrate', run, '--data-dir', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^onebit: --data-dir: expected no --data-dir unless the data is one of/);
  });

  test('calibrate --threads is refused with the reference backend', async () => {
    const r = await runCli(['calibrate', run, '--backend', 'reference', '--threads', '2']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^onebit: --threads: expected no --threads with --backend reference/);
  });

  test('calibrate --average is refused without samples', async () => {
    const r = await runCli(['calibrate', run, '--average', 'probabilities']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^onebit: --average: expected no --average without --test-samples > 0/);
  });

  test('train --resume: the backend the run started on, unless --backend says another (with a note)', async () => {
    assert.equal(
      (JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { backend: string }).backend,
      'reference',
    );
    const [recorded, other] = await Promise.all([
      runCli(['train', '--resume', run, '--json']),
      runCli(['train', '--resume', run, '--backend', 'wasm', '--json']),
    ]);
    assert.equal(recorded.code, 0, recorded.stderr);
    assert.equal(other.code, 0, other.stderr);
    assert.doesNotMatch(recorded.stderr, /note: /);
    assert.match(
      other.stderr,
      /note: .* started on the reference backend; resuming on wasm gives other numbers/,
    );
  });

  test('upgrade --out writes the upgraded checkpoint there (the old file stays); --json prints one object', async () => {
    const checkpoint = loadCheckpoint(join(run, 'checkpoint.ckpt'));
    const old = join(dir, 'version-2.ckpt');
    const tensors = [...checkpoint.tensors].map(([name, value]) => ({ name, value }));
    writeTensorFile(old, CHECKPOINT_MAGIC, 2, checkpoint.meta, tensors);
    const out = join(dir, 'upgraded', 'current.ckpt');
    const r = await runCli(['upgrade', old, '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { type: 'upgrade', path: old, out, upgraded: true });
    assert.equal(loadCheckpoint(out).version, CHECKPOINT_VERSION);
    assert.equal(loadCheckpoint(old).version, 2);
  });

  test('bench --threads sets the engine threads; --json prints one object per batch size', async () => {
    const model = join(dir, 'model.onebit');
    const exported = await runCli(['export', run, '--out', model]);
    assert.equal(exported.code, 0, exported.stderr);
    const r = await runCli(['bench', model, '--seconds', '0.01', '--threads', '3', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; batch: number; threads: number; imagesPerSecond: number });
    assert.deepEqual(
      lines.map((l) => [l.type, l.batch, l.threads]),
      [
        ['bench', 1, 3],
        ['bench', 100, 3],
      ],
    );
    assert.ok(lines.every((l) => l.imagesPerSecond > 0));
  });
});
