#!/usr/bin/env node
// `npm run build`: compiles src/ into a fresh dist/ (so files of removed modules do not linger in the
// package), then marks the CLI executable (npm links `onebit` to it; tsc writes files without the x bit),
// bundles the page of `onebit serve` into app/ (scripts/build-app.mjs), and builds the native addon
// native/onebit.node where clang is (scripts/build-native.mjs; without clang it says so and onebit runs on
// WebAssembly).
import { chmodSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

rmSync('dist', { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (result.status !== 0) process.exit(result.status ?? 1);
chmodSync('dist/cli/main.js', 0o755);
// The page of `onebit serve`, bundled for browsers into app/.
const { buildApp } = await import('./build-app.mjs');
await buildApp();
const native = spawnSync(process.execPath, ['scripts/build-native.mjs'], { stdio: 'inherit' });
if (native.status !== 0) process.exit(native.status ?? 1);
