/**
 * What is particular to the wasm backend: its buffers are 64-byte-aligned views of one shared wasm memory
 * that grows on demand, every kernel refuses arguments that are not views of that memory, a caller may
 * supply the compiled module, and its worker threads do not keep the process alive. The kernels themselves
 * and the memory contract every backend shares are checked against the reference backend in
 * test/backend-kernels.test.ts, which runs every backend listed in test/backends.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Backend, FloatArray } from '../backend.js';
import { createReferenceBackend } from '../reference/index.js';
import { createWasmBackend } from './index.js';

const ref = createReferenceBackend('float32');

describe('wasm backend: memory', () => {
  let be: Backend;
  before(async () => {
    be = await createWasmBackend({ threads: 2 });
  });
  after(() => be.dispose());

  it('aligns every buffer to 64 bytes (a cache line, and what the SIMD kernels assume)', () => {
    const held = [be.alloc(1), be.allocInt32(3), be.allocUint32(17), be.alloc(100)];
    for (const v of held) assert.equal(v.byteOffset % 64, 0, `${v.constructor.name} at ${v.byteOffset}`);
    for (const v of held) be.free(v);
  });

  it('rejects arrays that are not views of its memory, of the wrong type, or too short', () => {
    const out = be.alloc(4);
    assert.throws(() => be.sign(new Float32Array(4), out, 4), /not a view of this backend's wasm memory/);
    assert.throws(() => be.sign(new Float64Array(4) as unknown as FloatArray, out, 4), /must be a float32 buffer/);
    assert.throws(() => be.sign(out, out, 5), /needs 5/);
    const other = ref.alloc(4);
    assert.throws(() => be.gemm('nn', 2, 2, 1, other, out, out, false), /A is not a view/);
    const ints = be.allocInt32(4);
    assert.throws(() => be.binaryGemm(1, 1, 1, ints as unknown as Uint32Array, ints as unknown as Uint32Array, ints), /uint32/);
    assert.throws(() => be.binaryGemm(1, 1, 1, new Uint32Array(4), new Uint32Array(4), ints), /not a view/);
    be.free(ints);
    be.free(out);
    ref.free(other);
  });

  it('grows the memory on demand; views made before growing stay valid and usable', () => {
    const before = be.alloc(1000);
    before.fill(3);
    const big = be.alloc(24 << 20); // 96 MiB: past the initial 16 MiB, so the memory grows
    assert.notEqual(big.buffer, before.buffer, 'growing a shared memory makes a new buffer object');
    assert.ok(before.every((v) => v === 3));
    be.copy(before, big, 1000); // a view on the old buffer object and one on the new
    assert.equal(big[999], 3);
    assert.equal(be.sum(big, big.length), 3000);
    be.free(big);
    be.free(before);
    assert.equal(be.bytesInUse(), 0);
  });

  it('accepts a caller-supplied module', async () => {
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(new URL('../../../wasm/onebit-kernels.wasm', import.meta.url));
    const fromBytes = await createWasmBackend({ threads: 1, module: bytes });
    const x = fromBytes.alloc(5);
    fromBytes.fill(x, 2, 5);
    assert.equal(fromBytes.sum(x, 5), 10);
    fromBytes.dispose();
  });
});

describe('wasm backend: process lifetime', () => {
  it('an undisposed multi-threaded backend does not keep the process alive', () => {
    const index = fileURLToPath(new URL('./index.ts', import.meta.url));
    const script = `import(${JSON.stringify(index)}).then(async ({ createWasmBackend }) => {
      const be = await createWasmBackend({ threads: 2 });
      const x = be.alloc(1 << 17);
      be.fill(x, 1, x.length);
      if (be.sum(x, x.length) !== 1 << 17) process.exit(2);
    });`;
    const result = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { timeout: 20000, encoding: 'utf8' });
    assert.equal(result.error, undefined, `child did not exit: ${String(result.error)}`);
    assert.equal(result.status, 0, result.stderr);
  });
});
