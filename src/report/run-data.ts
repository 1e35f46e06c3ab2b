/**
 * A training run's folder read for the report: its settings and spec (from the checkpoint, else run.json),
 * metrics.jsonl (epoch, step and flip lines) and test.json (confusion matrix, per-class accuracy, reliability). A run trained before the
 * report existed lacks step and flip lines and test.json; those parts of the report then say so.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import type { ModelSpec } from '../nn/spec.js';
import type { StepRecord, TestReport } from '../train/run-records.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { CHECKPOINT_FILE, METRICS_FILE, RUN_FILE, TEST_FILE, type EpochRecord } from '../train/trainer.js';

export interface FlipRecord {
  readonly epoch: number;
  /** Per binary layer's weight name, the fraction of its weights that changed sign over the epoch. */
  readonly layers: Readonly<Record<string, number>>;
}

export interface RunData {
  /** How the report names the run: its folder's name (made unique among the runs compared). */
  readonly name: string;
  readonly dir: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly spec: ModelSpec | null;
  readonly epochs: readonly EpochRecord[];
  readonly steps: readonly StepRecord[];
  readonly flips: readonly FlipRecord[];
  readonly test: TestReport | null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError('RUN_DIR', `readable JSON in ${path}`, (error as Error).message);
  }
}

/** Reads one run folder; `name` defaults to the folder's name. */
export function readRunFolder(dir: string, name: string = basename(resolve(dir))): RunData {
  const runFile = join(dir, RUN_FILE);
  if (!existsSync(runFile)) {
    throw new ConfigError(
      'RUN_DIR',
      `a training run folder (holding ${RUN_FILE}, written by onebit train --out)`,
      `${dir}, which has no ${RUN_FILE}`,
    );
  }
  const run = readJson(runFile);
  if (!isRecord(run) || !isRecord(run.config))
    throw new ConfigError('RUN_DIR', `a "config" object in ${runFile}`, 'none');
  // The checkpoint's settings are the run's current ones (run.json keeps those it started with; a resume
  // with --epochs N extends them).
  const checkpointFile = join(dir, CHECKPOINT_FILE);
  const config: Record<string, unknown> = existsSync(checkpointFile)
    ? (loadCheckpoint(checkpointFile).meta.config as unknown as Record<string, unknown>)
    : run.config;
  const spec = isRecord(config.spec) ? (config.spec as unknown as ModelSpec) : null;
  const epochs: EpochRecord[] = [];
  const steps: StepRecord[] = [];
  const flips: FlipRecord[] = [];
  const metricsFile = join(dir, METRICS_FILE);
  if (existsSync(metricsFile)) {
    readFileSync(metricsFile, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (line.trim() === '') return;
        let record: unknown;
        try {
          record = JSON.parse(line);
        } catch {
          throw new ConfigError(
            'RUN_DIR',
            `one JSON object per line in ${metricsFile}`,
            `line ${i + 1}: ${line.slice(0, 60)}`,
          );
        }
        if (!isRecord(record)) return;
        if (record.type === 'epoch') epochs.push(record as unknown as EpochRecord);
        else if (record.type === 'step') steps.push(record as unknown as StepRecord);
        else if (record.type === 'flips') flips.push(record as unknown as FlipRecord);
      });
  }
  const testFile = join(dir, TEST_FILE);
  const test = existsSync(testFile) ? (readJson(testFile) as TestReport) : null;
  return { name, dir, config, spec, epochs, steps, flips, test };
}

/** Reads the run folders; runs whose folders share a name are told apart by their order (a, a (2)). */
export function readRuns(dirs: readonly string[]): RunData[] {
  const seen = new Map<string, number>();
  return dirs.map((dir) => {
    const base = basename(resolve(dir));
    const count = (seen.get(base) ?? 0) + 1;
    seen.set(base, count);
    return readRunFolder(dir, count === 1 ? base : `${base} (${count})`);
  });
}
