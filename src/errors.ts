/**
 * Every error onebit throws on purpose, in one module, under one base class. Each carries a stable `code`
 * (for programs: `error.code === 'config'`) and its facts as fields, and its message reads on its own:
 * which file, layer or flag, what was expected and what was found. This module imports nothing, so every
 * layer of the code (the engine included) can use it.
 */

/** Base class of onebit's errors: a stable machine-readable `code` and a message for people. */
export class OnebitError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'OnebitError';
  }
}

/** A configuration value a user can get wrong: names the field (the flag as typed), what was expected and what was found. */
export class ConfigError extends OnebitError {
  constructor(
    readonly field: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super('config', `${field}: expected ${expected}, got ${found}`);
    this.name = 'ConfigError';
  }
}

/** A model spec that does not describe a valid network: names the layer (by index path), the field, what was expected and what was found. */
export class SpecError extends OnebitError {
  constructor(
    /** Where in the spec, e.g. "layers[3].filters" or "input". */
    readonly where: string,
    readonly expected: string,
    readonly found: string,
    /** The file the spec came from, when it came from one. */
    readonly file: string | null = null,
  ) {
    super('spec', `${file === null ? '' : `${file}: `}${where}: expected ${expected}, found ${found}`);
    this.name = 'SpecError';
  }
}

/** A tensor did not have the shape a layer expected; names the layer, the expectation and what came. */
export class ShapeError extends OnebitError {
  constructor(
    readonly layer: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super('shape', `${layer}: expected input of shape ${expected}, got ${actual}`);
    this.name = 'ShapeError';
  }
}

/** A parameter was claimed by no rule, by several, or appears twice in the model's list. */
export class RoutingError extends OnebitError {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super('routing', message);
    this.name = 'RoutingError';
  }
}

/** A loss that became NaN or infinite; the last good checkpoint (if any) is left as it was. */
export class TrainingDivergedError extends OnebitError {
  constructor(
    readonly epoch: number,
    readonly step: number,
    readonly checkpoint: string | null,
  ) {
    super(
      'diverged',
      `training diverged: the loss became NaN or infinite at epoch ${epoch}, step ${step}; ` +
        (checkpoint === null ? 'no checkpoint was written yet' : `the last good checkpoint is ${checkpoint}`),
    );
    this.name = 'TrainingDivergedError';
  }
}

/** A data file does not have the expected format: `<file>: <field>: expected <expected>, found <found>`. */
export class DataFormatError extends OnebitError {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super('data-format', `${file}: ${field}: expected ${expected}, found ${found}`);
    this.name = 'DataFormatError';
  }
}

/** One place `loadDataset` looked, and why it did not use it. */
export interface SearchedLocation {
  readonly dir: string;
  /** Human-readable reason, e.g. "directory does not exist" or "missing test_batch.bin". */
  readonly reason: string;
}

/** A data set was not found in any of the places searched; the message lists them and how to get it. */
export class DatasetNotFoundError extends OnebitError {
  constructor(
    readonly dataset: string,
    readonly split: string,
    readonly searched: readonly SearchedLocation[],
    readonly hint: string,
  ) {
    const where = searched.map((s) => `  ${s.dir} (${s.reason})`).join('\n');
    super(
      'dataset-not-found',
      `data set '${dataset}' (${split} split) not found. Looked in:\n${where}\n${hint}`,
    );
    this.name = 'DatasetNotFoundError';
  }
}

/** A download failed: HTTP status, network error, or a body shorter than announced. */
export class FetchError extends OnebitError {
  constructor(
    readonly url: string,
    readonly reason: string,
    /** HTTP status code when the server answered, else null. */
    readonly status: number | null,
  ) {
    super('fetch', `download of ${url} failed: ${reason}`);
    this.name = 'FetchError';
  }
}

/** A downloaded file's digest is not the recorded one; the file has been deleted. */
export class ChecksumError extends OnebitError {
  constructor(
    readonly file: string,
    readonly url: string,
    readonly expected: string,
    readonly found: string,
    /** What was hashed: the downloaded file or its decompressed content. */
    readonly what: 'file' | 'content' = 'file',
  ) {
    super(
      'checksum',
      `${file}: SHA-256 of the ${what === 'file' ? 'downloaded file' : 'decompressed content'} does not match` +
        ` (downloaded from ${url}): expected ${expected}, found ${found}; the file was deleted`,
    );
    this.name = 'ChecksumError';
  }
}

/** An image file that cannot be used as input: names the file and what is wrong. */
export class ImageError extends OnebitError {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super('image', `${file}: ${detail}`);
    this.name = 'ImageError';
  }
}

/** A file that is not a valid tensor file (checkpoint); says which file, where, and what was wrong. */
export class TensorFileError extends OnebitError {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super('tensor-file', `${file}: ${detail}`);
    this.name = 'TensorFileError';
  }
}

/** Why a checkpoint cannot be exported: names what and why. */
export class ExportError extends OnebitError {
  constructor(
    readonly what: string,
    readonly detail: string,
  ) {
    super('export', `${what}: ${detail}`);
    this.name = 'ExportError';
  }
}

/** A safetensors file that cannot be read or written. */
export class SafetensorsError extends OnebitError {
  constructor(readonly detail: string) {
    super('safetensors', `safetensors: ${detail}`);
    this.name = 'SafetensorsError';
  }
}

/** What kind of fault makes a `.onebit` file invalid. */
export type OnebitErrorCode =
  | 'truncated'
  | 'bad-magic'
  | 'bad-version'
  | 'bad-header'
  | 'bad-layer'
  | 'bad-tensor'
  | 'bad-value'
  | 'bad-checksum'
  | 'unsupported';

/** A file that is not a valid `.onebit` model: `kind` says what kind of fault, `where` where it is. */
export class OnebitFormatError extends OnebitError {
  declare readonly code: OnebitErrorCode;
  constructor(
    code: OnebitErrorCode,
    /** The source (file name) and the place in it, e.g. "model.onebit: header.layers[2].outFeatures". */
    readonly where: string,
    readonly detail: string,
  ) {
    super(code, `${where}: ${detail}`);
    this.name = 'OnebitFormatError';
  }
}
