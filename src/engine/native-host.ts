/**
 * The engine's native host: the engine's kernels compiled into the Node addon (src/native, built by
 * scripts/build-native.mjs from the same C sources as wasm/onebit-engine.wasm, with x86 code for the hot
 * kernels), at the best instruction-set level this CPU runs or the one asked for, on the addon's native
 * threads. The plan lives in one Uint8Array sized once; the kernels get byte offsets into it, which the addon
 * turns into pointers (src/native/addon.c, runIn). Offsets start at 64 past a 64-byte boundary, so none is 0
 * (the kernels' NULL) and every placement is aligned as on wasm.
 */
import { NATIVE_LEVELS, loadNativeAddon, type NativeLevel } from '../native/addon.js';
import { alignUp } from '../wasm/heap.js';
import type { EngineHost } from './host.js';
import { ENGINE_KERNELS, type EngineKernel } from './plan.js';

/** Why the native engine cannot run here, or null when it can. */
export function nativeEngineUnavailableReason(): string | null {
  const status = loadNativeAddon();
  return status.available ? null : status.reason;
}

/** The level a native engine runs at: the one asked for, checked, or the best this CPU runs. */
export function resolveNativeLevel(level: NativeLevel | undefined): NativeLevel {
  const status = loadNativeAddon();
  if (!status.available)
    throw new Error(`onebit engine: backend 'native' cannot run: ${status.reason}; use backend 'wasm'`);
  if (level !== undefined && !NATIVE_LEVELS.includes(level))
    throw new RangeError(
      `onebit engine: level must be one of ${NATIVE_LEVELS.join(', ')}, got ${String(level)}`,
    );
  if (level !== undefined && !status.levels.includes(level))
    throw new RangeError(
      `onebit engine: this CPU cannot run native level '${level}' (it runs ${status.levels.join(', ')})`,
    );
  return level ?? status.levels[0];
}

/** A native host at `level` (resolveNativeLevel's) for a plan of `bytes` bytes. */
export function createNativeHost(bytes: number, threads: number, level: NativeLevel): EngineHost {
  const status = loadNativeAddon();
  if (!status.available) throw new Error(`onebit engine: backend 'native' cannot run: ${status.reason}`);
  const { addon } = status;
  const chosen = level;
  const names = addon.kernelNames('engine');
  const indices = {} as Record<EngineKernel, number>;
  for (const name of ENGINE_KERNELS) {
    const index = names.indexOf(name);
    if (index < 0) throw new Error(`onebit engine: the native addon has no kernel ${name}; rebuild it`);
    indices[name] = index;
  }
  const memory = new Uint8Array(bytes + 3 * 64);
  const context = addon.open(chosen, threads, 'engine');
  let next = ((64 - addon.misalignment(memory)) % 64) + 64;
  const take = (size: number): number => {
    const offset = next;
    const end = offset + alignUp(Math.max(size, 64), 64);
    if (end > memory.byteLength)
      throw new RangeError(
        `onebit engine: the plan outgrew its memory (${end} > ${memory.byteLength} bytes)`,
      );
    next = end;
    return offset;
  };
  let closed = false;
  return {
    backend: 'native',
    level: chosen,
    threads,
    buffer: memory.buffer,
    placement: {
      alloc: (size) => take(size),
      put(data) {
        const offset = take(data.byteLength);
        memory.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
        return offset;
      },
    },
    run(name, parallel, args) {
      addon.runIn(context, indices[name], parallel ? threads : 1, memory, ...args);
    },
    memoryBytes: () => memory.byteLength,
    dispose() {
      if (closed) return;
      closed = true;
      addon.close(context);
    },
  };
}
