/**
 * src/cli/output-path.ts, the helpers every command's output flags go through (and `onebit train` can
 * reuse): file-system errors become ConfigErrors naming the flag and the path, whatever Node's code.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, ExportError } from '../src/errors.js';
import {
  outputPathError,
  prepareOutputDir,
  prepareOutputFile,
  writeOutputFile,
} from '../src/cli/output-path.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-output-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** A Node file-system error as fs throws it (these tests run as any user, so EACCES is made, not met). */
function systemError(code: string, path: string, syscall = 'open'): Error {
  return Object.assign(new Error(`${code}: failure, ${syscall} '${path}'`), { code, path, syscall });
}

describe('outputPathError', () => {
  test('each file-system code becomes a ConfigError naming the flag, the path and the reason', () => {
    const path = join(dir, 'out', 'm.onebit');
    for (const [code, reason] of [
      ['EACCES', /permission denied on .*out \(EACCES\)/],
      ['EPERM', /permission denied/],
      ['EISDIR', /is a folder, not a file \(EISDIR\)/],
      ['EROFS', /read-only file system/],
      ['ENOSPC', /no space left on the device/],
      ['EMFILE', /EMFILE: failure/],
    ] as const) {
      const error = outputPathError('--out', path, systemError(code, join(dir, 'out')));
      assert.ok(error instanceof ConfigError, code);
      assert.equal(error.field, '--out');
      assert.ok(error.message.startsWith(`--out: expected a file path onebit can write, got "${path}" (`));
      assert.match(error.message, reason);
    }
  });

  test("onebit's own errors and non-system errors pass through unchanged", () => {
    const own = new ExportError('layer', 'unsupported');
    assert.equal(outputPathError('--out', 'x', own), own);
    const plain = new TypeError('not a file-system error');
    assert.equal(outputPathError('--out', 'x', plain), plain);
  });

  test('EEXIST/ENOTDIR name the file that stands where a folder is needed', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const path = join(file, 'deeper', 'out.json');
    const error = outputPathError('--entropies', path, systemError('ENOTDIR', path, 'mkdir'));
    assert.ok(error instanceof ConfigError);
    assert.match(
      error.message,
      new RegExp(`\\(${file.replace(/[.\\/]/g, '\\$&')} is a file, not a folder\\)$`),
    );
  });
});

describe('prepareOutputFile and prepareOutputDir', () => {
  test('a file path: its folders are made; a folder is refused', () => {
    const nested = join(dir, 'made', 'for', 'it.json');
    assert.equal(prepareOutputFile('--reliability', nested), nested);
    writeOutputFile('--reliability', nested, '{}\n');
    assert.throws(
      () => prepareOutputFile('--reliability', join(dir, 'made')),
      (e: unknown) =>
        e instanceof ConfigError && e.field === '--reliability' && /a folder, not a file/.test(e.message),
    );
  });

  test('a folder: made when new, refused when it holds files unless overwrite, refused when a file', () => {
    const fresh = join(dir, 'run');
    assert.equal(prepareOutputDir('--out', fresh, { overwrite: false }), fresh);
    writeFileSync(join(fresh, 'metrics.jsonl'), '');
    mkdirSync(join(fresh, 'sub'));
    assert.throws(
      () => prepareOutputDir('--out', fresh, { overwrite: false }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.field === '--out' &&
        /or --overwrite/.test(e.message) &&
        /which holds metrics\.jsonl, sub$/.test(e.message),
    );
    assert.equal(prepareOutputDir('--out', fresh, { overwrite: true }), fresh);
    const file = join(dir, 'not-a-folder');
    writeFileSync(file, '');
    assert.throws(
      () => prepareOutputDir('--out', file, { overwrite: true }),
      (e: unknown) => e instanceof ConfigError && /a file, not a folder/.test(e.message),
    );
    assert.throws(
      () => prepareOutputDir('--out', join(file, 'run'), { overwrite: false }),
      (e: unknown) => e instanceof ConfigError && e.message.includes(`(${file} is a file, not a folder)`),
    );
  });
});
