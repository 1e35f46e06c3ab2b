/**
 * Cleanup of what killed atomic writes left behind spares the writes of live processes: two processes that
 * work in one run folder (two resumes of the same run) must not pull each other's temporary files away.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { prepareRunFolder } from '../cli/run-folder.js';
import { removeStaleTemporaries } from '../train/trainer.js';
import { atomicWriteLive } from './atomic.js';

test("a run folder's stale temporaries are removed, a live writer's are kept", () => {
  const dir = mkdtempSync(join(tmpdir(), 'onebit-atomic-'));
  // A process that has exited (its pid is free) and one that is still running.
  const gone = spawnSync(process.execPath, ['-e', 'process.pid'], { stdio: 'ignore' });
  assert.equal(gone.status, 0);
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    assert.ok(live.pid !== undefined && gone.pid !== undefined);
    const stale = `.checkpoint.ckpt.${gone.pid}.tmp`;
    const writing = `.checkpoint.ckpt.${live.pid}.tmp`;
    const own = `.metrics.jsonl.${process.pid}.tmp`;
    const other = `.notes.txt.${gone.pid}.tmp`; // not a run file: never touched
    for (const name of [stale, writing, own, other]) writeFileSync(join(dir, name), 'x');
    assert.equal(atomicWriteLive(writing), true);
    assert.equal(atomicWriteLive(stale), false);
    assert.equal(
      atomicWriteLive(own),
      false,
      "this process's own temporaries are never a write in progress here",
    );
    assert.equal(atomicWriteLive('checkpoint.ckpt'), false);
    removeStaleTemporaries(dir);
    assert.deepEqual(
      [stale, writing, own, other].map((n) => existsSync(join(dir, n))),
      [false, true, false, true],
    );
  } finally {
    live.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a new run's --out folder that holds only a killed write's temporary counts as empty; a live writer's does not", () => {
  const dir = mkdtempSync(join(tmpdir(), 'onebit-atomic-'));
  const gone = spawnSync(process.execPath, ['-e', 'process.pid'], { stdio: 'ignore' });
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  try {
    const killedWrite = join(dir, 'killed');
    mkdirSync(killedWrite);
    writeFileSync(join(killedWrite, `.run.json.${gone.pid}.tmp`), 'x');
    const folder = prepareRunFolder(killedWrite, false);
    assert.equal(folder.trainIn, killedWrite);
    assert.deepEqual(readdirSync(killedWrite), []);

    const writing = join(dir, 'writing');
    mkdirSync(writing);
    writeFileSync(join(writing, `.run.json.${live.pid}.tmp`), 'x');
    assert.throws(() => prepareRunFolder(writing, false), /--out: expected a new or empty folder/);
    assert.deepEqual(readdirSync(writing), [`.run.json.${live.pid}.tmp`]);
  } finally {
    live.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
