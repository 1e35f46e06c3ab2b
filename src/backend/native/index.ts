/**
 * The native backend: the Backend kernels of src/kernels compiled by clang into the Node addon
 * (../../native/addon.ts), at the best instruction-set level this CPU runs (or the one asked for), on native
 * threads. The kernel calls (argument checks and order, thread thresholds) are the wasm backend's
 * (../kernel-backend.ts); buffers are ordinary typed arrays, which the addon reads in place.
 */
import type { Backend, KernelArray } from '../backend.js';
import { isKind, KERNEL_NAMES, kernelBackend, type KernelHost } from '../kernel-backend.js';
import { availableCores } from '../../wasm/host.js';
import {
  kernelIndices,
  loadNativeAddon,
  nativeUnavailableReason,
  type NativeArg,
  type NativeLevel,
} from '../../native/addon.js';

export interface NativeBackendOptions {
  /** Threads kernels may use, the calling thread included (default: the machine's cores, at most 8). */
  readonly threads?: number;
  /** Instruction-set level (default: the best this CPU runs); one it cannot run is refused. */
  readonly level?: NativeLevel;
  /** Split every call across all threads, however small (for tests of the threaded paths). */
  readonly alwaysParallel?: boolean;
}

const LABEL = 'native backend';

export { nativeUnavailableReason } from '../../native/addon.js';

/** The instruction-set levels this machine's native backend can run, best first ([] without the addon). */
export function nativeLevels(): readonly NativeLevel[] {
  const status = loadNativeAddon();
  return status.available ? status.levels : [];
}

/** The backend to run without being told: native where its addon loads, else wasm. */
export function defaultBackendKind(): 'native' | 'wasm' {
  return nativeUnavailableReason() === null ? 'native' : 'wasm';
}

export function createNativeBackend(options: NativeBackendOptions = {}): Backend {
  const status = loadNativeAddon();
  if (!status.available) throw new Error(`${LABEL}: not available: ${status.reason}`);
  const { addon, levels } = status;
  const level = options.level ?? levels[0];
  if (!levels.includes(level)) {
    throw new RangeError(`${LABEL}: this CPU cannot run level ${level}; it runs ${levels.join(', ')}`);
  }
  const threads = options.threads ?? Math.min(8, availableCores());
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
    throw new RangeError(`${LABEL}: threads must be an integer in 1..64, got ${threads}`);
  }
  // The kernels, and the one that is not a parallel kernel: the size of ob_gemm's per-thread workspace.
  const indices = kernelIndices(LABEL, addon, 'training', [
    ...KERNEL_NAMES,
    'ob_gemm_workspace_bytes',
  ] as const);
  const context = addon.open(level, threads, 'training');

  const workspaceBytes = addon.run(context, indices.ob_gemm_workspace_bytes, 1);
  const gemmWorkspace = new Float32Array(Math.ceil((workspaceBytes * threads) / 4));
  const partials = new Float64Array(threads);

  const ours = new WeakSet<ArrayBufferLike>();
  const live = new Set<KernelArray>();
  let userBytes = 0;
  let disposed = false;

  const host: KernelHost<NativeArg> = {
    level,
    name: 'native',
    threads,
    alwaysParallel: options.alwaysParallel ?? false,
    alloc(length, kind) {
      host.alive();
      if (!Number.isInteger(length) || length < 0) throw new RangeError(`alloc: bad length ${length}`);
      const view =
        kind === 'float32'
          ? new Float32Array(length)
          : kind === 'int32'
            ? new Int32Array(length)
            : new Uint32Array(length);
      ours.add(view.buffer);
      live.add(view);
      userBytes += view.byteLength;
      return view;
    },
    free(buffer) {
      host.alive();
      if (!live.delete(buffer)) {
        throw new Error(`${LABEL}: free() of a buffer that this backend did not allocate or already freed`);
      }
      userBytes -= buffer.byteLength;
    },
    bytesInUse: () => userBytes,
    dispose() {
      if (disposed) return;
      disposed = true;
      addon.close(context);
      live.clear();
      userBytes = 0;
    },
    alive() {
      if (disposed) throw new Error(`${LABEL}: used after dispose()`);
    },
    pointer(kernelName, what, x, length, kind) {
      if (!isKind(x, kind)) {
        throw new TypeError(
          `${LABEL}: ${kernelName}: ${what} must be a ${kind} buffer from this backend's alloc`,
        );
      }
      if (!ours.has(x.buffer)) {
        throw new TypeError(
          `${LABEL}: ${kernelName}: ${what} is not a view of a buffer from this backend; allocate it with backend.alloc*()`,
        );
      }
      if (x.length < length)
        throw new RangeError(`${kernelName}: ${what} has ${x.length} entries, needs ${length}`);
      return x;
    },
    none: null,
    gemmWorkspace,
    partials,
    partial: (tid) => partials[tid],
    run(name, nt, args) {
      return addon.run(context, indices[name], nt, ...args);
    },
  };
  return kernelBackend(host);
}
