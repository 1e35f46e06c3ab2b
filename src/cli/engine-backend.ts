/**
 * `--backend native|wasm` for the commands that run the bit-packed engine (predict, bench): native (the Node
 * addon; the default where it is built) or wasm. Both give the same predictions bit for bit. As with training,
 * a missing addon is said once and the engine runs on WebAssembly; asking for native then is refused.
 */
import { Option } from 'commander';
import { createEngine, defaultEngineBackend, type Engine, type EngineBackend } from '../engine/engine.js';
import type { OnebitModel } from '../engine/format.js';
import { checkNativeChoice, describeWhere } from './native-choice.js';
import { parseChoice } from './options.js';

export function engineBackendOption(): Option {
  return new Option('--backend <kind>', 'engine backend: native or wasm')
    .argParser(parseChoice<EngineBackend>('--backend', ['native', 'wasm']))
    .default(defaultEngineBackend(), 'native where it is built, else wasm');
}

/** The engine a command runs on: the chosen backend, with the CLI's note or error when native is missing. */
export async function openEngine(
  model: OnebitModel,
  options: { backend: EngineBackend; threads: number | undefined; maxBatch: number },
): Promise<Engine> {
  checkNativeChoice(options.backend, 'wasm');
  return createEngine(model, options);
}

/** "native (avx512), 2 threads": where an engine runs, for a command's output. */
export function describeEngine(engine: Engine): string {
  return describeWhere(engine.backend, engine.level, engine.threads);
}
