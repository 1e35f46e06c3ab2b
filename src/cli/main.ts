#!/usr/bin/env node
/**
 * The onebit command line. The only code in the project that prints, reads the environment or exits;
 * it turns flags into one typed config and hands it to the library.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { OnebitError } from '../errors.js';
import { benchCommand } from './bench-command.js';
import { continualCommand } from './continual-command.js';
import { dataCommand } from './data-command.js';
import { demoCommand } from './demo-command.js';
import { evalCommand } from './eval-command.js';
import { exportCommand } from './export-command.js';
import { modelCommand } from './model-command.js';
import { upgradeCommand } from './upgrade-command.js';
import { predictCommand } from './predict-command.js';
import { summaryCommand } from './summary-command.js';
import { trainCommand } from './train-command.js';

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
    summaryCommand(),
    modelCommand(),
    demoCommand(),
    dataCommand(),
    continualCommand(),
    exportCommand(),
    upgradeCommand(),
    predictCommand(),
    benchCommand(),
  ]) {
    program.addCommand(command.exitOverride());
  }
  return program;
}

/** With `--json`, an error is also one JSON object on stdout, so a program reading stdout sees it. */
function reportJsonError(argv: readonly string[], code: string, message: string): void {
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed the usage error on stderr; help and --version end here with code 0.
      process.exitCode = error.exitCode;
      if (error.exitCode !== 0) reportJsonError(argv, 'usage', error.message.replace(/^error: /, ''));
      return;
    }
    const verbose = argv.includes('--verbose');
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`onebit: ${message}\n`);
    if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    reportJsonError(argv, error instanceof OnebitError ? error.code : 'internal', message);
    process.exitCode = 1;
  }
}

await main(process.argv);
