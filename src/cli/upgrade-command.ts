/** `onebit upgrade CKPT [--out FILE]`: a version-1 checkpoint rewritten in the current format (train/upgrade.ts). */
import { Command } from 'commander';
import { createWasmBackend } from '../backend/wasm/index.js';
import { upgradeCheckpoint } from '../train/upgrade.js';
import { CHECKPOINT_FILE } from '../train/trainer.js';
import { checkpointArgument } from './file-kind.js';
import { outputPathError, prepareOutputFile } from './output-path.js';

export function upgradeCommand(): Command {
  return new Command('upgrade')
    .description('rewrite a checkpoint of an older onebit in the current format (spec and deployed weights)')
    .argument('<checkpoint>', `a checkpoint file, or a run folder (for ${CHECKPOINT_FILE} in it)`)
    .option('--out <file>', 'where to write it (default: in place, atomically)')
    .option('--json', 'print one JSON object', false)
    .action(async (given: string, flags: { out?: string; json: boolean }) => {
      const path = checkpointArgument(given, 'upgrade');
      const out = flags.out ?? path;
      if (flags.out !== undefined) prepareOutputFile('--out', out);
      // The float32 wasm backend, as `onebit eval` and `onebit export` use.
      const backend = await createWasmBackend({ threads: 1 });
      try {
        let upgraded: boolean;
        try {
          ({ upgraded } = upgradeCheckpoint(path, out, backend));
        } catch (error) {
          // The checkpoint's faults are typed already; a file-system error here is one of writing the output.
          throw outputPathError(flags.out === undefined ? '<checkpoint>' : '--out', out, error);
        }
        if (flags.json) process.stdout.write(`${JSON.stringify({ type: 'upgrade', path, out, upgraded })}\n`);
        else process.stdout.write(upgraded ? `upgraded ${path} -> ${out}\n` : `${path} is already current\n`);
      } finally {
        backend.dispose();
      }
    });
}
