/**
 * `onebit worker --queue URL`: takes sweep jobs from the queue that `onebit sweep --queue URL` fills and
 * runs them (sweep/queue.ts), until stopped. Ctrl-C or SIGTERM hands its running jobs back to the queue,
 * where they resume from their checkpoints; a SIGKILL does the same once the job's lock runs out
 * (--stall-timeout).
 */
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { parsePositiveInteger, parsePositiveNumber } from './options.js';
import { redisConnection, startWorker } from './sweep/queue.js';
import { currentCli } from './sweep/run-job.js';

interface WorkerFlags {
  queue?: string;
  concurrency?: number;
  threads?: number;
  workDir?: string;
  stallTimeout: number;
  json: boolean;
}

export function workerCommand(): Command {
  return new Command('worker')
    .description('run sweep jobs from a Redis queue (see onebit sweep --queue) until stopped')
    .option('--queue <url>', 'the Redis the sweep uses (redis://HOST:PORT)')
    .option(
      '--concurrency <n>',
      'jobs at once (default: cores / --threads)',
      parsePositiveInteger('--concurrency'),
    )
    .option(
      '--threads <n>',
      'threads per job (default: cores / --concurrency, at least 1)',
      parsePositiveInteger('--threads'),
    )
    .option(
      '--work-dir <dir>',
      "where jobs run whose sweep folder this machine does not see (default: the system's temporary folder)",
    )
    .option(
      '--stall-timeout <seconds>',
      'a job whose worker is silent this long (killed, cut off) goes back to the queue',
      parsePositiveNumber('--stall-timeout'),
      30,
    )
    .option('--json', 'one JSON object per job event on stdout', false)
    .action(async (flags: WorkerFlags) => {
      if (flags.queue === undefined)
        throw new ConfigError('--queue', 'the Redis URL of the sweep (redis://HOST:PORT)', 'nothing');
      redisConnection(flags.queue); // a bad URL is refused before anything starts
      const cores = availableParallelism();
      const concurrency = flags.concurrency ?? Math.max(1, Math.floor(cores / (flags.threads ?? 1)));
      const threads = flags.threads ?? Math.max(1, Math.floor(cores / concurrency));
      const workDir = resolve(flags.workDir ?? join(tmpdir(), 'onebit-worker'));
      const log = (event: { type: string; id: string; name: string; [key: string]: unknown }): void => {
        if (flags.json) process.stdout.write(`${JSON.stringify({ ...event, type: `job-${event.type}` })}\n`);
        else
          process.stderr.write(
            `worker: ${event.type} ${event.name} (${event.id})${typeof event.error === 'string' ? `: ${event.error}` : ''}\n`,
          );
      };
      const worker = await startWorker({
        url: flags.queue,
        concurrency,
        threads,
        workDir,
        stallSeconds: flags.stallTimeout,
        cli: currentCli(),
        log,
      });
      if (flags.json)
        process.stdout.write(
          `${JSON.stringify({ type: 'worker', pid: process.pid, concurrency, threads, queue: flags.queue })}\n`,
        );
      else
        process.stderr.write(
          `worker: ${concurrency} job(s) at once, ${threads} thread(s) each, on ${flags.queue}\n`,
        );
      const stop = (): void => {
        if (!flags.json) process.stderr.write('worker: stopping; running jobs go back to the queue\n');
        void worker.stop();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await worker.closed;
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    });
}
