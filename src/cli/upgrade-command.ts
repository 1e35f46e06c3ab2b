/** `onebit upgrade CKPT [--out FILE]`: a version-1 checkpoint rewritten in the current format (train/upgrade.ts). */
import { Command } from 'commander';
import { createWasmBackend } from '../backend/wasm/index.js';
import { upgradeCheckpoint } from '../train/upgrade.js';

export function upgradeCommand(): Command {
  return new Command('upgrade')
    .description('rewrite a checkpoint of an older onebit in the current format (spec and deployed weights)')
    .argument('<checkpoint>', 'a checkpoint file')
    .option('--out <file>', 'where to write it (default: in place, atomically)')
    .option('--json', 'print one JSON object', false)
    .action(async (path: string, flags: { out?: string; json: boolean }) => {
      const out = flags.out ?? path;
      // The float32 wasm backend, as `onebit eval` and `onebit export` use.
      const backend = await createWasmBackend({ threads: 1 });
      try {
        const { upgraded } = upgradeCheckpoint(path, out, backend);
        if (flags.json) process.stdout.write(`${JSON.stringify({ type: 'upgrade', path, out, upgraded })}\n`);
        else process.stdout.write(upgraded ? `upgraded ${path} -> ${out}\n` : `${path} is already current\n`);
      } finally {
        backend.dispose();
      }
    });
}
