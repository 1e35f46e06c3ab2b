/**
 * The report's charts as Vega-Lite specs (a grammar of graphics: data, marks, encodings), one per figure,
 * each comparing every run given. render.ts draws them to SVG. A chart whose data no run has is left out
 * (and the report says why).
 */
import type { TopLevelSpec } from 'vega-lite';
import type { RunData } from './run-data.js';

export interface Chart {
  readonly id: string;
  readonly title: string;
  /** What the chart shows and how it was measured, under its title. */
  readonly caption: string;
  readonly spec: TopLevelSpec;
}

const WIDTH = 460;
const HEIGHT = 240;

type Row = Record<string, string | number>;

function lineChart(
  rows: Row[],
  x: { field: string; title: string },
  y: { field: string; title: string; log?: boolean },
  color: string,
  dash?: string,
): TopLevelSpec {
  return {
    width: WIDTH,
    height: HEIGHT,
    data: { values: rows },
    mark: { type: 'line', point: rows.length <= 60, strokeWidth: 1.5 },
    encoding: {
      x: { field: x.field, type: 'quantitative', title: x.title },
      y: {
        field: y.field,
        type: 'quantitative',
        title: y.title,
        scale: y.log === true ? { type: 'log' } : { zero: false },
      },
      color: { field: color, type: 'nominal', title: null },
      ...(dash !== undefined ? { strokeDash: { field: dash, type: 'nominal', title: null } } : {}),
    },
  };
}

/** Learning curves per step: mean training loss and accuracy over each recorded interval. */
function stepCharts(runs: readonly RunData[]): Chart[] {
  const rows = runs.flatMap((r) =>
    r.steps.map((s) => ({
      run: r.name,
      step: s.step,
      loss: s.loss,
      accuracy: s.accuracy,
      lr: s.learningRate,
    })),
  );
  if (rows.length === 0) return [];
  return [
    {
      id: 'step-loss',
      title: 'Training loss per step',
      caption: 'Mean loss over about 1/50 of an epoch at a time.',
      spec: lineChart(
        rows,
        { field: 'step', title: 'step' },
        { field: 'loss', title: 'training loss' },
        'run',
      ),
    },
    {
      id: 'step-accuracy',
      title: 'Training accuracy per step',
      caption:
        'Accuracy of the training batches over the same intervals (with the weights of each step, before its update).',
      spec: lineChart(
        rows,
        { field: 'step', title: 'step' },
        { field: 'accuracy', title: 'training accuracy' },
        'run',
      ),
    },
    {
      id: 'learning-rate',
      title: 'Learning-rate schedule',
      caption: "The method's learning rate at each step.",
      spec: lineChart(rows, { field: 'step', title: 'step' }, { field: 'lr', title: 'learning rate' }, 'run'),
    },
  ];
}

/** Per epoch: training loss; training and validation accuracy. */
function epochCharts(runs: readonly RunData[]): Chart[] {
  const loss = runs.flatMap((r) => r.epochs.map((e) => ({ run: r.name, epoch: e.epoch, loss: e.trainLoss })));
  if (loss.length === 0) return [];
  const accuracy = runs.flatMap((r) =>
    r.epochs.flatMap((e) => [
      { run: r.name, epoch: e.epoch, split: 'training', accuracy: e.trainAccuracy },
      ...(e.validationAccuracy !== null
        ? [{ run: r.name, epoch: e.epoch, split: 'validation', accuracy: e.validationAccuracy }]
        : []),
    ]),
  );
  return [
    {
      id: 'epoch-loss',
      title: 'Training loss per epoch',
      caption: 'Mean training loss over each epoch.',
      spec: lineChart(
        loss,
        { field: 'epoch', title: 'epoch' },
        { field: 'loss', title: 'training loss' },
        'run',
      ),
    },
    {
      id: 'epoch-accuracy',
      title: 'Accuracy per epoch',
      caption:
        "Training accuracy over each epoch (solid) and the deployed network's accuracy on the validation split after it (dashed).",
      spec: lineChart(
        accuracy,
        { field: 'epoch', title: 'epoch' },
        { field: 'accuracy', title: 'accuracy' },
        'run',
        'split',
      ),
    },
  ];
}

/** The fraction of each binary layer's weights that changed sign in each epoch. */
function flipChart(runs: readonly RunData[]): Chart[] {
  const rows = runs.flatMap((r) =>
    r.flips.flatMap((f) =>
      Object.entries(f.layers)
        .filter(([, ratio]) => ratio > 0)
        .map(([layer, ratio]) => ({
          series: runs.length > 1 ? `${r.name}: ${layer}` : layer,
          epoch: f.epoch,
          ratio,
        })),
    ),
  );
  if (rows.length === 0) return [];
  return [
    {
      id: 'flips',
      title: 'Flip ratio per binary layer',
      caption:
        'Fraction of the layer’s binary weights whose sign changed during the epoch (epoch 1: against the initial weights), log scale.',
      spec: lineChart(
        rows,
        { field: 'epoch', title: 'epoch' },
        { field: 'ratio', title: 'weights flipped', log: true },
        'series',
      ),
    },
  ];
}

/** Confidence against accuracy per confidence bin, at the calibrated temperature and at temperature 1. */
function reliabilityChart(runs: readonly RunData[]): Chart[] {
  const rows = runs.flatMap((r) => {
    if (r.test === null) return [];
    const sets: [string, typeof r.test.reliability.calibrated][] = [
      [`T = ${r.test.temperature.toFixed(3)}`, r.test.reliability.calibrated],
    ];
    if (r.test.reliability.uncalibrated !== null) sets.push(['T = 1', r.test.reliability.uncalibrated]);
    return sets.flatMap(([which, bins]) =>
      bins
        .filter((b) => b.count > 0)
        .map((b) => ({
          series: runs.length > 1 ? `${r.name}, ${which}` : which,
          confidence: b.confidence,
          accuracy: b.accuracy,
          count: b.count,
        })),
    );
  });
  if (rows.length === 0) return [];
  return [
    {
      id: 'reliability',
      title: 'Reliability diagram (test set)',
      caption:
        'Mean confidence against accuracy in each of 15 confidence bins; the diagonal is perfect calibration. "T = 1" is before temperature scaling.',
      spec: {
        width: WIDTH,
        height: HEIGHT + 60,
        layer: [
          {
            data: {
              values: [
                { x: 0, y: 0 },
                { x: 1, y: 1 },
              ],
            },
            mark: { type: 'line', color: '#999', strokeDash: [4, 4] },
            encoding: {
              x: { field: 'x', type: 'quantitative', title: 'confidence', scale: { domain: [0, 1] } },
              y: { field: 'y', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1] } },
            },
          },
          {
            data: { values: rows },
            mark: { type: 'line', point: true },
            encoding: {
              x: { field: 'confidence', type: 'quantitative' },
              y: { field: 'accuracy', type: 'quantitative' },
              color: { field: 'series', type: 'nominal', title: null },
            },
          },
        ],
      },
    },
  ];
}

/** Per run: the test set's confusion matrix; and every run's per-class accuracy side by side. */
function classCharts(runs: readonly RunData[]): Chart[] {
  const tested = runs.filter((r) => r.test !== null);
  const charts: Chart[] = [];
  for (const r of tested) {
    const test = r.test;
    if (test === null) continue;
    const rows = test.confusion.flatMap((row, t) =>
      row.map((count, p) => ({
        true: test.classes[t]?.name ?? String(t),
        predicted: test.classes[p]?.name ?? String(p),
        count,
      })),
    );
    const order = test.classes.map((c) => c.name);
    charts.push({
      id: `confusion-${charts.length + 1}`,
      title: `Confusion matrix: ${r.name}`,
      caption: `Test examples of each true class (rows) by predicted class (columns); ${test.count} examples, accuracy ${test.accuracy.toFixed(4)}.`,
      spec: {
        width: 300,
        height: 300,
        data: { values: rows },
        encoding: {
          x: { field: 'predicted', type: 'ordinal', sort: order, title: 'predicted class' },
          y: { field: 'true', type: 'ordinal', sort: order, title: 'true class' },
        },
        layer: [
          {
            mark: 'rect',
            encoding: {
              color: { field: 'count', type: 'quantitative', scale: { scheme: 'blues' }, title: 'examples' },
            },
          },
          {
            mark: { type: 'text', fontSize: 9 },
            encoding: { text: { field: 'count', type: 'quantitative' } },
          },
        ],
      },
    });
  }
  const perClass = tested.flatMap((r) =>
    (r.test?.classes ?? []).map((c) => ({
      run: r.name,
      class: c.name,
      accuracy: c.accuracy,
      count: c.count,
    })),
  );
  if (perClass.length > 0) {
    charts.push({
      id: 'per-class',
      title: 'Per-class test accuracy',
      caption: 'The fraction of each class’s test examples classified right.',
      spec: {
        width: WIDTH,
        height: HEIGHT,
        data: { values: perClass },
        mark: 'bar',
        encoding: {
          x: {
            field: 'class',
            type: 'ordinal',
            sort: tested[0]?.test?.classes.map((c) => c.name) ?? [],
            title: 'class',
          },
          xOffset: { field: 'run' },
          y: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, title: 'test accuracy' },
          color: { field: 'run', type: 'nominal', title: null },
        },
      },
    });
  }
  return charts;
}

/** Every chart the runs have data for, in the report's order. */
export function reportCharts(runs: readonly RunData[]): Chart[] {
  return [
    ...epochCharts(runs),
    ...stepCharts(runs),
    ...flipChart(runs),
    ...reliabilityChart(runs),
    ...classCharts(runs),
  ];
}
