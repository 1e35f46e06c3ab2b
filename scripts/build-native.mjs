#!/usr/bin/env node
/**
 * Builds the native Node addon native/onebit.node (run by `npm run build`, or alone as `npm run build:native`):
 * the training kernels of src/kernels/*.c, the inference engine's of src/kernels/engine/*.c and the float-free
 * step's of src/kernels/float-free/*.c, the same sources as the WebAssembly modules, compiled by clang for this platform once per instruction-set level, plus the N-API
 * glue and thread pool (src/native/addon.c) that picks a level by the CPU at run time. The engine's and the
 * float-free sources are compiled with ONEBIT_NATIVE_SIMD128, so their 128-bit SIMD paths build from the same
 * code as on wasm (src/kernels/simd128.h) and give the same results. Never -march=native: the binary runs on any x86-64 machine, and its
 * levels are
 *   avx512    AVX-512 F/BW/DQ/VL with VPOPCNTDQ and VNNI (and AVX2, FMA, BMI2)
 *   avx2      AVX2, FMA, BMI2, POPCNT
 *   baseline  x86-64 (SSE2); the only level on other architectures
 * Each level's objects get a header (-include) that renames every exported kernel and the call tables
 * (src/native/table.c, engine-table.c, float-free-table.c) with the level's suffix, so all levels link into one binary.
 *
 * The headers are the installed Node's (<prefix>/include/node, which Debian's nodejs package ships). Without
 * clang or the headers it prints one line and exits 0: onebit then runs on WebAssembly (the CLI says so).
 * With --strict a missing tool is an error. CLANG overrides the compiler.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = join(root, '.native-build');
const outFile = join(root, 'native', 'onebit.node');
const strict = process.argv.includes('--strict');

const COMMON = [
  '-std=c11',
  '-O3',
  '-fPIC',
  '-fvisibility=hidden',
  '-ffp-contract=off',
  '-fno-math-errno',
  '-Wall',
  '-Wextra',
  '-Werror',
];
const X86 = process.arch === 'x64';
const BASELINE = ['-march=x86-64', '-mtune=generic'];
const AVX2 = [...BASELINE, '-mavx2', '-mfma', '-mbmi', '-mbmi2', '-mpopcnt', '-mf16c'];
const AVX512 = [
  ...AVX2,
  ...['-mavx512f', '-mavx512bw', '-mavx512dq', '-mavx512vl', '-mavx512vpopcntdq', '-mavx512vnni'],
  '-mprefer-vector-width=512',
];
const LEVELS = X86
  ? [
      { name: 'baseline', flags: BASELINE },
      { name: 'avx2', flags: AVX2 },
      { name: 'avx512', flags: AVX512 },
    ]
  : [{ name: 'baseline', flags: [] }];

function skip(reason) {
  if (strict) {
    console.error(`build-native: ${reason}`);
    process.exit(1);
  }
  console.log(`build-native: ${reason}; onebit will run on WebAssembly only`);
  process.exit(0);
}

function findClang() {
  const candidates = process.env.CLANG
    ? [process.env.CLANG]
    : ['clang', ...[19, 18, 17, 16, 15, 14].map((v) => `clang-${v}`)];
  for (const cmd of candidates) {
    try {
      execFileSync(cmd, ['--version'], { stdio: 'pipe' });
      return cmd;
    } catch {
      // try the next name
    }
  }
  return null;
}

function run(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    console.error(`build-native: command failed: ${cmd} ${args.join(' ')}`);
    process.exit(1);
  }
}

if (process.platform !== 'linux') skip(`no native build for ${process.platform} yet`);
const clang = findClang();
if (clang === null) skip('clang not found');
const nodeHeaders = join(dirname(process.execPath), '..', 'include', 'node');
if (!existsSync(join(nodeHeaders, 'node_api.h')))
  skip(`Node's headers not found (${nodeHeaders}/node_api.h)`);

const kernelDir = join(root, 'src', 'kernels');
const engineDir = join(kernelDir, 'engine');
const floatFreeDir = join(kernelDir, 'float-free');
const nativeDir = join(root, 'src', 'native');
const sourcesIn = (dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.c'))
    .sort()
    .map((f) => join(dir, f));
const kernelSources = sourcesIn(kernelDir);
const engineSources = sourcesIn(engineDir);
const floatFreeSources = sourcesIn(floatFreeDir);
// Every exported kernel, from the sources' EXPORT(...) markers.
const names = [...kernelSources, ...engineSources, ...floatFreeSources].flatMap((f) =>
  [...readFileSync(f, 'utf8').matchAll(/^EXPORT\((\w+)\)/gm)].map((m) => m[1]),
);
const TABLES = {
  NATIVE_TABLE: 'onebit_table',
  NATIVE_ENGINE_TABLE: 'onebit_engine_table',
  NATIVE_FLOAT_FREE_TABLE: 'onebit_float_free_table',
};

rmSync(buildDir, { recursive: true, force: true });
mkdirSync(buildDir, { recursive: true });
const objects = [];
for (const level of LEVELS) {
  const dir = join(buildDir, level.name);
  mkdirSync(dir);
  const header = join(dir, 'names.h');
  const renames = [
    ...names.map((n) => `#define ${n} ${n}__${level.name}`),
    ...Object.entries(TABLES).map(([macro, name]) => `#define ${macro} ${name}_${level.name}`),
  ];
  writeFileSync(header, `/* Generated by scripts/build-native.mjs */\n${renames.join('\n')}\n`);
  const builds = [
    ...[...kernelSources, join(nativeDir, 'table.c')].map((source) => ({ source, prefix: '', defines: [] })),
    ...[...engineSources, join(nativeDir, 'engine-table.c')].map((source) => ({
      source,
      prefix: 'engine-',
      defines: ['-DONEBIT_NATIVE_SIMD128'],
    })),
    // The float-free objects are also what test/float-free.test.ts disassembles (no float instruction). On
    // x86-64 baseline (SSE2, no per-lane shifts) the vectoriser emulates `1 << v` with float conversions, so
    // there the compiler vectorises nothing of its own (the kernels' explicit SIMD stays).
    ...[...floatFreeSources, join(nativeDir, 'float-free-table.c')].map((source) => ({
      source,
      prefix: 'float-free-',
      defines: [
        '-DONEBIT_NATIVE_SIMD128',
        ...(level.name === 'baseline' ? ['-fno-vectorize', '-fno-slp-vectorize'] : []),
      ],
    })),
  ];
  for (const { source, prefix, defines } of builds) {
    const obj = join(dir, `${prefix}${source.split('/').pop().replace(/\.c$/, '')}.o`);
    run(clang, [...COMMON, ...level.flags, ...defines, '-include', header, '-c', source, '-o', obj]);
    objects.push(obj);
  }
}
const addonObj = join(buildDir, 'addon.o');
run(clang, [
  ...COMMON,
  ...(X86 ? BASELINE : []),
  '-I',
  nodeHeaders,
  '-DNAPI_VERSION=8',
  '-DNODE_GYP_MODULE_NAME=onebit',
  '-c',
  join(nativeDir, 'addon.c'),
  '-o',
  addonObj,
]);
mkdirSync(dirname(outFile), { recursive: true });
const tmp = `${outFile}.tmp`;
run(clang, ['-shared', '-fPIC', '-o', tmp, addonObj, ...objects, '-lpthread']);
renameSync(tmp, outFile);
console.log(`build-native: wrote native/onebit.node (levels ${LEVELS.map((l) => l.name).join(', ')})`);
