import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SpecError } from '../errors.js';
import { expandSweep, flagArguments, jobId, runOrder } from './grid.js';
import { parseSweepSpec, type SweepFlagRules } from './spec.js';

const RULES: SweepFlagRules = {
  flags: {
    train: new Set(['method', 'seed', 'epochs', 'model', 'rank', 'lr', 'calibrate', 'no-calibrate']),
    continual: new Set(['method', 'seed', 'stream', 'tasks']),
  },
  evaluate: new Set(['test-samples']),
  reserved: new Set(['out', 'json', 'threads']),
};

describe('sweep spec', () => {
  test('lists are axes: every combination, the first axis slowest, fixed flags on every job', () => {
    const spec = parseSweepSpec(
      { grids: [{ command: 'train', flags: { method: ['ste', 'bop'], seed: [1, 2, 3], epochs: 2 } }] },
      RULES,
    );
    const jobs = expandSweep(spec);
    assert.deepEqual(
      jobs.map((j) => `${String(j.flags.method)}/${String(j.flags.seed)}/${String(j.flags.epochs)}`),
      ['ste/1/2', 'ste/2/2', 'ste/3/2', 'bop/1/2', 'bop/2/2', 'bop/3/2'],
    );
    // The seeds of one setting share its row; the label names only what varies, seed aside.
    assert.equal(new Set(jobs.map((j) => j.setting)).size, 2);
    assert.deepEqual([...new Set(jobs.map((j) => j.label))], ['train method=ste', 'train method=bop']);
  });

  test('a job id depends on the settings, not on how the spec orders or spells them', () => {
    const a = jobId('train', { method: 'ste', seed: 1, lr: 0.01 }, null);
    assert.equal(jobId('train', { lr: '0.01', seed: '1', method: 'ste' }, null), a);
    assert.match(a, /^[0-9a-f]{12}$/);
    assert.notEqual(jobId('train', { method: 'ste', seed: 2, lr: 0.01 }, null), a);
    assert.notEqual(jobId('continual', { method: 'ste', seed: 1, lr: 0.01 }, null), a);
    assert.notEqual(jobId('train', { method: 'ste', seed: 1, lr: 0.01 }, { 'test-samples': 4 }), a);
  });

  test('booleans become --flag and --no-flag', () => {
    assert.deepEqual(flagArguments({ calibrate: false, lr: 0.5, 'bn-affine': true }), [
      '--no-calibrate',
      '--lr',
      '0.5',
      '--bn-affine',
    ]);
  });

  test('run order goes seed by seed across grids, then spec order', () => {
    const spec = parseSweepSpec(
      {
        grids: [
          { command: 'train', flags: { seed: [1, 2], method: ['ste', 'bop'] } },
          { command: 'continual', flags: { seed: [1, 2], stream: 'split' } },
        ],
      },
      RULES,
    );
    const order = runOrder(expandSweep(spec)).map(
      (j) => `${j.command}:${String(j.flags.method ?? '')}:${String(j.flags.seed)}`,
    );
    assert.deepEqual(order, [
      'train:ste:1',
      'train:bop:1',
      'continual::1',
      'train:ste:2',
      'train:bop:2',
      'continual::2',
    ]);
  });

  test('refuses, naming the place: unknown flags, reserved flags, empty or repeated axes, eval on continual, one point twice', () => {
    const refuse = (json: unknown, where: RegExp): void => {
      assert.throws(
        () => expandSweep(parseSweepSpec(json, RULES, 'spec.json'), 'spec.json'),
        (e: unknown) =>
          e instanceof SpecError && where.test(e.message) && e.message.startsWith('spec.json: '),
      );
    };
    refuse(
      { grids: [{ command: 'train', flags: { metod: 'ste' } }] },
      /grids\[0\]\.flags\.metod: expected a flag of the command .* found --metod/,
    );
    refuse(
      { grids: [{ command: 'train', flags: { out: 'x' } }] },
      /flags\.out: expected a flag the sweep does not set itself/,
    );
    refuse({ grids: [{ command: 'train', flags: { seed: [] } }] }, /flags\.seed: expected a non-empty list/);
    refuse(
      { grids: [{ command: 'train', flags: { seed: [1, 1] } }] },
      /flags\.seed: expected distinct values/,
    );
    refuse(
      { grids: [{ command: 'train', flags: { seed: [{}] } }] },
      /flags\.seed\[0\]: expected a string, number or boolean, found an object/,
    );
    refuse(
      { grids: [{ command: 'continual', flags: {}, eval: { 'test-samples': 2 } }] },
      /grids\[0\]\.eval: expected no "eval" on a continual grid/,
    );
    refuse(
      { grids: [{ command: 'train', flags: {}, eval: { 'test-samples': [2, 4] } }] },
      /eval\.test-samples: expected one value/,
    );
    refuse(
      { grids: [{ command: 'fit', flags: {} }] },
      /grids\[0\]\.command: expected train or continual, found string "fit"/,
    );
    refuse({ grids: [] }, /grids: expected a non-empty list of grids/);
    refuse(
      { grids: [{ command: 'train', flags: {}, extra: 1 }] },
      /grids\[0\]\.extra: expected only "command", "flags" and "eval"/,
    );
    refuse(
      {
        grids: [
          { command: 'train', flags: { seed: [1, 2] } },
          { command: 'train', flags: { seed: 2 } },
        ],
      },
      /grids\[1\] point 1: expected settings no other grid point has, found the same settings as grids\[0\] point 2/,
    );
  });

  test('a single grid may stand alone at the top level', () => {
    const jobs = expandSweep(
      parseSweepSpec({ command: 'continual', flags: { stream: ['split', 'permuted'] } }, RULES),
    );
    assert.deepEqual(
      jobs.map((j) => j.label),
      ['continual stream=split', 'continual stream=permuted'],
    );
  });
});
