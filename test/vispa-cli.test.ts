/**
 * VISPA through the command line: the run settings `--method vispa` implies, a short training run, the
 * evaluation of the deterministic network next to one sample and an ensemble, and the summary's state bytes.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { lastJson, runCli } from './cli.js';
import { configFromFlags, type TrainFlags } from '../src/cli/train-command.js';
import { VISPA_RUN_DEFAULTS } from '../src/methods/vispa.js';
import { TRAIN_DEFAULTS } from '../src/train/config.js';

const BASE: TrainFlags = {
  data: 'fashion-mnist',
  model: 'mlp-2x2048',
  method: 'vispa',
  activations: 'real',
  epochs: 5,
  batchSize: 100,
  seed: 1,
  validation: 0.1,
  bnAffine: false,
  json: false,
  backend: 'reference',
};

describe('vispa run settings from flags', () => {
  test('absent flags take the VISPA recipe: SGD, warm-up cosine, channel scale, batch-norm recalibration', () => {
    const config = configFromFlags({ ...BASE, rank: 4 });
    assert.equal(config.learningRate, VISPA_RUN_DEFAULTS.learningRate);
    assert.equal(config.realLearningRate, VISPA_RUN_DEFAULTS.realLearningRate);
    assert.equal(config.realOptimizer, 'sgd');
    assert.equal(config.realWeightDecay, VISPA_RUN_DEFAULTS.realWeightDecay);
    assert.equal(config.schedule, 'warmup-cosine');
    assert.equal(config.warmupEpochs, 0.5); // min(5, 5 / 10)
    assert.equal(config.channelScale, true);
    assert.equal(config.recalibrateBatchNorm, true);
    // No decay on m and Z unless asked (VISPA_DEFAULTS.weightDecay = 0): --weight-decay is the real params'.
    assert.deepEqual(config.methodOptions, { rank: 4 });
  });

  test('given flags win; other methods keep the run defaults', () => {
    const config = configFromFlags({
      ...BASE,
      lr: 0.5,
      realOptimizer: 'adam',
      weightDecay: 1e-5,
      schedule: 'cosine',
      channelScale: false,
      recalibrateBn: false,
      rank: 0,
      vispaScale: 25,
      momentum: 0.8,
      vispaWeightDecay: 2e-6,
    });
    assert.equal(config.learningRate, 0.5);
    assert.equal(config.realLearningRate, VISPA_RUN_DEFAULTS.realLearningRate);
    assert.equal(config.realOptimizer, 'adam');
    assert.equal(config.schedule, 'cosine');
    assert.equal(config.warmupEpochs, 0, 'no warm-up default for a schedule without one');
    assert.equal(config.channelScale, undefined);
    assert.equal(config.recalibrateBatchNorm, undefined);
    assert.equal(config.realWeightDecay, 1e-5);
    assert.deepEqual(config.methodOptions, { rank: 0, scale: 25, momentum: 0.8, weightDecay: 2e-6 });
    const ste = configFromFlags({ ...BASE, method: 'ste' });
    assert.equal(ste.realOptimizer, TRAIN_DEFAULTS.realOptimizer);
    assert.equal(ste.schedule, TRAIN_DEFAULTS.schedule);
    assert.equal(ste.realWeightDecay, TRAIN_DEFAULTS.realWeightDecay);
    assert.equal(ste.channelScale, undefined);
    assert.equal(ste.recalibrateBatchNorm, undefined);
    assert.deepEqual(ste.methodOptions, {});
  });
});

describe('vispa on the command line (synthetic data, reference backend)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onebit-vispa-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('train, then eval reports mode, one sample and the ensemble; summary gives 8 (1 + K) bytes', async () => {
    const out = join(dir, 'run');
    const trained = await runCli([
      'train',
      '--data',
      'synthetic-mnist',
      '--model',
      'mlp-100',
      '--method',
      'vispa',
      '--rank',
      '2',
      '--epochs',
      '2',
      '--batch-size',
      '100',
      '--backend',
      'reference',
      '--out',
      out,
      '--json',
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const result = lastJson(trained.stdout);
    assert.equal(result.type, 'result');
    assert.equal(typeof result.testAccuracy, 'number');
    const checkpoint = join(out, 'checkpoint.ckpt');

    const evaluated = await runCli([
      'eval',
      checkpoint,
      '--test-samples',
      '3',
      '--backend',
      'reference',
      '--json',
    ]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const report = lastJson(evaluated.stdout) as {
      method: string;
      mode: { accuracy: number; count: number };
      sample?: { accuracy: number };
      ensemble?: { accuracy: number; samples: number };
      samplesRecalibrated?: boolean;
    };
    assert.equal(report.method, 'vispa');
    assert.equal(report.mode.count, 500);
    // The training run's final testAccuracy is this same deterministic network, sign(m).
    assert.equal(report.mode.accuracy, result.testAccuracy);
    assert.ok(report.sample !== undefined, 'one sampled network');
    assert.ok(report.ensemble !== undefined && report.ensemble.samples === 3, 'ensemble of 3');
    // The run recalibrated batch norm for sign(m) (the vispa default), so each sample gets its own statistics.
    assert.equal(report.samplesRecalibrated, true);

    const summary = await runCli(['summary', checkpoint, '--json']);
    assert.equal(summary.code, 0, summary.stderr);
    const s = lastJson(summary.stdout) as { stateBytesPerBinaryWeight: number; layers: { name: string }[] };
    assert.equal(s.stateBytesPerBinaryWeight, 24); // m, Z (K = 2) and their momentum: 2 * 4 * (1 + 2)
    assert.ok(
      s.layers.some((l) => l.name === 'scale1'),
      'the per-channel scale of the run',
    );
  });
});
