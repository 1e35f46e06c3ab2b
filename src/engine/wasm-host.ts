/**
 * The engine's WebAssembly host: one shared WebAssembly.Memory sized once for the plan (the engine module's
 * own data, the pool's control block and worker stacks, then the plan's `bytes`), the engine module
 * (wasm/onebit-engine.wasm, or the one passed in) instantiated on it, and the shared persistent worker pool
 * (src/wasm/pool.ts). Loading, instantiation and the heap are the shared ones of src/wasm, which imports no
 * training code.
 */
import type { WasmBytes, WasmModule } from '../wasm/api.js';
import { WasmHeap, alignUp } from '../wasm/heap.js';
import { heapBaseOf, instantiate, loadModule, sharedMemory, type PackagedModule } from '../wasm/loader.js';
import { ThreadPool, WORKER_STACK_BYTES } from '../wasm/pool.js';
import { CONTROL_BYTES } from '../wasm/protocol.js';
import type { EngineHost } from './host.js';
import { ENGINE_KERNELS, type EngineKernel } from './plan.js';

const LABEL = 'onebit engine';
const ENGINE_MODULE: PackagedModule = {
  file: 'onebit-engine.wasm',
  label: LABEL,
  howToPass: 'the engine module: createEngine(model, { module })',
};
const PAGE = 65536;

export async function createWasmHost(
  bytes: number,
  threads: number,
  source: WasmModule | WasmBytes | undefined,
  maxBatch: number,
): Promise<EngineHost> {
  const module = await loadModule(ENGINE_MODULE, source);
  const heapBase = heapBaseOf(module, LABEL);
  const total =
    alignUp(heapBase, 64) +
    alignUp(CONTROL_BYTES, 64) +
    (threads - 1) * alignUp(WORKER_STACK_BYTES, 64) +
    bytes +
    64 * 64;
  const pages = Math.ceil(total / PAGE);
  if (pages > 65536)
    throw new RangeError(
      `onebit engine: the model needs ${total} bytes of memory at maxBatch ${maxBatch}, more than wasm32's 4 GiB`,
    );
  const memory = sharedMemory(pages, pages);
  const { kernels } = instantiate(module, memory, ENGINE_KERNELS, LABEL);
  const heap = new WasmHeap(memory, heapBase, pages * PAGE, LABEL);
  const control = heap.alloc(CONTROL_BYTES);
  const pool = await ThreadPool.create<EngineKernel>({
    module,
    memory,
    main: { kernels },
    names: ENGINE_KERNELS,
    threads,
    control,
    reserve: (size) => heap.alloc(size),
    label: LABEL,
  });
  const buffer = memory.buffer;
  return {
    backend: 'wasm',
    level: null,
    threads: pool.threads,
    buffer,
    placement: {
      alloc(size) {
        const offset = heap.alloc(size);
        new Uint8Array(buffer, offset, size).fill(0);
        return offset;
      },
      put(data) {
        const offset = heap.alloc(data.byteLength);
        new Uint8Array(buffer, offset, data.byteLength).set(
          new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
        );
        return offset;
      },
    },
    run(name, parallel, args) {
      if (parallel && pool.threads > 1) pool.run(name, args);
      else kernels[name](0, 1, ...args);
    },
    memoryBytes: () => memory.buffer.byteLength,
    dispose: () => pool.dispose(),
  };
}
