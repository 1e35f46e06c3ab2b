/**
 * `onebit continual --out DIR`: a checkpoint per task that `onebit eval` reads (and that holds the network
 * the task was tested with), metrics.jsonl with a line per epoch and per task, results that do not depend
 * on --out, an existing folder refused unless --overwrite; and the continual flags that would do nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Command } from 'commander';
import { continualCommand } from '../src/cli/continual-command.js';
import { loadDataset } from '../src/data/dataset.js';
import { ConfigError } from '../src/errors.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { lastJson, runCli } from './cli.js';

const TEST_LIMIT = 100;
const ARGS = [
  ...['continual', '--data', 'synthetic-mnist', '--model', 'mlp-100', '--stream', 'split', '--tasks', '2'],
  ...['--epochs-per-task', '1', '--train-limit', '400', '--test-limit', String(TEST_LIMIT)],
  ...['--batch-size', '50', '--backend', 'reference', '--json'],
];

interface TaskLine {
  type: string;
  task: number;
  accuracies: number[];
  averageAccuracy: number;
  forgetting: number;
  checkpoint: string | null;
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** What `onebit continual <args>` throws, in-process (commander's own output silenced). */
async function failure(args: readonly string[]): Promise<Error> {
  const command: Command = continualCommand()
    .exitOverride()
    .configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  try {
    await command.parseAsync([...args], { from: 'user' });
  } catch (error) {
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail(`onebit continual ${args.join(' ')} did not fail`);
}

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-continual-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('onebit continual --out', () => {
  test('a checkpoint per task, which eval reads; metrics.jsonl; the same results as without --out', async () => {
    const out = join(dir, 'run');
    const [written, plain] = await Promise.all([runCli([...ARGS, '--out', out]), runCli(ARGS)]);
    assert.equal(written.code, 0, written.stderr);
    assert.equal(plain.code, 0, plain.stderr);
    const tasks = jsonLines(written.stdout).filter((l) => l.type === 'task') as unknown as TaskLine[];
    assert.deepEqual(
      tasks.map((t) => t.checkpoint),
      [join(out, 'task-1.ckpt'), join(out, 'task-2.ckpt')],
    );
    // Writing the folder changes no result.
    const plainTasks = jsonLines(plain.stdout).filter((l) => l.type === 'task') as unknown as TaskLine[];
    assert.deepEqual(
      plainTasks.map((t) => t.accuracies),
      tasks.map((t) => t.accuracies),
    );
    assert.ok(plainTasks.every((t) => t.checkpoint === null));

    // metrics.jsonl: the data line, then epoch and task lines in order, the task lines as printed.
    const metrics = jsonLines(readFileSync(join(out, 'metrics.jsonl'), 'utf8'));
    assert.deepEqual(
      metrics.map((m) => `${String(m.type)} ${String(m.task)}`),
      ['data undefined', 'epoch 1', 'task 1', 'epoch 2', 'task 2'],
    );
    assert.deepEqual(metrics[0].train, { name: 'synthetic-mnist', count: 2000, files: [] });
    const metricTasks = metrics.filter((m) => m.type === 'task') as unknown as TaskLine[];
    assert.deepEqual(
      metricTasks.map((m) => [m.accuracies, m.averageAccuracy, m.forgetting, m.checkpoint]),
      tasks.map((t) => [t.accuracies, t.averageAccuracy, t.forgetting, `task-${t.task}.ckpt`]),
    );

    // The trainer's checkpoint format, marked with its place in the stream.
    const checkpoint = loadCheckpoint(join(out, 'task-2.ckpt'));
    assert.equal(checkpoint.meta.config.method, 'ste');
    assert.equal(checkpoint.meta.inference, 'float-model');
    assert.deepEqual((checkpoint.meta as unknown as { continual: unknown }).continual, {
      stream: 'split',
      task: 2,
      tasks: 2,
      testSamples: 0,
    });

    // eval reads it, and it is the network task 2 was tested with: on the first TEST_LIMIT test examples
    // (the split stream's two test sets, classes 0-4 and 5-9), the correct counts add up.
    const evaluated = await runCli([
      ...['eval', join(out, 'task-2.ckpt'), '--test-limit', String(TEST_LIMIT)],
      ...['--backend', 'reference', '--json'],
    ]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const mode = lastJson(evaluated.stdout).mode as { accuracy: number; count: number };
    const test = await loadDataset('synthetic-mnist', { split: 'test', cacheDir: dir });
    const labels = Array.from(test.labels.subarray(0, TEST_LIMIT));
    const sizes = [labels.filter((l) => l < 5).length, labels.filter((l) => l >= 5).length];
    const correct = tasks[1].accuracies.reduce((sum, a, j) => sum + Math.round(a * sizes[j]), 0);
    assert.equal(mode.count, TEST_LIMIT);
    assert.equal(Math.round(mode.accuracy * TEST_LIMIT), correct);
  });

  test('an existing folder that holds files is refused unless --overwrite, which replaces the earlier run', async () => {
    const out = join(dir, 'again');
    mkdirSync(out);
    writeFileSync(join(out, 'task-3.ckpt'), 'an earlier run with three tasks');
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const refused = await failure([...ARGS.slice(1), '--out', out]);
    assert.ok(refused instanceof ConfigError);
    assert.equal(refused.field, '--out');
    assert.match(
      refused.message,
      /\(add --overwrite to replace the run there\), got .* which holds notes\.txt, task-3\.ckpt/,
    );
    assert.equal(readFileSync(join(out, 'task-3.ckpt'), 'utf8'), 'an earlier run with three tasks');

    // A new run that fails before its first task's checkpoint leaves the old folder exactly as it was.
    const diverged = await runCli([
      ...ARGS,
      ...['--bn-affine', '--real-optimizer', 'sgd', '--real-lr', '1e38', '--out', out, '--overwrite'],
    ]);
    assert.equal(diverged.code, 1);
    assert.match(diverged.stderr, /diverged.* \(the run in .*again was left as it was\)/);
    assert.equal(readFileSync(join(out, 'task-3.ckpt'), 'utf8'), 'an earlier run with three tasks');
    assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');

    const r = await runCli([...ARGS, '--out', out, '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(out, 'task-2.ckpt')));
    assert.equal(existsSync(join(out, 'task-3.ckpt')), false); // the earlier run's, gone
    assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine'); // not a run file: kept
  });

  test('an --out that cannot be a folder names the flag and the path', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const error = await failure([...ARGS.slice(1), '--out', join(file, 'run')]);
    assert.ok(error instanceof ConfigError);
    assert.equal(error.field, '--out');
    assert.ok(
      error.message.includes(`"${join(file, 'run')}" (${file} is a file, not a folder)`),
      error.message,
    );
  });
});

describe('onebit continual on a non-TTY', () => {
  test('prints progress lines every --progress-every seconds while a task trains', async () => {
    const r = await runCli([...ARGS.filter((a) => a !== '--json'), '--progress-every', '0.001']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => /^epoch 1\/1 {2}batch \d+\/\d+ {2}loss /.test(l));
    assert.ok(lines.length >= 2, r.stderr);
  });
});

describe('onebit continual refuses flags that would do nothing', () => {
  const base = ARGS.slice(1).filter((a) => a !== '--json');
  for (const [name, args, flag] of [
    ['--epochs next to --epochs-per-task', ['--epochs', '3'], '--epochs'],
    ['a validation split (none is evaluated)', ['--validation', '0.1'], '--validation'],
    ['--overwrite without --out', ['--overwrite'], '--overwrite'],
    ['--augment on permuted tasks', ['--augment', '--stream', 'permuted'], '--augment'],
    ['--threads with the reference backend', ['--threads', '2'], '--threads'],
    ['--data-dir for generated data', ['--data-dir', '/tmp'], '--data-dir'],
    ['--test-samples for a method without a distribution', ['--test-samples', '2'], '--test-samples'],
  ] as const) {
    test(name, async () => {
      const error = await failure([...base, ...args]);
      assert.ok(error instanceof ConfigError, `${error.name}: ${error.message}`);
      assert.equal(error.field, flag, error.message);
    });
  }

  test('a negative --test-samples is a usage error, not a silent 0', async () => {
    const error = await failure([...base, '--test-samples', '-1']);
    assert.match(error.message, /--test-samples expects an integer >= 0, got "-1"/);
  });
});

describe('onebit continual --resume', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'onebit-continual-resume-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const RUN = [
    ...[
      'continual',
      '--data',
      'synthetic-mnist',
      '--model',
      'mlp-100',
      '--stream',
      'permuted',
      '--tasks',
      '3',
    ],
    ...['--epochs-per-task', '1', '--train-limit', '400', '--test-limit', '100', '--method', 'bayesbinn'],
    ...['--test-samples', '2', '--batch-size', '50', '--threads', '1', '--json'],
  ];

  test('goes on from the latest task checkpoint to the same checkpoints and result as an uninterrupted run', async () => {
    const whole = join(dir, 'whole');
    const first = await runCli([...RUN, '--out', whole]);
    assert.equal(first.code, 0, first.stderr);
    // A run stopped during task 2: its first checkpoint, and metrics.jsonl with lines of the tasks after it
    // (which resume drops).
    const stopped = join(dir, 'stopped');
    mkdirSync(stopped);
    writeFileSync(join(stopped, 'task-1.ckpt'), readFileSync(join(whole, 'task-1.ckpt')));
    writeFileSync(join(stopped, 'metrics.jsonl'), readFileSync(join(whole, 'metrics.jsonl')));
    const resumed = await runCli(['continual', '--resume', stopped, '--threads', '1', '--json']);
    assert.equal(resumed.code, 0, resumed.stderr);
    for (const t of [2, 3]) {
      assert.deepEqual(
        readFileSync(join(stopped, `task-${t}.ckpt`)),
        readFileSync(join(whole, `task-${t}.ckpt`)),
        `task-${t}.ckpt`,
      );
    }
    const { config: c1, ...r1 } = lastJson(first.stdout);
    const { config: c2, ...r2 } = lastJson(resumed.stdout);
    assert.deepEqual(r2, r1);
    // The checkpoint's config carries the named model's spec as well.
    assert.deepEqual({ ...(c2 as object), spec: undefined }, { ...(c1 as object), spec: undefined });
    // Only the resumed tasks are trained and printed; the log has each task once, and a data line per start.
    assert.deepEqual(
      jsonLines(resumed.stdout)
        .filter((l) => l.type === 'task')
        .map((l) => l.task),
      [2, 3],
    );
    const log = jsonLines(readFileSync(join(stopped, 'metrics.jsonl'), 'utf8'));
    assert.deepEqual(
      log.filter((l) => l.type === 'task').map((l) => l.task),
      [1, 2, 3],
    );
    assert.deepEqual(
      log.filter((l) => l.type === 'data').map((l) => l.resumedAtTask),
      [undefined, 1],
    );
  });

  test('refuses a setting flag, and a folder without a task checkpoint', async () => {
    const changed = await runCli(['continual', '--resume', join(dir, 'whole'), '--tasks', '4']);
    assert.equal(changed.code, 1);
    assert.match(
      changed.stderr,
      /--tasks: expected no --tasks with --resume: a resumed run keeps the settings it was started with/,
    );
    mkdirSync(join(dir, 'empty'));
    const empty = await runCli(['continual', '--resume', join(dir, 'empty')]);
    assert.equal(empty.code, 1);
    assert.match(
      empty.stderr,
      /--resume: expected a continual run folder holding task-<t>\.ckpt, got .*empty, which holds none/,
    );
  });
});
