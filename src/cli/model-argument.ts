/**
 * `--model NAME|FILE`: a named model, or a JSON spec file (nn/spec.ts). A value that names an existing file,
 * or ends in `.json`, is read as a spec file; anything else must be a model name.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ConfigError, SpecError } from '../errors.js';
import { isModelName, MODEL_NAMES } from '../nn/models.js';
import { parseModelSpec, type ModelSpec } from '../nn/spec.js';

/** Whether `--model` names a spec file rather than a built-in model. */
export function isSpecPath(model: string): boolean {
  return !isModelName(model) && (model.endsWith('.json') || existsSync(model));
}

/** Reads and validates a spec file; errors name the file and the place in it. */
export function readSpecFile(path: string): ModelSpec {
  if (!existsSync(path)) throw new ConfigError('--model', 'a spec file that exists', path);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new SpecError('spec', 'JSON', `text that does not parse (${(error as Error).message})`, path);
  }
  return parseModelSpec(json, path);
}

/** Throws ConfigError unless `model` is a model name or a spec file. */
export function checkModelArgument(model: string): void {
  if (!isModelName(model) && !isSpecPath(model)) {
    throw new ConfigError(
      '--model',
      `one of ${MODEL_NAMES.join(', ')}, or a path to a spec file (.json)`,
      JSON.stringify(model),
    );
  }
}
