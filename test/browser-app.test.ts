/**
 * The web app of `onebit serve` in a real browser (Debian's Chromium, driven headless by playwright-core;
 * nothing downloaded): the page is bundled from the sources for the browser (esbuild, the `browser`
 * condition), served with the cross-origin-isolation headers, and must classify 100 Fashion-MNIST test
 * images with exactly the classes Node's engine gives, on Web Worker threads and on one thread, classify a
 * drawing, and make no request outside the local server. Also: the engine entry bundles for the browser
 * with no `node:` import, and the CLI refuses a file that is not a model.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { build } from 'esbuild';
import { chromium, type Page } from 'playwright-core';
import { createReferenceBackend } from '../src/backend/index.js';
import { createEngine } from '../src/engine/engine.js';
import { createDataset, DEBIAN_FASHION_MNIST_DIR, loadDataset, type Dataset } from '../src/data/dataset.js';
import { exportModel, fit } from '../src/train/fit.js';
import { createBackend } from '../src/backend/index.js';
import { trainConfig } from '../src/train/run-config.js';
import { train as trainRun } from '../src/train/trainer.js';
import { CLASS_NAMES } from '../src/cli/predict-command.js';
import { startAppServer, type AppServer } from '../src/cli/serve/server.js';
// @ts-expect-error: a plain ES module script without type declarations
import { buildApp } from '../scripts/build-app.mjs';

const CHROMIUM = '/usr/bin/chromium';

/** What the page exposes (src/app/main.ts); the casts are erased before the functions reach the page. */
interface AppWindow {
  readonly onebitApp: {
    readonly ready: Promise<{ threads: number; classes: number; crossOriginIsolated: boolean }>;
    classify(images: readonly number[]): number[];
  };
}
const ROOT = join(import.meta.dirname, '..');
const ARTIFACTS = join(ROOT, 'test-artifacts');

let dir = '';
let model: Uint8Array;
let test100: Dataset;
let trainSet: Dataset;
let server: AppServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-app-'));
  const appDir = (await (buildApp as (out: string) => Promise<string>)(join(dir, 'app'))) as string;
  const data = { dataDir: DEBIAN_FASHION_MNIST_DIR, cacheDir: join(dir, 'cache') };
  const train = await loadDataset('fashion-mnist', { ...data, split: 'train' });
  trainSet = train;
  test100 = await loadDataset('fashion-mnist', { ...data, split: 'test' });
  const result = await fit({
    model: 'mlp-100',
    data: { train, test: test100 },
    epochs: 1,
    trainLimit: 3000,
    testLimit: 100,
    seed: 3,
    backend: createReferenceBackend('float32'),
  });
  model = await exportModel(result.model, 'onebit', { backend: createReferenceBackend('float32') });
  writeFileSync(join(dir, 'm.onebit'), model);
  const splits = { train, test: test100 };
  server = await startAppServer({
    model,
    classNames: CLASS_NAMES,
    port: 0,
    appDir,
    data: (split) => Promise.resolve(splits[split]),
  });
});

after(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Opens the app, recording every console error, page error and request that leaves the server. */
async function openApp(page: Page, url: string): Promise<string[]> {
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(url) && !u.startsWith('blob:') && !u.startsWith('data:'))
      problems.push(`request: ${u}`);
  });
  await page.goto(url);
  return problems;
}

describe('onebit serve: the web app in Chromium', () => {
  test('classifies 100 test images exactly as Node does, on worker threads and on one thread', async () => {
    const node = await createEngine(model, { threads: 1, maxBatch: 100 });
    const images = Array.from(test100.images.subarray(0, 100 * node.inputSize));
    const expected = [...node.classify(Uint8Array.from(images), 100)];
    node.dispose();
    // The labels agree often enough that this is a trained model, not a constant.
    const correct = expected.filter((c, i) => c === test100.labels[i]).length;
    assert.ok(correct >= 60, `Node's engine: ${correct}/100 correct`);

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      // Cross-origin isolated (the server's headers): shared memory, the engine on Web Worker threads.
      const page = await browser.newPage();
      const problems = await openApp(page, server.url);
      const info = await page.evaluate(() => (globalThis as unknown as AppWindow).onebitApp.ready);
      assert.equal(info.crossOriginIsolated, true);
      assert.ok(info.threads >= 2, `threads ${info.threads}`);
      assert.deepEqual(
        await page.evaluate((x) => (globalThis as unknown as AppWindow).onebitApp.classify(x), images),
        expected,
      );
      assert.deepEqual(problems, []);
      await page.close();

      // The same page from a server without the headers: one thread, the same classes.
      const plain = await startAppServer({
        model,
        classNames: CLASS_NAMES,
        port: 0,
        appDir: join(dir, 'app'),
        isolated: false,
      });
      try {
        const page1 = await browser.newPage();
        const problems1 = await openApp(page1, plain.url);
        const info1 = await page1.evaluate(() => (globalThis as unknown as AppWindow).onebitApp.ready);
        assert.equal(info1.crossOriginIsolated, false);
        assert.equal(info1.threads, 1);
        assert.deepEqual(
          await page1.evaluate((x) => (globalThis as unknown as AppWindow).onebitApp.classify(x), images),
          expected,
        );
        assert.deepEqual(problems1, []);
      } finally {
        await plain.close();
      }
    } finally {
      await browser.close();
    }
  });

  test('a drawing is classified: probabilities for every class, the latency, a screenshot', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 720 } });
      const problems = await openApp(page, server.url);
      await page.evaluate(() => (globalThis as unknown as AppWindow).onebitApp.ready);
      const pad = await page.locator('#pad').boundingBox();
      assert.ok(pad !== null);
      // A trouser-like shape: two long strokes.
      for (const x of [0.38, 0.62]) {
        await page.mouse.move(pad.x + pad.width * 0.5, pad.y + pad.height * 0.15);
        await page.mouse.down();
        await page.mouse.move(pad.x + pad.width * x, pad.y + pad.height * 0.9, { steps: 12 });
        await page.mouse.up();
      }
      const rows = await page.$$eval('#bars .bar', (bars) =>
        bars.map((b) => ({
          name: b.children[0].textContent ?? '',
          value: Number.parseFloat(b.children[2].textContent ?? 'NaN'),
        })),
      );
      assert.equal(rows.length, 10);
      assert.deepEqual(
        rows.map((r) => r.name).sort(),
        [...CLASS_NAMES['fashion-mnist']].sort(),
        'class names from the model',
      );
      const total = rows.reduce((s, r) => s + r.value, 0);
      assert.ok(Math.abs(total - 100) < 1, `probabilities add up to ${total}%`);
      assert.ok(
        rows.every((r, i) => i === 0 || r.value <= rows[i - 1].value),
        'sorted, most likely first',
      );
      assert.match((await page.textContent('#latency')) ?? '', /^\d+\.\d\d ms for one image on \d thread/);
      assert.match((await page.textContent('#model')) ?? '', /model: mlp-100 .*method: ste/);
      assert.deepEqual(problems, []);
      await page.screenshot({ path: join(ARTIFACTS, 'app.png') });
    } finally {
      await browser.close();
    }
  });

  test('trains mlp-100 in the page (STE, one epoch, 10,000 examples) to >= 0.80, exactly as Node does; the download runs in Node', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1000 }, acceptDownloads: true });
      const problems = await openApp(page, server.url);
      await page.evaluate(() => (globalThis as unknown as AppWindow).onebitApp.ready);
      await page.click('#train');
      await page.waitForSelector('#train-status[data-state=done], #train-status[data-state=error]', {
        timeout: 240_000,
      });
      const accuracy = Number(await page.getAttribute('#train-status', 'data-test-accuracy'));
      assert.ok(accuracy >= 0.8, `${await page.textContent('#train-status')}`);

      // Node's training loop on the same examples and settings gives the same figure.
      const backend = await createBackend({ kind: 'wasm', threads: 1 });
      try {
        const node = await trainRun({
          config: trainConfig({
            data: 'fashion-mnist',
            model: 'mlp-100',
            method: 'ste',
            activations: 'real',
            epochs: 1,
            batchSize: 50,
            learningRate: 0.005,
            seed: 1,
            validationFraction: 0,
          }),
          backend,
          // The page trains on the first 10,000 examples, as the server sends them.
          train: createDataset({
            name: 'fashion-mnist',
            images: trainSet.images.subarray(0, 10_000 * 784),
            labels: trainSet.labels.subarray(0, 10_000),
            shape: trainSet.shape,
            classes: trainSet.classes,
          }),
          test: test100,
          outDir: null,
        });
        assert.equal(accuracy, node.test.accuracy);
      } finally {
        backend.dispose();
      }

      // The downloaded model is the one the page now classifies with.
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      const trained = readFileSync(await download.path());
      const engine = await createEngine(trained, { threads: 1, maxBatch: 100 });
      const images = Array.from(test100.images.subarray(0, 100 * engine.inputSize));
      const expected = [...engine.classify(Uint8Array.from(images), 100)];
      engine.dispose();
      await page.waitForSelector('#model[data-source=trained]');
      assert.deepEqual(
        await page.evaluate((x) => (globalThis as unknown as AppWindow).onebitApp.classify(x), images),
        expected,
      );
      assert.deepEqual(problems, []);
      await page.screenshot({ path: join(ARTIFACTS, 'app-trained.png'), fullPage: true });

      // Float-free trains in the page too (integer step, 1-bit activations).
      await page.selectOption('#method', 'float-free');
      await page.fill('#examples', '2000');
      await page.click('#train');
      await page.waitForSelector('#train-status[data-state=done], #train-status[data-state=error]', {
        timeout: 240_000,
      });
      const floatFree = Number(await page.getAttribute('#train-status', 'data-test-accuracy'));
      assert.ok(floatFree > 0.5, `${await page.textContent('#train-status')}`);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });

  test('the server answers only its own paths, with the isolation headers', async () => {
    const page = await fetch(server.url);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(page.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.match(page.headers.get('content-security-policy') ?? '', /connect-src 'self'/);
    const served = new Uint8Array(await (await fetch(`${server.url}api/model`)).arrayBuffer());
    assert.deepEqual(served, model);
    for (const path of ['package.json', '../package.json', 'wasm/../package.json', 'src/app/main.ts']) {
      assert.equal((await fetch(`${server.url}${path}`)).status, 404, path);
    }
    assert.equal((await fetch(server.url, { method: 'POST' })).status, 405);
    // A request naming another host (a page whose name was made to resolve to 127.0.0.1) gets nothing.
    const port = Number(new URL(server.url).port);
    for (const [host, status] of [
      ['evil.example', 403],
      [`evil.example:${port}`, 403],
      [`localhost:${port}`, 200],
    ] as const) {
      const got = await new Promise<number>((resolve, reject) =>
        httpGet({ host: '127.0.0.1', port, path: '/api/model', headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject),
      );
      assert.equal(got, status, host);
    }
  });
});

describe('the package in a browser bundle; the serve command', () => {
  test('the browser entries (the library, the engine) bundle with no node: import; the package maps them by the browser condition', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, Record<string, unknown> | string>;
    };
    // dist/x.js is compiled from src/x.ts.
    assert.deepEqual((pkg.exports['.'] as Record<string, unknown>).browser, {
      types: './dist/browser.d.ts',
      default: './dist/browser.js',
    });
    assert.equal((pkg.exports['./engine'] as Record<string, string>).browser, './dist/engine/index.js');
    assert.equal(pkg.exports['./wasm/*.wasm'], './wasm/*.wasm');
    for (const [entry, reaches] of [
      ['src/browser.ts', 'src/train/trainer.ts'],
      ['src/engine/index.ts', 'src/wasm/pool.ts'],
    ]) {
      // esbuild's browser platform refuses to resolve a node: module, so a build that succeeds has none;
      // the metafile says what every input imports.
      const result = await build({
        entryPoints: [join(ROOT, entry)],
        bundle: true,
        platform: 'browser',
        format: 'esm',
        conditions: ['browser'],
        write: false,
        metafile: true,
        logLevel: 'silent',
      });
      const imports = Object.values(result.metafile.inputs).flatMap((input) =>
        input.imports.map((i) => i.path),
      );
      assert.deepEqual(
        imports.filter((p) => p.startsWith('node:')),
        [],
        entry,
      );
      assert.ok(
        Object.keys(result.metafile.inputs).some((p) => p.endsWith(reaches)),
        `${entry} bundles ${reaches}`,
      );
    }
  });

  test('examples/browser bundles with esbuild from the package by name and classifies in Chromium as Node does', async () => {
    const out = join(dir, 'example');
    const built = spawnSync(process.execPath, [join(ROOT, 'examples/browser/build.mjs'), out], {
      encoding: 'utf8',
    });
    assert.equal(built.status, 0, built.stderr);
    writeFileSync(join(out, 'model.onebit'), model);
    // Any static server will do; this one serves the folder's files and nothing else.
    const files = createServer((request, response) => {
      const name = new URL(request.url ?? '/', 'http://127.0.0.1').pathname.slice(1) || 'index.html';
      const path = join(out, name);
      if (name.includes('..') || !existsSync(path)) return void response.writeHead(404).end();
      const type = name.endsWith('.wasm')
        ? 'application/wasm'
        : name.endsWith('.js')
          ? 'text/javascript'
          : name.endsWith('.html')
            ? 'text/html'
            : 'application/octet-stream';
      response.writeHead(200, { 'Content-Type': type }).end(readFileSync(path));
    });
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    const node = await createEngine(model, { threads: 1, maxBatch: 1 });
    const blank = new Uint8Array(node.inputSize);
    const expected = node.classify(blank, 1)[0];
    node.dispose();
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const url = `http://127.0.0.1:${(files.address() as AddressInfo).port}/`;
      const problems = await openApp(page, url);
      await page.waitForSelector('#output[data-classes="10"]');
      assert.match(
        (await page.textContent('#output')) ?? '',
        new RegExp(`^class ${expected} \\(p = 0\\.\\d{3}\\)$`),
      );
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      files.closeAllConnections();
      await new Promise((resolve) => files.close(resolve));
    }
  });

  /** Starts `onebit serve ARGS --port 0 --json` and waits for the address it prints. */
  async function serve(
    args: readonly string[],
  ): Promise<{ url: string; stop: () => Promise<number | null> }> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'serve', ...args, '--port', '0', '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!stdout.includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const printed = JSON.parse(stdout) as { type: string; url: string };
    assert.equal(printed.type, 'serve');
    assert.match(printed.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    return {
      url: printed.url,
      stop: () => {
        child.kill('SIGINT');
        return exited;
      },
    };
  }

  test('onebit serve: the command serves the page on the port it prints', async () => {
    // The page is the one npm run build bundles into the package's app/ folder.
    const { url, stop } = await serve([join(dir, 'm.onebit')]);
    const served = new Uint8Array(await (await fetch(`${url}api/model`)).arrayBuffer());
    assert.deepEqual(served, model);
    assert.equal((await fetch(url)).status, 200);
    assert.equal(await stop(), 0);
  });

  test('onebit serve --data-dir: the folder the page trains from; a folder without the set is named', async () => {
    const good = await serve(['--data-dir', DEBIAN_FASHION_MNIST_DIR]);
    try {
      assert.equal((await fetch(`${good.url}api/model`)).status, 404, 'no model given');
      const bytes = new Uint8Array(await (await fetch(`${good.url}api/data/test?limit=7`)).arrayBuffer());
      assert.deepEqual([...new Uint32Array(bytes.buffer, 0, 5)], [7, 1, 28, 28, 10]);
      assert.deepEqual(bytes.subarray(20, 20 + 7 * 784), test100.images.subarray(0, 7 * 784));
    } finally {
      assert.equal(await good.stop(), 0);
    }
    const empty = join(dir, 'empty');
    mkdirSync(empty, { recursive: true });
    const bad = await serve(['--data-dir', empty]);
    try {
      const response = await fetch(`${bad.url}api/data/train?limit=10`);
      assert.equal(response.status, 404);
      assert.match(await response.text(), new RegExp(`${empty}.*missing train-images-idx3-ubyte`));
    } finally {
      assert.equal(await bad.stop(), 0);
    }
  });

  test('onebit serve --port: a port in use is refused, naming the flag', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const run = spawnSync(
        process.execPath,
        ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'serve', '--port', String(port)],
        { encoding: 'utf8' },
      );
      assert.notEqual(run.status, 0);
      assert.match(
        run.stderr,
        new RegExp(`--port: expected a free port \\(0: any\\), got ${port}, which is in use`),
      );
    } finally {
      taken.close();
    }
  });

  test('onebit serve refuses a file that is not a .onebit model, saying what it is', () => {
    const notModel = join(dir, 'x.onebit');
    writeFileSync(notModel, 'hello');
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'serve', notModel, '--port', '0'],
      { encoding: 'utf8' },
    );
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /not a \.onebit model: expected the magic/);
    assert.ok(existsSync(notModel));
  });
});
