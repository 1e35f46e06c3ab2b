/**
 * `onebit train` never loses a run and never ignores what it was told: run folders are not overwritten by
 * accident, --resume extends a run or refuses what it cannot change, --data-dir is explicit and recorded,
 * flags without effect are refused, errors with --json are JSON, and a non-TTY gets progress lines.
 * Runs the CLI on generated data (synthetic-mnist, or small IDX files written here), so nothing skips.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeIdx } from '../src/data/idx.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { Rng } from '../src/tensor/rng.js';
import { runCli } from './cli.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-run-safety-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A quick run: 500 synthetic examples, mlp-100, one thread of plain TypeScript. */
const QUICK = [
  'train',
  '--data',
  'synthetic-mnist',
  '--model',
  'mlp-100',
  '--batch-size',
  '100',
  '--train-limit',
  '500',
  '--test-limit',
  '200',
  '--backend',
  'reference',
];
/** Settings that make the loss infinite within the first epoch (SGD steps of 1e38 on batch-norm scales). */
const DIVERGING = ['--bn-affine', '--real-optimizer', 'sgd', '--real-lr', '1e38'];

/** SHA-256 over every file name and content in a folder: equal iff nothing in it changed. */
function snapshot(folder: string): string {
  const hash = createHash('sha256');
  for (const name of readdirSync(folder).sort()) {
    hash.update(name);
    hash.update(readFileSync(join(folder, name)));
  }
  return hash.digest('hex');
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('run folders are never overwritten by accident', () => {
  test('a rerun into a run folder is refused and changes nothing; --overwrite replaces it only once the new run has a checkpoint', async () => {
    const run = join(dir, 'rerun');
    const first = await runCli([...QUICK, '--epochs', '1', '--out', run]);
    assert.equal(first.code, 0, first.stderr);
    const before = snapshot(run);

    const rerun = await runCli([...QUICK, '--epochs', '1', '--out', run]);
    assert.equal(rerun.code, 1);
    assert.match(rerun.stderr, /--out: .*--overwrite.*--resume.*holds checkpoint\.ckpt/);
    assert.equal(snapshot(run), before);

    // The case: a rerun that diverges. The old run, its metrics included, stays whole.
    const diverged = await runCli([...QUICK, ...DIVERGING, '--epochs', '1', '--out', run, '--overwrite']);
    assert.equal(diverged.code, 1);
    assert.match(
      diverged.stderr,
      /diverged.*no checkpoint was written yet.*the run in .*rerun was left as it was/,
    );
    assert.equal(snapshot(run), before);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('.rerun')),
      [],
      'no staging folder is left behind',
    );

    const replaced = await runCli([...QUICK, '--epochs', '1', '--seed', '2', '--out', run, '--overwrite']);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.equal(loadCheckpoint(join(run, 'checkpoint.ckpt')).meta.config.seed, 2);
    assert.deepEqual(readdirSync(run).sort(), ['checkpoint.ckpt', 'metrics.jsonl', 'run.json', 'test.json']);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('.rerun')),
      [],
    );
  });

  test('without --out each run gets a new numbered folder; a new run that fails removes only what it created', async () => {
    const cwd = join(dir, 'numbered');
    mkdirSync(cwd);
    for (let i = 0; i < 2; i++) {
      const r = await runCli([...QUICK, '--epochs', '1'], { cwd });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.deepEqual(readdirSync(join(cwd, 'runs')).sort(), ['mlp-100-ste-seed1', 'mlp-100-ste-seed1-2']);

    const failed = await runCli([...QUICK, ...DIVERGING, '--epochs', '1', '--out', join(cwd, 'fails')]);
    assert.equal(failed.code, 1);
    assert.equal(existsSync(join(cwd, 'fails')), false, 'the folder the failed run created is gone');
    // An empty folder the user made is used, and kept (emptied of the run's files) when the run fails.
    mkdirSync(join(cwd, 'mine'));
    const failedInMine = await runCli([...QUICK, ...DIVERGING, '--epochs', '1', '--out', join(cwd, 'mine')]);
    assert.equal(failedInMine.code, 1);
    assert.deepEqual(readdirSync(join(cwd, 'mine')), []);
  });

  test('--out naming a file, or a path under a file, is an error naming --out', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a folder');
    for (const out of [file, join(file, 'run')]) {
      const r = await runCli([...QUICK, '--epochs', '1', '--out', out]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^onebit: --out: /);
      assert.match(r.stderr, /a-file/);
      assert.doesNotMatch(r.stderr, /EEXIST|ENOTDIR/);
    }
    assert.equal(readFileSync(file, 'utf8'), 'not a folder');
  });
});

describe('resume with intent', () => {
  test('--resume DIR --epochs N extends a finished run on the schedule of an N-epoch run', async () => {
    const run = join(dir, 'extend');
    const short = await runCli([...QUICK, '--epochs', '1', '--out', run]);
    assert.equal(short.code, 0, short.stderr);

    const finished = await runCli(['train', '--resume', run, '--backend', 'reference']);
    assert.equal(finished.code, 0, finished.stderr);
    assert.match(finished.stderr, /has done all 1 of its epochs.*--epochs N to extend/);

    const extended = await runCli([
      'train',
      '--resume',
      run,
      '--epochs',
      '2',
      '--backend',
      'reference',
      '--json',
    ]);
    assert.equal(extended.code, 0, extended.stderr);
    const checkpoint = loadCheckpoint(join(run, 'checkpoint.ckpt'));
    assert.equal(checkpoint.meta.epoch, 2);
    assert.equal(checkpoint.meta.config.epochs, 2);
    const epochs = jsonLines(readFileSync(join(run, 'metrics.jsonl'), 'utf8')).filter(
      (l) => l.type === 'epoch',
    );
    assert.deepEqual(
      epochs.map((l) => l.epoch),
      [1, 2],
    );

    // Its second epoch used the learning rates of a run planned for 2 epochs from the start.
    const planned = await runCli([...QUICK, '--epochs', '2', '--out', join(dir, 'planned'), '--json']);
    assert.equal(planned.code, 0, planned.stderr);
    const plannedEpochs = jsonLines(planned.stdout).filter((l) => l.type === 'epoch');
    assert.equal(epochs[1].learningRate, plannedEpochs[1].learningRate);
    assert.notEqual(epochs[0].learningRate, plannedEpochs[0].learningRate);

    const shorter = await runCli(['train', '--resume', run, '--epochs', '1']);
    assert.equal(shorter.code, 1);
    assert.match(shorter.stderr, /--epochs: expected at least the 2 epochs the run has done, got 1/);
  });

  test('a flag that cannot change on resume is refused, named', async () => {
    const run = join(dir, 'extend');
    for (const [flag, value] of [
      ['--lr', '0.1'],
      ['--seed', '3'],
      ['--model', 'mlp-2x2048'],
      ['--batch-size', '50'],
      ['--out', join(dir, 'elsewhere')],
      ['--overwrite', null],
      ['--rank', '2'],
    ] as const) {
      const r = await runCli(['train', '--resume', run, flag, ...(value === null ? [] : [value])]);
      assert.equal(r.code, 1, flag);
      assert.match(r.stderr, new RegExp(`^onebit: ${flag}: expected no ${flag} with --resume`), r.stderr);
    }
    const missing = await runCli(['train', '--resume', join(dir, 'no-such-run')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--resume: .*checkpoint\.ckpt or run\.json.*does not exist/);
  });
});

/** Writes a small MNIST-format data set (IDX, uncompressed) with `count` items per split into `folder`. */
function writeIdxData(folder: string, seed: number): void {
  mkdirSync(folder, { recursive: true });
  const rng = new Rng(seed);
  for (const [prefix, count] of [
    ['train', 400],
    ['t10k', 100],
  ] as const) {
    const labels = Uint8Array.from({ length: count }, (_, i) => i % 10);
    const images = new Uint8Array(count * 28 * 28);
    for (let i = 0; i < images.length; i++) {
      const label = labels[Math.floor(i / 784)];
      images[i] = (i % 784) % 10 === label ? 200 : rng.int(60);
    }
    writeFileSync(join(folder, `${prefix}-images-idx3-ubyte`), encodeIdx([count, 28, 28], images));
    writeFileSync(join(folder, `${prefix}-labels-idx1-ubyte`), encodeIdx([count], labels));
  }
}

describe('explicit data', () => {
  test('--data-dir that does not hold the set is an error listing what was looked for', async () => {
    const empty = join(dir, 'empty-data');
    mkdirSync(empty);
    const file = join(dir, 'data-file');
    writeFileSync(file, 'x');
    for (const [dataDir, why] of [
      [empty, /missing train-images-idx3-ubyte\[\.gz\], train-labels-idx1-ubyte\[\.gz\]/],
      [join(dir, 'no-such-data'), /directory does not exist/],
      [file, /not a directory/],
    ] as const) {
      const r = await runCli([
        'train',
        '--data',
        'fashion-mnist',
        '--data-dir',
        dataDir,
        '--model',
        'mlp-100',
        '--epochs',
        '1',
        '--out',
        join(dir, 'never'),
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /data set 'fashion-mnist' \(train split\) not found/);
      assert.ok(r.stderr.includes(dataDir), r.stderr);
      assert.match(r.stderr, why);
      assert.doesNotMatch(r.stderr, /usr\/share/, 'only the given folder is searched');
    }
    assert.equal(existsSync(join(dir, 'never')), false);
  });

  test('a run records and prints the files it loaded; resuming on other files is refused', async () => {
    const data = join(dir, 'idx-a');
    writeIdxData(data, 1);
    const run = join(dir, 'idx-run');
    const args = ['--data', 'mnist', '--model', 'mlp-100', '--batch-size', '50', '--backend', 'reference'];
    const r = await runCli(['train', ...args, '--data-dir', data, '--epochs', '1', '--out', run]);
    assert.equal(r.code, 0, r.stderr);
    const digest = (name: string) =>
      createHash('sha256')
        .update(readFileSync(join(data, name)))
        .digest('hex');
    assert.ok(
      r.stderr.includes(
        `train data: ${join(data, 'train-images-idx3-ubyte')} (sha256 ${digest('train-images-idx3-ubyte')})`,
      ),
      r.stderr,
    );
    const record = jsonLines(readFileSync(join(run, 'metrics.jsonl'), 'utf8'))[0] as {
      type: string;
      test: { files: { path: string; sha256: string }[] };
    };
    assert.equal(record.type, 'data');
    assert.deepEqual(
      record.test.files.map((f) => [f.path, f.sha256]),
      ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'].map((n) => [join(data, n), digest(n)]),
    );

    const moved = join(dir, 'idx-moved');
    cpSync(data, moved, { recursive: true });
    const other = join(dir, 'idx-b');
    writeIdxData(other, 2);
    const refused = await runCli(['train', '--resume', run, '--epochs', '2', '--data-dir', other]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--data-dir: expected the training files the run started with/);
    const resumed = await runCli([
      'train',
      '--resume',
      run,
      '--epochs',
      '2',
      '--data-dir',
      moved,
      '--backend',
      'reference',
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
  });
});

describe('flags that would do nothing are refused', () => {
  const cases: [string, string[], RegExp][] = [
    [
      '--warmup-epochs without warmup-cosine',
      ['--warmup-epochs', '1'],
      /^onebit: --warmup-epochs: expected --schedule warmup-cosine/m,
    ],
    [
      '--threads with the reference backend',
      ['--threads', '2'],
      /^onebit: --threads: expected no --threads with --backend reference/m,
    ],
    [
      '--batch-size above the training set',
      ['--batch-size', '501', '--validation', '0'],
      /^onebit: --batch-size: expected at most the 500 training examples/m,
    ],
    [
      '--augment with float-free',
      ['--augment', '--method', 'float-free', '--activations', 'binary'],
      /^onebit: --augment: /m,
    ],
    ['--progress-every 0', ['--progress-every', '0'], /--progress-every expects a number > 0/m],
    ['--overwrite without --out', ['--overwrite'], /^onebit: --overwrite: expected an --out folder/m],
  ];
  for (const [title, extra, message] of cases) {
    test(title, async () => {
      const out = join(dir, `refused-${title.replace(/\W+/g, '-')}`);
      const r = await runCli([
        ...QUICK,
        '--epochs',
        '1',
        ...extra,
        ...(extra.includes('--overwrite') ? [] : ['--out', out]),
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(existsSync(out), false);
    });
  }

  test('--activations, --bn-affine and --channel-scale are refused with a spec file', async () => {
    const spec = join(dir, 'spec.json');
    writeFileSync(
      spec,
      JSON.stringify({
        input: [1, 28, 28],
        classes: 10,
        layers: [{ type: 'flatten' }, { type: 'binaryDense', units: 10 }, { type: 'batchNorm' }],
      }),
    );
    for (const flag of [
      ['--activations', 'binary'],
      ['--bn-affine'],
      ['--channel-scale'],
      ['--no-channel-scale'],
    ]) {
      const r = await runCli([
        ...QUICK,
        '--model',
        spec,
        '--epochs',
        '1',
        ...flag,
        '--out',
        join(dir, 'spec-run'),
      ]);
      assert.equal(r.code, 1, flag.join(' '));
      assert.match(r.stderr, new RegExp(`^onebit: ${flag[0]}: expected no ${flag[0]} with a spec file`));
    }
  });

  test('--augment takes effect: stored in the config and changes the training', async () => {
    const plain = await runCli([...QUICK, '--epochs', '1', '--out', join(dir, 'plain'), '--json']);
    assert.equal(plain.code, 0, plain.stderr);
    const augmented = await runCli([
      ...QUICK,
      '--epochs',
      '1',
      '--augment',
      '--out',
      join(dir, 'aug'),
      '--json',
    ]);
    assert.equal(augmented.code, 0, augmented.stderr);
    const a = loadCheckpoint(join(dir, 'aug', 'checkpoint.ckpt'));
    const p = loadCheckpoint(join(dir, 'plain', 'checkpoint.ckpt'));
    assert.equal(a.meta.config.augment, true);
    assert.equal(p.meta.config.augment, undefined);
    const weights = (c: typeof a) => Buffer.from(c.tensors.get('model/fc1.weight')!.buffer);
    assert.equal(weights(a).equals(weights(p)), false, 'augmentation changed nothing');
    assert.notEqual(jsonLines(augmented.stdout).at(-1)?.testAccuracy, undefined);
  });
});

describe('output a program or a log can read', () => {
  test('with --json an error is one JSON object on stdout, and still text on stderr', async () => {
    const usage = await runCli(['train', '--no-such-flag', '--json']);
    assert.notEqual(usage.code, 0);
    assert.deepEqual(Object.keys(JSON.parse(usage.stdout.trim()) as object), ['error']);
    assert.equal((JSON.parse(usage.stdout) as { error: { code: string } }).error.code, 'usage');
    assert.match(usage.stderr, /unknown option/);

    const config = await runCli([...QUICK, '--epochs', '1', '--warmup-epochs', '1', '--json']);
    assert.equal(config.code, 1);
    const error = (JSON.parse(config.stdout.trim()) as { error: { code: string; message: string } }).error;
    assert.equal(error.code, 'config');
    assert.match(error.message, /^--warmup-epochs: /);
    assert.match(config.stderr, /^onebit: --warmup-epochs: /);
  });

  test('on a non-TTY, progress lines come every --progress-every seconds while an epoch runs', async () => {
    const r = await runCli([
      ...QUICK.map((a) => (a === '100' ? '10' : a)),
      '--epochs',
      '1',
      '--progress-every',
      '0.001',
      '--out',
      join(dir, 'progress'),
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr
      .split('\n')
      .filter((l) => /^epoch 1\/1 {2}batch \d+\/50 {2}loss [\d.]+ {2}acc [\d.]+/.test(l));
    assert.ok(lines.length >= 10, `progress lines: ${lines.length}\n${r.stderr}`);
  });
});
