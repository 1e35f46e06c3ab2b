/** `onebit export <checkpoint> --format onebit|onnx|safetensors --out FILE`: a trained run for inference. */
import { Command } from 'commander';
import { createWasmBackend } from '../backend/wasm/index.js';
import { EXPORT_FORMATS, exportCheckpoint, type ExportFormat } from '../io/export-file.js';
import { parseChoice } from './options.js';

interface ExportFlags {
  format: ExportFormat;
  out?: string;
  json: boolean;
}

const EXTENSIONS: Record<ExportFormat, string> = {
  onebit: '.onebit',
  onnx: '.onnx',
  safetensors: '.safetensors',
};

export function exportCommand(): Command {
  return new Command('export')
    .description(
      'export a checkpoint: .onebit (bit-packed, for `onebit predict` and the engine), ONNX, or safetensors',
    )
    .argument('<checkpoint>', 'a checkpoint file written by onebit train')
    .option(
      '--format <format>',
      `${EXPORT_FORMATS.join(', ')}`,
      parseChoice('--format', EXPORT_FORMATS),
      'onebit',
    )
    .option('--out <file>', 'output file (default: the checkpoint path with the format extension)')
    .option('--json', 'print one JSON object', false)
    .action(async (path: string, flags: ExportFlags) => {
      const out = flags.out ?? path.replace(/\.[^./]*$/, '') + EXTENSIONS[flags.format];
      // The float32 wasm backend rebuilds the model: the one `onebit eval` uses, so the folded thresholds
      // reproduce its arithmetic.
      const backend = await createWasmBackend({ threads: 1 });
      try {
        const result = exportCheckpoint(path, flags.format, out, backend);
        const ratio = result.float32WeightBytes / result.bytes;
        const sizeNote =
          flags.format === 'onebit'
            ? `; the binary weights alone take ${result.float32WeightBytes} bytes as float32: ${ratio.toFixed(1)}x smaller`
            : '';
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({ type: 'export', format: flags.format, out, bytes: result.bytes, float32WeightBytes: result.float32WeightBytes, compression: ratio })}\n`,
          );
        } else {
          process.stdout.write(`wrote ${out} (${flags.format}, ${result.bytes} bytes${sizeNote})\n`);
        }
      } finally {
        backend.dispose();
      }
    });
}
