/**
 * Where `onebit train` writes a new run, and the rule that keeps old runs whole (docs/architecture.md,
 * "Runs"): a folder that holds anything is never trained into unless the user says so. `--overwrite` trains
 * in a hidden folder beside it and swaps the new run in only once its first checkpoint exists, so a new run
 * that fails early (bad data, divergence, a kill) leaves the old one exactly as it was. A run that fails
 * before its first checkpoint removes only what it created.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError, OnebitError } from '../errors.js';
import { outputPathError } from './output-path.js';
import { CHECKPOINT_FILE, METRICS_FILE, RUN_FILE } from '../train/trainer.js';

export interface RunFolder {
  /** The folder the trainer writes into first. */
  readonly trainIn: string;
  /** For --overwrite: swaps the new run in after its first checkpoint; returns the folder to go on in. */
  readonly onFirstCheckpoint?: (trainedIn: string) => string;
  /** Cleans up after a run that failed and returns the error to report. */
  failed(error: unknown): unknown;
}

function makeFolder(flag: string, dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw outputPathError(flag, dir, error, true);
  }
}

/** The files a run creates in its folder (and the temporaries of their atomic writes). */
function isRunFile(name: string): boolean {
  const files = [CHECKPOINT_FILE, METRICS_FILE, RUN_FILE];
  return files.includes(name) || files.some((f) => name.startsWith(`.${f}.`) && name.endsWith('.tmp'));
}

/** Removes what a run that never wrote a checkpoint created in `dir` (and `dir` itself if it made it). */
function removeUnfinished(dir: string, createdDir: boolean): void {
  if (!existsSync(dir) || existsSync(join(dir, CHECKPOINT_FILE))) return;
  for (const name of readdirSync(dir)) if (isRunFile(name)) rmSync(join(dir, name), { force: true });
  if (createdDir && readdirSync(dir).length === 0) rmSync(dir, { recursive: true, force: true });
}

/** The first of `base`, `base-2`, `base-3`, ... that does not exist: where a run without --out goes. */
export function nextRunFolder(base: string): string {
  if (!existsSync(base)) return base;
  for (let n = 2; ; n++) if (!existsSync(`${base}-${n}`)) return `${base}-${n}`;
}

/**
 * Checks `--out` for a new run and prepares it: a missing or empty folder is used as it is; a folder that
 * holds anything is refused unless `overwrite`; a path that is a file is refused.
 */
export function prepareRunFolder(dir: string, overwrite: boolean): RunFolder {
  let contents: string[] | null = null;
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) {
      throw new ConfigError('--out', 'a folder for the run', `${dir}, which is a file`);
    }
    contents = readdirSync(dir);
  }
  if (contents === null || contents.length === 0) {
    const createdDir = contents === null;
    makeFolder('--out', dir);
    return {
      trainIn: dir,
      failed(error) {
        removeUnfinished(dir, createdDir);
        return error;
      },
    };
  }
  if (!overwrite) {
    const shown = contents.slice(0, 3).join(', ') + (contents.length > 3 ? ', ...' : '');
    throw new ConfigError(
      '--out',
      'a new or empty folder (add --overwrite to replace the run there, or use --resume DIR to continue it)',
      `${dir}, which holds ${shown}`,
    );
  }
  const staging = join(dirname(dir), `.${basename(dir)}.new-${process.pid}`);
  makeFolder('--out', staging);
  let swapped = false;
  return {
    trainIn: staging,
    onFirstCheckpoint(trainedIn) {
      // Two renames: the old run moves aside, the new one takes its name, then the old one goes.
      const aside = join(dirname(dir), `.${basename(dir)}.old-${process.pid}`);
      renameSync(dir, aside);
      renameSync(trainedIn, dir);
      rmSync(aside, { recursive: true, force: true });
      swapped = true;
      return dir;
    },
    failed(error) {
      if (swapped) return error;
      rmSync(staging, { recursive: true, force: true });
      const message = error instanceof Error ? error.message : String(error);
      const code = error instanceof OnebitError ? error.code : 'internal';
      return new OnebitError(code, `${message} (the run in ${dir} was left as it was)`);
    },
  };
}
