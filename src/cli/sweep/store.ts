/**
 * A sweep's folder, the record of what has finished:
 *
 *   sweep.json            the spec of the latest start and its jobs' ids
 *   jobs/ID/job.json      the job's settings
 *   jobs/ID/run/          its training run (checkpoint, metrics.jsonl), resumed by a later attempt
 *   jobs/ID/result.json   written once, atomically, when the job ends: its figures, or the error it failed with
 *   results.md .csv .json the table
 *
 * A job with a finished result.json is never run again; a failed one is tried again by the next start.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import type { SweepJob } from '../../sweep/grid.js';
import {
  resultsTable,
  tableCsv,
  tableMarkdown,
  type JobRecord,
  type TableRow,
} from '../../sweep/results-table.js';
import type { SweepSpec } from '../../sweep/spec.js';
import type { JobOutcome } from './run-job.js';

/** result.json: the job, then either its outcome or its error. */
export interface StoredResult extends JobRecord {
  readonly job: SweepJob;
  readonly outcome: JobOutcome | null;
}

export function jobFolder(out: string, id: string): string {
  return join(out, 'jobs', id);
}

function writeJson(path: string, value: unknown): void {
  writeFileAtomic(path, [new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`)]);
}

/** Records the sweep's spec and creates each job's folder with its settings. */
export function prepareSweepFolder(out: string, spec: SweepSpec, jobs: readonly SweepJob[]): void {
  mkdirSync(join(out, 'jobs'), { recursive: true });
  writeJson(join(out, 'sweep.json'), { spec, jobs: jobs.map((j) => j.id) });
  for (const job of jobs) {
    const folder = jobFolder(out, job.id);
    mkdirSync(folder, { recursive: true });
    if (!existsSync(join(folder, 'job.json'))) writeJson(join(folder, 'job.json'), job);
  }
}

export function readResult(out: string, id: string): StoredResult | null {
  const path = join(jobFolder(out, id), 'result.json');
  if (!existsSync(path)) return null;
  return JSON.parse(readFileSync(path, 'utf8')) as StoredResult;
}

/** The jobs' ended results, by id. */
export function readResults(out: string, jobs: readonly SweepJob[]): Map<string, StoredResult> {
  const records = new Map<string, StoredResult>();
  for (const job of jobs) {
    const stored = readResult(out, job.id);
    if (stored !== null) records.set(job.id, stored);
  }
  return records;
}

/**
 * Records a job's end. A finished result is final: recording the job again (a second delivery of the
 * same result) changes nothing and returns false.
 */
export function recordResult(
  out: string,
  job: SweepJob,
  ended: { outcome: JobOutcome } | { error: string },
): boolean {
  const earlier = readResult(out, job.id);
  if (earlier !== null && earlier.status === 'finished') return false;
  const stored: StoredResult =
    'outcome' in ended
      ? {
          id: job.id,
          status: 'finished',
          metrics: ended.outcome.metrics,
          error: null,
          job,
          outcome: ended.outcome,
        }
      : { id: job.id, status: 'failed', metrics: null, error: ended.error, job, outcome: null };
  mkdirSync(jobFolder(out, job.id), { recursive: true });
  writeJson(join(jobFolder(out, job.id), 'result.json'), stored);
  return true;
}

/** Builds the table of the jobs' results and writes results.md, results.csv and results.json in `out`. */
export function writeTable(out: string, jobs: readonly SweepJob[]): TableRow[] {
  const rows = resultsTable(jobs, readResults(out, jobs));
  const encode = (text: string): Uint8Array[] => [new TextEncoder().encode(text)];
  writeFileAtomic(join(out, 'results.md'), encode(tableMarkdown(rows)));
  writeFileAtomic(join(out, 'results.csv'), encode(tableCsv(rows)));
  writeFileAtomic(join(out, 'results.json'), encode(`${JSON.stringify(rows, null, 2)}\n`));
  return rows;
}

/** The spec the sweep in `out` last started with (for --table), or null when `out` holds no sweep. */
export function recordedSpec(out: string): SweepSpec | null {
  const path = join(out, 'sweep.json');
  if (!existsSync(path)) return null;
  return (JSON.parse(readFileSync(path, 'utf8')) as { spec: SweepSpec }).spec;
}
