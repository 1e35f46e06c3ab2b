/**
 * The training pipeline end to end: a gated short run on real data, byte-identical resumption after
 * SIGKILL, NaN handling that keeps the last good checkpoint, and the checkpoint loader's errors.
 */
import { TensorFileError, TrainingDivergedError } from '../src/errors.js';
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawn } from 'node:child_process';
import { CLI, lastJson, runCli } from './cli.js';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import { syntheticDataset, DEBIAN_FASHION_MNIST_DIR } from '../src/data/dataset.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../src/config/train-config.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { CHECKPOINT_FILE, train } from '../src/train/trainer.js';

const haveFashionMnist = existsSync(join(DEBIAN_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-train-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe(
  'training CLI on Fashion-MNIST',
  { skip: haveFashionMnist ? false : 'dataset-fashion-mnist is not installed' },
  () => {
    test('a short STE run of mlp-100 reaches the gated accuracy and reports the JSON contract', async () => {
      const out = join(dir, 'gated');
      const r = await runCli([
        'train',
        '--data',
        'fashion-mnist',
        '--model',
        'mlp-100',
        '--method',
        'ste',
        '--epochs',
        '2',
        '--train-limit',
        '12000',
        '--batch-size',
        '100',
        '--lr',
        '1e-3',
        '--seed',
        '1',
        '--out',
        out,
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(lines.filter((l) => l.type === 'epoch').length, 2);
      const result = lines[lines.length - 1];
      assert.equal(result.type, 'result');
      assert.equal(typeof result.samplesPerSecond, 'number');
      assert.equal(result.checkpoint, join(out, CHECKPOINT_FILE));
      // mlp-100 STE on 12k examples for 2 epochs; full-data mlp-2x2048 is gated by npm run e2e.
      assert.ok((result.testAccuracy as number) >= 0.78, `testAccuracy ${String(result.testAccuracy)}`);
      // One data line naming the files read (path and SHA-256), then per epoch its step lines (every
      // ceil(steps / 50) steps and its last), its flip ratios and its epoch line.
      const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const stepsPerEpoch = Number(metrics.find((m) => m.type === 'epoch')?.step);
      const stepLines = Math.ceil(stepsPerEpoch / Math.ceil(stepsPerEpoch / 50));
      const epochLines = [...Array<string>(stepLines).fill('step'), 'flips', 'epoch'];
      assert.deepEqual(
        metrics.map((m) => m.type),
        ['data', ...epochLines, ...epochLines],
      );
      const trainFiles = (metrics[0].train as { files: { path: string; sha256: string }[] }).files;
      assert.equal(trainFiles.length, 2);
      assert.ok(trainFiles.every((f) => /^[0-9a-f]{64}$/.test(f.sha256) && existsSync(f.path)));
      assert.deepEqual(lines[0], metrics[0]);

      const evaluated = await runCli(['eval', join(out, CHECKPOINT_FILE), '--json']);
      assert.equal(evaluated.code, 0, evaluated.stderr);
      const e = lastJson(evaluated.stdout);
      const mode = e.mode as Record<string, number>;
      assert.equal(mode.accuracy, result.testAccuracy);
      assert.ok(mode.ece >= 0 && mode.ece <= 1);
    });

    test('SIGKILL mid-epoch, then --resume, gives weights byte-identical to an uninterrupted run', async () => {
      const args = [
        '--data',
        'fashion-mnist',
        '--model',
        'mlp-100',
        '--epochs',
        '3',
        '--train-limit',
        '30000',
        '--seed',
        '7',
      ];
      const whole = join(dir, 'whole');
      const straight = await runCli(['train', ...args, '--out', whole, '--json']);
      assert.equal(straight.code, 0, straight.stderr);

      const killed = join(dir, 'killed');
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', CLI, 'train', ...args, '--out', killed, '--json'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let epochsSeen = 0;
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on('close', (_code, signal) => resolve(signal)),
      );
      child.stdout.on('data', (d: Buffer) => {
        epochsSeen += d
          .toString()
          .split('\n')
          .filter((l) => l.includes('"type":"epoch"')).length;
        // Kill a little after the first epoch's checkpoint: in the middle of epoch 2.
        if (epochsSeen === 1) setTimeout(() => child.kill('SIGKILL'), 400);
      });
      const signal = await exited;
      assert.equal(signal, 'SIGKILL', 'the run finished before it could be killed');
      const partial = loadCheckpoint(join(killed, CHECKPOINT_FILE));
      assert.equal(partial.meta.epoch, 1, 'killed run should have checkpointed exactly epoch 1');

      const resumed = await runCli(['train', '--resume', killed, '--json']);
      assert.equal(resumed.code, 0, resumed.stderr);
      const a = loadCheckpoint(join(whole, CHECKPOINT_FILE));
      const b = loadCheckpoint(join(killed, CHECKPOINT_FILE));
      assert.equal(b.meta.epoch, 3);
      assert.deepEqual([...a.tensors.keys()], [...b.tensors.keys()]);
      for (const [name, value] of a.tensors) {
        const other = b.tensors.get(name)!;
        assert.ok(
          Buffer.from(value.buffer).equals(Buffer.from(other.buffer)),
          `tensor ${name} differs after resume`,
        );
      }
      assert.equal(lastJson(resumed.stdout).testAccuracy, lastJson(straight.stdout).testAccuracy);
      // Epoch lines 1..3 once each (a line epoch 2 may have written before the kill is dropped), and one
      // data line per process that trained in the folder.
      const lines = readFileSync(join(killed, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; epoch?: number });
      assert.deepEqual(
        lines.filter((l) => l.type === 'epoch').map((l) => l.epoch),
        [1, 2, 3],
      );
      assert.equal(lines.filter((l) => l.type === 'data').length, 2);
    });
  },
);

describe('CLI errors', () => {
  test('unknown model, bad flag value and missing data set each print one line and exit non-zero', async () => {
    for (const args of [
      ['train', '--model', 'resnet-9000'],
      ['train', '--epochs', 'x'],
      ['train', '--method', 'magic'],
      ['train', '--data', 'mnist', '--data-dir', join(dir, 'nowhere')],
      ['eval', join(dir, 'no-such.ckpt')],
    ]) {
      const r = await runCli(args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.equal(r.stdout, '');
      assert.ok(!r.stderr.includes('    at '), `stack trace printed for ${args.join(' ')}:\n${r.stderr}`);
      assert.ok(r.stderr.trim().length > 0);
    }
  });
});

function smallConfig(overrides: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data: 'synthetic-mnist',
    model: 'mlp-100',
    method: 'ste',
    epochs: 2,
    batchSize: 50,
    batchNormAffine: true,
    ...overrides,
  };
}

describe('training loop (library)', () => {
  const trainSet = syntheticDataset({
    name: 'synthetic-mnist',
    shape: [1, 28, 28],
    count: 400,
    classes: 10,
    seed: 3,
  });
  const testSet = syntheticDataset({
    name: 'synthetic-mnist',
    shape: [1, 28, 28],
    count: 100,
    classes: 10,
    seed: 3,
    split: 'test',
  });

  test('learns the synthetic blobs and frees every kernel buffer', async () => {
    const backend = createReferenceBackend('float32');
    const before = backend.bytesInUse();
    const result = await train({
      config: smallConfig(),
      backend,
      train: trainSet,
      test: testSet,
      outDir: join(dir, 'lib'),
      resume: false,
    });
    assert.ok(result.test.accuracy > 0.9, `accuracy ${result.test.accuracy}`);
    assert.equal(backend.bytesInUse(), before);
  });

  test('a NaN loss stops the run with a message and leaves the last good checkpoint intact', async () => {
    const backend = createReferenceBackend('float32');
    const outDir = join(dir, 'nan');
    let checkpointBytes: Buffer | null = null;
    await assert.rejects(
      train({
        config: smallConfig({ epochs: 3 }),
        backend,
        train: trainSet,
        test: testSet,
        outDir,
        resume: false,
        callbacks: {
          onEpoch(record, run) {
            if (record.epoch !== 1) return;
            checkpointBytes = readFileSync(join(outDir, CHECKPOINT_FILE));
            // Poison the logits' batch-norm scale: the next forward pass produces NaN logits.
            const gamma = run.learner
              .stateTensors()
              .filter((t) => /^model\/bn\d+\.weight$/.test(t.name))
              .at(-1)!;
            gamma.value[0] = Number.NaN;
          },
        },
      }),
      (error: unknown) => {
        assert.ok(error instanceof TrainingDivergedError);
        assert.equal(error.epoch, 2);
        assert.match(error.message, /NaN or infinite.*last good checkpoint is .*checkpoint\.ckpt/);
        return true;
      },
    );
    assert.ok(checkpointBytes !== null);
    assert.ok(
      readFileSync(join(outDir, CHECKPOINT_FILE)).equals(checkpointBytes),
      'checkpoint changed after NaN',
    );
    assert.equal(loadCheckpoint(join(outDir, CHECKPOINT_FILE)).meta.epoch, 1);
  });

  test('a truncated or foreign checkpoint is rejected with the file and the problem named', async () => {
    const backend = createReferenceBackend('float32');
    const outDir = join(dir, 'ckpt');
    await train({
      config: smallConfig({ epochs: 1 }),
      backend,
      train: trainSet,
      test: testSet,
      outDir,
      resume: false,
    });
    const path = join(outDir, CHECKPOINT_FILE);
    const bytes = readFileSync(path);
    const truncated = join(outDir, 'truncated.ckpt');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
    assert.throws(
      () => loadCheckpoint(truncated),
      (e: unknown) => e instanceof TensorFileError && /truncated\.ckpt: tensor .* outside/.test(e.message),
    );
    const foreign = join(outDir, 'foreign.ckpt');
    writeFileSync(foreign, Buffer.concat([Buffer.from('NOTONEBT'), bytes.subarray(8)]));
    assert.throws(() => loadCheckpoint(foreign), /foreign\.ckpt: bad magic: expected "ONEBITCK"/);
    const short = join(outDir, 'short.ckpt');
    writeFileSync(short, bytes.subarray(0, 10));
    assert.throws(() => loadCheckpoint(short), /short\.ckpt: file too short/);
  });
});
