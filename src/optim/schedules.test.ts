import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  constantSchedule,
  cosineSchedule,
  perIteration,
  scheduleFromConfig,
  warmupCosineSchedule,
  type ScheduleConfig,
} from './schedules.js';

function close(actual: number, expected: number, what: string, tol = 1e-15): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected}`);
}

test('constant schedule', () => {
  const s = constantSchedule(0.01);
  for (const step of [0, 1, 1000]) assert.equal(s(step), 0.01);
});

test('cosine schedule (CosineAnnealingLR closed form) at known points', () => {
  const s = cosineSchedule({ lr: 0.1, totalSteps: 100, minLr: 0.001 });
  close(s(0), 0.1, 'start: cos 0 = 1, so lr');
  // quarter: minLr + (lr - minLr) * (1 + cos(pi/4)) / 2 = 0.001 + 0.099 * (1 + 0.70710678...) / 2
  close(s(25), 0.001 + (0.099 * (1 + Math.SQRT1_2)) / 2, 'quarter');
  // = 0.001 + 0.099 * 0.85355339059... = 0.001 + 0.08450178566... = 0.08550178566...
  close(s(25), 0.08550178566873, 'quarter (value)', 1e-13);
  close(s(50), 0.0505, 'middle: cos(pi/2) = 0, so (lr + minLr) / 2');
  close(s(100), 0.001, 'end: cos(pi) = -1, so minLr');
  close(s(250), 0.001, 'past the end it stays at minLr instead of rising again');
  close(cosineSchedule({ lr: 0.1, totalSteps: 100 })(100), 0, 'minLr defaults to 0');
});

test('warm-up cosine schedule (docs/methods.md#schedules, VISPA) at known points', () => {
  // VISPA shape: 5 warm-up epochs of 10 iterations (W = 50) in a 50-epoch run (T = 500), lr0 = 0.1.
  const s = warmupCosineSchedule({ lr: 0.1, warmupSteps: 50, totalSteps: 500 });
  close(s(0), 0, 'start: lr0 * 0 / W (VISPA really trains its first iteration at lr 0)');
  close(s(25), 0.05, 'half-way through warm-up: lr0 * 25 / 50');
  close(s(49), 0.098, 'last warm-up step: lr0 * 49 / 50');
  close(s(50), 0.1, 'warm-up end: cos(0) = 1, so lr0');
  close(s(275), 0.05, 'middle of the cosine: (275 - 50) / 450 = 1/2, cos(pi/2) = 0');
  // One step before the end: lr0 * (1 + cos(pi * 449/450)) / 2 = lr0 * sin^2(pi / 900) ~ 1.2184e-6
  close(s(499), 0.1 * Math.sin(Math.PI / 900) ** 2, 'step before the end', 1e-17);
  close(s(500), 0, 'end');

  const floored = warmupCosineSchedule({ lr: 0.1, warmupSteps: 50, totalSteps: 500, minLr: 0.002 });
  close(floored(25), 0.05, 'warm-up ignores minLr');
  close(floored(275), 0.051, 'middle: (lr + minLr) / 2');
  close(floored(500), 0.002, 'end: minLr');
});

test('perIteration: step = epoch * itersPerEpoch + iteration', () => {
  const s = warmupCosineSchedule({ lr: 0.1, warmupSteps: 50, totalSteps: 500 });
  const byEpoch = perIteration(s, 10);
  close(byEpoch(0, 0), 0, 'epoch 0, iteration 0');
  close(byEpoch(4, 9), 0.098, 'last iteration of warm-up epoch 4');
  close(byEpoch(5, 0), 0.1, 'first iteration after warm-up');
  assert.throws(() => byEpoch(1, 10), /iteration/);
});

test('scheduleFromConfig builds each kind and validates', () => {
  const cases: ScheduleConfig[] = [
    { kind: 'constant', lr: 0.3, totalSteps: 10 },
    { kind: 'cosine', lr: 0.3, totalSteps: 10, minLr: 0.01 },
    { kind: 'warmup-cosine', lr: 0.3, warmupSteps: 2, totalSteps: 10 },
  ];
  const direct = [
    constantSchedule(0.3),
    cosineSchedule({ lr: 0.3, totalSteps: 10, minLr: 0.01 }),
    warmupCosineSchedule({ lr: 0.3, warmupSteps: 2, totalSteps: 10 }),
  ];
  cases.forEach((c, i) => {
    const s = scheduleFromConfig(c);
    for (let step = 0; step <= 12; step++) assert.equal(s(step), direct[i]!(step), `${c.kind} at ${step}`);
  });
  // Without warmupSteps, 'warmup-cosine' is the plain cosine.
  const noWarm = scheduleFromConfig({ kind: 'warmup-cosine', lr: 0.3, totalSteps: 10 });
  assert.equal(noWarm(5), cosineSchedule({ lr: 0.3, totalSteps: 10 })(5));

  assert.throws(
    () => scheduleFromConfig({ kind: 'warmup-cosine', lr: 0.1, warmupSteps: 10, totalSteps: 10 }),
    /warmupSteps/,
  );
  assert.throws(
    () => scheduleFromConfig({ kind: 'cosine', lr: 0.1, warmupSteps: 3, totalSteps: 10 }),
    /warm/,
  );
  assert.throws(() => scheduleFromConfig({ kind: 'cosine', lr: 0.1, totalSteps: 0 }), /totalSteps/);
  assert.throws(() => scheduleFromConfig({ kind: 'constant', lr: -1, totalSteps: 5 }), /lr/);
  assert.throws(
    () => scheduleFromConfig({ kind: 'step' as ScheduleConfig['kind'], lr: 0.1, totalSteps: 5 }),
    /unknown schedule kind 'step'/,
  );
  assert.throws(() => constantSchedule(0.1)(-1), /step/);
});
