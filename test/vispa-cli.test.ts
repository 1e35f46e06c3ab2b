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
import { TRAIN_DEFAULTS } from '../src/config/train-config.js';

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
      // Real-valued parameters for --real-optimizer and --weight-decay to train (no channel scale here).
      bnAffine: true,
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
    const rank = 2;
    const trained = await runCli([
      ...['train', '--data', 'synthetic-mnist', '--model', 'mlp-100', '--method', 'vispa'],
      ...['--rank', String(rank), '--epochs', '2', '--batch-size', '100', '--backend', 'reference'],
      ...['--out', out, '--json'],
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const result = lastJson(trained.stdout) as {
      type: string;
      testAccuracy: number;
      testNll: number;
      testEce: number;
    };
    assert.equal(result.type, 'result');
    // The synthetic classes are well separated Gaussian blobs: two epochs reach 1.0 (measured), chance is 0.1.
    assert.ok(result.testAccuracy >= 0.9, `test accuracy ${result.testAccuracy}`);
    const checkpoint = join(out, 'checkpoint.ckpt');

    const samples = 3;
    const evaluated = await runCli([
      'eval',
      checkpoint,
      '--test-samples',
      String(samples),
      '--backend',
      'reference',
      '--json',
    ]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    interface Metrics {
      accuracy: number;
      nll: number;
      ece: number;
      meanEntropy: number;
      count: number;
    }
    const report = lastJson(evaluated.stdout) as {
      method: string;
      mode: Metrics;
      sample?: Metrics;
      ensemble?: Metrics & { samples: number };
      samplesRecalibrated?: boolean;
    };
    assert.equal(report.method, 'vispa');
    // The training run's final test metrics are of this same deterministic network, sign(m).
    assert.deepEqual(
      [report.mode.accuracy, report.mode.nll, report.mode.ece],
      [result.testAccuracy, result.testNll, result.testEce],
    );
    assert.ok(report.sample !== undefined, 'one sampled network');
    // Sample against mode: they differ at least where one is right and the other wrong, at most where not both right.
    const d = (report.sample as Metrics & { disagreementWithMode: number }).disagreementWithMode;
    const [a, b] = [report.mode.accuracy, report.sample.accuracy];
    assert.ok(d >= Math.abs(a - b) - 1e-12 && d <= 1 - a + (1 - b) + 1e-12, `disagreement ${d}`);
    assert.ok(report.ensemble !== undefined, 'an ensemble');
    assert.equal(report.ensemble.samples, samples);
    for (const [name, m] of [
      ['mode', report.mode],
      ['sample', report.sample],
      ['ensemble', report.ensemble],
    ] as const) {
      assert.equal(m.count, 500, `${name}: every test example`);
      // Measured 1.0 for each; a sample from the learned distribution is about as good as its mode here.
      assert.ok(m.accuracy >= 0.9, `${name} accuracy ${m.accuracy}`);
      assert.ok(Number.isFinite(m.nll) && m.nll > 0, `${name} nll ${m.nll}`);
      assert.ok(m.ece >= 0 && m.ece <= 1, `${name} ece ${m.ece}`);
      assert.ok(m.meanEntropy >= 0 && m.meanEntropy <= Math.log(10), `${name} entropy ${m.meanEntropy}`);
    }
    // A drawn network is not the mode (rank-2 noise on every weight's probability changes its predictions'
    // confidence), and the ensemble is not just the one sample.
    assert.notEqual(report.sample.nll, report.mode.nll, 'the sample is a different network from the mode');
    assert.notEqual(report.ensemble.nll, report.sample.nll, 'the ensemble averages more than one sample');
    // The run recalibrated batch norm for sign(m) (the vispa default), so each sample gets its own statistics.
    assert.equal(report.samplesRecalibrated, true);

    const summary = await runCli(['summary', checkpoint, '--json']);
    assert.equal(summary.code, 0, summary.stderr);
    const s = lastJson(summary.stdout) as {
      method: string;
      stateBytesPerBinaryWeight: number;
      totals: { binaryParameters: number };
      layers: { name: string }[];
    };
    assert.equal(s.method, 'vispa');
    // m and Z (K columns) per weight, and the momentum of each, in float32: 2 * 4 * (1 + K).
    assert.equal(s.stateBytesPerBinaryWeight, 8 * (1 + rank));
    assert.equal(s.totals.binaryParameters, 784 * 100 + 100 * 100 + 100 * 10, 'mlp-100: 784-100-100-10');
    assert.ok(
      s.layers.some((l) => l.name === 'scale1'),
      'the per-channel scale of the run',
    );
  });
});
