/**
 * Downloading the official data set files into onebit's cache, verified by SHA-256.
 *
 * Each file is streamed to a temporary name beside its destination, hashed while it arrives, checked,
 * and only then renamed into place, so an interrupted or corrupt download never leaves a file that
 * `loadDataset` would pick up. CIFAR tarballs are unpacked (gunzip + a small tar reader) and only the
 * binary batch files are kept. The digests and where they come from are recorded in `DATASET_SOURCES`.
 */
import { ChecksumError, DataFormatError, FetchError } from '../errors.js';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { RealDatasetName } from './dataset.js';
import { asUint8, DEFAULT_MAX_BYTES, gunzipChecked } from './gzip.js';
import { parseTar } from './tar.js';

/** One file of a data set as published. */
export interface RemoteFile {
  /** File name, as served and as stored in the cache. */
  readonly name: string;
  readonly url: string;
  /**
   * SHA-256 of the file as served, or null where no trustworthy digest is known: the download is then
   * not checked, and the digest computed is reported (`FetchedFile.verified` is false).
   */
  readonly sha256: string | null;
  /** Size in bytes as served, when known; checked. */
  readonly size?: number;
  /** SHA-256 of the decompressed content of a gzip file, when known; checked. */
  readonly contentSha256?: string;
  /** For a .tar.gz: the members to keep (matched by base name); the archive itself is not kept. */
  readonly extract?: readonly string[];
}

export interface DatasetSource {
  readonly files: readonly RemoteFile[];
  /** Where the digests come from, for the record. */
  readonly provenance: string;
}

const FASHION_MNIST_URL = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com';
const MNIST_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist';
const CIFAR_URL = 'https://www.cs.toronto.edu/~kriz';

/**
 * The official files and their digests.
 *
 * Fashion-MNIST: verified here. The Debian package dataset-fashion-mnist ships the upstream .gz files
 * with the gzip file name and time stamp stripped (same deflate stream); putting the name and the
 * original time stamp back reproduces files whose MD5s equal those in the upstream README and whose
 * SHA-256s and sizes equal the ones below (see fetch.test.ts, which repeats the reconstruction).
 * `contentSha256` is the SHA-256 of the decompressed IDX data, computed from the same files.
 * MNIST, CIFAR-10, CIFAR-100: SHA-256 and size as recorded by TensorFlow Datasets (url_checksums/
 * mnist.txt, cifar10.txt, cifar100.txt), computed by them from these URLs; not re-verified here.
 */
export const DATASET_SOURCES: Readonly<Record<RealDatasetName, DatasetSource>> = {
  'fashion-mnist': {
    provenance:
      'sha256/size: upstream files reconstructed from Debian dataset-fashion-mnist (MD5s match the upstream README), equal to TensorFlow Datasets url_checksums/fashion_mnist.txt',
    files: [
      {
        name: 'train-images-idx3-ubyte.gz',
        url: `${FASHION_MNIST_URL}/train-images-idx3-ubyte.gz`,
        size: 26421880,
        sha256: '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
        contentSha256: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
      },
      {
        name: 'train-labels-idx1-ubyte.gz',
        url: `${FASHION_MNIST_URL}/train-labels-idx1-ubyte.gz`,
        size: 29515,
        sha256: 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
        contentSha256: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
      },
      {
        name: 't10k-images-idx3-ubyte.gz',
        url: `${FASHION_MNIST_URL}/t10k-images-idx3-ubyte.gz`,
        size: 4422102,
        sha256: '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
        contentSha256: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
      },
      {
        name: 't10k-labels-idx1-ubyte.gz',
        url: `${FASHION_MNIST_URL}/t10k-labels-idx1-ubyte.gz`,
        size: 5148,
        sha256: '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
        contentSha256: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
      },
    ],
  },
  mnist: {
    provenance:
      'sha256/size: TensorFlow Datasets url_checksums/mnist.txt (the CVDF mirror of yann.lecun.com/exdb/mnist)',
    files: [
      {
        name: 'train-images-idx3-ubyte.gz',
        url: `${MNIST_URL}/train-images-idx3-ubyte.gz`,
        size: 9912422,
        sha256: '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
      },
      {
        name: 'train-labels-idx1-ubyte.gz',
        url: `${MNIST_URL}/train-labels-idx1-ubyte.gz`,
        size: 28881,
        sha256: '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
      },
      {
        name: 't10k-images-idx3-ubyte.gz',
        url: `${MNIST_URL}/t10k-images-idx3-ubyte.gz`,
        size: 1648877,
        sha256: '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
      },
      {
        name: 't10k-labels-idx1-ubyte.gz',
        url: `${MNIST_URL}/t10k-labels-idx1-ubyte.gz`,
        size: 4542,
        sha256: 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
      },
    ],
  },
  cifar10: {
    provenance: 'sha256/size: TensorFlow Datasets url_checksums/cifar10.txt',
    files: [
      {
        name: 'cifar-10-binary.tar.gz',
        url: `${CIFAR_URL}/cifar-10-binary.tar.gz`,
        size: 170052171,
        sha256: 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd',
        extract: [
          'data_batch_1.bin',
          'data_batch_2.bin',
          'data_batch_3.bin',
          'data_batch_4.bin',
          'data_batch_5.bin',
          'test_batch.bin',
          'batches.meta.txt',
        ],
      },
    ],
  },
  cifar100: {
    provenance: 'sha256/size: TensorFlow Datasets url_checksums/cifar100.txt',
    files: [
      {
        name: 'cifar-100-binary.tar.gz',
        url: `${CIFAR_URL}/cifar-100-binary.tar.gz`,
        size: 168513733,
        sha256: '58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec',
        extract: ['train.bin', 'test.bin', 'coarse_label_names.txt', 'fine_label_names.txt'],
      },
    ],
  },
};

/** The part of a fetch Response that downloading needs; the global `fetch` satisfies it. */
export interface FetchResponseLike {
  readonly ok: boolean;
  readonly status: number;
  readonly statusText: string;
  readonly headers: { get(name: string): string | null };
  readonly body: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } } | null;
}
export type FetchLike = (url: string) => Promise<FetchResponseLike>;

/** Progress of one file: bytes received so far, and the total when the server announced it. */
export interface FetchProgress {
  readonly file: string;
  readonly received: number;
  readonly total: number | null;
}

export interface DownloadOptions {
  /** Expected SHA-256 (lower-case hex); null to only compute it. */
  readonly sha256: string | null;
  readonly size?: number;
  /** Expected SHA-256 of the gunzipped content. */
  readonly contentSha256?: string;
  readonly fetchImpl?: FetchLike;
  readonly onProgress?: (progress: FetchProgress) => void;
  /** Cap on the download and on decompressed content. Default 1 GiB. */
  readonly maxBytes?: number;
}

export interface DownloadResult {
  readonly path: string;
  readonly bytes: number;
  /** The digest computed from the bytes received. */
  readonly sha256: string;
  /** Whether it was checked against a recorded digest. */
  readonly verified: boolean;
}

/** An error's message plus its cause's (undici reports only "fetch failed" and puts the reason in `cause`). */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return `${err.message}${cause}`;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

function tempName(dest: string): string {
  return `${dest}.${randomBytes(6).toString('hex')}.part`;
}

/** Stream `url` into the temporary file `tmp`, hashing and counting; returns [bytes, sha256]. */
async function streamToFile(
  url: string,
  tmp: string,
  file: string,
  options: DownloadOptions,
): Promise<[number, string]> {
  const fetchImpl = options.fetchImpl ?? (globalThis.fetch as unknown as FetchLike);
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  let response: FetchResponseLike;
  try {
    response = await fetchImpl(url);
  } catch (err) {
    throw new FetchError(url, describe(err), null);
  }
  if (!response.ok)
    throw new FetchError(url, `HTTP ${response.status} ${response.statusText}`.trim(), response.status);
  if (response.body === null) throw new FetchError(url, 'empty response body', response.status);
  const lengthHeader = response.headers.get('content-length');
  const total = lengthHeader !== null && /^\d+$/.test(lengthHeader) ? Number(lengthHeader) : null;
  if (total !== null && total > maxBytes) {
    throw new FetchError(
      url,
      `announced size ${total} bytes exceeds the limit of ${maxBytes}`,
      response.status,
    );
  }
  const hash = createHash('sha256');
  const handle = await open(tmp, 'wx');
  let received = 0;
  try {
    const reader = response.body.getReader();
    options.onProgress?.({ file, received, total });
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value === undefined || value.length === 0) continue;
      received += value.length;
      if (received > maxBytes)
        throw new FetchError(url, `more than the limit of ${maxBytes} bytes`, response.status);
      hash.update(value);
      await handle.write(value);
      options.onProgress?.({ file, received, total });
    }
  } catch (err) {
    if (err instanceof FetchError) throw err;
    throw new FetchError(url, `connection failed after ${received} bytes: ${describe(err)}`, response.status);
  } finally {
    await handle.close();
  }
  if (total !== null && received !== total) {
    throw new FetchError(url, `connection closed after ${received} of ${total} bytes`, response.status);
  }
  return [received, hash.digest('hex')];
}

/** Check a finished temporary download; throws (the caller deletes it) on any mismatch. */
async function verify(
  tmp: string,
  dest: string,
  url: string,
  bytes: number,
  digest: string,
  options: DownloadOptions,
): Promise<void> {
  if (options.size !== undefined && bytes !== options.size) {
    throw new DataFormatError(
      dest,
      'downloaded size',
      `${options.size} bytes`,
      `${bytes} bytes; the file was deleted`,
    );
  }
  if (options.sha256 !== null && digest !== options.sha256.toLowerCase()) {
    throw new ChecksumError(dest, url, options.sha256, digest, 'file');
  }
  if (options.contentSha256 !== undefined) {
    const content = await gunzipChecked(asUint8(await readFile(tmp)), dest, options.maxBytes);
    const found = sha256Hex(content);
    if (found !== options.contentSha256)
      throw new ChecksumError(dest, url, options.contentSha256, found, 'content');
  }
}

/**
 * Download `url` to `dest` atomically: stream to a temporary file beside it, verify size and digests,
 * then rename. On any failure the temporary file is deleted and nothing appears at `dest`.
 */
export async function downloadFile(
  url: string,
  dest: string,
  options: DownloadOptions,
): Promise<DownloadResult> {
  const tmp = tempName(dest);
  try {
    const [bytes, digest] = await streamToFile(url, tmp, basename(dest), options);
    await verify(tmp, dest, url, bytes, digest, options);
    await rename(tmp, dest);
    return { path: dest, bytes, sha256: digest, verified: options.sha256 !== null };
  } catch (err) {
    await removeQuietly(tmp);
    throw err;
  }
}

async function fileExists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** Write bytes to `dest` via a temporary file and a rename. */
async function writeAtomic(dest: string, data: Uint8Array): Promise<void> {
  const tmp = tempName(dest);
  try {
    await writeFile(tmp, data, { flag: 'wx' });
    await rename(tmp, dest);
  } catch (err) {
    await removeQuietly(tmp);
    throw err;
  }
}

/** What `fetchDataset` did for one remote file. */
export interface FetchedFile {
  readonly name: string;
  /** Files now in the cache because of it: the file itself, or the members extracted from an archive. */
  readonly paths: readonly string[];
  /** Computed SHA-256 of the download; null when nothing was downloaded because the cache had it. */
  readonly sha256: string | null;
  /**
   * True when the bytes were checked against a recorded digest this time (a fresh download, or a cached
   * single file re-hashed); false when no digest is recorded (see `sha256`) or archive members were
   * already in the cache.
   */
  readonly verified: boolean;
  /** False when the file (or all members of an archive) was already in the cache. */
  readonly downloaded: boolean;
}

export interface FetchResult {
  readonly dir: string;
  readonly files: readonly FetchedFile[];
}

export interface FetchDatasetOptions {
  /** The data set goes into `<cacheDir>/<name>`, where `loadDataset` looks for it. */
  readonly cacheDir: string;
  /** Replace the directory part of every official URL (a mirror, or a local server in tests). */
  readonly baseUrl?: string;
  readonly fetchImpl?: FetchLike;
  readonly onProgress?: (progress: FetchProgress) => void;
  /** Use this file list instead of `DATASET_SOURCES[name]` (another mirror with its own digests; tests). */
  readonly source?: DatasetSource;
  /** Re-download files already in the cache. Default false. */
  readonly force?: boolean;
  readonly maxBytes?: number;
}

/**
 * Download a data set's official files into `<cacheDir>/<name>`, verified, skipping files already
 * there (a cached file with a recorded digest is re-hashed and re-downloaded if it does not match).
 */
export async function fetchDataset(
  name: RealDatasetName,
  options: FetchDatasetOptions,
): Promise<FetchResult> {
  const source = options.source ?? DATASET_SOURCES[name];
  const dir = join(options.cacheDir, name);
  await mkdir(dir, { recursive: true });
  const results: FetchedFile[] = [];
  for (const file of source.files) {
    const url =
      options.baseUrl === undefined ? file.url : `${options.baseUrl.replace(/\/+$/, '')}/${file.name}`;
    const download: DownloadOptions = {
      sha256: file.sha256,
      size: file.size,
      contentSha256: file.contentSha256,
      fetchImpl: options.fetchImpl,
      onProgress: options.onProgress,
      maxBytes: options.maxBytes,
    };
    if (file.extract === undefined) {
      const dest = join(dir, file.name);
      if (options.force !== true && (await cachedFileIsGood(dest, file))) {
        results.push({
          name: file.name,
          paths: [dest],
          sha256: null,
          verified: file.sha256 !== null,
          downloaded: false,
        });
        continue;
      }
      const got = await downloadFile(url, dest, download);
      results.push({
        name: file.name,
        paths: [dest],
        sha256: got.sha256,
        verified: got.verified,
        downloaded: true,
      });
      continue;
    }
    const members = file.extract.map((m) => join(dir, m));
    if (options.force !== true && (await Promise.all(members.map(fileExists))).every(Boolean)) {
      results.push({ name: file.name, paths: members, sha256: null, verified: false, downloaded: false });
      continue;
    }
    const archive = join(dir, file.name);
    const got = await downloadFile(url, archive, download);
    try {
      await extractMembers(archive, dir, file.extract, options.maxBytes);
    } finally {
      await removeQuietly(archive);
    }
    results.push({
      name: file.name,
      paths: members,
      sha256: got.sha256,
      verified: got.verified,
      downloaded: true,
    });
  }
  return { dir, files: results };
}

/** A cached file is reused when it exists and, if a digest is recorded, matches it. */
async function cachedFileIsGood(path: string, file: RemoteFile): Promise<boolean> {
  if (!(await fileExists(path))) return false;
  if (file.sha256 === null) return true;
  return sha256Hex(asUint8(await readFile(path))) === file.sha256;
}

/** Unpack the wanted members (by base name) of a .tar.gz into `dir`, each written atomically. */
async function extractMembers(
  archive: string,
  dir: string,
  wanted: readonly string[],
  maxBytes?: number,
): Promise<void> {
  const tar = await gunzipChecked(asUint8(await readFile(archive)), archive, maxBytes);
  const entries = parseTar(tar, archive);
  for (const member of wanted) {
    const entry = entries.find((e) => basename(e.name) === member);
    if (entry === undefined) throw new DataFormatError(archive, 'archive member', member, 'no such member');
    await writeAtomic(join(dir, member), entry.data);
  }
}
