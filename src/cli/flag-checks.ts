/**
 * Checks shared by the commands that refuse a flag which would do nothing in the combination given, or an
 * output that would write over an input: each throws a ConfigError naming the flag.
 */
import { resolve } from 'node:path';
import { REAL_DATASET_NAMES } from '../data/dataset.js';
import { ConfigError } from '../errors.js';

/** `--threads` sets the wasm or native backend's threads; the reference backend has none to set. */
export function checkThreadsFlag(backend: string, threads: number | undefined): void {
  if (threads !== undefined && backend === 'reference') {
    throw new ConfigError(
      '--threads',
      "no --threads with --backend reference (threads are the wasm backend's; reference runs on one)",
      String(threads),
    );
  }
}

/** `--data-dir` is where a real data set's files are looked for; generated sets and image folders have none. */
export function checkDataDirFlag(data: string, dataDir: string | undefined): void {
  if (dataDir === undefined || (REAL_DATASET_NAMES as readonly string[]).includes(data)) return;
  const what = data.startsWith('synthetic-')
    ? `${data} is generated, not read from files`
    : `${data} is a folder of images`;
  throw new ConfigError(
    '--data-dir',
    `no --data-dir unless the data is one of ${REAL_DATASET_NAMES.join(', ')} (${what})`,
    dataDir,
  );
}

/** An output file must not be the command's input (`onebit export CKPT --out CKPT` would destroy it). */
export function checkNotInput(flag: string, out: string, input: string, inputName: string): void {
  if (resolve(out) === resolve(input))
    throw new ConfigError(flag, `a file other than the ${inputName} it reads`, `"${out}"`);
}

/** Two output flags must not name the same file: the second write would replace the first. */
export function checkDistinctOutputs(outputs: readonly (readonly [string, string | undefined])[]): void {
  const seen = new Map<string, string>();
  for (const [flag, path] of outputs) {
    if (path === undefined) continue;
    const earlier = seen.get(resolve(path));
    if (earlier !== undefined)
      throw new ConfigError(flag, `a file other than ${earlier}'s`, `"${path}", the file ${earlier} names`);
    seen.set(resolve(path), flag);
  }
}
