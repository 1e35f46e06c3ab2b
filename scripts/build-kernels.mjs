#!/usr/bin/env node
/**
 * Builds the WebAssembly modules from the C sources (run as `npm run build:kernels`):
 *   wasm/onebit-kernels.wasm  from src/kernels/*.c         the training backend's kernels
 *   wasm/onebit-engine.wasm   from src/kernels/engine/*.c  the bit-packed inference engine's kernels
 *                             (a separate module, so the engine ships without the training kernels)
 *   wasm/onebit-float-free.wasm  from src/kernels/float-free/*.c  the integer training step of
 *                             `--method float-free`, built without the float-related flags; its sources
 *                             poison `float` and `double`, and the build fails if the module contains any
 *                             f32/f64 instruction (checked again by test/float-free.test.ts)
 *
 * clang compiles each .c file for wasm32 with SIMD, atomics and bulk memory, and wasm-ld links them into
 * one module that imports a shared memory (so every worker thread can instantiate the same module over
 * the same memory) and exports the kernels marked EXPORT(...) plus __heap_base and __stack_pointer
 * (the loader gives each thread's instance its own stack). There is no libc: memcpy/memset lower to
 * bulk-memory instructions, and the link fails if anything else is left undefined.
 *
 * Tools: CLANG and WASM_LD override the commands (default: clang / wasm-ld, then the -14..-19 suffixed names).
 */
/* global WebAssembly */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, '.kernel-build');
const TARGETS = [
  { srcDir: join(root, 'src', 'kernels'), outFile: join(root, 'wasm', 'onebit-kernels.wasm') },
  { srcDir: join(root, 'src', 'kernels', 'engine'), outFile: join(root, 'wasm', 'onebit-engine.wasm') },
  {
    srcDir: join(root, 'src', 'kernels', 'float-free'),
    outFile: join(root, 'wasm', 'onebit-float-free.wasm'),
    floatFree: true,
  },
];

/** 4 GiB: the whole wasm32 address space; callers may still create the memory with a smaller maximum. */
const MAX_MEMORY = 65536 * 65536;
const STACK_SIZE = 64 * 1024;

const CFLAGS = [
  '--target=wasm32',
  '-std=c11',
  '-O3',
  '-msimd128',
  '-matomics',
  '-mbulk-memory',
  '-mmutable-globals',
  '-msign-ext',
  '-mnontrapping-fptoint',
  '-nostdlib',
  '-ffreestanding',
  // No a*b+c fusion: kernels that mirror the reference's double arithmetic must round the same way natively.
  '-ffp-contract=off',
  '-fno-math-errno',
  '-Wall',
  '-Wextra',
  '-Werror',
];

const LDFLAGS = [
  '--no-entry',
  '--import-memory',
  '--shared-memory',
  `--max-memory=${MAX_MEMORY}`,
  '-z',
  `stack-size=${STACK_SIZE}`,
  '--stack-first',
  '--export=__heap_base',
  '--export=__stack_pointer',
  '--strip-debug',
];

function fail(message) {
  console.error(`build-kernels: ${message}`);
  process.exit(1);
}

/** The first of `candidates` that runs with --version, or a loud failure naming the package to install. */
function findTool(envName, candidates, what) {
  const fromEnv = process.env[envName];
  const list = fromEnv ? [fromEnv] : candidates;
  for (const cmd of list) {
    try {
      execFileSync(cmd, ['--version'], { stdio: 'pipe' });
      return cmd;
    } catch {
      // try the next name
    }
  }
  fail(
    `${what} not found (tried ${list.join(', ')}). Install it, e.g. \`apt-get install clang lld\` on Debian/Ubuntu ` +
      `(clang >= 14 with the WebAssembly target, and lld for wasm-ld), or set ${envName}.`,
  );
  return '';
}

function run(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    fail(`command failed: ${cmd} ${args.join(' ')}`);
  }
}

const versions = [14, 15, 16, 17, 18, 19];
const clang = findTool('CLANG', ['clang', ...versions.map((v) => `clang-${v}`)], 'clang');
const wasmLd = findTool('WASM_LD', ['wasm-ld', ...versions.map((v) => `wasm-ld-${v}`)], 'wasm-ld');

rmSync(buildDir, { recursive: true, force: true });
mkdirSync(buildDir, { recursive: true });

/** Flags that only matter for floating-point code are left out of the float-free module's build. */
const FLOAT_ONLY_FLAGS = new Set(['-mnontrapping-fptoint', '-ffp-contract=off', '-fno-math-errno']);

/** Fails the build if the module's disassembly (wabt's wasm-objdump, when installed) has an f32/f64 opcode. */
function checkNoFloat(outFile) {
  let listing;
  try {
    listing = execFileSync('wasm-objdump', ['-d', outFile], { encoding: 'utf8', maxBuffer: 1 << 28 });
  } catch {
    console.log('build-kernels: wasm-objdump not found; the float-free opcode check is left to the tests');
    return;
  }
  const bad = listing.split('\n').filter((line) => /\|.*\b\w*f(32|64)/.test(line));
  if (bad.length > 0)
    fail(`${outFile}: ${bad.length} floating-point instructions, e.g.\n${bad.slice(0, 5).join('\n')}`);
}

for (const { srcDir, outFile, floatFree } of TARGETS) buildModule(srcDir, outFile, floatFree === true);

function buildModule(srcDir, outFile, floatFree = false) {
  mkdirSync(dirname(outFile), { recursive: true });
  const sources = readdirSync(srcDir)
    .filter((f) => f.endsWith('.c'))
    .sort();
  if (sources.length === 0) fail(`no .c files in ${srcDir}`);

  const objDir = join(buildDir, basename(outFile, '.wasm'));
  mkdirSync(objDir, { recursive: true });
  const objects = [];
  for (const file of sources) {
    const obj = join(objDir, file.replace(/\.c$/, '.o'));
    const flags = floatFree ? CFLAGS.filter((f) => !FLOAT_ONLY_FLAGS.has(f)) : CFLAGS;
    run(clang, [...flags, '-c', join(srcDir, file), '-o', obj]);
    objects.push(obj);
  }
  run(wasmLd, [...LDFLAGS, ...objects, '-o', outFile]);
  chmodSync(outFile, 0o644); // wasm-ld marks its output executable; the artifact is data
  if (floatFree) checkNoFloat(outFile);

  // Sanity check: the module compiles here and imports nothing but the shared memory.
  const module = new WebAssembly.Module(readFileSync(outFile));
  const imports = WebAssembly.Module.imports(module);
  const bad = imports.filter((i) => !(i.module === 'env' && i.name === 'memory' && i.kind === 'memory'));
  if (bad.length > 0) fail(`unexpected imports: ${bad.map((i) => `${i.module}.${i.name}`).join(', ')}`);
  const kernels = WebAssembly.Module.exports(module).filter((e) => e.kind === 'function');
  console.log(
    `build-kernels: wrote ${outFile.slice(root.length + 1)} (${readFileSync(outFile).length} bytes, ` +
      `${kernels.length} functions: ${kernels.map((e) => e.name).join(' ')})`,
  );
}
