/**
 * `onebit report RUN_DIR... [--out report.html]`: one self-contained HTML file comparing training runs
 * (src/report/): learning curves, learning-rate schedule, flip ratios, reliability, confusion matrices,
 * per-class accuracy, the model summary and the settings. Written atomically.
 */
import { resolve } from 'node:path';
import { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { reportCharts } from '../report/charts.js';
import { buildReport } from '../report/html.js';
import { readRuns } from '../report/run-data.js';
import { outputPathError, prepareOutputFile } from './output-path.js';

interface ReportFlags {
  out: string;
  json: boolean;
}

export function reportCommand(): Command {
  return new Command('report')
    .description('write an HTML report (charts and tables) comparing one or more training runs')
    .argument('<run...>', 'run folders written by onebit train --out')
    .option('--out <file>', 'the HTML file to write', 'report.html')
    .option('--json', 'print one JSON object (the file, the runs, the charts drawn)', false)
    .action(async (dirs: string[], flags: ReportFlags) => {
      const out = resolve(prepareOutputFile('--out', flags.out));
      const runs = readRuns(dirs);
      const html = await buildReport(runs, { generated: new Date().toISOString() });
      try {
        writeFileAtomic(out, [new TextEncoder().encode(html)]);
      } catch (error) {
        throw outputPathError('--out', out, error);
      }
      const charts = reportCharts(runs).map((c) => c.id);
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({ type: 'report', out, runs: runs.map((r) => r.dir), charts })}\n`,
        );
      } else {
        process.stdout.write(`report of ${runs.length} run(s), ${charts.length} charts: ${out}\n`);
      }
    });
}
