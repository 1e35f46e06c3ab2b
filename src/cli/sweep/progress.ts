/**
 * One progress display for a whole sweep: on a terminal, a bar of jobs ended with the running jobs and
 * their epochs beside it, and a line per ended job above it; in a log, a line per job start and end and a
 * status line every `everySeconds`; with --json, one `{"type":"job"}` object per ended job on stdout.
 */
import { MultiBar, type SingleBar } from 'cli-progress';
import { jobName as name, type SweepJob } from '../../sweep/grid.js';
import type { JobMetrics } from '../../sweep/results-table.js';

export interface SweepProgress {
  started(job: SweepJob): void;
  epoch(job: SweepJob, epoch: number, epochs: number): void;
  ended(job: SweepJob, ended: { metrics: JobMetrics; seconds: number } | { error: string }): void;
  stop(): void;
}

function summary(metrics: JobMetrics): string {
  const parts: string[] = [];
  if (metrics.accuracy !== null) parts.push(`accuracy ${metrics.accuracy.toFixed(4)}`);
  if (metrics.ensembleAccuracy !== null) parts.push(`ensemble ${metrics.ensembleAccuracy.toFixed(4)}`);
  if (metrics.averageAccuracy !== null) parts.push(`average accuracy ${metrics.averageAccuracy.toFixed(4)}`);
  if (metrics.forgetting !== null) parts.push(`forgetting ${metrics.forgetting.toFixed(4)}`);
  return parts.join(', ');
}

export function sweepProgress(options: {
  total: number;
  done: number;
  json: boolean;
  everySeconds: number;
}): SweepProgress {
  let done = options.done;
  const running = new Map<string, string>();
  const status = (): string => [...running.values()].join('; ') || 'waiting';
  const endLine = (
    job: SweepJob,
    ended: { metrics: JobMetrics; seconds: number } | { error: string },
  ): string =>
    'error' in ended
      ? `job ${done}/${options.total} failed: ${name(job)}: ${ended.error}`
      : `job ${done}/${options.total} finished: ${name(job)}: ${summary(ended.metrics)} (${(ended.seconds / 60).toFixed(1)} min)`;

  if (options.json) {
    return {
      started: (job) => void running.set(job.id, name(job)),
      epoch: () => undefined,
      ended(job, ended) {
        running.delete(job.id);
        done++;
        const fields =
          'error' in ended
            ? { status: 'failed', error: ended.error }
            : { status: 'finished', metrics: ended.metrics, seconds: ended.seconds };
        process.stdout.write(
          `${JSON.stringify({ type: 'job', id: job.id, label: job.label, flags: job.flags, ...fields, done, total: options.total })}\n`,
        );
      },
      stop: () => undefined,
    };
  }
  if (!process.stderr.isTTY) {
    const timer = setInterval(
      () => process.stderr.write(`sweep: ${done}/${options.total} jobs ended; running: ${status()}\n`),
      options.everySeconds * 1000,
    );
    timer.unref();
    return {
      started(job) {
        running.set(job.id, name(job));
        process.stderr.write(`job started: ${name(job)} (${job.id})\n`);
      },
      epoch: (job, epoch, epochs) => void running.set(job.id, `${name(job)} ${epoch}/${epochs}`),
      ended(job, ended) {
        running.delete(job.id);
        done++;
        process.stderr.write(`${endLine(job, ended)}\n`);
      },
      stop: () => clearInterval(timer),
    };
  }
  const bars = new MultiBar({
    stream: process.stderr,
    format: 'sweep [{bar}] {value}/{total} jobs | {running}',
    hideCursor: true,
    clearOnComplete: false,
  });
  const bar: SingleBar = bars.create(options.total, done, { running: status() });
  const refresh = (): void => bar.update(done, { running: status() });
  return {
    started(job) {
      running.set(job.id, name(job));
      refresh();
    },
    epoch(job, epoch, epochs) {
      running.set(job.id, `${name(job)} ${epoch}/${epochs}`);
      refresh();
    },
    ended(job, ended) {
      running.delete(job.id);
      done++;
      bars.log(`${endLine(job, ended)}\n`);
      refresh();
    },
    stop: () => bars.stop(),
  };
}
