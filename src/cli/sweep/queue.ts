/**
 * Sweeps over many machines, on BullMQ (a job queue over Redis). `onebit sweep --queue URL` adds each
 * job the sweep folder has not finished, under the job's id (so a job is in the queue once, however often
 * the sweep is started), then waits and records each result in the sweep folder. `onebit worker --queue
 * URL` takes jobs and runs them (run-job.ts), returning the figures through the queue.
 *
 * Delivery: a worker holds a lock on its job and renews it while the job runs. A worker that dies (even by
 * SIGKILL; its children follow it, see run-job.ts) stops renewing: after `stallSeconds` another worker's
 * stalled-job check puts the job back in the queue, and the next attempt resumes from the job's checkpoint
 * when the job folder is on storage both workers see, or starts over in the worker's own folder when not.
 * A worker that fails to renew a lock (cut off from Redis, paused) stops that job's child at once, since the
 * job may already be running elsewhere. BullMQ completes a job only for the holder of its lock, so a result
 * is returned once; a job that fails
 * for its own reason is failed with its error (UnrecoverableError: no retry); a job that stalls more than
 * MAX_STALLS times (it keeps killing its worker) fails too, rather than cycling forever.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { Queue, UnrecoverableError, WaitingError, Worker, type Job, type RedisOptions } from 'bullmq';
import { ConfigError, OnebitError } from '../../errors.js';
import { jobName, type SweepJob } from '../../sweep/grid.js';
import type { SweepProgress } from './progress.js';
import {
  JobFailedError,
  JobInterruptedError,
  runSweepJob,
  type CliInvocation,
  type JobOutcome,
} from './run-job.js';
import { jobFolder, recordResult } from './store.js';

export const QUEUE_NAME = 'onebit-sweep';
/** Times a job may lose its worker before it is failed. */
export const MAX_STALLS = 3;

/** What travels through the queue with each job. */
export interface QueuedJob {
  readonly job: SweepJob;
  /** The job's folder in the sweep's folder; used by a worker that sees it (shared storage). */
  readonly jobDir: string;
}

/** Connection options for `redis://[:PASSWORD@]HOST[:PORT][/DB]`; anything else is refused naming the flag. */
export function redisConnection(url: string): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError('--queue', 'a Redis URL like redis://127.0.0.1:6379', `"${url}"`);
  }
  if (parsed.protocol !== 'redis:' || parsed.hostname === '') {
    throw new ConfigError('--queue', 'a Redis URL like redis://127.0.0.1:6379', `"${url}"`);
  }
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db))
    throw new ConfigError('--queue', 'a database number after the port', `"/${db}"`);
  return {
    host: parsed.hostname,
    port: parsed.port === '' ? 6379 : Number(parsed.port),
    ...(parsed.password !== '' ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.username !== '' ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(db !== '' ? { db: Number(db) } : {}),
    // BullMQ's workers block on Redis; ioredis must not give up on a command while they wait.
    maxRetriesPerRequest: null,
  };
}

/** Waits for the connection, or fails naming the URL (ioredis would otherwise retry silently forever). */
async function connected(ready: Promise<unknown>, url: string, seconds = 10): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new OnebitError('queue', `--queue: cannot reach Redis at ${url} (no answer in ${seconds} s)`)),
      seconds * 1000,
    );
  });
  try {
    await Promise.race([ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function progressOf(job: Job<QueuedJob, JobOutcome>): { epoch: number; epochs: number } | null {
  const p: unknown = job.progress;
  if (typeof p !== 'object' || p === null || !('epoch' in p) || !('epochs' in p)) return null;
  return typeof p.epoch === 'number' && typeof p.epochs === 'number'
    ? { epoch: p.epoch, epochs: p.epochs }
    : null;
}

export interface QueuedSweepOptions {
  readonly out: string;
  readonly url: string;
  readonly progress: SweepProgress;
  readonly signal: AbortSignal;
  readonly pollMilliseconds?: number;
}

/** Adds the jobs to the queue and records each result in the sweep folder as it arrives. */
export async function runQueued(jobs: readonly SweepJob[], options: QueuedSweepOptions): Promise<void> {
  const queue = new Queue<QueuedJob, JobOutcome>(QUEUE_NAME, { connection: redisConnection(options.url) });
  try {
    await connected(queue.waitUntilReady(), options.url);
    for (const job of jobs) {
      const existing = await queue.getJob(job.id);
      if (existing === undefined) {
        await queue.add(
          jobName(job),
          { job, jobDir: jobFolder(options.out, job.id) },
          { jobId: job.id, attempts: 1 },
        );
      } else if ((await existing.getState()) === 'failed') {
        await existing.retry('failed');
      }
    }
    const pending = new Map(jobs.map((j) => [j.id, j]));
    const seenActive = new Set<string>();
    while (pending.size > 0 && !options.signal.aborted) {
      for (const [id, job] of pending) {
        const queued = await queue.getJob(id);
        if (queued === undefined) {
          // Removed from the queue by someone else: add it again.
          await queue.add(
            jobName(job),
            { job, jobDir: jobFolder(options.out, job.id) },
            { jobId: job.id, attempts: 1 },
          );
          continue;
        }
        const state = await queued.getState();
        if (state === 'completed') {
          const outcome = queued.returnvalue;
          recordResult(options.out, job, { outcome });
          pending.delete(id);
          options.progress.ended(job, { metrics: outcome.metrics, seconds: outcome.seconds });
        } else if (state === 'failed') {
          const error = queued.failedReason || 'failed';
          recordResult(options.out, job, { error });
          pending.delete(id);
          options.progress.ended(job, { error });
        } else if (state === 'active') {
          if (!seenActive.has(id)) {
            seenActive.add(id);
            options.progress.started(job);
          }
          const p = progressOf(queued);
          if (p !== null) options.progress.epoch(job, p.epoch, p.epochs);
        }
      }
      if (pending.size > 0) await sleep(options.pollMilliseconds ?? 1000);
    }
  } finally {
    await queue.close();
  }
}

export interface WorkerOptions {
  readonly url: string;
  readonly concurrency: number;
  readonly threads: number;
  /** Where jobs run whose sweep folder this machine does not see. */
  readonly workDir: string;
  /** Lock time: a job whose worker is silent this long goes back to the queue. */
  readonly stallSeconds: number;
  readonly cli: CliInvocation;
  readonly log: (event: { type: string; id: string; name: string; [key: string]: unknown }) => void;
}

/** A running worker; `stop()` hands its running jobs back to the queue (their checkpoints stay) and closes. */
export interface RunningWorker {
  stop(): Promise<void>;
  /** Settles when the worker has closed. */
  readonly closed: Promise<void>;
}

export async function startWorker(options: WorkerOptions): Promise<RunningWorker> {
  const stopping = new AbortController();
  /** Per running job, what stops it when this worker loses the job's lock. */
  const lockLost = new Map<string, () => void>();
  const runner = `worker ${process.pid}@${hostname()}`;
  const worker = new Worker<QueuedJob, JobOutcome>(
    QUEUE_NAME,
    async (bullJob, token) => {
      const { job, jobDir } = bullJob.data;
      const shared = existsSync(dirname(jobDir));
      const folder = shared ? jobDir : join(options.workDir, job.id);
      options.log({
        type: 'start',
        id: job.id,
        name: jobName(job),
        folder,
        attempt: bullJob.attemptsStarted,
      });
      // Stops the job's child: the worker stopping, or the job's lock lost.
      const halt = new AbortController();
      let lost = false;
      const onStop = (): void => halt.abort();
      stopping.signal.addEventListener('abort', onStop, { once: true });
      lockLost.set(bullJob.id ?? job.id, () => {
        if (lost) return;
        lost = true;
        options.log({ type: 'lock-lost', id: job.id, name: jobName(job) });
        halt.abort();
      });
      try {
        const outcome = await runSweepJob(job, {
          jobDir: folder,
          threads: options.threads,
          runner,
          cli: options.cli,
          signal: halt.signal,
          onEpoch: (epoch, epochs) => void bullJob.updateProgress({ epoch, epochs }).catch(() => undefined),
        });
        options.log({ type: 'finish', id: job.id, name: jobName(job), metrics: outcome.metrics });
        return outcome;
      } catch (error) {
        if (error instanceof JobFailedError) {
          options.log({ type: 'fail', id: job.id, name: jobName(job), error: error.message });
          throw new UnrecoverableError(error.message);
        }
        if (error instanceof JobInterruptedError && lost) {
          // The job is no longer ours (the stalled-job check has handed it on); whatever we throw, BullMQ
          // records nothing for a job whose lock we lost.
          options.log({ type: 'lost', id: job.id, name: jobName(job) });
          throw error;
        }
        if (error instanceof JobInterruptedError && stopping.signal.aborted && token !== undefined) {
          await bullJob.moveToWait(token);
          options.log({ type: 'returned', id: job.id, name: jobName(job) });
          throw new WaitingError();
        }
        throw error;
      } finally {
        lockLost.delete(bullJob.id ?? job.id);
        stopping.signal.removeEventListener('abort', onStop);
      }
    },
    {
      connection: redisConnection(options.url),
      concurrency: options.concurrency,
      lockDuration: options.stallSeconds * 1000,
      stalledInterval: options.stallSeconds * 1000,
      maxStalledCount: MAX_STALLS,
      autorun: false,
    },
  );
  worker.on('error', () => undefined); // connection errors: ioredis reconnects; the job locks decide delivery
  // A lock this worker could not renew (it was cut off or paused past the lock time) may already have
  // been handed to another worker: stop the job here at once, so two runs never share its folder.
  worker.on('lockRenewalFailed', (ids) => {
    for (const id of ids) lockLost.get(id)?.();
  });
  await connected(worker.waitUntilReady(), options.url);
  const closed = worker.run();
  return {
    async stop() {
      stopping.abort();
      await worker.close();
    },
    closed,
  };
}
