/**
 * Temperature scaling through the command line: `onebit train` fits the deployed network's temperature on
 * the validation split when it ends and stores it in the checkpoint; `onebit eval` reports the calibrated
 * metrics beside those at temperature 1 (accuracy unchanged); `--no-calibrate` keeps temperature 1, and
 * `onebit calibrate` fits it afterwards, and an ensemble's for the number of samples asked.
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
  dir = mkdtempSync(join(tmpdir(), 'onebit-calibration-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const TRAIN = [
  ...['train', '--data', 'fashion-mnist', '--model', 'mlp-100', '--epochs', '1', '--batch-size', '100'],
  ...['--train-limit', '3000', '--test-limit', '1000', '--backend', 'reference', '--json'],
];

interface Metrics {
  accuracy: number;
  nll: number;
  ece: number;
  temperature: number;
  uncalibrated?: { nll: number; ece: number };
}

describe('calibration on the command line', () => {
  test('train calibrates by default; eval shows the calibrated metrics and those at temperature 1', async () => {
    const out = join(dir, 'ste');
    const trained = await runCli([...TRAIN, '--out', out]);
    assert.equal(trained.code, 0, trained.stderr);
    const result = lastJson(trained.stdout) as {
      testEce: number;
      testNll: number;
      temperature: number;
      uncalibrated: { testEce: number; testNll: number };
    };
    const stored = loadCheckpoint(join(out, 'checkpoint.ckpt')).meta.calibration;
    assert.ok(stored !== undefined);
    assert.equal(stored.mode.temperature, result.temperature);
    assert.equal(stored.mode.examples, 6000, 'fitted on the validation split (a tenth of 60,000)');
    assert.ok(stored.mode.nllAfter < stored.mode.nllBefore);
    // The batch-norm-capped logits are under-confident: the temperature sharpens them, and the test
    // set (not seen by the fit) is better calibrated.
    assert.ok(result.temperature < 1, `T ${result.temperature}`);
    assert.ok(result.testEce < result.uncalibrated.testEce / 2, JSON.stringify(result));
    assert.ok(result.testNll < result.uncalibrated.testNll);

    const evaluated = await runCli(['eval', out, '--test-limit', '1000', '--backend', 'reference', '--json']);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const mode = (lastJson(evaluated.stdout) as { mode: Metrics }).mode;
    assert.equal(mode.temperature, result.temperature);
    assert.equal(mode.ece, result.testEce);
    assert.equal(mode.uncalibrated?.ece, result.uncalibrated.testEce);

    // Calibrating again fits the same temperature (the same network, the same validation split).
    const again = await runCli([
      'calibrate',
      out,
      '--out',
      join(dir, 'again.ckpt'),
      '--backend',
      'reference',
      '--json',
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      loadCheckpoint(join(dir, 'again.ckpt')).meta.calibration?.mode.temperature,
      result.temperature,
    );
  });

  test('--no-calibrate keeps temperature 1; onebit calibrate fits it later, accuracy unchanged', async () => {
    const out = join(dir, 'plain');
    const trained = await runCli([...TRAIN, '--no-calibrate', '--out', out]);
    assert.equal(trained.code, 0, trained.stderr);
    const result = lastJson(trained.stdout) as {
      temperature: number;
      uncalibrated?: unknown;
      testAccuracy: number;
    };
    assert.equal(result.temperature, 1);
    assert.equal(result.uncalibrated, undefined);
    assert.equal(loadCheckpoint(join(out, 'checkpoint.ckpt')).meta.calibration, undefined);
    assert.equal(loadCheckpoint(join(out, 'checkpoint.ckpt')).meta.config.calibrate, false);

    const before = (
      lastJson((await runCli(['eval', out, '--test-limit', '1000', '--json'])).stdout) as {
        mode: Metrics;
      }
    ).mode;
    const calibrated = await runCli(['calibrate', out]);
    assert.equal(calibrated.code, 0, calibrated.stderr);
    assert.match(
      calibrated.stdout,
      /^mode: temperature [\d.]+; validation NLL [\d.]+ -> [\d.]+ \(6000 examples\)/,
    );
    const after = (
      lastJson((await runCli(['eval', out, '--test-limit', '1000', '--json'])).stdout) as {
        mode: Metrics;
      }
    ).mode;
    assert.equal(after.accuracy, before.accuracy);
    assert.equal(after.uncalibrated?.ece, before.ece);
    assert.ok(after.ece < before.ece);
  });

  test("an ensemble's temperature is fitted apart and used only for the samples and averaging it was fitted for", async () => {
    const out = join(dir, 'bayes');
    const trained = await runCli([...TRAIN, '--method', 'bayesbinn', '--out', out]);
    assert.equal(trained.code, 0, trained.stderr);
    const calibrated = await runCli(['calibrate', out, '--test-samples', '3', '--json']);
    assert.equal(calibrated.code, 0, calibrated.stderr);
    const ensemble = loadCheckpoint(join(out, 'checkpoint.ckpt')).meta.calibration?.ensemble;
    assert.ok(ensemble !== undefined);
    assert.deepEqual([ensemble.samples, ensemble.average, ensemble.examples], [3, 'logits', 6000]);
    const withThree = lastJson(
      (await runCli(['eval', out, '--test-samples', '3', '--test-limit', '500', '--json'])).stdout,
    ) as {
      ensemble: Metrics;
    };
    assert.equal(withThree.ensemble.temperature, ensemble.temperature);
    const withFour = lastJson(
      (await runCli(['eval', out, '--test-samples', '4', '--test-limit', '500', '--json'])).stdout,
    ) as {
      ensemble: Metrics;
    };
    assert.equal(withFour.ensemble.temperature, 1);

    // --average probabilities: fitted on the log of the averaged probabilities, stored as such.
    const other = join(dir, 'bayes-probabilities.ckpt');
    const averaged = await runCli([
      'calibrate',
      out,
      '--test-samples',
      '2',
      '--average',
      'probabilities',
      '--out',
      other,
    ]);
    assert.equal(averaged.code, 0, averaged.stderr);
    assert.deepEqual(
      [
        loadCheckpoint(other).meta.calibration?.ensemble?.average,
        loadCheckpoint(other).meta.calibration?.ensemble?.samples,
      ],
      ['probabilities', 2],
    );

    const refused = await runCli(['calibrate', join(dir, 'ste'), '--test-samples', '3']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--test-samples: expected 0 for ste/);
    const seedAlone = await runCli(['calibrate', out, '--seed', '3']);
    assert.match(seedAlone.stderr, /--seed: expected no --seed without --test-samples > 0/);
  });
});
