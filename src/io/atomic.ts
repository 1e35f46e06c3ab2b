/** Atomic file writes: write a temporary file beside the target, flush it, then rename over the target. */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

/** The temporary file an atomic write of `path` goes through: `.<name>.<pid>.tmp` beside it. */
function temporaryPath(path: string): string {
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

/** Writes `chunks` to `path` so that a crash leaves either the old file or the new one, never a torn one. */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): void {
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
