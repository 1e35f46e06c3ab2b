/**
 * The local web server of `onebit serve`: the page (app/, bundled from src/app by scripts/build-app.mjs),
 * the engine's WebAssembly module, the served model and the class names of the known data sets, on
 * 127.0.0.1 only and at fixed paths (nothing else on disk is reachable).
 *
 * Every response carries the cross-origin-isolation headers (COOP same-origin, COEP require-corp), which a
 * page needs for SharedArrayBuffer and so for engine threads in Web Workers, and a Content-Security-Policy
 * that lets the page reach only this server: the browser itself refuses any request elsewhere.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The package's built page: `../../../app/` is right from src/cli/serve (tsx) and dist/cli/serve. */
export const APP_DIR = fileURLToPath(new URL('../../../app/', import.meta.url));
const WASM_DIR = fileURLToPath(new URL('../../../wasm/', import.meta.url));

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
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
}

export interface AppServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

interface Route {
  readonly type: string;
  readonly body: () => Uint8Array | string | null;
}

/** Starts the server; refuses, naming the folder and the command that builds it, when the page is not built. */
export async function startAppServer(options: AppServerOptions): Promise<AppServer> {
  const appDir = options.appDir ?? APP_DIR;
  for (const file of ['index.html', 'app.js']) {
    if (!existsSync(`${appDir}/${file}`))
      throw new Error(`serve: the page is not built (${appDir}${file} is missing): run \`npm run build\``);
  }
  const file = (dir: string, name: string) => () => readFileSync(`${dir}/${name}`);
  const routes = new Map<string, Route>([
    ['/', { type: 'text/html; charset=utf-8', body: file(appDir, 'index.html') }],
    ['/index.html', { type: 'text/html; charset=utf-8', body: file(appDir, 'index.html') }],
    ['/app.js', { type: 'text/javascript; charset=utf-8', body: file(appDir, 'app.js') }],
    ['/wasm/onebit-engine.wasm', { type: 'application/wasm', body: file(WASM_DIR, 'onebit-engine.wasm') }],
    ['/api/model', { type: 'application/octet-stream', body: () => options.model }],
    [
      '/api/class-names',
      { type: 'application/json; charset=utf-8', body: () => JSON.stringify(options.classNames) },
    ],
  ]);
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://127.0.0.1').pathname;
    const route = routes.get(path);
    const body = request.method === 'GET' || request.method === 'HEAD' ? route?.body() : undefined;
    const headers: Record<string, string> = { ...SECURITY_HEADERS };
    if (options.isolated === false) {
      delete headers['Cross-Origin-Opener-Policy'];
      delete headers['Cross-Origin-Embedder-Policy'];
    }
    if (route === undefined || body === undefined || body === null) {
      const status = route === undefined ? 404 : body === undefined ? 405 : 404;
      response.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' });
      response.end(status === 405 ? 'only GET\n' : `not found: ${path}\n`);
      return;
    }
    response.writeHead(200, { ...headers, 'Content-Type': route.type });
    response.end(request.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
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
