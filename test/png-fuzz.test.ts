/**
 * Decoding a PNG for `onebit predict --image` (src/io/image.ts) ends, whatever the bytes, in a decoded image
 * or an ImageError naming the file: 10,000 seeded mutations of small valid PNGs (bit flips, truncations,
 * zeroed ranges, chunk data changed under a recomputed CRC, IHDR fields rewritten), none of which may throw
 * anything else or take long; a header announcing a huge image is refused before it is inflated.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { ImageError, OnebitError } from '../src/errors.js';
import { decodePngImage, encodePngImage } from '../src/io/image.js';
import { Rng } from '../src/tensor/rng.js';

const SIZE = 8;

/** CRC-32 (ISO-HDLC, as PNG chunks use). */
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return (c ^ 0xffffffff) >>> 0;
}

interface Chunk {
  /** Offset of the chunk's length field, and its data length. */
  readonly start: number;
  readonly length: number;
}

function chunksOf(png: Uint8Array): Chunk[] {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: Chunk[] = [];
  for (let at = 8; at + 12 <= png.byteLength;) {
    const length = view.getUint32(at);
    chunks.push({ start: at, length });
    at += 12 + length;
  }
  return chunks;
}

/** Recomputes the CRC of the chunk at `chunk` (over its type and data), so the decoder reads past it. */
function fixCrc(png: Uint8Array, chunk: Chunk): void {
  const end = chunk.start + 8 + chunk.length;
  if (end + 4 > png.byteLength) return;
  new DataView(png.buffer, png.byteOffset).setUint32(end, crc32(png.subarray(chunk.start + 4, end)));
}

function pattern(channels: number): Uint8Array {
  const pixels = new Uint8Array(channels * SIZE * SIZE);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + 11) & 255;
  return pixels;
}

/** Two small valid PNGs: 8-bit grayscale and RGBA. */
function basePngs(): { bytes: Uint8Array; shape: [number, number, number] }[] {
  const gray = new PNG({ width: SIZE, height: SIZE });
  const g = pattern(1);
  for (let p = 0; p < SIZE * SIZE; p++) {
    gray.data[4 * p] = gray.data[4 * p + 1] = gray.data[4 * p + 2] = g[p];
    gray.data[4 * p + 3] = 255;
  }
  return [
    { bytes: PNG.sync.write(gray, { colorType: 0, inputColorType: 6 }), shape: [1, SIZE, SIZE] },
    { bytes: encodePngImage(pattern(3), [3, SIZE, SIZE]), shape: [3, SIZE, SIZE] },
  ];
}

/** One seeded mutation of `base`. */
function mutate(base: Uint8Array, rng: Rng): Uint8Array {
  const bytes = Uint8Array.from(base);
  switch (rng.int(5)) {
    case 0: {
      // Bit flips anywhere.
      const flips = 1 + rng.int(4);
      for (let i = 0; i < flips; i++) bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
      return bytes;
    }
    case 1:
      // Truncation.
      return bytes.subarray(0, rng.int(bytes.length));
    case 2: {
      // A zeroed range.
      const start = rng.int(bytes.length);
      bytes.fill(0, start, Math.min(bytes.length, start + 1 + rng.int(32)));
      return bytes;
    }
    case 3: {
      // A chunk's data changed, its CRC made right again: the decoder goes on into zlib and the filters.
      const chunks = chunksOf(bytes).filter((c) => c.length > 0);
      const chunk = chunks[rng.int(chunks.length)];
      const flips = 1 + rng.int(3);
      for (let i = 0; i < flips; i++) bytes[chunk.start + 8 + rng.int(chunk.length)] ^= 1 << rng.int(8);
      fixCrc(bytes, chunk);
      return bytes;
    }
    default: {
      // IHDR fields rewritten (size, bit depth, color type, compression, filter, interlace), CRC made right.
      const view = new DataView(bytes.buffer);
      const field = rng.int(7);
      if (field === 0) view.setUint32(16, rng.int(2) === 0 ? rng.int(4 * SIZE) : rng.int(0x100000000));
      else if (field === 1) view.setUint32(20, rng.int(2) === 0 ? rng.int(4 * SIZE) : rng.int(0x100000000));
      else bytes[24 + field - 2] = rng.int(2) === 0 ? [1, 2, 4, 8, 16, 0, 3, 6][rng.int(8)] : rng.int(256);
      fixCrc(bytes, { start: 8, length: 13 });
      return bytes;
    }
  }
}

describe('PNG decoding under fuzzing', () => {
  test('10,000 seeded mutations each decode or end in an ImageError naming the file', () => {
    const rng = new Rng(20250501);
    const bases = basePngs();
    const outcomes = { decoded: 0, refused: 0 };
    let slowest = 0;
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) {
      const base = bases[i % bases.length];
      const bytes = mutate(base.bytes, rng);
      const t = performance.now();
      try {
        const pixels = decodePngImage(bytes, base.shape, 'fuzz.png');
        assert.equal(pixels.length, base.shape[0] * SIZE * SIZE);
        outcomes.decoded++;
      } catch (error) {
        assert.ok(
          error instanceof OnebitError,
          `mutation ${i}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`,
        );
        assert.ok(error instanceof ImageError, `mutation ${i}: ${error.name}`);
        assert.equal(error.file, 'fuzz.png');
        outcomes.refused++;
      }
      slowest = Math.max(slowest, performance.now() - t);
    }
    const seconds = (performance.now() - started) / 1000;
    // Both outcomes occur (the mutations neither all break the file nor all miss it).
    assert.ok(outcomes.decoded > 0 && outcomes.refused > 0, JSON.stringify(outcomes));
    assert.ok(slowest < 1000, `slowest mutation took ${slowest.toFixed(0)} ms`);
    assert.ok(seconds < 20, `10,000 mutations took ${seconds.toFixed(1)} s`);
  });

  test('a header announcing a huge image is refused by its size, before inflating', () => {
    const [gray] = basePngs();
    const bytes = Uint8Array.from(gray.bytes);
    const view = new DataView(bytes.buffer);
    view.setUint32(16, 60000);
    view.setUint32(20, 60000);
    fixCrc(bytes, { start: 8, length: 13 });
    const started = performance.now();
    assert.throws(
      () => decodePngImage(bytes, gray.shape, 'bomb.png'),
      (e: unknown) =>
        e instanceof ImageError &&
        /bomb\.png: the model takes 8x8 images, this one is 60000x60000/.test(e.message),
    );
    assert.ok(performance.now() - started < 1000);
  });

  test('a file that is not a PNG, and a corrupt one: "not a valid PNG", naming the file', () => {
    assert.throws(
      () => decodePngImage(new TextEncoder().encode('{"not": "a png"}'), [1, SIZE, SIZE], 'notes.json'),
      /^ImageError: notes\.json: not a valid PNG: expected the PNG signature 89 50 4e 47 0d 0a 1a 0a, found bytes 7b 22 6e 6f/,
    );
    assert.throws(
      () => decodePngImage(new Uint8Array(0), [1, SIZE, SIZE], 'empty.png'),
      /empty\.png: not a valid PNG: .*found an empty file/,
    );
    const [gray] = basePngs();
    // A byte of the image data changed, the chunk's CRC left as it was.
    const corrupt = Uint8Array.from(gray.bytes);
    const idat = chunksOf(corrupt).find(
      (c) => String.fromCharCode(...corrupt.subarray(c.start + 4, c.start + 8)) === 'IDAT',
    );
    assert.ok(idat !== undefined);
    corrupt[idat.start + 8 + 3] ^= 0x55;
    assert.throws(
      () => decodePngImage(corrupt, [1, SIZE, SIZE], 'corrupt.png'),
      /^ImageError: corrupt\.png: not a valid PNG \(pngjs: .+\)$/,
    );
  });
});

describe('onebit predict --image with a file that is not a PNG', () => {
  test('names the file and says it is not a valid PNG', async () => {
    const { runCli } = await import('./cli.js');
    const dir = mkdtempSync(join(tmpdir(), 'onebit-png-'));
    try {
      const trained = await runCli([
        ...['train', '--data', 'synthetic-mnist', '--model', 'mlp-100', '--epochs', '1'],
        ...['--train-limit', '100', '--test-limit', '50', '--batch-size', '50', '--backend', 'reference'],
        ...['--out', join(dir, 'run'), '--json'],
      ]);
      assert.equal(trained.code, 0, trained.stderr);
      const exported = await runCli([
        'export',
        join(dir, 'run', 'checkpoint.ckpt'),
        '--out',
        join(dir, 'm.onebit'),
      ]);
      assert.equal(exported.code, 0, exported.stderr);
      writeFileSync(join(dir, 'photo.png'), 'GIF89a, not a PNG at all');
      const r = await runCli(['predict', join(dir, 'm.onebit'), '--image', join(dir, 'photo.png')]);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(`${join(dir, 'photo.png')}: not a valid PNG`), r.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
