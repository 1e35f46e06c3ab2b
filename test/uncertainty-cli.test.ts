/**
 * Uncertainty at work through the command line: `onebit train --classes` trains on some classes (the others
 * held out); `onebit eval` reports selective prediction, and with --ood the AUROC of the entropy and of the
 * top probability on inverted images, noise and the held-out classes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { lastJson, runCli } from './cli.js';

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-uncertainty-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface Aurocs {
  entropy: number;
  maxProbability: number;
}

describe('selective prediction and out-of-distribution detection', () => {
  test('train --classes 0-4, then eval --ood: held-out classes, inverted and noise images', async () => {
    const out = join(dir, 'five');
    const trained = await runCli([
      ...['train', '--data', 'fashion-mnist', '--model', 'mlp-100', '--epochs', '1', '--classes', '0-4'],
      ...['--train-limit', '3000', '--test-limit', '1000', '--backend', 'reference', '--out', out, '--json'],
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const checkpoint = loadCheckpoint(join(out, 'checkpoint.ckpt'));
    assert.deepEqual(checkpoint.meta.config.classes, [0, 1, 2, 3, 4]);
    assert.equal(checkpoint.meta.config.spec?.classes, 5);

    const evaluated = await runCli(['eval', out, '--ood', '--test-limit', '1000', '--json']);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const report = lastJson(evaluated.stdout) as {
      mode: {
        count: number;
        accuracy: number;
        selective: { accuracyAtCoverage: Record<string, number>; auc: number };
      };
      ood: Record<string, { count: number; mode: Aurocs; ensemble: Aurocs | null }>;
    };
    // The test set is the trained classes' images only.
    assert.equal(report.mode.count, 1000);
    const { accuracyAtCoverage, auc } = report.mode.selective;
    assert.deepEqual(Object.keys(accuracyAtCoverage), ['0.5', '0.8', '0.9', '0.95']);
    // Setting the least confident aside helps: accuracy falls as coverage grows, all above the full accuracy.
    assert.ok(accuracyAtCoverage['0.5'] >= accuracyAtCoverage['0.8']);
    assert.ok(accuracyAtCoverage['0.95'] >= report.mode.accuracy);
    assert.ok(auc > report.mode.accuracy && auc <= 1);
    assert.deepEqual(Object.keys(report.ood), ['inverted', 'noise', 'heldOutClasses']);
    for (const o of Object.values(report.ood)) {
      assert.equal(o.count, 1000);
      assert.equal(o.ensemble, null);
      for (const a of [o.mode.entropy, o.mode.maxProbability]) assert.ok(a >= 0 && a <= 1);
    }
    // Classes it never saw are less certain than those it knows.
    assert.ok(report.ood.heldOutClasses.mode.entropy > 0.6, JSON.stringify(report.ood.heldOutClasses));
  });

  test('--classes that the data does not have, or a backwards range, is refused', async () => {
    const missing = await runCli([
      'train',
      '--data',
      'fashion-mnist',
      '--classes',
      '0,12',
      '--out',
      join(dir, 'x'),
    ]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /--classes: expected class indices below 10 \(the classes of fashion-mnist\), got 0,12/,
    );
    const backwards = await runCli(['train', '--classes', '3-1']);
    assert.notEqual(backwards.code, 0);
    assert.match(backwards.stderr, /the range 3-1 runs backwards/);
  });
});
