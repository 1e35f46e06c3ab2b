/** `onebit data fetch <name>`: download a data set's official files into the cache and verify SHA-256. */
import { join } from 'node:path';
import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { REAL_DATASET_NAMES, type RealDatasetName } from '../data/dataset.js';
import { fetchDataset } from '../data/fetch.js';
import { ConfigError } from '../errors.js';
import { prepareOutputDir } from './output-path.js';
import { defaultCacheDir, parseChoice } from './options.js';

/** `--base-url`: an http(s) URL (the mirror's folder), checked before anything is downloaded. */
function checkBaseUrl(value: string): void {
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw new ConfigError(
      '--base-url',
      'an http:// or https:// URL of a folder holding the files',
      `"${value}"`,
    );
}

interface FetchFlags {
  cacheDir?: string;
  baseUrl?: string;
  force: boolean;
  json: boolean;
}

export function dataCommand(): Command {
  const data = new Command('data').description('manage data sets');
  data
    .command('fetch')
    .description('download the official files of a data set into the cache and verify their SHA-256')
    .argument('<name>', REAL_DATASET_NAMES.join(', '), parseChoice('<name>', REAL_DATASET_NAMES))
    .option('--cache-dir <dir>', 'cache folder (default: ~/.cache/onebit)')
    .option('--base-url <url>', 'fetch from this mirror instead of the official location')
    .option('--force', 'download again even when the cache has the files', false)
    .option('--json', 'print one JSON object', false)
    .action(async (name: RealDatasetName, flags: FetchFlags) => {
      if (flags.baseUrl !== undefined) checkBaseUrl(flags.baseUrl);
      const cacheDir = flags.cacheDir ?? defaultCacheDir();
      // The data set's folder in the cache: checked before the download (files already there are kept).
      prepareOutputDir('--cache-dir', join(cacheDir, name), { overwrite: true });
      const bar = process.stderr.isTTY
        ? new SingleBar({
            stream: process.stderr,
            format: '{file} [{bar}] {percentage}% | {value}/{total} bytes',
            clearOnComplete: true,
          })
        : null;
      let currentFile = '';
      const result = await fetchDataset(name, {
        cacheDir,
        ...(flags.baseUrl !== undefined ? { baseUrl: flags.baseUrl } : {}),
        force: flags.force,
        onProgress: (p) => {
          if (bar === null) return;
          if (p.file !== currentFile) {
            if (currentFile !== '') bar.stop();
            bar.start(p.total ?? 0, p.received, { file: p.file });
            currentFile = p.file;
          } else {
            bar.update(p.received);
          }
        },
      });
      if (currentFile !== '') bar?.stop();
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ type: 'fetch', dataset: name, ...result })}\n`);
        return;
      }
      for (const f of result.files) {
        const status =
          f.sha256 === null
            ? 'already in the cache'
            : f.verified
              ? `verified sha256 ${f.sha256}`
              : `sha256 ${f.sha256} (no recorded digest to check)`;
        process.stdout.write(`${f.name}: ${status}\n`);
      }
      process.stdout.write(`${name} is in ${result.dir}\n`);
    });
  return data;
}
