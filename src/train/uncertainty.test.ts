import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { auroc, selectivePrediction } from './uncertainty.js';

describe('selective prediction', () => {
  test('hand-worked: ten examples, the two errors among the least confident', () => {
    // Confidence order (highest first): examples 0..9; errors at ranks 7 and 9 (0-based 6 and 8).
    const confidence = [0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55];
    const correct = [1, 1, 1, 1, 1, 1, 0, 1, 0, 1];
    const s = selectivePrediction(confidence, correct);
    // 50%: the top 5, all right. 80%: top 8, one error (rank 7). 90%: top 9, two errors. 95%: ceil(9.5) = 10.
    assert.deepEqual(s.accuracyAtCoverage, { '0.5': 1, '0.8': 7 / 8, '0.9': 7 / 9, '0.95': 8 / 10 });
    // acc(top k) for k = 1..10: 1 x6, 6/7, 7/8, 7/9, 8/10.
    const expected = (6 + 6 / 7 + 7 / 8 + 7 / 9 + 8 / 10) / 10;
    assert.ok(Math.abs(s.auc - expected) < 1e-15);
  });

  test('a ranking that puts every error last has AUC 1 down to the errors; ties keep example order', () => {
    const perfect = selectivePrediction([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 0]);
    assert.equal(perfect.accuracyAtCoverage['0.5'], 1);
    assert.ok(Math.abs(perfect.auc - (1 + 1 + 2 / 3 + 2 / 4) / 4) < 1e-15);
    // All tied: the order of the examples decides, first ones kept.
    const tied = selectivePrediction([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]);
    assert.equal(tied.accuracyAtCoverage['0.5'], 0.5);
    assert.throws(() => selectivePrediction([], []), RangeError);
  });
});

describe('AUROC', () => {
  test('hand-worked pairs: perfect, reversed, chance and ties', () => {
    assert.equal(auroc([0.1, 0.2], [0.8, 0.9]), 1);
    assert.equal(auroc([0.8, 0.9], [0.1, 0.2]), 0);
    // inside {1, 3}, outside {2, 4}: pairs (out > in): 2>1, 4>1, 4>3 = 3 of 4.
    assert.equal(auroc([1, 3], [2, 4]), 0.75);
    // A tie counts one half: inside {1, 2}, outside {2}: 2>1 (1) + tie (0.5) = 1.5 of 2.
    assert.equal(auroc([1, 2], [2]), 0.75);
    assert.equal(auroc([5, 5, 5], [5, 5]), 0.5);
    assert.throws(() => auroc([], [1]), RangeError);
  });

  test('equals the pairwise count on random scores', () => {
    let seed = 1;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const inside = Array.from({ length: 60 }, () => Math.round(next() * 20));
    const outside = Array.from({ length: 40 }, () => Math.round(next() * 20 + 4));
    let pairs = 0;
    for (const o of outside) for (const i of inside) pairs += o > i ? 1 : o === i ? 0.5 : 0;
    assert.ok(Math.abs(auroc(inside, outside) - pairs / (60 * 40)) < 1e-15);
  });
});
