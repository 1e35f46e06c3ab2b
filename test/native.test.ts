/**
 * The native addon and backend (src/native, src/backend/native): built wherever clang and Node's headers
 * are (so that CI cannot skip the native equality suites of test/backend-*.test.ts by failing to build it),
 * its levels and its checks, and `--backend native` from the command line. The kernels themselves are
 * checked against the reference by the backend equality suites, at every level this CPU runs.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createNativeBackend, nativeLevels } from '../src/backend/native/index.js';
import { createWasmBackend } from '../src/backend/wasm/index.js';
import { loadNativeAddon, NATIVE_LEVELS } from '../src/native/addon.js';
import { lastJson, runCli } from './cli.js';

function clangRuns(): boolean {
  try {
    execFileSync('clang', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

const buildable =
  process.platform === 'linux' &&
  clangRuns() &&
  existsSync(join(dirname(process.execPath), '..', 'include', 'node', 'node_api.h'));

describe('native addon', () => {
  test('is built and loads wherever clang and Node headers are (npm run build builds it)', () => {
    const status = loadNativeAddon();
    if (!buildable) {
      assert.equal(status.available, false);
      return;
    }
    assert.ok(status.available, status.available ? '' : status.reason);
    assert.ok(status.levels.includes('baseline'));
    // Best first, and only levels the addon knows.
    const order = status.levels.map((l) => NATIVE_LEVELS.indexOf(l));
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
    );
    if (process.arch === 'x64') {
      const flags = readFileSync('/proc/cpuinfo', 'utf8');
      assert.equal(status.levels.includes('avx2'), /\bavx2\b/.test(flags) && /\bfma\b/.test(flags));
    }
  });

  test('a level the CPU cannot run, bad threads and foreign buffers are refused with clear errors', async (t) => {
    if (nativeLevels().length === 0) return t.skip('the addon is not built here');
    assert.throws(() => createNativeBackend({ level: 'sse9' as never }), /cannot run level sse9; it runs /);
    assert.throws(() => createNativeBackend({ threads: 0 }), /threads must be an integer in 1\.\.64, got 0/);
    const native = createNativeBackend({ threads: 1 });
    const wasm = await createWasmBackend({ threads: 1 });
    try {
      const x = native.alloc(4);
      assert.throws(
        () => native.fill(wasm.alloc(4), 1, 4),
        /fill: x is not a view of a buffer from this backend/,
      );
      assert.throws(() => native.fill(new Float32Array(4), 1, 4), /not a view of a buffer from this backend/);
      assert.throws(() => native.fill(x, 1, 5), /fill: x has 4 entries, needs 5/);
      assert.throws(
        () => native.sign(x, native.allocInt32(4) as never, 4),
        /sign: out must be a float32 buffer/,
      );
      native.fill(x.subarray(1), 2, 3);
      assert.deepEqual([...x], [0, 2, 2, 2]);
      assert.equal(native.bytesInUse(), 32);
      native.free(x);
      assert.throws(() => native.free(x), /did not allocate or already freed/);
    } finally {
      native.dispose();
      wasm.dispose();
    }
    assert.throws(() => native.alloc(1), /native backend: used after dispose/);
  });
});

describe('onebit train --backend native', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onebit-native-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const args = [
    '--data',
    'synthetic-mnist',
    '--model',
    'mlp-100',
    '--epochs',
    '1',
    '--batch-size',
    '50',
    '--seed',
    '5',
  ];

  test('the log names the backend; native is the default where the addon is built', async () => {
    const quick = [...args, '--train-limit', '500', '--no-calibrate'];
    const [byDefault, wasm] = await Promise.all([
      runCli(['train', ...quick, '--out', join(dir, 'default')]),
      runCli(['train', ...quick, '--backend', 'wasm', '--threads', '2', '--out', join(dir, 'wasm')]),
    ]);
    assert.equal(byDefault.code, 0, byDefault.stderr);
    assert.equal(wasm.code, 0, wasm.stderr);
    const level = nativeLevels()[0];
    assert.match(
      byDefault.stderr,
      level === undefined ? /^backend: wasm, /m : new RegExp(`^backend: native \\(${level}\\), `, 'm'),
    );
    assert.match(wasm.stderr, /^backend: wasm, 2 threads$/m);
    // The fallback note appears only where the addon is missing.
    assert.equal(/^note: running on WebAssembly: /m.test(byDefault.stderr), level === undefined);
  });

  test('trains, records the backend, and learns what the wasm backend learns', async (t) => {
    if (nativeLevels().length === 0) return t.skip('the addon is not built here');
    const [native, wasm] = await Promise.all([
      runCli([
        'train',
        ...args,
        '--backend',
        'native',
        '--threads',
        '2',
        '--out',
        join(dir, 'native'),
        '--json',
      ]),
      runCli(['train', ...args, '--backend', 'wasm', '--threads', '2', '--json']),
    ]);
    assert.equal(native.code, 0, native.stderr);
    assert.equal(wasm.code, 0, wasm.stderr);
    assert.equal(
      (JSON.parse(readFileSync(join(dir, 'native', 'run.json'), 'utf8')) as { backend: string }).backend,
      'native',
    );
    // Float sums in another order: not the same bits, the same training.
    const a = lastJson(native.stdout);
    const b = lastJson(wasm.stdout);
    assert.ok(
      Math.abs(Number(a.testAccuracy) - Number(b.testAccuracy)) <= 0.02,
      `${a.testAccuracy} vs ${b.testAccuracy}`,
    );
  });
});
