import { ChecksumError, DataFormatError, FetchError } from '../errors.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CIFAR_IMAGE_BYTES, encodeCifar } from './cifar.js';
import { DEBIAN_FASHION_MNIST_DIR, loadDataset } from './dataset.js';
import {
  DATASET_SOURCES,
  downloadFile,
  fetchDataset,
  type DatasetSource,
  type FetchProgress,
} from './fetch.js';
import { encodeIdx } from './idx.js';
import { encodeTar, parseTar } from './tar.js';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Files the local server serves, by URL path. */
const served = new Map<string, Uint8Array>();
let server: Server;
let baseUrl: string;
let root: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'onebit-fetch-'));
  server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path === '/truncated') {
      // Announce more than is sent, then drop the connection.
      res.writeHead(200, { 'content-length': '100000' });
      res.write(new Uint8Array(1000));
      setTimeout(() => res.destroy(), 10);
      return;
    }
    const body = served.get(path);
    if (body === undefined) {
      res.writeHead(404, 'Not Found').end('no such file');
      return;
    }
    res.writeHead(200, { 'content-length': String(body.length) });
    // Several chunks, so progress is reported more than once.
    const chunk = Math.max(1, Math.ceil(body.length / 3));
    for (let i = 0; i < body.length; i += chunk) res.write(body.subarray(i, i + chunk));
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(root, { recursive: true, force: true });
});

/** A tiny Fashion-MNIST-shaped data set as gzipped IDX files, served under /fm/, with its source table. */
function fashionFixture(): DatasetSource {
  const files: DatasetSource['files'][number][] = [];
  for (const prefix of ['train', 't10k']) {
    const n = prefix === 'train' ? 6 : 3;
    const images = encodeIdx(
      [n, 2, 2],
      Uint8Array.from({ length: n * 4 }, (_, i) => (i * 13) % 256),
    );
    const labels = encodeIdx(
      [n],
      Uint8Array.from({ length: n }, (_, i) => i % 10),
    );
    for (const [name, raw] of [
      [`${prefix}-images-idx3-ubyte.gz`, images],
      [`${prefix}-labels-idx1-ubyte.gz`, labels],
    ] as const) {
      const gz = gzipSync(raw);
      served.set(`/fm/${name}`, gz);
      files.push({
        name,
        url: `https://example.invalid/${name}`,
        sha256: sha256(gz),
        size: gz.length,
        contentSha256: sha256(raw),
      });
    }
  }
  return { files, provenance: 'test fixture' };
}

async function leftovers(dir: string): Promise<string[]> {
  return existsSync(dir) ? readdir(dir) : [];
}

describe('fetchDataset against a local HTTP server', () => {
  test('success: files verified, progress reported, cache reused, data set loadable', async () => {
    const source = fashionFixture();
    const cacheDir = join(root, 'ok');
    const progress: FetchProgress[] = [];
    const result = await fetchDataset('fashion-mnist', {
      cacheDir,
      baseUrl: `${baseUrl}/fm/`,
      source,
      onProgress: (p) => progress.push(p),
    });
    assert.equal(result.dir, join(cacheDir, 'fashion-mnist'));
    assert.deepEqual(
      result.files.map((f) => [f.name, f.downloaded, f.verified, f.sha256]),
      source.files.map((f) => [f.name, true, true, f.sha256]),
    );
    assert.deepEqual(
      (await leftovers(result.dir)).sort(),
      source.files.map((f) => f.name).sort(),
      'no temporary files left',
    );
    const last = progress.filter((p) => p.file === 'train-images-idx3-ubyte.gz').at(-1);
    assert.equal(last?.received, source.files[0].size);
    assert.equal(last?.total, source.files[0].size);
    assert.ok(progress.length > source.files.length, 'progress is reported per chunk');

    const ds = await loadDataset('fashion-mnist', { split: 'train', cacheDir, systemDir: null });
    assert.equal(ds.count, 6);

    const again = await fetchDataset('fashion-mnist', { cacheDir, baseUrl: `${baseUrl}/fm`, source });
    assert.ok(
      again.files.every((f) => !f.downloaded && f.verified),
      'cached files are re-hashed, not re-downloaded',
    );
  });

  test('checksum mismatch: ChecksumError and the file is not left behind', async () => {
    const good = fashionFixture();
    const wrong = '0'.repeat(64);
    const source: DatasetSource = {
      ...good,
      files: good.files.map((f, i) => (i === 1 ? { ...f, sha256: wrong } : f)),
    };
    const cacheDir = join(root, 'mismatch');
    const err = await fetchDataset('fashion-mnist', { cacheDir, baseUrl: `${baseUrl}/fm`, source }).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof ChecksumError, String(err));
    assert.equal(err.expected, wrong);
    assert.equal(err.found, good.files[1].sha256);
    assert.match(
      err.message,
      /train-labels-idx1-ubyte\.gz: SHA-256 of the downloaded file does not match .*expected 0{64}, found [0-9a-f]{64}; the file was deleted/,
    );
    const dir = join(cacheDir, 'fashion-mnist');
    assert.deepEqual(
      await leftovers(dir),
      ['train-images-idx3-ubyte.gz'],
      'only the good file before it remains',
    );
  });

  test('content digest mismatch of a gzip file is caught too', async () => {
    const good = fashionFixture();
    const file = { ...good.files[0], contentSha256: 'f'.repeat(64) };
    const dest = join(root, 'content-mismatch.gz');
    const err = await downloadFile(`${baseUrl}/fm/${file.name}`, dest, file).catch((e: unknown) => e);
    assert.ok(err instanceof ChecksumError && err.what === 'content', String(err));
    assert.ok(!existsSync(dest));
    assert.deepEqual(
      (await readdir(root)).filter((n) => n.startsWith('content-mismatch')),
      [],
    );
  });

  test('HTTP 404: FetchError naming the URL and status, nothing left behind', async () => {
    const cacheDir = join(root, 'notfound');
    const source: DatasetSource = {
      provenance: 'test',
      files: [{ name: 'absent.gz', url: 'https://example.invalid/absent.gz', sha256: null }],
    };
    const err = await fetchDataset('mnist', { cacheDir, baseUrl, source }).catch((e: unknown) => e);
    assert.ok(err instanceof FetchError, String(err));
    assert.equal(err.status, 404);
    assert.equal(err.url, `${baseUrl}/absent.gz`);
    assert.equal(err.message, `download of ${baseUrl}/absent.gz failed: HTTP 404 Not Found`);
    assert.deepEqual(await leftovers(join(cacheDir, 'mnist')), []);
  });

  test('a connection dropped mid-body is a FetchError and leaves nothing', async () => {
    const dest = join(root, 'dropped.bin');
    const err = await downloadFile(`${baseUrl}/truncated`, dest, { sha256: null }).catch((e: unknown) => e);
    assert.ok(err instanceof FetchError, String(err));
    assert.deepEqual(
      (await readdir(root)).filter((n) => n.startsWith('dropped')),
      [],
    );
  });

  test('an unreachable server is a FetchError without status', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const err = await downloadFile(`http://127.0.0.1:${port}/x`, join(root, 'unreachable'), {
      sha256: null,
    }).catch((e: unknown) => e);
    assert.ok(err instanceof FetchError && err.status === null, String(err));
    assert.match(err.message, /ECONNREFUSED/);
  });

  test('no recorded digest: the download is kept and its computed digest reported', async () => {
    const body = Uint8Array.from([1, 2, 3, 4, 5]);
    served.set('/plain.bin', body);
    const got = await downloadFile(`${baseUrl}/plain.bin`, join(root, 'plain.bin'), { sha256: null });
    assert.equal(got.verified, false);
    assert.equal(got.sha256, sha256(body));
    assert.equal(got.bytes, 5);
  });

  test('a size mismatch is refused even without a digest', async () => {
    served.set('/sized.bin', new Uint8Array(10));
    const dest = join(root, 'sized.bin');
    const err = await downloadFile(`${baseUrl}/sized.bin`, dest, { sha256: null, size: 11 }).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof DataFormatError && err.field === 'downloaded size', String(err));
    assert.ok(!existsSync(dest));
  });

  test('CIFAR-10 tarball: downloaded, verified, unpacked, archive deleted, loadable', async () => {
    const members = [];
    for (const name of [
      'data_batch_1',
      'data_batch_2',
      'data_batch_3',
      'data_batch_4',
      'data_batch_5',
      'test_batch',
    ]) {
      const img = new Uint8Array(2 * CIFAR_IMAGE_BYTES).fill(name.length);
      members.push({
        name: `cifar-10-batches-bin/${name}.bin`,
        data: encodeCifar('cifar10', img, Uint8Array.from([1, 8])),
      });
    }
    members.push({
      name: 'cifar-10-batches-bin/batches.meta.txt',
      data: new TextEncoder().encode('airplane\n'),
    });
    const tgz = gzipSync(encodeTar(members));
    served.set('/kriz/cifar-10-binary.tar.gz', tgz);
    const official = DATASET_SOURCES.cifar10.files[0];
    const source: DatasetSource = {
      provenance: 'test',
      files: [{ ...official, sha256: sha256(tgz), size: tgz.length }],
    };
    const cacheDir = join(root, 'cifar');
    const result = await fetchDataset('cifar10', { cacheDir, baseUrl: `${baseUrl}/kriz`, source });
    assert.equal(result.files[0].verified, true);
    const dir = join(cacheDir, 'cifar10');
    assert.deepEqual(
      (await readdir(dir)).sort(),
      [...(official.extract ?? [])].sort(),
      'members only; archive removed',
    );
    const test_ = await loadDataset('cifar10', { split: 'test', cacheDir });
    assert.deepEqual(Array.from(test_.labels), [1, 8]);
    const train = await loadDataset('cifar10', { split: 'train', cacheDir });
    assert.equal(train.count, 10);
    const again = await fetchDataset('cifar10', { cacheDir, baseUrl: `${baseUrl}/kriz`, source });
    assert.equal(again.files[0].downloaded, false);
  });

  test('an archive without a wanted member is an error', async () => {
    const tgz = gzipSync(encodeTar([{ name: 'cifar-100-binary/train.bin', data: new Uint8Array(3074) }]));
    served.set('/short.tar.gz', tgz);
    const source: DatasetSource = {
      provenance: 'test',
      files: [{ name: 'short.tar.gz', url: 'x', sha256: sha256(tgz), extract: ['train.bin', 'test.bin'] }],
    };
    const cacheDir = join(root, 'short');
    const err = await fetchDataset('cifar100', { cacheDir, baseUrl, source }).catch((e: unknown) => e);
    assert.ok(
      err instanceof DataFormatError && err.field === 'archive member' && err.expected === 'test.bin',
      String(err),
    );
    assert.ok(!(await leftovers(join(cacheDir, 'cifar100'))).includes('short.tar.gz'), 'archive deleted');
  });
});

describe('tar reader', () => {
  test('round trip, long data, prefix-less names', () => {
    const big = Uint8Array.from({ length: 1300 }, (_, i) => i % 251);
    const entries = parseTar(
      encodeTar([
        { name: 'a/b.bin', data: big },
        { name: 'empty', data: new Uint8Array(0) },
      ]),
      't.tar',
    );
    assert.deepEqual(
      entries.map((e) => e.name),
      ['a/b.bin', 'empty'],
    );
    assert.deepEqual(entries[0].data, big);
    assert.equal(entries[1].data.length, 0);
  });

  test('bad checksum, truncated archive and missing end block are format errors', () => {
    const tar = encodeTar([{ name: 'x', data: new Uint8Array(700) }]);
    const bad = Uint8Array.from(tar);
    bad[0] ^= 1;
    assert.throws(
      () => parseTar(bad, 't.tar'),
      (e: unknown) => e instanceof DataFormatError && /checksum/.test(e.field),
    );
    assert.throws(
      () => parseTar(tar.subarray(0, 800), 't.tar'),
      (e: unknown) => e instanceof DataFormatError && /truncated/.test(e.found),
    );
    assert.throws(
      () => parseTar(tar.subarray(0, 1536), 't.tar'),
      (e: unknown) => e instanceof DataFormatError && /truncated/.test(e.found),
    );
  });
});

describe('official download table', () => {
  test('every entry has an https or http URL ending in its name and a 64-hex digest or null', () => {
    for (const [name, source] of Object.entries(DATASET_SOURCES)) {
      for (const f of source.files) {
        assert.ok(f.url.endsWith(`/${f.name}`), `${name}: ${f.url}`);
        assert.ok(f.sha256 === null || /^[0-9a-f]{64}$/.test(f.sha256), `${name}: ${f.name}`);
      }
    }
  });

  // The Debian files are the upstream .gz files with the gzip FNAME field removed and MTIME reset
  // (strip-nondeterminism); the deflate streams are untouched. Restoring the name and the original
  // time stamps (found by matching the upstream README's MD5s) must give exactly the table's digests.
  const upstreamMtime: Record<string, number> = {
    'train-images-idx3-ubyte.gz': 1504176606,
    'train-labels-idx1-ubyte.gz': 1504176606,
    't10k-images-idx3-ubyte.gz': 1504176627,
    't10k-labels-idx1-ubyte.gz': 1504176627,
  };
  const present = existsSync(join(DEBIAN_FASHION_MNIST_DIR, 'train-images-idx3-ubyte.gz'));
  test(
    'Fashion-MNIST digests equal the upstream files rebuilt from the Debian package',
    {
      skip: present ? false : `${DEBIAN_FASHION_MNIST_DIR} is absent (apt-get install dataset-fashion-mnist)`,
    },
    async () => {
      for (const f of DATASET_SOURCES['fashion-mnist'].files) {
        const debian = new Uint8Array(await readFile(join(DEBIAN_FASHION_MNIST_DIR, f.name)));
        assert.deepEqual(Array.from(debian.subarray(0, 4)), [0x1f, 0x8b, 8, 0], 'Debian header has no FNAME');
        const fname = new TextEncoder().encode(`${f.name.replace(/\.gz$/, '')}\0`);
        const upstream = new Uint8Array(debian.length + fname.length);
        upstream.set(debian.subarray(0, 10));
        upstream[3] = 0x08; // FNAME
        new DataView(upstream.buffer).setUint32(4, upstreamMtime[f.name], true);
        upstream.set(fname, 10);
        upstream.set(debian.subarray(10), 10 + fname.length);
        assert.equal(upstream.length, f.size, f.name);
        assert.equal(sha256(upstream), f.sha256, f.name);
        assert.equal(sha256(gunzipSync(debian)), f.contentSha256, `${f.name} content`);
      }
    },
  );
});
