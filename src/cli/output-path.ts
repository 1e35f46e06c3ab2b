/**
 * The commands' output paths (--out, --reliability, --entropies, ...): checked, and their folders made,
 * before any work is done, and every file-system error on them turned into a ConfigError that names the flag
 * and the path (`--out: expected a file path onebit can write, got "a/m.onebit" (a is a file, not a
 * folder)`) rather than a bare `EEXIST: file already exists, mkdir 'a'`.
 */
import { accessSync, constants, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../errors.js';

const FILE_EXPECTED = 'a file path onebit can write';
const DIR_EXPECTED = 'a folder onebit can create or write';

/** The first folder on the way to `path` (from the top) that exists and is not a folder, if any. */
function blockingFile(path: string): string | null {
  const ancestors: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    ancestors.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of [...ancestors, path]) {
    try {
      if (!statSync(d).isDirectory()) return d;
    } catch {
      return null;
    }
  }
  return null;
}

/** Why a file-system call on `path` failed, in words, from Node's error code. */
function reason(path: string, error: unknown): string {
  const code =
    typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
  const where =
    typeof error === 'object' && error !== null && 'path' in error && typeof error.path === 'string'
      ? error.path
      : path;
  switch (code) {
    case 'EEXIST':
    case 'ENOTDIR': {
      const blocker = blockingFile(path);
      return blocker !== null && blocker !== path
        ? `${blocker} is a file, not a folder`
        : `a part of the path is a file, not a folder (${code})`;
    }
    case 'EACCES':
    case 'EPERM':
      return `permission denied on ${where} (${code})`;
    case 'EISDIR':
      return `${where} is a folder, not a file (EISDIR)`;
    case 'EROFS':
      return `${where} is on a read-only file system (EROFS)`;
    case 'ENOSPC':
      return 'no space left on the device (ENOSPC)';
    case 'ENAMETOOLONG':
      return 'a name in the path is too long (ENAMETOOLONG)';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

/** Whether `error` is one of Node's file-system errors (it carries a string `code` such as 'EACCES'). */
function isSystemError(error: unknown): boolean {
  return (
    error instanceof Error &&
    'code' in error &&
    typeof error.code === 'string' &&
    /^E[A-Z]+$/.test(error.code)
  );
}

/**
 * The ConfigError for a file-system error on the output path `path` of `flag`; errors that are not Node's
 * file-system errors (onebit's own, ...) come back unchanged.
 */
export function outputPathError(flag: string, path: string, error: unknown, folder = false): unknown {
  if (!isSystemError(error)) return error;
  return new ConfigError(flag, folder ? DIR_EXPECTED : FILE_EXPECTED, `"${path}" (${reason(path, error)})`);
}

/**
 * Checks the output file `path` of `flag` before any work: not a folder, its folder made (with the folders
 * above it) and writable. Returns `path`; throws a ConfigError naming the flag and the path.
 */
export function prepareOutputFile(flag: string, path: string): string {
  try {
    if (existsSync(path) && statSync(path).isDirectory())
      throw new ConfigError(flag, FILE_EXPECTED, `"${path}" (a folder, not a file)`);
    const parent = dirname(path);
    mkdirSync(parent, { recursive: true });
    if (!statSync(parent).isDirectory())
      throw new ConfigError(flag, FILE_EXPECTED, `"${path}" (${parent} is a file, not a folder)`);
    accessSync(parent, constants.W_OK);
    if (existsSync(path)) accessSync(path, constants.W_OK);
  } catch (error) {
    throw outputPathError(flag, path, error);
  }
  return path;
}

/**
 * Checks the output folder `dir` of `flag` before any work: not a file, made (with the folders above it)
 * and writable. An existing folder that holds anything is refused unless `overwrite` (the command's
 * `--overwrite`), so an earlier run is never written over by accident. Returns `dir`.
 */
export function prepareOutputDir(
  flag: string,
  dir: string,
  options: { readonly overwrite: boolean },
): string {
  try {
    if (existsSync(dir)) {
      if (!statSync(dir).isDirectory())
        throw new ConfigError(flag, DIR_EXPECTED, `"${dir}" (a file, not a folder)`);
      const entries = readdirSync(dir).sort();
      if (entries.length > 0 && !options.overwrite) {
        const shown =
          entries.slice(0, 5).join(', ') + (entries.length > 5 ? `, ... (${entries.length})` : '');
        throw new ConfigError(
          flag,
          'a new or empty folder (or --overwrite to write over the run in it)',
          `"${dir}", which holds ${shown}`,
        );
      }
    }
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (error) {
    throw outputPathError(flag, dir, error, true);
  }
  return dir;
}

/** writeFileSync for the output file of `flag`, its file-system errors turned into a ConfigError. */
export function writeOutputFile(flag: string, path: string, data: string | Uint8Array): void {
  try {
    writeFileSync(path, data);
  } catch (error) {
    throw outputPathError(flag, path, error);
  }
}
