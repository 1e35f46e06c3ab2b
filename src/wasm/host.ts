/**
 * What the wasm code (backend, float-free kernels, engine) needs from the JavaScript host it runs on:
 * the bytes of a packaged module, worker threads over a shared memory, and a core count.
 *
 * Nothing here imports a `node:` module, so a browser bundle of the engine or of the in-page training
 * path contains none (docs/browser.md). In Node (and runtimes that offer it) the built-in modules are
 * reached through `process.getBuiltinModule`, which needs no import statement; elsewhere the browser's
 * own APIs are used: `fetch` for packaged files and Web Workers started from a Blob URL.
 */
import type * as NodeFs from 'node:fs';
import type { WorkerInit } from './protocol.js';

/** The built-in module `id`, or undefined where there is none (a browser, or a Node before 20.16). */
export function nodeBuiltin<T>(id: string): T | undefined {
  const host = globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } };
  return host.process?.getBuiltinModule?.(id) as T | undefined;
}

/** The built-in module `id`; where there is none this throws, naming `what` needed it. */
export function requireBuiltin<T>(id: string, what: string): T {
  const found = nodeBuiltin<T>(id);
  if (found === undefined) throw new Error(`${what} needs Node (>= 20.16): ${id} is not available here`);
  return found;
}

const nodeFs = (what: string): typeof NodeFs => requireBuiltin('node:fs', what);

/** True in Node (and runtimes that present themselves as Node). */
export function isNode(): boolean {
  const host = globalThis as { process?: { versions?: { node?: unknown } } };
  return typeof host.process?.versions?.node === 'string';
}

/** Reads a packaged file: from disk in Node, with `fetch` elsewhere. */
export async function readPackagedFile(url: URL): Promise<Uint8Array> {
  if (isNode()) return nodeFs('reading a packaged file').promises.readFile(url);
  const host = globalThis as {
    fetch?: (url: string) => Promise<{ ok: boolean; status: number; arrayBuffer(): Promise<ArrayBuffer> }>;
  };
  if (host.fetch === undefined) throw new Error('no fetch() to read it with');
  const response = await host.fetch(url.href);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Reads a packaged file synchronously: Node only (a browser cannot read a file without waiting). */
export function readPackagedFileSync(url: URL): Uint8Array {
  return nodeFs('a synchronous read').readFileSync(url);
}

/** The cores a pool may use: Node's available parallelism; in a browser the hardware concurrency when
 * the page is cross-origin isolated (shared memory allowed), else 1. */
export function availableCores(): number {
  const os = nodeBuiltin<{ availableParallelism(): number }>('node:os');
  if (os !== undefined) return os.availableParallelism();
  const host = globalThis as { crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number } };
  if (host.crossOriginIsolated !== true) return 1;
  return host.navigator?.hardwareConcurrency ?? 1;
}

/** A started pool worker, whichever kind. */
export interface PoolWorker {
  /** Settles once the worker has instantiated its module and waits for jobs. */
  readonly ready: Promise<void>;
  terminate(): void;
}

interface NodeWorker {
  once(event: 'message', listener: () => void): void;
  once(event: 'error', listener: (err: unknown) => void): void;
  once(event: 'exit', listener: (code: number) => void): void;
  on(event: 'error', listener: () => void): void;
  removeAllListeners(): void;
  unref(): void;
  terminate(): Promise<number>;
}

interface BrowserWorker {
  postMessage(message: unknown): void;
  addEventListener(type: 'message' | 'error', listener: (event: { message?: string }) => void): void;
  terminate(): void;
}

/**
 * Starts one pool worker running `nodeSource` (CommonJS, reads `workerData`) in Node or `browserSource`
 * (a classic worker script that waits for its init message) in a browser.
 */
export function startPoolWorker(
  init: WorkerInit,
  sources: { readonly node: string; readonly browser: string },
  label: string,
): PoolWorker {
  const threads = nodeBuiltin<{
    Worker: new (source: string, options: { eval: true; workerData: WorkerInit }) => NodeWorker;
  }>('node:worker_threads');
  const failed = (what: string): Error => new Error(`${label}: worker ${init.tid} ${what}`);
  if (threads !== undefined) {
    const worker = new threads.Worker(sources.node, { eval: true, workerData: init });
    const ready = new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', (err) => reject(failed(`failed to start: ${String(err)}`)));
      worker.once('exit', (code) => reject(failed(`exited (${code}) before starting`)));
    }).then(() => {
      worker.removeAllListeners();
      // A worker that dies later (it should not) must not crash the process through an unhandled 'error'.
      worker.on('error', () => undefined);
      // Never keeps the process alive.
      worker.unref();
    });
    return { ready, terminate: () => void worker.terminate() };
  }
  const host = globalThis as {
    Worker?: new (url: string) => BrowserWorker;
    Blob?: new (parts: string[], options: { type: string }) => unknown;
    URL: { createObjectURL?(blob: unknown): string; revokeObjectURL?(url: string): void };
    crossOriginIsolated?: boolean;
  };
  if (host.Worker === undefined || host.Blob === undefined || host.URL.createObjectURL === undefined)
    throw failed('cannot start: this host has no Web Workers (use threads: 1)');
  if (host.crossOriginIsolated === false)
    throw failed('cannot share memory: the page is not cross-origin isolated (use threads: 1)');
  const url = host.URL.createObjectURL(new host.Blob([sources.browser], { type: 'text/javascript' }));
  const worker = new host.Worker(url);
  const ready = new Promise<void>((resolve, reject) => {
    worker.addEventListener('message', () => resolve());
    worker.addEventListener('error', (event) => reject(failed(`failed to start: ${event.message ?? 'error'}`)));
  }).finally(() => host.URL.revokeObjectURL?.(url));
  worker.postMessage(init);
  return { ready, terminate: () => worker.terminate() };
}
