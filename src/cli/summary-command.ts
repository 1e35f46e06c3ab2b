/**
 * `onebit summary`: per-layer parameters, memory and MACs by precision, and the method's training state.
 * Of a checkpoint, the model, method and options are the run's: --model, --method, --rank and --activations
 * are refused with one, as they would change nothing.
 */
import { ConfigError } from '../errors.js';
import { Command } from 'commander';
import { defaultRunSettings } from '../methods/registry.js';
import { modelSpecByName, MODEL_NAMES } from '../nn/models.js';
import type { ModelSpec } from '../nn/spec.js';
import { loadCheckpoint } from '../io/checkpoint.js';
import { measureTrainingMemory, summarizeModel, type ModelSummary } from '../train/summary.js';
import { CHECKPOINT_FILE } from '../train/trainer.js';
import { checkpointArgument } from './file-kind.js';
import { checkModelArgument, isSpecPath, readSpecFile } from './model-argument.js';
import { parseChoice, parseInteger } from './options.js';

interface SummaryFlags {
  model?: string;
  method?: string;
  activations?: 'real' | 'binary';
  surrogate?: string;
  rank?: number;
  json: boolean;
}

function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

function formatBytes(bytes: number): string {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(2)} MiB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(2)} KiB`;
  return `${bytes} B`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '))
    .join('\n');
}

/** Training memory of a method next to STE's on the same model (float-free's acceptance figures). */
export interface TrainingMemory {
  readonly method: string;
  readonly stateBytesPerWeight: number;
  readonly activationBytesPerExample: number;
  readonly steStateBytesPerWeight: number;
  readonly steActivationBytesPerExample: number;
}

export function renderSummary(
  name: string,
  s: ModelSummary,
  method: string,
  stateBytes: number,
  memory?: TrainingMemory,
): string {
  const header = [
    'layer',
    'output',
    '1-bit params',
    '32-bit params',
    'memory',
    '1b x 1b MACs',
    '1b x 32b MACs',
    '32b MACs',
  ];
  const rows = s.layers.map((l) => [
    `${l.name} (${l.kind})`,
    `[${l.outputShape.join(', ')}]`,
    formatCount(l.binaryParameters),
    formatCount(l.realParameters),
    formatBytes(Math.ceil(l.memoryBits / 8)),
    formatCount(l.binaryBinaryMacs),
    formatCount(l.binaryRealMacs),
    formatCount(l.realMacs),
  ]);
  const t = s.totals;
  rows.push([
    'total',
    '',
    formatCount(t.binaryParameters),
    formatCount(t.realParameters),
    formatBytes(s.memoryBytes),
    formatCount(t.binaryBinaryMacs),
    formatCount(t.binaryRealMacs),
    formatCount(t.realMacs),
  ]);
  return [
    `model ${name}`,
    table([header, ...rows]),
    '',
    `inference memory: ${formatBytes(s.memoryBytes)} bit-packed vs ${formatBytes(s.float32Bytes)} in float32 (compression ${s.compressionRatio.toFixed(1)}x)`,
    `training state of method ${method}: ${stateBytes} bytes per binary weight (${formatBytes(stateBytes * t.binaryParameters)} for this model)`,
    ...(memory === undefined
      ? []
      : [
          ...(memory.method === 'ste'
            ? []
            : [
                `training state of ste (Adam): ${memory.steStateBytesPerWeight} bytes per binary weight (${formatBytes(memory.steStateBytesPerWeight * t.binaryParameters)})`,
              ]),
          `activations stored for backward by ${memory.method}: ${formatCount(memory.activationBytesPerExample)} bytes per example` +
            (memory.method === 'ste'
              ? ''
              : `; ste: ${formatCount(memory.steActivationBytesPerExample)} bytes per example (${(memory.steActivationBytesPerExample / memory.activationBytesPerExample).toFixed(1)}x more)`),
        ]),
  ].join('\n');
}

export function summaryCommand(): Command {
  return new Command('summary')
    .description('per-layer parameters, memory and MACs by precision (like Larq summary)')
    .argument(
      '[checkpoint]',
      `a checkpoint file or a run folder (for ${CHECKPOINT_FILE} in it); or give --model`,
    )
    .option('--model <name|file>', `model (${MODEL_NAMES.join(', ')}) or a spec file (.json)`)
    .option('--method <name>', 'training method whose state to account for (default: ste)')
    .option('--rank <K>', 'vispa: rank of the covariance factor Z (default 4)', parseInteger('--rank'))
    .option(
      '--activations <kind>',
      'real or binary (default: real; binary for float-free)',
      parseChoice('--activations', ['real', 'binary'] as const),
    )
    .option('--json', 'print one JSON object', false)
    .action((checkpoint: string | undefined, flags: SummaryFlags) => {
      if (checkpoint !== undefined) {
        // A checkpoint's summary is of its run: these flags would change nothing.
        for (const [flag, value] of [
          ['--model', flags.model],
          ['--method', flags.method],
          ['--rank', flags.rank],
          ['--activations', flags.activations],
        ] as const) {
          if (value !== undefined) {
            throw new ConfigError(
              flag,
              `no ${flag} with a checkpoint (the summary of a checkpoint is of its run's model, method and options)`,
              String(value),
            );
          }
        }
      }
      let model = flags.model;
      let method = flags.method ?? 'ste';
      // Float-free trains with 1-bit activations only, so its summary defaults to them.
      let activations = flags.activations ?? (method === 'float-free' ? 'binary' : 'real');
      let methodOptions: Readonly<Record<string, string | number | boolean>> =
        flags.rank !== undefined ? { rank: flags.rank } : {};
      // A per-channel scale after each binary layer: as the run had it, or the method's default.
      const channelScale = defaultRunSettings(method, 1).channelScale ?? false;
      let spec: ModelSpec | null = null;
      if (checkpoint !== undefined) {
        const config = loadCheckpoint(checkpointArgument(checkpoint, 'summary')).meta.config;
        ({ model, method, activations, methodOptions } = config);
        spec = config.spec ?? null;
      }
      if (model === undefined)
        throw new ConfigError('summary', 'a checkpoint or --model NAME|FILE', 'neither');
      if (spec === null) {
        checkModelArgument(model);
        if (isSpecPath(model)) {
          if (flags.activations !== undefined) {
            throw new ConfigError(
              '--activations',
              'no --activations with a spec file (each layer sets its binarizer)',
              flags.activations,
            );
          }
          spec = readSpecFile(model);
        } else {
          if (method === 'float-free' && activations !== 'binary') {
            throw new ConfigError('--activations', 'binary for --method float-free', activations);
          }
          spec = modelSpecByName(model, { activations, channelScale });
        }
      }
      const summary = summarizeModel(spec);
      const measured = measureTrainingMemory(spec, method, methodOptions);
      const ste = measureTrainingMemory(spec, 'ste', {});
      const stateBytes = measured.stateBytesPerWeight;
      const memory: TrainingMemory = {
        method,
        stateBytesPerWeight: stateBytes,
        activationBytesPerExample: measured.activationBytesPerExample,
        steStateBytesPerWeight: ste.stateBytesPerWeight,
        steActivationBytesPerExample: ste.activationBytesPerExample,
      };
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({
            type: 'summary',
            model,
            method,
            activations,
            ...summary,
            stateBytesPerBinaryWeight: stateBytes,
            activationBytesPerExample: memory.activationBytesPerExample,
            ste: {
              stateBytesPerBinaryWeight: memory.steStateBytesPerWeight,
              activationBytesPerExample: memory.steActivationBytesPerExample,
            },
          })}\n`,
        );
      } else {
        process.stdout.write(`${renderSummary(model, summary, method, stateBytes, memory)}\n`);
      }
    });
}
