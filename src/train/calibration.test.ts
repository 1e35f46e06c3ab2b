import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Rng } from '../tensor/rng.js';
import { fitTemperature } from './calibration.js';

/** Mean NLL of softmax(s / T), written out directly (the reference for the solver's own sums). */
function meanNll(scores: number[], labels: number[], classes: number, temperature: number): number {
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = scores.slice(i * classes, (i + 1) * classes).map((s) => s / temperature);
    const max = Math.max(...row);
    const logSum = max + Math.log(row.reduce((a, s) => a + Math.exp(s - max), 0));
    total += logSum - row[labels[i]];
  }
  return total / labels.length;
}

describe('temperature scaling', () => {
  test('closed form: two classes, one margin d, a share q correct: sigmoid(d / T) = q', () => {
    // NLL(beta) = q log(1 + e^(-beta d)) + (1 - q) log(1 + e^(beta d)) is least where sigmoid(beta d) = q.
    const d = 3;
    for (const q of [0.6, 0.75, 0.9, 0.99]) {
      const n = 100;
      const correct = Math.round(q * n);
      const scores: number[] = [];
      const labels: number[] = [];
      for (let i = 0; i < n; i++) {
        scores.push(d, 0);
        labels.push(i < correct ? 0 : 1);
      }
      const fit = fitTemperature(scores, labels, n, 2);
      const share = correct / n;
      const expected = d / Math.log(share / (1 - share));
      assert.ok(
        Math.abs(fit.temperature - expected) < 1e-9 * expected,
        `q ${q}: ${fit.temperature} vs ${expected}`,
      );
      assert.ok(Math.abs(fit.nllBefore - meanNll(scores, labels, 2, 1)) < 1e-12);
      assert.ok(Math.abs(fit.nllAfter - meanNll(scores, labels, 2, fit.temperature)) < 1e-12);
      assert.equal(fit.atLimit, false);
    }
  });

  test('labels drawn from softmax(z / T0): the fit finds T0 (within sampling error)', () => {
    const rng = new Rng(7);
    const classes = 10;
    const n = 20000;
    for (const t0 of [0.5, 2, 4]) {
      const scores: number[] = [];
      const labels: number[] = [];
      for (let i = 0; i < n; i++) {
        const z = Array.from({ length: classes }, () => 3 * rng.normal());
        const p = z.map((s) => Math.exp(s / t0));
        const sum = p.reduce((a, b) => a + b, 0);
        let u = rng.uniform() * sum;
        let label = classes - 1;
        for (let c = 0; c < classes; c++) {
          u -= p[c];
          if (u < 0) {
            label = c;
            break;
          }
        }
        scores.push(...z);
        labels.push(label);
      }
      const fit = fitTemperature(scores, labels, n, classes);
      assert.ok(Math.abs(fit.temperature / t0 - 1) < 0.05, `T0 ${t0}: fitted ${fit.temperature}`);
      assert.ok(fit.nllAfter <= fit.nllBefore + 1e-12);
      // The optimum: a nudge either way is no better.
      for (const f of [0.98, 1.02]) {
        assert.ok(fit.nllAfter <= meanNll(scores, labels, classes, fit.temperature * f) + 1e-12);
      }
    }
  });

  test('separable data get a tiny T; uninformative scores stop at the top of the range, saying so', () => {
    // Separable: sharper is always better, until the loss is 0 to float precision.
    const sharp = fitTemperature([2, 0, 0, 2], [0, 1], 2, 2);
    assert.ok(sharp.temperature < 0.1, `T ${sharp.temperature}`);
    assert.ok(sharp.nllAfter < 1e-9);
    const useless = fitTemperature([0, 2, 2, 0], [0, 1], 2, 2);
    assert.equal(useless.atLimit, true);
    assert.ok(useless.temperature >= 1000 - 1e-9);
    assert.throws(() => fitTemperature([1, 2], [0], 2, 2), RangeError);
  });
});
