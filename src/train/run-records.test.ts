import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Evaluation } from './evaluate.js';
import { flipRatios, stepRecorder, testReport, type StepRecord } from './run-records.js';

describe('run records', () => {
  test('step records: interval means every ceil(batches / 50) steps and at the end of the epoch', () => {
    const written: StepRecord[] = [];
    const record = stepRecorder((r) => written.push(r));
    // 120 batches: a record every 3 steps; batch b has loss b and b of its 10 examples right (b <= 10).
    for (let b = 1; b <= 120; b++) {
      record({
        epoch: 1,
        step: b,
        batch: b,
        batches: 120,
        batchLoss: b,
        examples: 10,
        correct: Math.min(b, 10),
        learningRate: 0.5,
      });
    }
    assert.equal(written.length, 40);
    // Steps 1-3: mean loss (1 + 2 + 3) / 3 = 2; accuracy (1 + 2 + 3) / 30 = 0.2.
    assert.deepEqual(written[0], {
      type: 'step',
      epoch: 1,
      step: 3,
      loss: 2,
      accuracy: 0.2,
      learningRate: 0.5,
    });
    assert.deepEqual(written[39], {
      type: 'step',
      epoch: 1,
      step: 120,
      loss: 119,
      accuracy: 1,
      learningRate: 0.5,
    });
    // 7 batches: every step; a last partial interval is flushed at the epoch's end.
    const short: StepRecord[] = [];
    const r2 = stepRecorder((r) => short.push(r));
    for (let b = 1; b <= 7; b++)
      r2({
        epoch: 2,
        step: 10 + b,
        batch: b,
        batches: 7,
        batchLoss: 1,
        examples: 4,
        correct: 2,
        learningRate: 0.1,
      });
    assert.equal(short.length, 7);
    const odd: StepRecord[] = [];
    const r3 = stepRecorder((r) => odd.push(r));
    for (let b = 1; b <= 101; b++)
      r3({
        epoch: 1,
        step: b,
        batch: b,
        batches: 101,
        batchLoss: b,
        examples: 1,
        correct: 1,
        learningRate: 1,
      });
    // 101 batches: every 3 steps (33 records to step 99), then the epoch's end flushes steps 100-101.
    assert.equal(odd.length, 34);
    assert.deepEqual(odd[33], {
      type: 'step',
      epoch: 1,
      step: 101,
      loss: 100.5,
      accuracy: 1,
      learningRate: 1,
    });
  });

  test('flip ratios: the fraction of sign changes per layer, worked by hand', () => {
    const before = [
      { name: 'fc1.weight', negative: Uint8Array.from([0, 0, 1, 1]) },
      { name: 'fc2.weight', negative: Uint8Array.from([1, 0]) },
    ];
    const after = [
      { name: 'fc1.weight', negative: Uint8Array.from([1, 0, 1, 0]) },
      { name: 'fc2.weight', negative: Uint8Array.from([1, 0]) },
    ];
    assert.deepEqual(flipRatios(before, after), { 'fc1.weight': 0.5, 'fc2.weight': 0 });
    assert.throws(() => flipRatios(before.slice(1), after), /fc1\.weight has no earlier snapshot/);
  });

  test('test report: confusion matrix from the largest score, per-class accuracy, reliability at both temperatures', () => {
    // Three classes, four examples: labels 0, 0, 1, 2; predicted 0, 1, 1, 1.
    const values = Float64Array.from([3, 1, 0, 0, 2, 1, 0, 5, 1, 1, 2, 0]);
    const labels = Uint8Array.from([0, 0, 1, 2]);
    const bins = [{ lower: 0, upper: 1, confidence: 0.7, accuracy: 0.5, count: 4 }];
    const evaluation = {
      count: 4,
      accuracy: 0.5,
      nll: 1.2,
      ece: 0.2,
      meanEntropy: 0.9,
      bins,
      entropies: null,
      confidences: null,
      outcomes: null,
      predictions: null,
      temperature: 0.5,
      uncalibrated: { count: 4, accuracy: 0.5, nll: 1.4, ece: 0.3, meanEntropy: 0.8, bins: [] },
      scores: { values, labels },
    } satisfies Evaluation;
    const report = testReport(evaluation, ['a', 'b', 'c']);
    assert.deepEqual(report.confusion, [
      [1, 1, 0],
      [0, 1, 0],
      [0, 1, 0],
    ]);
    assert.deepEqual(
      report.classes.map((c) => [c.name, c.count, c.accuracy]),
      [
        ['a', 2, 0.5],
        ['b', 1, 1],
        ['c', 1, 0],
      ],
    );
    assert.deepEqual(report.reliability, { calibrated: bins, uncalibrated: [] });
    assert.equal(report.temperature, 0.5);
  });
});
