/**
 * Browser benchmark (`npm run bench -- browser [--json]`): the engine against onnxruntime-web (its wasm
 * backend, the same thread count), on the same mlp-2x2048 with 1-bit and with real activations, at batch 1
 * and 100, with 1 thread and with 2 (the page is cross-origin isolated, so both may use Web Workers),
 * measured in headless Chromium (Debian's, driven by playwright-core) in one page per thread count. The
 * page (bench/browser/page.ts) is bundled here with esbuild and served on 127.0.0.1 with the isolation
 * headers. Rows: {"bench":"browser-engine-vs-onnxruntime-web","model","activations","batch","threads",
 * "engine","onnxruntimeWeb","ratio"} (images/s; ratio = engine / onnxruntime-web), and on 2-thread rows
 * "engineSpeedup", the engine's figure over its own 1-thread one.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { createReferenceBackend } from '../src/backend/index.js';
import { ISOLATION_HEADERS } from '../src/cli/serve/server.js';
import { encodeOnebit } from '../src/engine/format.js';
import { packagedModuleUrl } from '../src/wasm/loader.js';
import { benchNetwork } from './networks.js';
import type { BrowserBenchRow } from './browser/rows.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = '/usr/bin/chromium';
const ORT_DIST = join(ROOT, 'node_modules/onnxruntime-web/dist');

export async function runBrowserBench(options: {
  json: boolean;
  print: (line: string) => void;
}): Promise<void> {
  const { json, print } = options;
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (Debian's chromium)`);
  // Everything the page loads, by path, held in memory.
  const files = new Map<string, { type: string; body: Uint8Array | string }>();
  const backend = createReferenceBackend('float32');
  for (const activations of ['binary', 'real'] as const) {
    const { model, onnx } = benchNetwork('mlp-2x2048', [1, 28, 28], activations, backend);
    files.set(`/models/${activations}.onebit`, {
      type: 'application/octet-stream',
      body: encodeOnebit(model),
    });
    files.set(`/models/${activations}.onnx`, { type: 'application/octet-stream', body: onnx });
  }
  backend.dispose();
  const bundle = await build({
    entryPoints: [join(ROOT, 'bench/browser/page.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    conditions: ['browser'],
    write: false,
    logLevel: 'warning',
  });
  files.set('/', {
    type: 'text/html',
    body: '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="/page.js"></script>\n',
  });
  files.set('/page.js', { type: 'text/javascript', body: bundle.outputFiles[0].contents });
  files.set('/engine.wasm', {
    type: 'application/wasm',
    body: readFileSync(packagedModuleUrl('onebit-engine.wasm')),
  });
  for (const name of ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) {
    files.set(`/ort/${name}`, {
      type: name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript',
      body: readFileSync(join(ORT_DIST, name)),
    });
  }
  // Cross-origin isolated, so both the engine and onnxruntime-web may run Web Worker threads.
  const headers = { ...ISOLATION_HEADERS, 'Cross-Origin-Resource-Policy': 'same-origin' };
  const server = createServer((request, response) => {
    const file = files.get(new URL(request.url ?? '/', 'http://127.0.0.1').pathname);
    if (file === undefined) return void response.writeHead(404, headers).end();
    response.writeHead(200, { ...headers, 'Content-Type': file.type }).end(file.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const rows: BrowserBenchRow[] = [];
  try {
    for (const threads of [1, 2]) {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(`${url}?threads=${threads}`);
      const measured = await page.evaluate(
        () => (globalThis as unknown as { benchRows: Promise<BrowserBenchRow[]> }).benchRows,
      );
      if (errors.length > 0) throw new Error(`the bench page failed: ${errors.join('; ')}`);
      rows.push(...measured);
      await page.close();
    }
  } finally {
    await browser.close();
    server.closeAllConnections();
    server.close();
  }
  const withSpeedup = rows.map((r) => {
    if (r.threads === 1) return r;
    const one = rows.find((o) => o.threads === 1 && o.activations === r.activations && o.batch === r.batch);
    return one === undefined ? r : { ...r, engineSpeedup: r.engine / one.engine };
  });
  if (json) {
    for (const r of withSpeedup) print(JSON.stringify(r));
    return;
  }
  print(
    'Chromium (headless), mlp-2x2048, images/s (best time per call); ratio = engine / onnxruntime-web (wasm), same threads',
  );
  print('activations  batch  threads     engine  onnxruntime-web   ratio   engine vs its 1 thread');
  for (const r of withSpeedup) {
    print(
      `${r.activations.padEnd(11)}  ${String(r.batch).padStart(5)}  ${String(r.threads).padStart(7)}  ` +
        `${Math.round(r.engine).toString().padStart(9)}  ${Math.round(r.onnxruntimeWeb).toString().padStart(15)}  ` +
        `${r.ratio.toFixed(2).padStart(6)}   ${r.engineSpeedup === undefined ? '' : `${r.engineSpeedup.toFixed(2)}x`}`,
    );
  }
}
