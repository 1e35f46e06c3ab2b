/** Choosing a backend, once, by kind. */
import type { Backend, DType } from './backend.js';
import type { NativeBackendOptions } from './native/index.js';
import { createReferenceBackend } from './reference/index.js';

export { createReferenceBackend } from './reference/index.js';

export type BackendOptions =
  | { readonly kind: 'reference'; readonly dtype?: DType }
  | { readonly kind: 'wasm'; readonly threads?: number }
  | ({ readonly kind: 'native' } & NativeBackendOptions);

/**
 * The backend `options` names; by default the native one where its addon loads (Node, after a build with
 * clang), else wasm.
 */
export async function createBackend(options?: BackendOptions): Promise<Backend> {
  if (options === undefined) {
    const { defaultBackendKind } = await import('./native/index.js');
    return createBackend({ kind: defaultBackendKind() });
  }
  if (options.kind === 'reference') return createReferenceBackend(options.dtype ?? 'float32');
  if (options.kind === 'native') {
    const { createNativeBackend } = await import('./native/index.js');
    return createNativeBackend(options);
  }
  const { createWasmBackend } = await import('./wasm/index.js');
  return createWasmBackend({ threads: options.threads });
}
