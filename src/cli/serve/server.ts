/**
 * The local web server of `onebit serve`: the page (app/, bundled from src/app by scripts/build-app.mjs),
 * the WebAssembly modules, the served model, the class names of the known data sets and the Fashion-MNIST
 * examples the page trains on, on 127.0.0.1 only and at fixed paths (nothing else on disk is reachable).
 *
 * Every response carries the cross-origin-isolation headers (COOP same-origin, COEP require-corp), which a
 * page needs for SharedArrayBuffer and so for engine threads in Web Workers, and a Content-Security-Policy
 * that lets the page reach only this server: the browser itself refuses any request elsewhere.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dataset } from '../../data/dataset.js';
import { PACKAGED_WASM_FILES, packagedModuleUrl } from '../../wasm/loader.js';

/** The package's built page: `../../../app/` is right from src/cli/serve (tsx) and dist/cli/serve. */
export const APP_DIR = fileURLToPath(new URL('../../../app/', import.meta.url));

/** What makes a page cross-origin isolated: shared memory, and so engine threads in Web Workers. */
export const ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/** Sent with every response: this server's files are for its own pages, which reach nothing else. */
const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; " +
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-store',
};

export interface AppServerOptions {
  /** The bytes of the .onebit model the page loads first; null: the page asks for one to be dropped. */
  readonly model: Uint8Array | null;
  /** Class names of the known data sets, by name (the page picks by the model's `data` metadata). */
  readonly classNames: Readonly<Record<string, readonly string[]>>;
  /** 0: any free port. */
  readonly port: number;
  /** Where the built page is (default APP_DIR). */
  readonly appDir?: string;
  /** Send the cross-origin-isolation headers (default true); without them the page runs on one thread. */
  readonly isolated?: boolean;
  /** Loads a split of the data the page trains on (once each); absent: the page cannot train. */
  readonly data?: (split: 'train' | 'test') => Promise<Dataset>;
}

/** A data set as the page reads it: five uint32 (count, C, H, W, classes), the pixels, the labels. */
export function encodeDataset(data: Dataset, limit: number | null): Uint8Array {
  const count = limit === null ? data.count : Math.min(limit, data.count);
  const size = data.shape[0] * data.shape[1] * data.shape[2];
  const bytes = new Uint8Array(20 + count * (size + 1));
  new Uint32Array(bytes.buffer, 0, 5).set([count, ...data.shape, data.classes]);
  bytes.set(data.images.subarray(0, count * size), 20);
  bytes.set(data.labels.subarray(0, count), 20 + count * size);
  return bytes;
}

export interface AppServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

interface Route {
  readonly type: string;
  /** The body; null: 404 with `missing`'s text. */
  readonly body: (query: URLSearchParams) => Promise<Uint8Array | string | null> | Uint8Array | string | null;
  readonly missing?: string;
}

class NotFound extends Error {}

/** Starts the server; refuses, naming the folder and the command that builds it, when the page is not built. */
export async function startAppServer(options: AppServerOptions): Promise<AppServer> {
  const appDir = options.appDir ?? APP_DIR;
  for (const file of ['index.html', 'app.js', 'train-worker.js']) {
    if (!existsSync(join(appDir, file)))
      throw new Error(
        `serve: the page is not built (${join(appDir, file)} is missing): run \`npm run build\``,
      );
  }
  const file = (dir: string, name: string) => () => readFileSync(join(dir, name));
  const routes = new Map<string, Route>([
    ['/', { type: 'text/html; charset=utf-8', body: file(appDir, 'index.html') }],
    ['/index.html', { type: 'text/html; charset=utf-8', body: file(appDir, 'index.html') }],
    ['/app.js', { type: 'text/javascript; charset=utf-8', body: file(appDir, 'app.js') }],
    ['/train-worker.js', { type: 'text/javascript; charset=utf-8', body: file(appDir, 'train-worker.js') }],
    ...PACKAGED_WASM_FILES.map((name): [string, Route] => [
      `/wasm/${name}`,
      { type: 'application/wasm', body: () => readFileSync(packagedModuleUrl(name)) },
    ]),
    [
      '/api/model',
      { type: 'application/octet-stream', body: () => options.model, missing: 'no model served' },
    ],
    ...(['train', 'test'] as const).map((split): [string, Route] => [
      `/api/data/${split}`,
      { type: 'application/octet-stream', body: (query) => dataBody(split, query) },
    ]),
    [
      '/api/class-names',
      { type: 'application/json; charset=utf-8', body: () => JSON.stringify(options.classNames) },
    ],
  ]);
  const loaded = new Map<'train' | 'test', Promise<Dataset>>();
  async function dataBody(split: 'train' | 'test', query: URLSearchParams): Promise<Uint8Array> {
    if (options.data === undefined) throw new NotFound('this server has no training data');
    const limitText = query.get('limit');
    const limit = limitText === null ? null : Number(limitText);
    if (limit !== null && !(Number.isInteger(limit) && limit > 0))
      throw new NotFound(`limit: expected a positive integer, got ${limitText}`);
    let pending = loaded.get(split);
    if (pending === undefined) {
      pending = options.data(split);
      loaded.set(split, pending);
      pending.catch(() => loaded.delete(split)); // a failure is not kept: the next request tries again
    }
    let data: Dataset;
    try {
      data = await pending;
    } catch (error) {
      throw new NotFound(error instanceof Error ? error.message : String(error));
    }
    return encodeDataset(data, limit);
  }
  const headers = options.isolated === false ? PAGE_HEADERS : { ...ISOLATION_HEADERS, ...PAGE_HEADERS };
  const answer = (response: ServerResponse, status: number, text: string): void => {
    response.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
    response.end(`${text}\n`);
  };
  let hosts: readonly string[] = [];
  const server = createServer((request, response) => {
    // A page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) sends its own name as the Host.
    if (!hosts.includes(request.headers.host ?? '')) return answer(response, 403, 'only for 127.0.0.1');
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const route = routes.get(url.pathname);
    if (route === undefined) return answer(response, 404, `not found: ${url.pathname}`);
    if (request.method !== 'GET' && request.method !== 'HEAD') return answer(response, 405, 'only GET');
    Promise.resolve()
      .then(() => route.body(url.searchParams))
      .then(
        (body) => {
          if (body === null) return answer(response, 404, route.missing ?? `not found: ${url.pathname}`);
          response.writeHead(200, { ...headers, 'Content-Type': route.type });
          response.end(request.method === 'HEAD' ? undefined : body);
        },
        (error: unknown) =>
          answer(
            response,
            error instanceof NotFound ? 404 : 500,
            error instanceof Error ? error.message : String(error),
          ),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  hosts = [`127.0.0.1:${port}`, `localhost:${port}`];
  return {
    url: `http://127.0.0.1:${port}/`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
