#!/usr/bin/env node
// Bundles the page `onebit serve` shows (src/app) into app/: app.js and its training worker
// train-worker.js (esbuild, browser platform, the package's `browser` condition) and index.html. `npm run build` runs it; the browser tests call
// buildApp themselves so that they always test the sources.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Writes app.js, train-worker.js and index.html into `outDir` (default: the package's app/ folder). */
export async function buildApp(outDir = join(root, 'app')) {
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: {
      app: join(root, 'src/app/main.ts'),
      'train-worker': join(root, 'src/app/train-worker.ts'),
    },
    outdir: outDir,
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    conditions: ['browser'],
    minify: true,
    sourcemap: false,
    logLevel: 'warning',
  });
  copyFileSync(join(root, 'src/app/index.html'), join(outDir, 'index.html'));
  return outDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildApp();
