/**
 * `onebit report` on real runs: what `onebit train` records for it (step lines, flip ratios checked against
 * the checkpoints themselves, test.json), and the HTML it writes: one SVG per chart, every chart the runs
 * have data for, no script and nothing fetched, the model summary and the settings.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { modelSpecByName } from '../src/nn/models.js';
import { summarizeModel } from '../src/train/summary.js';
import { chromium } from 'playwright-core';
import { lastJson, runCli } from './cli.js';

const DATA = [
  '--data',
  'synthetic-mnist',
  '--model',
  'mlp-100',
  '--train-limit',
  '3000',
  '--test-limit',
  '500',
  '--threads',
  '1',
];

type Line = Record<string, unknown>;

/** Debian's Chromium (scripts/setup.sh installs it); playwright-core drives it and downloads nothing. */
const CHROMIUM = '/usr/bin/chromium';
/** Screenshots the browser tests leave for people to look at (not checked in). */
const ARTIFACTS = join(import.meta.dirname, '..', 'test-artifacts');

function metrics(dir: string): Line[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
}

describe('onebit report', { timeout: 180_000 }, () => {
  let dir = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'onebit-report-'));
    // STE for one epoch (its checkpoint kept), then resumed to two; Bop for two.
    const ste = await runCli(['train', ...DATA, '--epochs', '1', '--out', join(dir, 'ste'), '--json']);
    assert.equal(ste.code, 0, ste.stderr);
    copyFileSync(join(dir, 'ste', 'checkpoint.ckpt'), join(dir, 'epoch1.ckpt'));
    const resumed = await runCli([
      'train',
      '--resume',
      join(dir, 'ste'),
      '--epochs',
      '2',
      '--threads',
      '1',
      '--json',
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const bop = await runCli([
      'train',
      ...DATA,
      '--method',
      'bop',
      '--epochs',
      '2',
      '--out',
      join(dir, 'bop'),
      '--json',
    ]);
    assert.equal(bop.code, 0, bop.stderr);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('train records step lines, flip ratios that match its checkpoints, and test.json', () => {
    const lines = metrics(join(dir, 'ste'));
    // Fewer than 50 steps per epoch: a step line after every step, numbered on across the resume.
    const steps = lines.filter((l) => l.type === 'step');
    const epochs = lines.filter((l) => l.type === 'epoch');
    assert.deepEqual(
      epochs.map((l) => l.epoch),
      [1, 2],
    );
    assert.deepEqual(
      steps.map((l) => l.step),
      Array.from({ length: Number(epochs[1].step) }, (_, i) => i + 1),
    );
    const flips = lines.filter((l) => l.type === 'flips');
    assert.deepEqual(
      flips.map((l) => l.epoch),
      [1, 2],
    );
    // Epoch 2's flips, recomputed from the deployed weights of the two checkpoints.
    const first = loadCheckpoint(join(dir, 'epoch1.ckpt'));
    const second = loadCheckpoint(join(dir, 'ste', 'checkpoint.ckpt'));
    const layers = flips[1].layers as Record<string, number>;
    assert.deepEqual(Object.keys(layers).sort(), ['fc1.weight', 'fc2.weight', 'fc3.weight']);
    for (const [name, ratio] of Object.entries(layers)) {
      const a = first.tensors.get(`model/${name}`) as Float32Array;
      const b = second.tensors.get(`model/${name}`) as Float32Array;
      let changed = 0;
      for (let i = 0; i < a.length; i++) if (a[i] < 0 !== b[i] < 0) changed++;
      assert.equal(ratio, changed / a.length, name);
    }
    const testFile = JSON.parse(readFileSync(join(dir, 'bop', 'test.json'), 'utf8')) as {
      accuracy: number;
      confusion: number[][];
      classes: { count: number }[];
    };
    assert.equal(
      testFile.confusion.flat().reduce((s, v) => s + v, 0),
      500,
    );
    const right = testFile.confusion.reduce((s, row, c) => s + row[c], 0);
    assert.equal(right / 500, testFile.accuracy);
    assert.equal(testFile.classes.length, 10);
  });

  test('the report: an SVG per chart, every chart, no script or remote resource, the summary and settings', async () => {
    const out = join(dir, 'report.html');
    const run = await runCli(['report', join(dir, 'ste'), join(dir, 'bop'), '--out', out, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const printed = lastJson(run.stdout) as { out: string; charts: string[] };
    assert.equal(printed.out, out);
    assert.deepEqual(printed.charts, [
      'epoch-loss',
      'epoch-accuracy',
      'step-loss',
      'step-accuracy',
      'learning-rate',
      'flips',
      'reliability',
      'confusion-1',
      'confusion-2',
      'per-class',
    ]);
    const html = readFileSync(out, 'utf8');
    assert.equal((html.match(/<svg/g) ?? []).length, printed.charts.length);
    for (const id of printed.charts)
      assert.match(
        html,
        new RegExp(
          `<section id="${id}" class="chart">\\s*<h2>[^<]+</h2>\\s*<p class="caption">[^<]+</p>\\s*<figure><svg`,
        ),
      );
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /(src|href)="https?:/i);
    assert.doesNotMatch(html, /url\(\s*['"]?https?:/i);
    // The runs table holds each run's test accuracy from its test.json.
    for (const name of ['ste', 'bop']) {
      const accuracy = (
        JSON.parse(readFileSync(join(dir, name, 'test.json'), 'utf8')) as { accuracy: number }
      ).accuracy;
      assert.match(
        html,
        new RegExp(
          `<th scope="row">${name}</th><td>${name}</td><td>mlp-100</td><td>2</td><td>${accuracy.toFixed(4)}</td>`,
        ),
      );
    }
    const summary = summarizeModel(modelSpecByName('mlp-100', {}));
    assert.match(html, new RegExp(`<td>${summary.totals.binaryParameters.toLocaleString('en-US')}</td>`));
    // Settings that differ come first: the method.
    assert.match(html, /<tbody>\n<tr><th scope="row">method<\/th><td>ste<\/td><td>bop<\/td><\/tr>/);
  });

  test('in Chromium the report renders every chart, with no console error and no request', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) problems.push(`request: ${r.url()}`);
      });
      await page.goto(`file://${join(dir, 'report.html')}`);
      // Every chart's SVG is laid out at a real size and holds drawn marks.
      const charts = await page.$$eval('section.chart', (sections) =>
        sections.map((s) => {
          const svg = s.querySelector('svg');
          const box = svg?.getBoundingClientRect();
          return {
            id: s.id,
            width: box?.width ?? 0,
            height: box?.height ?? 0,
            marks: svg?.querySelectorAll('path, rect, text').length ?? 0,
          };
        }),
      );
      assert.equal(charts.length, 10);
      for (const c of charts) {
        assert.ok(c.width > 200 && c.height > 150, `${c.id}: ${c.width} x ${c.height}`);
        assert.ok(c.marks > 10, `${c.id}: ${c.marks} marks`);
      }
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });

  test('refuses a folder that holds no run, naming it', async () => {
    const run = await runCli(['report', dir, '--out', join(dir, 'x.html')]);
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /RUN_DIR: expected a training run folder \(holding run\.json, written by onebit train --out\), got .*onebit-report-\w+, which has no run\.json/,
    );
  });
});
