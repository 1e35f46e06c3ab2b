/**
 * `onebit export <checkpoint> --format onebit|onnx|safetensors --out FILE`: a trained run for inference.
 * `--out` and `--format` must agree: an `--out` ending in one format's extension with another `--format` is
 * refused; without `--format` the extension of `--out` chooses it; an `--out` with no known extension is
 * written in `--format` (default onebit) as named.
 */
import { extname } from 'node:path';
import { Command } from 'commander';
import { createWasmBackend } from '../backend/wasm/index.js';
import { ConfigError } from '../errors.js';
import { EXPORT_FORMATS, exportCheckpoint, type ExportFormat } from '../io/export-file.js';
import { CHECKPOINT_FILE } from '../train/trainer.js';
import { checkpointArgument } from './file-kind.js';
import { checkNotInput } from './flag-checks.js';
import { outputPathError, prepareOutputFile } from './output-path.js';
import { parseChoice } from './options.js';

interface ExportFlags {
  format?: ExportFormat;
  out?: string;
  json: boolean;
}

const EXTENSIONS: Record<ExportFormat, string> = {
  onebit: '.onebit',
  onnx: '.onnx',
  safetensors: '.safetensors',
};

const DEFAULT_FORMAT: ExportFormat = 'onebit';

/** The format whose extension `path` ends in, if any (case-insensitive). */
function formatOfExtension(path: string): ExportFormat | null {
  const ext = extname(path).toLowerCase();
  return EXPORT_FORMATS.find((f) => EXTENSIONS[f] === ext) ?? null;
}

/** The format and output file of an export: `--out` and `--format` checked against each other. */
export function exportTarget(
  checkpoint: string,
  flags: { format?: ExportFormat; out?: string },
): { format: ExportFormat; out: string } {
  const byExtension = flags.out === undefined ? null : formatOfExtension(flags.out);
  if (flags.format !== undefined && byExtension !== null && byExtension !== flags.format) {
    throw new ConfigError(
      '--out',
      `a file name that agrees with --format ${flags.format} (${EXTENSIONS[flags.format]}), or --format ${byExtension}`,
      `"${flags.out}", whose extension ${extname(flags.out as string)} is that of --format ${byExtension}`,
    );
  }
  const format = flags.format ?? byExtension ?? DEFAULT_FORMAT;
  const out = flags.out ?? checkpoint.replace(/\.[^./\\]*$/, '') + EXTENSIONS[format];
  return { format, out };
}

export function exportCommand(): Command {
  return new Command('export')
    .description(
      'export a checkpoint: .onebit (bit-packed, for `onebit predict` and the engine), ONNX, or safetensors',
    )
    .argument(
      '<checkpoint>',
      `a checkpoint file written by onebit train, or its run folder (for ${CHECKPOINT_FILE} in it)`,
    )
    .option(
      '--format <format>',
      `${EXPORT_FORMATS.join(', ')} (default: from the extension of --out, else ${DEFAULT_FORMAT})`,
      parseChoice('--format', EXPORT_FORMATS),
    )
    .option(
      '--out <file>',
      'output file (default: the checkpoint path with the format extension); its extension must agree with --format',
    )
    .option('--json', 'print one JSON object', false)
    .action(async (given: string, flags: ExportFlags) => {
      const path = checkpointArgument(given, 'export');
      const { format, out } = exportTarget(path, flags);
      checkNotInput('--out', out, path, 'checkpoint');
      prepareOutputFile('--out', out);
      // The float32 wasm backend rebuilds the model: the one `onebit eval` uses, so the folded thresholds
      // reproduce its arithmetic.
      const backend = await createWasmBackend({ threads: 1 });
      try {
        let result: ReturnType<typeof exportCheckpoint>;
        try {
          result = exportCheckpoint(path, format, out, backend);
        } catch (error) {
          // The checkpoint's faults are typed already; a file-system error here is one of writing --out.
          throw outputPathError('--out', out, error);
        }
        const ratio = result.float32WeightBytes / result.bytes;
        const sizeNote =
          format === 'onebit'
            ? `; the binary weights alone take ${result.float32WeightBytes} bytes as float32: ${ratio.toFixed(1)}x smaller`
            : '';
        if (flags.json) {
          process.stdout.write(
            `${JSON.stringify({ type: 'export', format, out, bytes: result.bytes, float32WeightBytes: result.float32WeightBytes, compression: ratio })}\n`,
          );
        } else {
          process.stdout.write(`wrote ${out} (${format}, ${result.bytes} bytes${sizeNote})\n`);
        }
      } finally {
        backend.dispose();
      }
    });
}
