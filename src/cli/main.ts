#!/usr/bin/env node
/**
 * The onebit command line. The only code in the project that prints, reads the environment or exits;
 * it turns flags into one typed config and hands it to the library.
 */
import { CommanderError } from 'commander';
import { OnebitError } from '../errors.js';
import { buildProgram } from './program.js';

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

// A sweep runs each job as a child of this CLI with an IPC channel (sweep/run-job.ts). When that parent
// dies, even by SIGKILL, the channel closes: the job stops too, so a retried job never shares its run
// folder with an orphan. Its checkpoints are written atomically, so stopping anywhere is safe. Unref'd,
// the channel does not keep a finished command alive.
if (process.channel !== undefined) {
  process.channel.unref();
  process.on('disconnect', () => process.exit(129));
}

await main(process.argv);
