/**
 * A sweep spec expanded into jobs: every point of every grid, each with a stable id (a hash of its
 * settings), so a sweep that is started again finds the jobs it has already finished, whatever order the
 * spec lists them in, and a queue never holds the same job twice.
 */
import { createHash } from 'node:crypto';
import { SpecError } from '../errors.js';
import type { FlagValue, SweepCommand, SweepSpec } from './spec.js';

export interface SweepJob {
  /** 12 hex digits of the SHA-256 of the canonical settings: the job's folder name and its queue id. */
  readonly id: string;
  readonly command: SweepCommand;
  /** Every flag of the run (no axes left). */
  readonly flags: Readonly<Record<string, FlagValue>>;
  /** Flags of `onebit eval` for the finished run; null: none. */
  readonly evaluate: Readonly<Record<string, FlagValue>> | null;
  /** The setting the job belongs to: its settings without the seed (the table's row key). */
  readonly setting: string;
  /** The settings that tell this job's row apart from the others of the sweep, e.g. "train method=vispa rank=4". */
  readonly label: string;
}

/** The form two spellings of one setting share: `"seed": 1` and `"seed": "1"` are the same flag. */
function canonicalValue(value: FlagValue): string | boolean {
  return typeof value === 'boolean' ? value : String(value);
}

function canonical(flags: Readonly<Record<string, FlagValue>> | null): [string, string | boolean][] | null {
  if (flags === null) return null;
  return Object.keys(flags)
    .sort()
    .map((k) => [k, canonicalValue(flags[k])]);
}

/** The job id of these settings (see SweepJob.id). */
export function jobId(
  command: SweepCommand,
  flags: Readonly<Record<string, FlagValue>>,
  evaluate: Readonly<Record<string, FlagValue>> | null,
): string {
  const text = JSON.stringify({ command, flags: canonical(flags), evaluate: canonical(evaluate) });
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}

/** Command-line arguments for the flags: `--name value`, `--name` for true, `--no-name` for false. */
export function flagArguments(flags: Readonly<Record<string, FlagValue>>): string[] {
  const args: string[] = [];
  for (const [name, value] of Object.entries(flags)) {
    if (value === true) args.push(`--${name}`);
    else if (value === false) args.push(`--no-${name}`);
    else args.push(`--${name}`, String(value));
  }
  return args;
}

/** Every combination of the axes, in the order the spec lists them (the first axis varies slowest). */
function combinations(
  flags: Readonly<Record<string, FlagValue | readonly FlagValue[]>>,
): Record<string, FlagValue>[] {
  let points: Record<string, FlagValue>[] = [{}];
  for (const [name, value] of Object.entries(flags)) {
    const values: readonly FlagValue[] = Array.isArray(value) ? value : [value as FlagValue];
    points = points.flatMap((p) => values.map((v) => ({ ...p, [name]: v })));
  }
  return points;
}

function describeSettings(
  command: SweepCommand,
  flags: Readonly<Record<string, FlagValue>>,
  keys: readonly string[],
): string {
  const parts = keys.filter((k) => k in flags).map((k) => `${k}=${String(flags[k])}`);
  return [command, ...parts].join(' ');
}

/** The jobs of a sweep, in spec order; a point listed twice (by two grids) is refused, naming both. */
export function expandSweep(spec: SweepSpec, file: string | null = null): SweepJob[] {
  const points: {
    command: SweepCommand;
    flags: Record<string, FlagValue>;
    evaluate: Record<string, FlagValue> | null;
    where: string;
  }[] = [];
  spec.grids.forEach((grid, g) => {
    combinations(grid.flags).forEach((flags, i) => {
      points.push({
        command: grid.command,
        flags,
        evaluate: grid.evaluate === null ? null : { ...grid.evaluate },
        where: `grids[${g}] point ${i + 1}`,
      });
    });
  });
  // The label names the flags whose values differ between the settings of one command, seeds aside.
  const varying = new Map<SweepCommand, string[]>();
  for (const command of new Set(points.map((p) => p.command))) {
    const same = points.filter((p) => p.command === command);
    const names = [...new Set(same.flatMap((p) => Object.keys(p.flags)))].filter((name) => name !== 'seed');
    varying.set(
      command,
      names.filter(
        (name) => new Set(same.map((p) => (name in p.flags ? String(p.flags[name]) : '\u0000'))).size > 1,
      ),
    );
  }
  const seen = new Map<string, string>();
  return points.map((p): SweepJob => {
    const id = jobId(p.command, p.flags, p.evaluate);
    const earlier = seen.get(id);
    if (earlier !== undefined)
      throw new SpecError(
        p.where,
        'settings no other grid point has',
        `the same settings as ${earlier}`,
        file,
      );
    seen.set(id, p.where);
    const withoutSeed = Object.fromEntries(Object.entries(p.flags).filter(([k]) => k !== 'seed'));
    return {
      id,
      command: p.command,
      flags: p.flags,
      evaluate: p.evaluate,
      setting: jobId(p.command, withoutSeed, p.evaluate),
      label: describeSettings(p.command, p.flags, varying.get(p.command) ?? []),
    };
  });
}

/** A job as people name it: its label and, when it has one, its seed. */
export function jobName(job: SweepJob): string {
  return job.flags.seed === undefined ? job.label : `${job.label} seed=${String(job.flags.seed)}`;
}

/**
 * The order to run jobs in: seed by seed (every setting's first seed before any setting's second), then
 * in spec order, so a sweep stopped early leaves rows that each have some seeds rather than some rows
 * complete and others empty.
 */
export function runOrder(jobs: readonly SweepJob[]): SweepJob[] {
  const seeds: string[] = [];
  for (const job of jobs) {
    const seed = String(job.flags.seed ?? '');
    if (!seeds.includes(seed)) seeds.push(seed);
  }
  const rank = (job: SweepJob): number => seeds.indexOf(String(job.flags.seed ?? ''));
  return jobs
    .map((job, index) => ({ job, index }))
    .sort((a, b) => rank(a.job) - rank(b.job) || a.index - b.index)
    .map(({ job }) => job);
}
