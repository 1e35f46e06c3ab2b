/**
 * Typed errors of the data module.
 *
 * Each error carries its facts as fields (so callers and tests can branch on them) and a message that
 * reads on its own: which file, what was expected, what was found.
 */

/** A data file does not have the expected format: `<file>: <field>: expected <expected>, found <found>`. */
export class DataFormatError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`${file}: ${field}: expected ${expected}, found ${found}`);
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
export class DatasetNotFoundError extends Error {
  constructor(
    readonly dataset: string,
    readonly split: string,
    readonly searched: readonly SearchedLocation[],
    readonly hint: string,
  ) {
    const where = searched.map((s) => `  ${s.dir} (${s.reason})`).join('\n');
    super(`data set '${dataset}' (${split} split) not found. Looked in:\n${where}\n${hint}`);
    this.name = 'DatasetNotFoundError';
  }
}

/** A download failed: HTTP status, network error, or a body shorter than announced. */
export class FetchError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    /** HTTP status code when the server answered, else null. */
    readonly status: number | null,
  ) {
    super(`download of ${url} failed: ${reason}`);
    this.name = 'FetchError';
  }
}

/** A downloaded file's digest is not the recorded one; the file has been deleted. */
export class ChecksumError extends Error {
  constructor(
    readonly file: string,
    readonly url: string,
    readonly expected: string,
    readonly found: string,
    /** What was hashed: the downloaded file or its decompressed content. */
    readonly what: 'file' | 'content' = 'file',
  ) {
    super(
      `${file}: SHA-256 of the ${what === 'file' ? 'downloaded file' : 'decompressed content'} does not match` +
        ` (downloaded from ${url}): expected ${expected}, found ${found}; the file was deleted`,
    );
    this.name = 'ChecksumError';
  }
}
