/**
 * `onebit sweep SPEC.json`: every point of the spec's grids as a job (src/sweep/), run on this machine in
 * child processes (embedded.ts) or, with --queue, by `onebit worker`s on any machines (queue.ts); each
 * job's result lands in the sweep folder once, and the table of mean ± std over seeds is written when the
 * sweep ends (and by `onebit sweep --table DIR` at any time). Started again, a sweep runs only the jobs it
 * has not finished, and resumes a train job from its last checkpoint.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, extname, join, resolve } from 'node:path';
import { Command, CommanderError, type Option } from 'commander';
import { ConfigError, SpecError } from '../errors.js';
import { expandSweep, flagArguments, runOrder, type SweepJob } from '../sweep/grid.js';
import { tableMarkdown } from '../sweep/results-table.js';
import { parseSweepSpec, type SweepCommand, type SweepFlagRules, type SweepSpec } from '../sweep/spec.js';
import { continualCommand } from './continual-command.js';
import { evalCommand } from './eval-command.js';
import { optionGiven, parsePositiveInteger, parsePositiveNumber } from './options.js';
import { trainCommand } from './train-command.js';
import { runEmbedded } from './sweep/embedded.js';
import { sweepProgress } from './sweep/progress.js';
import { runQueued } from './sweep/queue.js';
import { currentCli } from './sweep/run-job.js';
import { prepareSweepFolder, readResults, recordedSpec, writeTable } from './sweep/store.js';

interface SweepFlags {
  out?: string;
  queue?: string;
  jobs?: number;
  threads?: number;
  table?: string;
  progressEvery: number;
  json: boolean;
}

/** Flags the sweep sets on each job itself, refused in a spec. */
const RESERVED = new Set([
  'out',
  'json',
  'threads',
  'resume',
  'overwrite',
  'progress-every',
  'help',
  'verbose',
]);

/** A command's flags as a spec names them: `lr`, `no-calibrate` and its positive form `calibrate`. */
function flagNames(options: readonly Option[]): Set<string> {
  const names = new Set<string>();
  for (const option of options) {
    if (option.long === undefined) continue;
    const bare = option.long.replace(/^--/, '');
    names.add(bare);
    if (bare.startsWith('no-')) names.add(bare.slice(3));
  }
  return names;
}

function flagRules(): SweepFlagRules {
  return {
    flags: { train: flagNames(trainCommand().options), continual: flagNames(continualCommand().options) },
    evaluate: flagNames(evalCommand().options),
    reserved: RESERVED,
  };
}

/**
 * Parses each job's flags as its command would, so a bad value (an epoch count of "ten") is refused before
 * any job runs, naming the job; the commands' own checks still run in each job.
 */
function checkJobValues(jobs: readonly SweepJob[], file: string): void {
  const commands: Record<SweepCommand | 'eval', () => Command> = {
    train: trainCommand,
    continual: continualCommand,
    eval: evalCommand,
  };
  const check = (which: SweepCommand | 'eval', args: string[], job: SweepJob): void => {
    const command = commands[which]()
      .exitOverride()
      .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    try {
      command.parseOptions(args);
    } catch (error) {
      if (!(error instanceof CommanderError)) throw error;
      throw new SpecError(
        `job "${job.label}"${job.flags.seed !== undefined ? ` seed ${String(job.flags.seed)}` : ''}`,
        `flags onebit ${which} accepts`,
        error.message.replace(/^error: /, ''),
        file,
      );
    }
  };
  for (const job of jobs) {
    check(job.command, flagArguments(job.flags), job);
    if (job.evaluate !== null) check('eval', flagArguments(job.evaluate), job);
  }
}

function readSpec(path: string): SweepSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      'SPEC',
      'a readable sweep spec file (.json)',
      `${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SpecError('(file)', 'JSON', `${(error as Error).message}`, path);
  }
  return parseSweepSpec(json, flagRules(), path);
}

/** Jobs at once and threads per job for the embedded runner: their product stays within the cores. */
function lanes(flags: SweepFlags): { jobsAtOnce: number; threads: number } {
  const cores = availableParallelism();
  if (flags.jobs !== undefined && flags.threads !== undefined) {
    if (flags.jobs * flags.threads > cores) {
      throw new ConfigError(
        '--jobs x --threads',
        `at most the ${cores} cores of this machine`,
        `${flags.jobs} x ${flags.threads}`,
      );
    }
    return { jobsAtOnce: flags.jobs, threads: flags.threads };
  }
  if (flags.threads !== undefined) {
    return { jobsAtOnce: Math.max(1, Math.floor(cores / flags.threads)), threads: flags.threads };
  }
  const jobsAtOnce = flags.jobs ?? cores;
  return { jobsAtOnce, threads: Math.max(1, Math.floor(cores / jobsAtOnce)) };
}

function printTable(out: string, jobs: readonly SweepJob[], json: boolean): void {
  const rows = writeTable(out, jobs);
  if (json) process.stdout.write(`${JSON.stringify({ type: 'table', out, rows })}\n`);
  else
    process.stdout.write(
      `${tableMarkdown(rows)}\nwritten: ${join(out, 'results.md')}, results.csv, results.json\n`,
    );
}

export function sweepCommand(): Command {
  const command = new Command('sweep');
  return command
    .description(
      'run every point of a grid of train/continual settings as a job, then tabulate mean ± std over seeds',
    )
    .argument('[spec]', 'sweep spec (.json): grids of onebit train or continual flags, lists as axes')
    .option(
      '--out <dir>',
      'sweep folder: a folder per job and the results table (default: sweeps/<spec name>)',
    )
    .option('--queue <url>', 'run the jobs on `onebit worker`s through Redis at this URL (redis://HOST:PORT)')
    .option(
      '--jobs <n>',
      'jobs at once on this machine (default: cores / --threads)',
      parsePositiveInteger('--jobs'),
    )
    .option(
      '--threads <n>',
      'threads per job on this machine (default: cores / --jobs, at least 1)',
      parsePositiveInteger('--threads'),
    )
    .option('--table <dir>', 'print and write the results table of the sweep in <dir>; runs nothing')
    .option(
      '--progress-every <seconds>',
      'when stderr is not a terminal, a status line this often',
      parsePositiveNumber('--progress-every'),
      60,
    )
    .option('--json', 'one JSON object per ended job and the table as one object, on stdout', false)
    .action(async (specPath: string | undefined, flags: SweepFlags) => {
      if (flags.table !== undefined) {
        for (const [key, flag] of [
          ['out', '--out'],
          ['queue', '--queue'],
          ['jobs', '--jobs'],
          ['threads', '--threads'],
          ['progressEvery', '--progress-every'],
        ] as const) {
          if (optionGiven(command, key))
            throw new ConfigError(flag, 'no run flags with --table (it runs nothing)', flag);
        }
        if (specPath !== undefined)
          throw new ConfigError(
            'SPEC',
            'no spec with --table (the table is of the sweep already in the folder)',
            specPath,
          );
        const spec = recordedSpec(flags.table);
        if (spec === null)
          throw new ConfigError(
            '--table',
            'a sweep folder (holding sweep.json)',
            `${flags.table}, which holds no sweep`,
          );
        printTable(flags.table, expandSweep(spec, join(flags.table, 'sweep.json')), flags.json);
        return;
      }
      if (specPath === undefined)
        throw new ConfigError('SPEC', 'a sweep spec file (or --table DIR)', 'nothing');
      if (flags.queue !== undefined) {
        for (const [key, flag] of [
          ['jobs', '--jobs'],
          ['threads', '--threads'],
        ] as const) {
          if (optionGiven(command, key))
            throw new ConfigError(
              flag,
              `no ${flag} with --queue (each worker sets its own: onebit worker --concurrency/--threads)`,
              flag,
            );
        }
      }
      const spec = readSpec(specPath);
      const jobs = expandSweep(spec, specPath);
      checkJobValues(jobs, specPath);
      const out = resolve(flags.out ?? join('sweeps', basename(specPath, extname(specPath))));
      prepareSweepFolder(out, spec, jobs);
      const ended = readResults(out, jobs);
      const pending = runOrder(jobs).filter((j) => ended.get(j.id)?.status !== 'finished');
      const retried = pending.filter((j) => ended.get(j.id)?.status === 'failed').length;
      if (!flags.json) {
        process.stderr.write(
          `sweep: ${jobs.length} jobs, ${jobs.length - pending.length} already finished${retried > 0 ? `, ${retried} failed before and tried again` : ''}; folder ${out}\n`,
        );
      }
      const progress = sweepProgress({
        total: jobs.length,
        done: jobs.length - pending.length,
        json: flags.json,
        everySeconds: flags.progressEvery,
      });
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        if (flags.queue !== undefined) {
          await runQueued(pending, { out, url: flags.queue, progress, signal: stop.signal });
        } else {
          const { jobsAtOnce, threads } = lanes(flags);
          await runEmbedded(pending, {
            out,
            jobsAtOnce,
            threads,
            cli: currentCli(),
            progress,
            signal: stop.signal,
          });
        }
      } finally {
        progress.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      const finished = [...readResults(out, jobs).values()].filter((r) => r.status === 'finished').length;
      if (stop.signal.aborted) {
        writeTable(out, jobs);
        process.stderr.write(
          `sweep stopped: ${finished}/${jobs.length} jobs finished; the same command goes on from here\n`,
        );
        process.exitCode = 130;
        return;
      }
      printTable(out, jobs, flags.json);
      const failed = jobs.length - finished;
      if (failed > 0) {
        process.stderr.write(
          `sweep: ${failed} of ${jobs.length} jobs failed (errors in results.json); the same command tries them again\n`,
        );
        process.exitCode = 1;
      }
    });
}
