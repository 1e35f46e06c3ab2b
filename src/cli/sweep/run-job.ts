/**
 * Runs one sweep job: `onebit train`, then `onebit eval` when the spec asks for it, or `onebit continual`,
 * each as a child process of this onebit with `--json`, resuming the run when the job folder already holds
 * a checkpoint (train's, or a continual run's task checkpoint); and reads the figures the results table
 * needs. The children keep an IPC channel to this process, so if it dies, even by SIGKILL, they exit too
 * (main.ts) and a retried job never shares its run folder with an orphan.
 *
 * Each attempt appends a `start` line, a `spawn` line per child (with its pid) and, when it succeeds, a
 * `finish` line to attempts.jsonl in the job folder: the record of how often a job ran, which the tests read.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { flagArguments, type SweepJob } from '../../sweep/grid.js';
import type { JobMetrics } from '../../sweep/results-table.js';

/** How to start this onebit again: node, its flags (tsx under the tests) and the CLI's entry script. */
export interface CliInvocation {
  readonly node: string;
  readonly args: readonly string[];
}

/** The onebit that is running now, as a command line (the CLI passes it down; the tests run it under tsx). */
export function currentCli(): CliInvocation {
  return { node: process.execPath, args: [...process.execArgv, process.argv[1]] };
}

export interface JobRunOptions {
  /** The job's folder: run/ (the training run), attempts.jsonl. */
  readonly jobDir: string;
  /** Threads of each child's wasm backend. */
  readonly threads: number;
  /** Who runs it, for attempts.jsonl: "embedded" or "worker PID@HOST". */
  readonly runner: string;
  readonly cli: CliInvocation;
  readonly onEpoch?: (epoch: number, epochs: number) => void;
  /** Aborting stops the running child (SIGTERM); the job's checkpoint stays for the next attempt. */
  readonly signal?: AbortSignal;
}

/** What a finished job reports: its figures, where its run is, and the commands' own final objects. */
export interface JobOutcome {
  readonly id: string;
  readonly metrics: JobMetrics;
  readonly runDir: string;
  readonly checkpoint: string | null;
  readonly host: string;
  readonly runner: string;
  readonly resumed: boolean;
  readonly seconds: number;
  readonly finishedAt: string;
  /** The train or continual command's final `{"type":"result"}` object, and eval's object (or null). */
  readonly result: Record<string, unknown>;
  readonly evaluation: Record<string, unknown> | null;
}

/** The job failed for its own reason (bad settings, divergence, missing data): retrying cannot help. */
export class JobFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobFailedError';
  }
}

/** The job was stopped from outside (signal, abort): it can run again and resume. */
export class JobInterruptedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobInterruptedError';
  }
}

type JsonObject = Record<string, unknown>;

function parseLine(line: string): JsonObject | null {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as JsonObject)
      : null;
  } catch {
    return null;
  }
}

function numberField(o: JsonObject | null | undefined, key: string): number | null {
  const v = o?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function objectField(o: JsonObject | null | undefined, key: string): JsonObject | null {
  const v = o?.[key];
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : null;
}

/** Runs `onebit ARGS --json` and returns its JSON lines; a failed run throws JobFailedError with its error. */
function runOnebit(
  args: readonly string[],
  options: JobRunOptions,
  onLine: (o: JsonObject) => void,
): Promise<JsonObject[]> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted === true) {
      reject(new JobInterruptedError('stopped before it started'));
      return;
    }
    const child = spawn(options.cli.node, [...options.cli.args, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    if (child.pid !== undefined)
      appendAttempt(options.jobDir, { event: 'spawn', command: args[0], pid: child.pid });
    const { stdout, stderr } = child;
    if (stdout === null || stderr === null) throw new Error('spawn gave no pipes');
    const lines: JsonObject[] = [];
    let pending = '';
    let stderrTail = '';
    const stop = (): void => void child.kill('SIGTERM');
    options.signal?.addEventListener('abort', stop, { once: true });
    stdout.setEncoding('utf8');
    stdout.on('data', (chunk: string) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) {
        const o = parseLine(part);
        if (o === null) continue;
        lines.push(o);
        onLine(o);
      }
    });
    stderr.setEncoding('utf8');
    stderr.on('data', (chunk: string) => (stderrTail = (stderrTail + chunk).slice(-4000)));
    child.on('error', (error) => reject(new JobInterruptedError(`could not start onebit: ${error.message}`)));
    child.on('close', (code, signal) => {
      options.signal?.removeEventListener('abort', stop);
      const last = parseLine(pending);
      if (last !== null) lines.push(last);
      if (code === 0) {
        resolve(lines);
        return;
      }
      // Killed, stopped by us, or ended by Ctrl-C (130) / SIGTERM (143) it handled itself: not the job's fault.
      if (signal !== null || options.signal?.aborted === true || code === 130 || code === 143) {
        reject(new JobInterruptedError(`onebit ${args[0]} was stopped (${signal ?? 'aborted'})`));
        return;
      }
      const error = lines.map((o) => objectField(o, 'error')).find((e) => e !== null);
      const message =
        typeof error?.message === 'string' ? error.message : (stderrTail.trim().split('\n').pop() ?? '');
      reject(new JobFailedError(`onebit ${args[0]} exited with code ${code ?? '?'}: ${message}`));
    });
  });
}

function readJsonLines(path: string): JsonObject[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .map(parseLine)
    .filter((o): o is JsonObject => o !== null);
}

/** Mean of the epochs' samples/s over the whole run (metrics.jsonl keeps epochs from before a resume too). */
function trainThroughput(runDir: string): number | null {
  const values = readJsonLines(join(runDir, 'metrics.jsonl'))
    .filter((o) => o.type === 'epoch')
    .map((o) => numberField(o, 'samplesPerSecond'))
    .filter((v): v is number => v !== null && v > 0);
  return values.length === 0 ? null : values.reduce((s, v) => s + v, 0) / values.length;
}

/** Continual runs: examples seen (task size x its epochs) over training seconds, across all tasks. */
function continualThroughput(lines: readonly JsonObject[]): number | null {
  let examples = 0;
  let seconds = 0;
  for (const task of lines.filter((o) => o.type === 'task')) {
    const epochs = lines.filter((o) => o.type === 'epoch' && o.task === task.task).length;
    examples += (numberField(task, 'trainExamples') ?? 0) * epochs;
    seconds += numberField(task, 'trainSeconds') ?? 0;
  }
  return seconds > 0 ? examples / seconds : null;
}

function appendAttempt(jobDir: string, entry: JsonObject): void {
  appendFileSync(
    join(jobDir, 'attempts.jsonl'),
    `${JSON.stringify({ ...entry, time: new Date().toISOString() })}\n`,
  );
}

function threadArguments(job: SweepJob, threads: number): string[] {
  // --threads is refused with the reference backend; that backend has one thread anyway.
  return job.flags.backend === 'reference' ? [] : ['--threads', String(threads)];
}

/** Runs the job to its end in options.jobDir and returns its figures. */
export async function runSweepJob(job: SweepJob, options: JobRunOptions): Promise<JobOutcome> {
  const started = performance.now();
  const runDir = join(options.jobDir, 'run');
  mkdirSync(options.jobDir, { recursive: true });
  const checkpoint = join(runDir, 'checkpoint.ckpt');
  const hasTaskCheckpoint = existsSync(runDir) && readdirSync(runDir).some((n) => /^task-\d+\.ckpt$/.test(n));
  const resumed = job.command === 'train' ? existsSync(checkpoint) : hasTaskCheckpoint;
  appendAttempt(options.jobDir, {
    event: 'start',
    runner: options.runner,
    pid: process.pid,
    resume: resumed,
  });
  const threads = threadArguments(job, options.threads);
  const onLine = (o: JsonObject): void => {
    const epoch = numberField(o, 'epoch');
    const epochs =
      numberField(objectField(o, 'config'), 'epochs') ?? numberField(job.flags as JsonObject, 'epochs');
    if (o.type === 'epoch' && epoch !== null)
      options.onEpoch?.(epoch, epochs ?? Number(job.flags.epochs ?? 5));
    if (o.type === 'task') options.onEpoch?.(numberField(o, 'task') ?? 0, numberField(o, 'tasks') ?? 0);
  };
  // Both commands take --resume DIR (the run's own settings) and --out DIR (--overwrite: a folder a killed
  // first attempt left without a checkpoint).
  const args = resumed
    ? [job.command, '--resume', runDir, '--json', ...threads]
    : [
        job.command,
        ...flagArguments(job.flags),
        '--out',
        runDir,
        ...(existsSync(runDir) ? ['--overwrite'] : []),
        '--json',
        ...threads,
      ];
  const lines = await runOnebit(args, options, onLine);
  const result = [...lines].reverse().find((o) => o.type === 'result');
  if (result === undefined) throw new JobFailedError(`onebit ${job.command} printed no result`);

  let evaluation: JsonObject | null = null;
  if (job.command === 'train' && job.evaluate !== null) {
    const evalLines = await runOnebit(
      ['eval', runDir, ...flagArguments(job.evaluate), '--json', ...threads],
      options,
      () => undefined,
    );
    evaluation = [...evalLines].reverse().find((o) => o.type === 'eval') ?? null;
    if (evaluation === null) throw new JobFailedError('onebit eval printed no result');
  }

  // A continual run's task lines, from its log: a resumed run prints only the tasks it trained.
  const log = job.command === 'continual' ? readJsonLines(join(runDir, 'metrics.jsonl')) : [];
  const tasks = log.filter((o) => o.type === 'task');
  let metrics: JobMetrics;
  if (job.command === 'train') {
    const mode = objectField(evaluation, 'mode');
    const ensemble = objectField(evaluation, 'ensemble');
    metrics = {
      accuracy: numberField(mode, 'accuracy') ?? numberField(result, 'testAccuracy'),
      nll: numberField(mode, 'nll') ?? numberField(result, 'testNll'),
      ece: numberField(mode, 'ece') ?? numberField(result, 'testEce'),
      ensembleAccuracy: numberField(ensemble, 'accuracy'),
      ensembleNll: numberField(ensemble, 'nll'),
      averageAccuracy: null,
      forgetting: null,
      samplesPerSecond: trainThroughput(runDir),
    };
  } else {
    const finalNll = tasks.length === 0 ? null : tasks[tasks.length - 1].nll;
    const nlls = Array.isArray(finalNll) ? finalNll.filter((v): v is number => typeof v === 'number') : [];
    metrics = {
      accuracy: null,
      nll: nlls.length === 0 ? null : nlls.reduce((s, v) => s + v, 0) / nlls.length,
      ece: null,
      ensembleAccuracy: null,
      ensembleNll: null,
      averageAccuracy: numberField(result, 'averageAccuracy'),
      forgetting: numberField(result, 'forgetting'),
      samplesPerSecond: continualThroughput(log),
    };
  }
  const lastTask = tasks[tasks.length - 1]?.checkpoint;
  const lastCheckpoint =
    job.command === 'train' ? checkpoint : typeof lastTask === 'string' ? join(runDir, lastTask) : null;
  const outcome: JobOutcome = {
    id: job.id,
    metrics,
    runDir,
    checkpoint: lastCheckpoint,
    host: hostname(),
    runner: options.runner,
    resumed,
    seconds: (performance.now() - started) / 1000,
    finishedAt: new Date().toISOString(),
    result,
    evaluation,
  };
  appendAttempt(options.jobDir, { event: 'finish', runner: options.runner, pid: process.pid });
  return outcome;
}
