/**
 * Fault test: `onebit train` killed with SIGKILL at 20 seeded random moments (one of them while a checkpoint
 * is being written), then resumed, ends with a final checkpoint byte-identical to an uninterrupted run.
 * A kill before the run wrote anything is followed by the same command again (the folder is empty or
 * absent, so it is accepted); after that, by `train --resume DIR`. On generated data, so it never skips.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Rng } from '../src/tensor/rng.js';
import { CLI, TSX, runCli } from './cli.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-fault-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const TRAIN = [
  'train',
  '--data',
  'synthetic-mnist',
  '--model',
  'mlp-100',
  '--epochs',
  '3',
  '--batch-size',
  '25',
  '--train-limit',
  '600',
  '--test-limit',
  '100',
  '--backend',
  'reference',
];

interface Killed {
  /** Whether the process was still running when the kill came (else it had finished). */
  readonly killed: boolean;
}

/** Starts `onebit <args>`; `arm` gets the kill function and returns how to disarm it once the process ends. */
function runAndKill(args: readonly string[], arm: (kill: () => void) => () => void): Promise<Killed> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { stdio: 'ignore' });
    const disarm = arm(() => child.kill('SIGKILL'));
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      disarm();
      resolve({ killed: signal === 'SIGKILL' });
    });
  });
}

/** Resumes (or restarts, when nothing was written) until the run completes; returns the processes used. */
async function finish(out: string): Promise<number> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    const started = existsSync(join(out, 'run.json'));
    const r = started ? await runCli(['train', '--resume', out]) : await runCli([...TRAIN, '--out', out]);
    if (r.code === 0) return attempt;
    assert.fail(`${started ? 'resume' : 'restart'} of ${out} failed: ${r.stderr}`);
  }
  return assert.fail('unreachable');
}

/** Calls `onFile` once a file whose path (relative to `root`) matches `pattern` appears. */
function watchFor(root: string, pattern: RegExp, onFile: () => void): () => void {
  let seen = false;
  const watcher = watch(root, { recursive: true }, (_event, name) => {
    if (!seen && typeof name === 'string' && pattern.test(name)) {
      seen = true;
      onFile();
    }
  });
  return () => watcher.close();
}

describe('SIGKILL at random moments, then resume', () => {
  test('20 kills (one during a checkpoint write) each end in a checkpoint byte-identical to an uninterrupted run', async () => {
    const whole = join(dir, 'whole');
    const started = performance.now();
    let runStarted = 0;
    const stop = watchFor(dir, /^whole\/run\.json$/, () => (runStarted = performance.now() - started));
    const straight = await runCli([...TRAIN, '--out', whole]);
    const duration = performance.now() - started;
    stop();
    assert.equal(straight.code, 0, straight.stderr);
    assert.ok(runStarted > 0, 'run.json was never written');
    const expected = readFileSync(join(whole, 'checkpoint.ckpt'));

    // Moments: trial 0 when a checkpoint's temporary file appears (atomic.ts names it
    // `.checkpoint.ckpt.<pid>.tmp`); trials 1-3 uniform over the whole process (start-up included, so some
    // runs are killed before they wrote anything); the others uniform over the training, counted from
    // the moment the run wrote run.json.
    const rng = new Rng(20261205);
    const trials = Array.from({ length: 20 }, (_, i) => ({
      i,
      out: join(dir, `killed-${i}`),
      ms: i === 0 ? Infinity : rng.uniform() * (i <= 3 ? duration : duration - runStarted),
    }));
    let resumed = 0;
    // Two at a time: the machine has two cores.
    for (let t = 0; t < trials.length; t += 2) {
      await Promise.all(
        trials.slice(t, t + 2).map(async ({ i, out, ms }) => {
          const outcome = await runAndKill([...TRAIN, '--out', out], (kill) => {
            const name = `killed-${i}`;
            if (i === 0)
              return watchFor(dir, new RegExp(`^${name}/\\.checkpoint\\.ckpt\\.\\d+\\.tmp$`), kill);
            if (i <= 3) {
              const timer = setTimeout(kill, ms);
              return () => clearTimeout(timer);
            }
            let timer: NodeJS.Timeout | undefined;
            const stopWatching = watchFor(dir, new RegExp(`^${name}/run\\.json$`), () => {
              timer = setTimeout(kill, ms);
            });
            return () => {
              stopWatching();
              clearTimeout(timer);
            };
          });
          if (i === 0) assert.ok(outcome.killed, 'the checkpoint write was not caught');
          if (outcome.killed && existsSync(join(out, 'run.json'))) resumed++;
          await finish(out);
          assert.ok(
            readFileSync(join(out, 'checkpoint.ckpt')).equals(expected),
            `${out}: final checkpoint differs from the uninterrupted run's`,
          );
          // A killed write leaves no temporary file once the run has resumed.
          assert.deepEqual(
            readdirSync(out).filter((n) => n.endsWith('.tmp')),
            [],
          );
          const epochs = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as { type: string; epoch?: number })
            .filter((l) => l.type === 'epoch')
            .map((l) => l.epoch);
          assert.deepEqual(epochs, [1, 2, 3], `${out}: metrics epochs`);
        }),
      );
    }
    // Most kills land in a started run, so resumption (not only a restart) is what is tested.
    assert.ok(resumed >= 12, `only ${resumed} kills landed after the run started`);
  });
});
