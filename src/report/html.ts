/**
 * The report page: one self-contained HTML file (styles inline, charts as inline SVG, no script, nothing
 * fetched) comparing one or more training runs: learning curves, learning-rate schedule, flip ratios,
 * reliability diagram, confusion matrices and per-class accuracy, the model summary and the settings.
 */
import { summarizeModel } from '../train/summary.js';
import { reportCharts } from './charts.js';
import { renderSvg } from './render.js';
import type { RunData } from './run-data.js';

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const head = `<tr>${header.map((h) => `<th>${escape(h)}</th>`).join('')}</tr>`;
  const body = rows
    .map(
      (r) =>
        `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${escape(c)}</th>` : `<td>${escape(c)}</td>`)).join('')}</tr>`,
    )
    .join('\n');
  return `<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

const count = (n: number): string => n.toLocaleString('en-US');

function runsTable(runs: readonly RunData[]): string {
  return table(
    ['run', 'method', 'model', 'epochs', 'test accuracy', 'test NLL', 'test ECE', 'temperature'],
    runs.map((r) => [
      r.name,
      String(r.config.method ?? '?'),
      String(r.config.model ?? 'spec'),
      String(r.epochs.length),
      r.test === null ? '–' : r.test.accuracy.toFixed(4),
      r.test === null ? '–' : r.test.nll.toFixed(4),
      r.test === null ? '–' : r.test.ece.toFixed(4),
      r.test === null ? '–' : r.test.temperature.toFixed(4),
    ]),
  );
}

function summaryTable(runs: readonly RunData[]): string {
  const rows = runs.flatMap((r) => {
    if (r.spec === null) return [];
    const s = summarizeModel(r.spec);
    return [
      [
        r.name,
        count(s.totals.binaryParameters),
        count(s.totals.realParameters),
        `${(s.memoryBytes / 1024).toFixed(1)} KiB`,
        `${s.compressionRatio.toFixed(1)}x`,
        count(s.totals.binaryBinaryMacs),
        count(s.totals.binaryRealMacs),
        count(s.totals.realMacs),
      ],
    ];
  });
  if (rows.length === 0) return '<p class="note">No model spec in the runs’ settings.</p>';
  return table(
    [
      'run',
      'binary weights',
      'real parameters',
      'memory (deployed)',
      'vs float32',
      'MACs 1-bit x 1-bit',
      'MACs 1-bit x real',
      'MACs real',
    ],
    rows,
  );
}

function flatten(prefix: string, value: unknown, into: Map<string, string>): void {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(prefix === '' ? k : `${prefix}.${k}`, v, into);
  } else {
    into.set(prefix, value === null ? 'null' : typeof value === 'string' ? value : JSON.stringify(value));
  }
}

/** Every setting of every run (the spec as its own row per run); settings that differ come first. */
function configTable(runs: readonly RunData[]): string {
  const flat = runs.map((r) => {
    const map = new Map<string, string>();
    const { spec, ...rest } = r.config;
    flatten('', rest, map);
    if (spec !== undefined) map.set('spec', JSON.stringify(spec));
    return map;
  });
  const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))];
  const differs = (k: string): boolean => new Set(flat.map((m) => m.get(k) ?? '–')).size > 1;
  keys.sort((a, b) => Number(differs(b)) - Number(differs(a)));
  return table(
    ['setting', ...runs.map((r) => r.name)],
    keys.map((k) => [k, ...flat.map((m) => m.get(k) ?? '–')]),
  );
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .3rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
p.caption, p.note { color: #555; margin: .2rem 0 .6rem; }
figure { margin: 0; overflow-x: auto; }
table { border-collapse: collapse; margin: .5rem 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td { font-variant-numeric: tabular-nums; max-width: 40rem; overflow-wrap: anywhere; }
thead th { background: #f4f4f4; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 0 1.5rem; }
`;

export interface ReportOptions {
  /** When the report was made, shown under the title (the CLI passes the time). */
  readonly generated: string;
}

/** The report of the runs, as one HTML document. */
export async function buildReport(runs: readonly RunData[], options: ReportOptions): Promise<string> {
  const charts = reportCharts(runs);
  const figures = await Promise.all(charts.map((c) => renderSvg(c.spec)));
  const sections = charts
    .map(
      (c, i) =>
        `<section id="${escape(c.id)}" class="chart">\n<h2>${escape(c.title)}</h2>\n<p class="caption">${escape(c.caption)}</p>\n<figure>${figures[i]}</figure>\n</section>`,
    )
    .join('\n');
  const missing: string[] = [];
  if (runs.some((r) => r.steps.length === 0))
    missing.push('per-step learning curves and the learning-rate schedule');
  if (runs.some((r) => r.flips.length === 0)) missing.push('flip ratios');
  if (runs.some((r) => r.test === null))
    missing.push('test-set reliability, confusion matrix and per-class accuracy');
  const note =
    missing.length === 0
      ? ''
      : `<p class="note">Some runs lack ${escape(missing.join('; '))}: they were trained by an onebit that did not record them, or stopped before the end.</p>`;
  const title = `onebit report: ${runs.map((r) => r.name).join(', ')}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escape(title)}</h1>
<p class="note">Made ${escape(options.generated)} by onebit report from ${runs.map((r) => `<code>${escape(r.dir)}</code>`).join(', ')}.</p>
<h2>Runs</h2>
${runsTable(runs)}
${note}
<div class="charts">
${sections}
</div>
<h2>Model</h2>
<p class="caption">Parameters, deployed memory (1 bit per binary weight, 32 per real value) and multiply-accumulates per example, by precision.</p>
${summaryTable(runs)}
<h2>Settings</h2>
<p class="caption">Every setting of each run, as its checkpoint records it; those that differ between the runs first.</p>
${configTable(runs)}
</body>
</html>
`;
}
