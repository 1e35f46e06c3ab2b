/**
 * The sweep's default runner: the jobs run on this machine, `jobsAtOnce` child processes at a time, each
 * with `threads` threads (the command keeps jobsAtOnce x threads within the cores). A job that fails for
 * its own reason is recorded as failed and the others go on; an abort (Ctrl-C) stops the running children,
 * whose checkpoints stay for the next start.
 */
import type { SweepJob } from '../../sweep/grid.js';
import type { SweepProgress } from './progress.js';
import { JobFailedError, runSweepJob, type CliInvocation } from './run-job.js';
import { jobFolder, recordResult } from './store.js';

export interface EmbeddedOptions {
  readonly out: string;
  readonly jobsAtOnce: number;
  readonly threads: number;
  readonly cli: CliInvocation;
  readonly progress: SweepProgress;
  readonly signal: AbortSignal;
}

export async function runEmbedded(jobs: readonly SweepJob[], options: EmbeddedOptions): Promise<void> {
  let next = 0;
  let interrupted: unknown = null;
  const lane = async (): Promise<void> => {
    while (next < jobs.length && !options.signal.aborted && interrupted === null) {
      const job = jobs[next++];
      options.progress.started(job);
      try {
        const outcome = await runSweepJob(job, {
          jobDir: jobFolder(options.out, job.id),
          threads: options.threads,
          runner: 'embedded',
          cli: options.cli,
          signal: options.signal,
          onEpoch: (epoch, epochs) => options.progress.epoch(job, epoch, epochs),
        });
        recordResult(options.out, job, { outcome });
        options.progress.ended(job, { metrics: outcome.metrics, seconds: outcome.seconds });
      } catch (error) {
        if (!(error instanceof JobFailedError)) {
          interrupted ??= error;
          return;
        }
        recordResult(options.out, job, { error: error.message });
        options.progress.ended(job, { error: error.message });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobsAtOnce, jobs.length) }, lane));
  if (interrupted !== null && !options.signal.aborted) throw interrupted;
}
