#!/usr/bin/env node
// Bundles classify.js with esbuild for browsers (the package's `browser` condition) into OUT_DIR (default
// out/), with index.html and the engine's WebAssembly module beside it. Serve OUT_DIR with a model.onebit
// (e.g. `npx onebit export runs/ste --out out/model.onebit`) from any static server.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? join(here, 'out');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, 'classify.js')],
  outfile: join(out, 'classify.bundle.js'),
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: 'es2022',
  minify: true,
  logLevel: 'warning',
});
copyFileSync(join(here, 'index.html'), join(out, 'index.html'));
// The wasm files are in the package's exports, so a bundler (or this script) can find them by name.
const require = createRequire(import.meta.url);
copyFileSync(require.resolve('onebit/wasm/onebit-engine.wasm'), join(out, 'onebit-engine.wasm'));
