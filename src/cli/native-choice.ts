/**
 * The CLI's side of choosing between native code and WebAssembly, shared by the training commands
 * (`--backend native|wasm|reference`) and the engine's (`--backend native|wasm`): where the addon is not built,
 * native is refused with the reason and running on WebAssembly is said once per process
 * (docs/architecture.md#backends); and how a command names where it runs.
 */
import { ConfigError } from '../errors.js';
import { nativeUnavailableReason } from '../native/addon.js';

let saidNoNative = false;

/** Refuses `--backend native` without the addon (`alternatives`: what can run instead); notes a wasm fallback. */
export function checkNativeChoice(kind: string, alternatives: string): void {
  const missing = nativeUnavailableReason();
  if (missing === null) return;
  if (kind === 'native')
    throw new ConfigError(
      '--backend',
      `a backend this machine can run (${alternatives})`,
      `native: ${missing}`,
    );
  if (kind === 'wasm' && !saidNoNative) {
    saidNoNative = true;
    process.stderr.write(`note: running on WebAssembly: ${missing}\n`);
  }
}

/** "native (avx512), 2 threads": where a run or an engine runs, for a command's output. */
export function describeWhere(name: string, level: string | null | undefined, threads: number): string {
  const at = level === null || level === undefined ? '' : ` (${level})`;
  return `${name}${at}, ${threads} thread${threads === 1 ? '' : 's'}`;
}
