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

  test('BayesBiNN eval reports its mean network and how uncertain its weights are; STE reports neither', async () => {
    interface Report {
      mode: { accuracy: number };
      sample?: { accuracy: number; disagreementWithMode: number };
      mean?: { accuracy: number; nll: number; temperature: number; disagreementWithMode: number };
      weightUncertainty?: {
        weights: number;
        meanFlipProbability: number;
        shareFlipAtLeast1Percent: number;
        shareFlipAtLeast10Percent: number;
      };
    }
    const common = [
      '--data',
      'synthetic-mnist',
      '--model',
      'mlp-100',
      '--epochs',
      '1',
      '--backend',
      'reference',
    ];
    const bayes = join(dir, 'bayes');
    // lambda starts at 0 with the expected scale: after one epoch many weights are still uncertain.
    const trained = await runCli([
      ...['train', ...common, '--method', 'bayesbinn', '--bb-scale', 'expected', '--lambda-init', '0'],
      ...['--out', bayes, '--json'],
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const evaluated = await runCli([
      'eval',
      bayes,
      '--test-samples',
      '2',
      '--backend',
      'reference',
      '--json',
    ]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const report = lastJson(evaluated.stdout) as unknown as Report;
    assert.ok(report.mean !== undefined && report.weightUncertainty !== undefined, evaluated.stdout);
    assert.equal(report.mean.temperature, 1);
    assert.ok(report.mean.disagreementWithMode >= 0 && report.mean.disagreementWithMode <= 1);
    const u = report.weightUncertainty;
    assert.ok(u.weights > 0);
    assert.ok(u.shareFlipAtLeast10Percent <= u.shareFlipAtLeast1Percent);
    assert.ok(u.shareFlipAtLeast1Percent > 0, 'some weights still uncertain after one epoch from lambda = 0');
    assert.ok(u.meanFlipProbability > 0 && u.meanFlipProbability <= 0.5);

    const ste = join(dir, 'ste');
    const steTrained = await runCli(['train', ...common, '--method', 'ste', '--out', ste, '--json']);
    assert.equal(steTrained.code, 0, steTrained.stderr);
    const steEval = await runCli(['eval', ste, '--backend', 'reference', '--json']);
    assert.equal(steEval.code, 0, steEval.stderr);
    const steReport = lastJson(steEval.stdout) as unknown as Report;
    assert.equal(steReport.mean, undefined);
    assert.equal(steReport.weightUncertainty, undefined);
  });

  test('--posterior calibrated: the mode and the mean network come out the same with or without sampled networks', async () => {
    type Report = {
      mode: unknown;
      mean?: unknown;
      samplesRecalibrated?: boolean;
      ood: Record<string, { mode: unknown }>;
    };
    const evalBoth = async (out: string): Promise<[Report, Report]> => {
      const plain = await runCli(['eval', out, '--ood', '--backend', 'reference', '--json']);
      const sampled = await runCli([
        'eval',
        out,
        '--ood',
        '--test-samples',
        '2',
        '--backend',
        'reference',
        '--json',
      ]);
      assert.equal(plain.code, 0, plain.stderr);
      assert.equal(sampled.code, 0, sampled.stderr);
      return [lastJson(plain.stdout) as unknown as Report, lastJson(sampled.stdout) as unknown as Report];
    };
    const train = async (out: string, args: readonly string[]) => {
      const trained = await runCli([
        ...['train', '--data', 'synthetic-mnist', '--model', 'mlp-100', '--epochs', '1', ...args],
        ...['--backend', 'reference', '--out', out, '--json'],
      ]);
      assert.equal(trained.code, 0, trained.stderr);
    };
    // --posterior calibrated recalibrates batch norm: the mean network gets statistics of its own whether or
    // not sampled networks are evaluated, and the mode keeps its own.
    const bayes = join(dir, 'calibrated');
    await train(bayes, ['--method', 'bayesbinn', '--posterior', 'calibrated']);
    assert.equal(loadCheckpoint(join(bayes, 'checkpoint.ckpt')).meta.config.recalibrateBatchNorm, true);
    const [plain, sampled] = await evalBoth(bayes);
    assert.ok(plain.mean !== undefined);
    assert.deepEqual(sampled.mode, plain.mode);
    assert.deepEqual(sampled.mean, plain.mean);
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
