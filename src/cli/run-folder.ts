/**
 * Where `onebit train` and `onebit continual` write a new run, and the rule that keeps old runs whole
 * (docs/architecture.md, "Runs"): a folder that holds anything is never written into unless the user says
 * so. `--overwrite` trains in a hidden folder beside it and swaps the new run in only once its first
 * checkpoint exists, so a new run that fails early (bad data, divergence, a kill) leaves the old one exactly
 * as it was; files in the old folder that no run wrote are carried over. A run that fails before its first
 * checkpoint removes only what it created.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError, OnebitError } from '../errors.js';
import { outputPathError } from './output-path.js';
import { CHECKPOINT_FILE, RUN_FILES } from '../train/trainer.js';
import { atomicWriteLive, atomicWriteTarget } from '../io/atomic.js';
import { isContinualOutputFile, isTaskCheckpointFile } from '../train/continual.js';

/** The files a kind of run writes in its folder. */
export interface RunFiles {
  /** Whether the run writes a file of this name (temporaries of its atomic writes included). */
  isRunFile(name: string): boolean;
  /** Whether a folder's names include a checkpoint (the run then has something to keep). */
  hasCheckpoint(names: readonly string[]): boolean;
  /** What the user can do instead, when the folder is refused. */
  readonly instead: string;
}

/** Whether `name` is the temporary file of an atomic write of a file `isFile` accepts (io/atomic.ts). */
function isTemporaryOf(name: string, isFile: (base: string) => boolean): boolean {
  const target = atomicWriteTarget(name);
  return target !== null && isFile(target);
}

/** `onebit train`: run.json, checkpoint.ckpt, metrics.jsonl. */
export const TRAIN_RUN_FILES: RunFiles = {
  isRunFile: (name) => {
    const ours = (base: string) => RUN_FILES.includes(base);
    return ours(name) || isTemporaryOf(name, ours);
  },
  hasCheckpoint: (names) => names.includes(CHECKPOINT_FILE),
  instead: 'add --overwrite to replace the run there, or use --resume DIR to continue it',
};

/** `onebit continual`: task-<t>.ckpt and metrics.jsonl. */
export const CONTINUAL_RUN_FILES: RunFiles = {
  isRunFile: (name) => isContinualOutputFile(name) || isTemporaryOf(name, isContinualOutputFile),
  hasCheckpoint: (names) => names.some(isTaskCheckpointFile),
  instead: 'add --overwrite to replace the run there',
};

export interface RunFolder {
  /** The folder the run writes into first. */
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

/** Removes what a run that never wrote a checkpoint created in `dir` (and `dir` itself if it made it). */
function removeUnfinished(dir: string, createdDir: boolean, files: RunFiles): void {
  if (!existsSync(dir) || files.hasCheckpoint(readdirSync(dir))) return;
  for (const name of readdirSync(dir)) if (files.isRunFile(name)) rmSync(join(dir, name), { force: true });
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
export function prepareRunFolder(
  dir: string,
  overwrite: boolean,
  files: RunFiles = TRAIN_RUN_FILES,
): RunFolder {
  let contents: string[] | null = null;
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) {
      throw new ConfigError('--out', 'a folder for the run', `${dir}, which is a file`);
    }
    // What a killed write of this kind of run left behind (its writer gone) holds nothing: clear it away.
    contents = readdirSync(dir).filter((name) => {
      const stale = atomicWriteTarget(name) !== null && files.isRunFile(name) && !atomicWriteLive(name);
      if (stale) rmSync(join(dir, name), { force: true });
      return !stale;
    });
  }
  if (contents === null || contents.length === 0) {
    const createdDir = contents === null;
    makeFolder('--out', dir);
    return {
      trainIn: dir,
      failed(error) {
        removeUnfinished(dir, createdDir, files);
        return error;
      },
    };
  }
  if (!overwrite) {
    const shown = contents.slice(0, 3).join(', ') + (contents.length > 3 ? ', ...' : '');
    throw new ConfigError(
      '--out',
      `a new or empty folder (${files.instead})`,
      `${dir}, which holds ${shown}`,
    );
  }
  const staging = join(dirname(dir), `.${basename(dir)}.new-${process.pid}`);
  makeFolder('--out', staging);
  let swapped = false;
  return {
    trainIn: staging,
    onFirstCheckpoint(trainedIn) {
      // Files of the user's in the old folder join the new run; then two renames put the new run in
      // place (the old one moves aside first) and the old run's files go.
      for (const name of readdirSync(dir)) {
        if (!files.isRunFile(name) && !existsSync(join(trainedIn, name)))
          renameSync(join(dir, name), join(trainedIn, name));
      }
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
