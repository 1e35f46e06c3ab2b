/**
 * The engine's native host: the engine's kernels compiled into the Node addon (src/native, built by
 * scripts/build-native.mjs from the same C sources as wasm/onebit-engine.wasm, with x86 code for the hot
 * kernels), at the best instruction-set level this CPU runs or the one asked for, on the addon's native
 * threads. The plan lives in one Uint8Array sized once; the kernels get byte offsets into it, which the addon
 * turns into pointers (src/native/addon.c, runIn). Offsets start at 64 past a 64-byte boundary, so none is 0
 * (the kernels' NULL) and every placement is aligned as on wasm.
 */
import {
  kernelIndices,
  nativeUnavailableReason,
  resolveNativeLevel,
  type NativeLevel,
} from '../native/addon.js';
import { alignUp } from '../wasm/heap.js';
import type { EngineHost } from './host.js';
import { ENGINE_KERNELS } from './plan.js';

const LABEL = 'onebit engine';

/** The level a native engine runs at: the one asked for, checked, or the best this CPU runs. */
export function nativeEngineLevel(level: NativeLevel | undefined): NativeLevel {
  const missing = nativeUnavailableReason();
  if (missing !== null)
    throw new Error(`${LABEL}: backend 'native' cannot run: ${missing}; use backend 'wasm'`);
  return resolveNativeLevel(LABEL, level).level;
}

/** A native host at `level` (nativeEngineLevel's) for a plan of `bytes` bytes. */
export function createNativeHost(bytes: number, threads: number, level: NativeLevel): EngineHost {
  const { addon } = resolveNativeLevel(LABEL, level);
  const indices = kernelIndices(LABEL, addon, 'engine', ENGINE_KERNELS);
  const memory = new Uint8Array(bytes + 3 * 64);
  const context = addon.open(level, threads, 'engine');
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
    level,
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
