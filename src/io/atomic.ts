/**
 * Atomic file writes: write a temporary file beside the target, flush it, then rename over the target.
 * Node's fs comes through node-builtins.ts: export-file.ts and tensor-file.ts, which import this, are also
 * on the in-page training path, where they encode in memory and write nothing.
 */
import { nodeFs, nodePath } from '../node-builtins.js';

/** The temporary file an atomic write of `path` goes through: `.<name>.<pid>.tmp` beside it. */
function temporaryPath(path: string): string {
  const { basename, dirname, join } = nodePath('writing a file');
  return join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
}

/**
 * The file name an atomic write's temporary file `name` was for (`.<name>.<pid>.tmp` -> `<name>`), or null
 * for any other name: what a killed write leaves behind is recognised by this.
 */
export function atomicWriteTarget(name: string): string | null {
  const m = /^\.(.+)\.\d+\.tmp$/.exec(name);
  return m === null ? null : m[1];
}

/**
 * Whether the atomic write that temporary file `name` belongs to may still be under way: its writer (the pid
 * in the name) is another live process. Cleanup of what killed writes left behind must spare these, or it
 * pulls the file from under a process writing the same folder (two resumes of one run, say).
 */
export function atomicWriteLive(name: string): boolean {
  const m = /^\..+\.(\d+)\.tmp$/.exec(name);
  if (m === null) return false;
  const pid = Number(m[1]);
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes `chunks` to `path` so that a crash leaves either the old file or the new one, never a torn one. */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
  const { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } = nodeFs('writing a file');
  const temporary = temporaryPath(path);
  let fd = -1;
  try {
    fd = openSync(temporary, 'w');
    for (const chunk of chunks) {
      let written = 0;
      while (written < chunk.byteLength) written += writeSync(fd, chunk, written);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(temporary, path);
  } catch (error) {
    if (fd >= 0) closeSync(fd);
    rmSync(temporary, { force: true });
    throw error;
  }
}
