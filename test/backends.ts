/**
 * The fast backends under test. The equality suites (test/backend-kernels.test.ts: every kernel;
 * test/backend-models.test.ts: whole models, forward and backward) run each of them in each of its setups
 * against the reference backend in float32, the executable specification. A new backend passes the same
 * suites by adding one entry here: its name, the setups that reach its code paths, and a factory.
 */
import type { Backend } from '../src/backend/backend.js';
import { createNativeBackend, nativeLevels } from '../src/backend/native/index.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import type { NativeLevel } from '../src/native/addon.js';

/** One way to run a backend. */
export interface BackendSetup {
  /** Threads the kernels may use, the calling thread included. */
  readonly threads: number;
  /**
   * Split every kernel call across the threads however small it is, so that small test inputs reach the
   * threaded code paths (and threads with empty shares); without it calls split only past a size threshold.
   */
  readonly splitEveryCall: boolean;
  /** The native backend's instruction-set level (native only; every level this CPU runs is tested). */
  readonly level?: NativeLevel;
}

export interface BackendUnderTest {
  /** The backend's `name`, as it reports it. */
  readonly name: string;
  /** Setups every kernel suite runs, from the serial one to the most parallel one. */
  readonly setups: readonly BackendSetup[];
  create(setup: BackendSetup): Promise<Backend>;
}

export const BACKENDS_UNDER_TEST: readonly BackendUnderTest[] = [
  {
    name: 'wasm',
    setups: [
      { threads: 1, splitEveryCall: false },
      { threads: 2, splitEveryCall: false },
      { threads: 2, splitEveryCall: true },
    ],
    create: ({ threads, splitEveryCall }) => createWasmBackend({ threads, alwaysParallel: splitEveryCall }),
  },
  // The native addon where it is built (test/native.test.ts checks that it is wherever clang is): every
  // level this CPU runs, serial and with every call split; the best level also as it runs by default.
  ...(nativeLevels().length === 0
    ? []
    : [
        {
          name: 'native',
          setups: nativeLevels().flatMap((level, i) => [
            { threads: 1, splitEveryCall: false, level },
            ...(i === 0 ? [{ threads: 2, splitEveryCall: false, level }] : []),
            { threads: 2, splitEveryCall: true, level },
          ]),
          create: ({ threads, splitEveryCall, level }: BackendSetup) =>
            Promise.resolve(
              createNativeBackend({
                threads,
                alwaysParallel: splitEveryCall,
                ...(level !== undefined ? { level } : {}),
              }),
            ),
        },
      ]),
];

/** "wasm, 2 threads, every call split": names a setup in test titles. */
export function describeSetup(backend: BackendUnderTest, setup: BackendSetup): string {
  const threads = `${setup.threads} thread${setup.threads === 1 ? '' : 's'}`;
  const level = setup.level !== undefined ? ` ${setup.level}` : '';
  return `${backend.name}${level}, ${threads}${setup.splitEveryCall ? ', every call split' : ''}`;
}
