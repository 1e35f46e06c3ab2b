import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { expandSweep } from './grid.js';
import {
  resultsTable,
  statistic,
  tableCsv,
  tableMarkdown,
  type JobMetrics,
  type JobRecord,
} from './results-table.js';
import { parseSweepSpec } from './spec.js';

const NONE: JobMetrics = {
  accuracy: null,
  nll: null,
  ece: null,
  ensembleAccuracy: null,
  ensembleNll: null,
  averageAccuracy: null,
  forgetting: null,
  samplesPerSecond: null,
};

describe('sweep results table', () => {
  test('statistic: mean and sample standard deviation, worked by hand', () => {
    // 0.8, 0.9, 1.0: mean 0.9; squared deviations 0.01 + 0 + 0.01 over n - 1 = 2 gives 0.01, std 0.1.
    const s = statistic([0.8, 0.9, 1.0]);
    assert.ok(Math.abs(s.mean - 0.9) < 1e-12);
    assert.ok(Math.abs(s.std - 0.1) < 1e-12);
    assert.equal(s.count, 3);
    assert.deepEqual(statistic([0.5]), { mean: 0.5, std: 0, count: 1 });
  });

  test('one row per setting over its seeds, counting finished and failed jobs; Markdown and CSV', () => {
    const rules = {
      flags: { train: new Set(['method', 'seed']), continual: new Set(['seed', 'stream']) },
      evaluate: new Set<string>(),
      reserved: new Set<string>(),
    };
    const jobs = expandSweep(
      parseSweepSpec(
        {
          grids: [
            { command: 'train', flags: { method: ['ste', 'bop'], seed: [1, 2] } },
            { command: 'continual', flags: { stream: 'split', seed: [1, 2] } },
          ],
        },
        rules,
      ),
    );
    const [ste1, ste2, bop1, bop2, cl1] = jobs;
    const records = new Map<string, JobRecord>([
      [
        ste1.id,
        {
          id: ste1.id,
          status: 'finished',
          metrics: { ...NONE, accuracy: 0.8, nll: 0.5, samplesPerSecond: 100 },
          error: null,
        },
      ],
      [
        ste2.id,
        {
          id: ste2.id,
          status: 'finished',
          metrics: { ...NONE, accuracy: 0.9, nll: 0.3, samplesPerSecond: 300 },
          error: null,
        },
      ],
      [bop1.id, { id: bop1.id, status: 'failed', metrics: null, error: 'diverged' }],
      [
        cl1.id,
        {
          id: cl1.id,
          status: 'finished',
          metrics: { ...NONE, averageAccuracy: 0.7, forgetting: 0.1 },
          error: null,
        },
      ],
    ]);
    void bop2;
    const rows = resultsTable(jobs, records);
    assert.deepEqual(
      rows.map((r) => [r.label, r.jobs, r.finished, r.failed]),
      [
        ['train method=ste', 2, 2, 0],
        ['train method=bop', 2, 0, 1],
        ['continual', 2, 1, 0],
      ],
    );
    assert.ok(Math.abs((rows[0].metrics.accuracy?.mean ?? 0) - 0.85) < 1e-12);
    assert.deepEqual(rows[1].errors, { [bop1.id]: 'diverged' });
    const markdown = tableMarkdown(rows).split('\n');
    // Columns only for metrics some row measured.
    assert.equal(
      markdown[0],
      '| Setting | Seeds finished | Accuracy | NLL | Continual avg. accuracy | Forgetting | Samples/s |',
    );
    assert.equal(
      markdown[2],
      '| train method=ste | 2/2 | 0.8500 ± 0.0707 | 0.4000 ± 0.1414 | – | – | 200 ± 141 |',
    );
    assert.equal(markdown[3], '| train method=bop | 0/2 (1 failed) | – | – | – | – | – |');
    assert.equal(markdown[4], '| continual | 1/2 | – | – | 0.7000 | 0.1000 | – |');
    const csv = tableCsv(rows).split('\n');
    assert.equal(
      csv[0],
      'setting,jobs,finished,failed,accuracy_mean,accuracy_std,nll_mean,nll_std,averageAccuracy_mean,averageAccuracy_std,forgetting_mean,forgetting_std,samplesPerSecond_mean,samplesPerSecond_std',
    );
    assert.equal(csv[3], 'continual,2,1,0,,,,,0.7,0,0.1,0,,');
  });
});
