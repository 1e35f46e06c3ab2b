/**
 * `onebit sweep` and `onebit worker` end to end, with a real redis-server (installed by scripts/setup.sh)
 * on a free port of 127.0.0.1 with persistence off. One small sweep (synthetic data, mlp-100: four STE/Bop
 * jobs, a BayesBiNN job with a sampled evaluation, a continual job and a job whose settings fail) runs:
 *
 * 1. embedded, stopped with SIGINT (Ctrl-C) after its first result and started again: no finished job runs
 *    twice, and the rest finish;
 * 2. over the queue on two worker processes, one SIGKILLed mid-job: the job is retried by the other
 *    worker and resumes from its checkpoint, the killed worker's training child exits, the failing job is
 *    failed once with its error, every other job finishes exactly once, and every figure equals the
 *    embedded run's.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { CLI, TSX } from './cli.js';

interface Running {
  readonly child: ChildProcess;
  readonly output: { stdout: string; stderr: string };
  readonly exited: Promise<number | null>;
}

function start(args: readonly string[], cwd: string): Running {
  const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout?.on('data', (d: Buffer) => (output.stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, output, exited };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, seconds: number, probe: () => T | null): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

type Entry = Record<string, unknown>;

function attempts(out: string, id: string): Entry[] {
  const path = join(out, 'jobs', id, 'attempts.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Entry);
}

function jobIds(out: string): string[] {
  return readdirSync(join(out, 'jobs')).sort();
}

interface Stored {
  status: string;
  error: string | null;
  metrics: Record<string, number | null> | null;
  job: { flags: Record<string, unknown> };
}

function result(out: string, id: string): Stored | null {
  const path = join(out, 'jobs', id, 'result.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Stored) : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The figures a rerun must reproduce exactly (throughput is a measurement, not a result). */
function figures(stored: Stored | null): Record<string, number | null> {
  const { samplesPerSecond, ...rest } = stored?.metrics ?? {};
  void samplesPerSecond;
  return rest;
}

const DATA = { data: 'synthetic-mnist', 'train-limit': 10000, 'test-limit': 500 };
const SPEC = {
  grids: [
    {
      command: 'train',
      flags: { ...DATA, model: 'mlp-100', epochs: 8, method: ['ste', 'bop'], seed: [1, 2] },
    },
    {
      command: 'train',
      flags: { ...DATA, model: 'mlp-100', epochs: 3, method: 'bayesbinn', seed: 1 },
      eval: { 'test-samples': 3 },
    },
    {
      command: 'continual',
      flags: { ...DATA, stream: 'split', tasks: 2, epochs: 1, method: 'ste', seed: 1 },
    },
    // Settings the train command refuses when it runs: the job fails for its own reason.
    { command: 'train', flags: { ...DATA, model: 'mlp-100', epochs: 1, lr: -1, seed: 1 } },
  ],
};

describe('onebit sweep and onebit worker', { timeout: 300_000 }, () => {
  let dir = '';
  let redisDir = '';
  let redis: ChildProcess | null = null;
  let url = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'onebit-sweep-'));
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(SPEC));
    redisDir = mkdtempSync(join(tmpdir(), 'onebit-redis-'));
    const which = spawnSync('redis-server', ['--version']);
    assert.equal(
      which.error,
      undefined,
      'redis-server is missing: scripts/setup.sh installs it (Debian package redis-server)',
    );
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    // No RDB snapshots and no append-only file: nothing is left behind.
    redis = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir],
      {
        cwd: redisDir,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let log = '';
    redis.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor('redis-server to accept connections', 20, () =>
      /Ready to accept connections/.test(log) ? true : null,
    );
  });

  after(async () => {
    if (redis !== null) {
      const exited = new Promise((resolve) => redis?.on('close', resolve));
      redis.kill('SIGTERM');
      await exited;
      assert.deepEqual(readdirSync(redisDir), [], 'redis-server left no files behind');
    }
    rmSync(redisDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  const embedded = (): string => join(dir, 'embedded');
  const queued = (): string => join(dir, 'queued');

  test('embedded: stopped with Ctrl-C and started again, it reruns no finished job', async () => {
    const args = ['sweep', 'spec.json', '--out', embedded(), '--jobs', '2', '--threads', '1'];
    const first = start([...args, '--progress-every', '0.2'], dir);
    const done = await waitFor('the first finished job', 120, () => {
      if (!existsSync(join(embedded(), 'jobs'))) return null;
      return jobIds(embedded()).find((id) => result(embedded(), id)?.status === 'finished') ?? null;
    });
    first.child.kill('SIGINT');
    assert.equal(await first.exited, 130, first.output.stderr);
    // Not a terminal: a line per job start and a status line every --progress-every seconds.
    assert.match(first.output.stderr, /job started: train epochs=8 method=ste seed=1 \([0-9a-f]{12}\)/);
    assert.match(first.output.stderr, /sweep: \d+\/7 jobs ended; running: /);
    assert.match(
      first.output.stderr,
      /sweep stopped: \d+\/7 jobs finished; the same command goes on from here/,
    );

    const second = start(args, dir);
    // 1: the job with the bad learning rate fails (again); the sweep says so and exits non-zero.
    assert.equal(await second.exited, 1, second.output.stderr);
    assert.match(second.output.stderr, /sweep: 7 jobs, [1-6] already finished/);
    assert.match(second.output.stderr, /sweep: 1 of 7 jobs failed/);
    const ids = jobIds(embedded());
    assert.equal(ids.length, 7);
    assert.equal(
      attempts(embedded(), done).filter((e) => e.event === 'start').length,
      1,
      'the finished job did not run again',
    );
    for (const id of ids) {
      const stored = result(embedded(), id);
      const finishes = attempts(embedded(), id).filter((e) => e.event === 'finish').length;
      if (stored?.job.flags.lr === -1) {
        assert.equal(stored.status, 'failed');
        assert.match(stored.error ?? '', /--lr: expected a positive number, got -1/);
        assert.equal(finishes, 0);
      } else {
        assert.equal(stored?.status, 'finished', id);
        assert.equal(finishes, 1, `job ${id} finished once`);
      }
    }
    // The table: six settings, mean ± std over the two STE seeds.
    const table = readFileSync(join(embedded(), 'results.md'), 'utf8');
    assert.match(table, /\| train epochs=8 method=ste \| 2\/2 \| 1\.0000 ± 0\.0000 \|/);
    assert.match(table, /\| 0\/1 \(1 failed\) \|/);
    assert.match(second.output.stdout, /\| Setting \| Seeds finished \| Accuracy \|/);
  });

  test('queue: a SIGKILLed worker loses no job; each finishes once, with the embedded figures', async () => {
    const workerArgs = [
      'worker',
      '--queue',
      url,
      '--concurrency',
      '1',
      '--threads',
      '1',
      '--stall-timeout',
      '2',
      '--json',
    ];
    const workerA = start(workerArgs, dir);
    const workerB = start(workerArgs, dir);
    const sweep = start(['sweep', 'spec.json', '--out', queued(), '--queue', url, '--json'], dir);
    const runnerA = `worker ${String(workerA.child.pid)}@`;
    // Kill A once a train job of its own has written a checkpoint and is still running.
    const victim = await waitFor('worker A mid-job', 120, () => {
      if (!existsSync(join(queued(), 'jobs'))) return null;
      for (const id of jobIds(queued())) {
        const log = attempts(queued(), id);
        const mine = log.some((e) => e.event === 'start' && String(e.runner).startsWith(runnerA));
        const finished = log.some((e) => e.event === 'finish');
        if (mine && !finished && existsSync(join(queued(), 'jobs', id, 'run', 'checkpoint.ckpt'))) return id;
      }
      return null;
    });
    const orphan = attempts(queued(), victim).find((e) => e.event === 'spawn' && e.command === 'train');
    assert.ok(orphan !== undefined);
    // Paused first, so that the job cannot end between the check above and the kill.
    process.kill(Number(orphan.pid), 'SIGSTOP');
    workerA.child.kill('SIGKILL');
    await workerA.exited;
    process.kill(Number(orphan.pid), 'SIGCONT');
    // The killed worker's training child exits too (its IPC channel closed).
    await waitFor("the killed worker's child to exit", 20, () => (alive(Number(orphan.pid)) ? null : true));

    assert.equal(await sweep.exited, 1, sweep.output.stderr);
    workerB.child.kill('SIGTERM');
    assert.equal(await workerB.exited, 0, workerB.output.stderr);
    // --json: the worker's settings, then an object per job event.
    const events = workerB.output.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Entry);
    assert.deepEqual(events[0], {
      type: 'worker',
      pid: workerB.child.pid,
      concurrency: 1,
      threads: 1,
      queue: url,
    });
    assert.ok(events.some((e) => e.type === 'job-finish' && e.id === victim));
    assert.ok(
      events.some((e) => e.type === 'job-fail' && /--lr/.test(String(e.error))) ||
        workerA.output.stdout.includes('job-fail'),
    );

    const log = attempts(queued(), victim);
    const starts = log.filter((e) => e.event === 'start');
    assert.equal(starts.length, 2, JSON.stringify(log));
    assert.equal(starts[1].resume, true, 'the retried job resumed from its checkpoint');
    assert.ok(String(starts[1].runner).startsWith(`worker ${String(workerB.child.pid)}@`));
    const metrics = readFileSync(join(queued(), 'jobs', victim, 'run', 'metrics.jsonl'), 'utf8');
    assert.match(metrics, /"resumedAtEpoch":\d/);

    const ids = jobIds(queued());
    assert.deepEqual(ids, jobIds(embedded()), 'the same job ids as the embedded sweep');
    const stdoutJobs = sweep.output.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Entry)
      .filter((o) => o.type === 'job');
    assert.equal(stdoutJobs.length, 7, 'each job reported once');
    for (const id of ids) {
      const stored = result(queued(), id);
      const finishes = attempts(queued(), id).filter((e) => e.event === 'finish').length;
      if (stored?.job.flags.lr === -1) {
        assert.equal(stored.status, 'failed');
        assert.match(stored.error ?? '', /--lr: expected a positive number, got -1/);
        assert.equal(
          attempts(queued(), id).filter((e) => e.event === 'start').length,
          1,
          'a failing job is not retried',
        );
      } else {
        assert.equal(stored?.status, 'finished', id);
        assert.equal(finishes, 1, `job ${id} finished once`);
        assert.deepEqual(
          figures(stored),
          figures(result(embedded(), id)),
          `job ${id}: the embedded run's figures`,
        );
      }
    }
    const queue = new Queue('onebit-sweep', {
      connection: { host: '127.0.0.1', port: Number(new URL(url).port) },
    });
    try {
      const counts = await queue.getJobCounts('completed', 'failed', 'active', 'wait');
      assert.deepEqual(counts, { completed: 6, failed: 1, active: 0, wait: 0 });
    } finally {
      await queue.close();
    }
  });

  test("queue: a worker that loses a job's lock stops it at once; the job resumes and finishes once", async () => {
    // A job only this test has (the queue keeps the other tests' jobs by id).
    const spec = {
      grids: [{ command: 'train', flags: { ...DATA, model: 'mlp-100', epochs: 8, method: 'ste', seed: 7 } }],
    };
    writeFileSync(join(dir, 'lock.json'), JSON.stringify(spec));
    const out = join(dir, 'lock');
    const worker = start(
      ['worker', '--queue', url, '--concurrency', '1', '--threads', '1', '--stall-timeout', '2', '--json'],
      dir,
    );
    const sweep = start(['sweep', 'lock.json', '--out', out, '--queue', url], dir);
    const id = await waitFor('the job mid-run', 120, () => {
      if (!existsSync(join(out, 'jobs'))) return null;
      return jobIds(out).find((j) => existsSync(join(out, 'jobs', j, 'run', 'checkpoint.ckpt'))) ?? null;
    });
    // The training child is paused so that it cannot finish before the worker notices (a race the test
    // would otherwise lose on a loaded machine); a stop signal sent meanwhile waits for SIGCONT.
    const [trainChild] = attempts(out, id).filter((e) => e.event === 'spawn');
    const trainPid = Number(trainChild.pid);
    process.kill(trainPid, 'SIGSTOP');
    try {
      // What a worker cut off from Redis (or paused) past its lock time finds: its lock gone.
      const redisClient = new Redis({ host: '127.0.0.1', port: Number(new URL(url).port) });
      try {
        assert.equal(await redisClient.del(`bull:onebit-sweep:${id}:lock`), 1);
      } finally {
        redisClient.disconnect();
      }
      await waitFor('the worker to notice the lost lock', 60, () =>
        worker.output.stdout.includes(`"type":"job-lock-lost","id":"${id}"`) ? true : null,
      );
    } finally {
      process.kill(trainPid, 'SIGCONT');
    }
    assert.equal(await sweep.exited, 0, sweep.output.stderr);
    worker.child.kill('SIGTERM');
    assert.equal(await worker.exited, 0, worker.output.stderr);
    const log = attempts(out, id);
    const starts = log.filter((e) => e.event === 'start');
    assert.equal(starts.length, 2, JSON.stringify(log));
    assert.equal(starts[1].resume, true);
    assert.equal(log.filter((e) => e.event === 'finish').length, 1);
    // The first attempt's training child was stopped, not left running beside the second.
    assert.equal(alive(trainPid), false);
    assert.match(worker.output.stdout, /"type":"job-lost","id":"[0-9a-f]{12}"/);
    assert.equal(result(out, id)?.status, 'finished');
  });

  test('sweep --table prints the table of a sweep folder; worker --work-dir runs jobs whose folder it cannot see', async () => {
    const table = start(['sweep', '--table', embedded(), '--json'], dir);
    assert.equal(await table.exited, 0, table.output.stderr);
    const printed = JSON.parse(table.output.stdout.trim()) as { type: string; rows: unknown[] };
    assert.equal(printed.type, 'table');
    assert.deepEqual(printed.rows, JSON.parse(readFileSync(join(embedded(), 'results.json'), 'utf8')));

    // A job queued by a sweep on another machine: its folder does not exist here.
    const [stored] = jobIds(embedded())
      .map(
        (id) =>
          JSON.parse(readFileSync(join(embedded(), 'jobs', id, 'job.json'), 'utf8')) as {
            id: string;
            command: string;
            flags: Record<string, unknown>;
          },
      )
      .filter((j) => j.command === 'continual');
    const workDir = join(dir, 'elsewhere');
    const queue = new Queue('onebit-sweep', {
      connection: { host: '127.0.0.1', port: Number(new URL(url).port) },
    });
    try {
      const remote = { ...stored, id: 'aaaaaaaaaaaa' };
      await queue.add(
        'remote',
        { job: remote, jobDir: join(dir, 'no-such-machine', 'jobs', remote.id) },
        { jobId: remote.id, attempts: 1 },
      );
      const worker = start(
        ['worker', '--queue', url, '--concurrency', '1', '--threads', '1', '--work-dir', workDir],
        dir,
      );
      const deadline = Date.now() + 60_000;
      let state = '';
      while (state !== 'completed' && state !== 'failed' && Date.now() < deadline) {
        await sleep(200);
        state = (await (await queue.getJob(remote.id))?.getState()) ?? '';
      }
      const done = await queue.getJob(remote.id);
      assert.equal(state, 'completed', done?.failedReason);
      const outcome = done?.returnvalue as { runDir: string; metrics: Record<string, unknown> };
      assert.equal(outcome.runDir, join(workDir, remote.id, 'run'));
      assert.ok(existsSync(join(workDir, remote.id, 'run', 'task-2.ckpt')));
      assert.deepEqual(
        figures(outcome as unknown as Stored),
        figures(result(embedded(), stored.id)),
        'the same figures as the embedded run',
      );
      worker.child.kill('SIGTERM');
      assert.equal(await worker.exited, 0, worker.output.stderr);
    } finally {
      await queue.close();
    }
  });

  test('refuses what would do nothing or cannot work, naming the flag or file', async () => {
    writeFileSync(
      join(dir, 'typo.json'),
      JSON.stringify({ grids: [{ command: 'train', flags: { metod: 'ste' } }] }),
    );
    writeFileSync(
      join(dir, 'value.json'),
      JSON.stringify({ grids: [{ command: 'train', flags: { epochs: 'ten' } }] }),
    );
    const cases: [string[], RegExp][] = [
      [
        ['sweep', 'typo.json'],
        /typo\.json: grids\[0\]\.flags\.metod: expected a flag of the command .*found --metod/,
      ],
      [
        ['sweep', 'value.json'],
        /value\.json: job "train": expected flags onebit train accepts, found .*--epochs expects a positive integer, got "ten"/,
      ],
      [['sweep', 'spec.json', '--queue', url, '--jobs', '2'], /--jobs: expected no --jobs with --queue/],
      [
        ['sweep', 'spec.json', '--jobs', '1000', '--threads', '1000'],
        /--jobs x --threads: expected at most the \d+ cores of this machine, got 1000 x 1000/,
      ],
      [['sweep', 'spec.json', '--table', embedded()], /SPEC: expected no spec with --table/],
      [
        ['sweep', '--table', join(dir, 'nothing')],
        /--table: expected a sweep folder \(holding sweep\.json\)/,
      ],
      [['sweep'], /SPEC: expected a sweep spec file \(or --table DIR\), got nothing/],
      [['worker'], /--queue: expected the Redis URL of the sweep/],
      [
        ['worker', '--queue', 'http://127.0.0.1:6379'],
        /--queue: expected a Redis URL like redis:\/\/127\.0\.0\.1:6379, got "http:\/\/127\.0\.0\.1:6379"/,
      ],
    ];
    for (const [args, message] of cases) {
      const run = start(args, dir);
      assert.equal(await run.exited, 1, args.join(' '));
      assert.match(run.output.stderr, message, args.join(' '));
    }
  });
});
