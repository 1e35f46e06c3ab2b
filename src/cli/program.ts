/**
 * The onebit program: every command and its flags, built once by the CLI's entry point (main.ts) and read
 * by the tests that check each flag takes effect.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { benchCommand } from './bench-command.js';
import { calibrateCommand } from './calibrate-command.js';
import { continualCommand } from './continual-command.js';
import { dataCommand } from './data-command.js';
import { demoCommand } from './demo-command.js';
import { evalCommand } from './eval-command.js';
import { exportCommand } from './export-command.js';
import { modelCommand } from './model-command.js';
import { upgradeCommand } from './upgrade-command.js';
import { predictCommand } from './predict-command.js';
import { reportCommand } from './report-command.js';
import { serveCommand } from './serve-command.js';
import { summaryCommand } from './summary-command.js';
import { sweepCommand } from './sweep-command.js';
import { trainCommand } from './train-command.js';
import { workerCommand } from './worker-command.js';

function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') {
    return pkg.version;
  }
  return 'unknown';
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('onebit')
    .description('Train binary neural networks and run them bit-packed in WebAssembly.')
    .version(packageVersion())
    .option('--verbose', 'show stack traces on errors')
    .showHelpAfterError();
  for (const command of [
    trainCommand(),
    evalCommand(),
    calibrateCommand(),
    summaryCommand(),
    modelCommand(),
    demoCommand(),
    dataCommand(),
    continualCommand(),
    exportCommand(),
    upgradeCommand(),
    predictCommand(),
    benchCommand(),
    reportCommand(),
    serveCommand(),
    sweepCommand(),
    workerCommand(),
  ]) {
    program.addCommand(command.exitOverride());
  }
  return program;
}
