/**
 * The results of a sweep as one table: a row per setting (a job's settings without its seed), each metric
 * as mean and sample standard deviation (n - 1 in the denominator) over the seeds that finished, with the
 * count of finished seeds beside it. Rendered as Markdown, CSV and JSON.
 */
import type { SweepJob } from './grid.js';

/** The figures a finished job contributes to the table; null where the job's command does not measure it. */
export interface JobMetrics {
  /** Test accuracy of the deterministic (mode) network; for continual, the average over tasks after the last. */
  readonly accuracy: number | null;
  /** Test NLL and ECE at the calibrated temperature (continual: the final average NLL, ECE null). */
  readonly nll: number | null;
  readonly ece: number | null;
  /** The sampled ensemble of `eval --test-samples`, where the spec asked for one and the method has a distribution. */
  readonly ensembleAccuracy: number | null;
  readonly ensembleNll: number | null;
  /** Continual learning: average accuracy over all tasks after the last one, and average forgetting. */
  readonly averageAccuracy: number | null;
  readonly forgetting: number | null;
  /** Training throughput, the mean over the run's epochs. */
  readonly samplesPerSecond: number | null;
}

export const METRICS: readonly { key: keyof JobMetrics; title: string; digits: number }[] = [
  { key: 'accuracy', title: 'Accuracy', digits: 4 },
  { key: 'nll', title: 'NLL', digits: 4 },
  { key: 'ece', title: 'ECE', digits: 4 },
  { key: 'ensembleAccuracy', title: 'Ensemble accuracy', digits: 4 },
  { key: 'ensembleNll', title: 'Ensemble NLL (T = 1)', digits: 4 },
  { key: 'averageAccuracy', title: 'Continual avg. accuracy', digits: 4 },
  { key: 'forgetting', title: 'Forgetting', digits: 4 },
  { key: 'samplesPerSecond', title: 'Samples/s', digits: 0 },
];

/** What a sweep records for each job that ended: its figures, or the error it failed with. */
export interface JobRecord {
  readonly id: string;
  readonly status: 'finished' | 'failed';
  readonly metrics: JobMetrics | null;
  readonly error: string | null;
}

export interface Statistic {
  readonly mean: number;
  /** Sample standard deviation; 0 with one value. */
  readonly std: number;
  readonly count: number;
}

export interface TableRow {
  readonly setting: string;
  readonly label: string;
  readonly jobs: number;
  readonly finished: number;
  readonly failed: number;
  readonly metrics: Readonly<Partial<Record<keyof JobMetrics, Statistic>>>;
  /** The errors of failed jobs, by job id. */
  readonly errors: Readonly<Record<string, string>>;
}

export function statistic(values: readonly number[]): Statistic {
  const n = values.length;
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const variance = n < 2 ? 0 : values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1);
  return { mean, std: Math.sqrt(variance), count: n };
}

/** One row per setting, in the order the settings first appear among the jobs. */
export function resultsTable(jobs: readonly SweepJob[], records: ReadonlyMap<string, JobRecord>): TableRow[] {
  const groups = new Map<string, SweepJob[]>();
  for (const job of jobs) {
    const group = groups.get(job.setting);
    if (group === undefined) groups.set(job.setting, [job]);
    else group.push(job);
  }
  return [...groups.entries()].map(([setting, members]) => {
    const ended = members.map((j) => records.get(j.id)).filter((r): r is JobRecord => r !== undefined);
    const finished = ended.filter((r) => r.status === 'finished' && r.metrics !== null);
    const metrics: Partial<Record<keyof JobMetrics, Statistic>> = {};
    for (const { key } of METRICS) {
      const values = finished
        .map((r) => r.metrics?.[key])
        .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      if (values.length > 0) metrics[key] = statistic(values);
    }
    const errors: Record<string, string> = {};
    for (const r of ended) if (r.status === 'failed') errors[r.id] = r.error ?? 'failed';
    return {
      setting,
      label: members[0].label,
      jobs: members.length,
      finished: finished.length,
      failed: Object.keys(errors).length,
      metrics,
      errors,
    };
  });
}

function usedMetrics(rows: readonly TableRow[]): typeof METRICS {
  return METRICS.filter(({ key }) => rows.some((r) => r.metrics[key] !== undefined));
}

function formatStatistic(s: Statistic | undefined, digits: number): string {
  if (s === undefined) return '–';
  return s.count < 2 ? s.mean.toFixed(digits) : `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`;
}

/** A Markdown table: mean ± std over finished seeds, and "finished/jobs" (plus failures) per row. */
export function tableMarkdown(rows: readonly TableRow[]): string {
  const metrics = usedMetrics(rows);
  const header = ['Setting', 'Seeds finished', ...metrics.map((m) => m.title)];
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const row of rows) {
    const seeds = `${row.finished}/${row.jobs}${row.failed > 0 ? ` (${row.failed} failed)` : ''}`;
    const cells = [
      row.label.replace(/\|/g, '\\|'),
      seeds,
      ...metrics.map((m) => formatStatistic(row.metrics[m.key], m.digits)),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}

function csvCell(text: string): string {
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** CSV: the setting, the counts, then mean and std columns for each metric (empty where not measured). */
export function tableCsv(rows: readonly TableRow[]): string {
  const metrics = usedMetrics(rows);
  const header = [
    'setting',
    'jobs',
    'finished',
    'failed',
    ...metrics.flatMap((m) => [`${m.key}_mean`, `${m.key}_std`]),
  ];
  const lines = [header.join(',')];
  for (const row of rows) {
    const cells = [csvCell(row.label), String(row.jobs), String(row.finished), String(row.failed)];
    for (const m of metrics) {
      const s = row.metrics[m.key];
      cells.push(s === undefined ? '' : String(s.mean), s === undefined ? '' : String(s.std));
    }
    lines.push(cells.join(','));
  }
  return `${lines.join('\n')}\n`;
}
