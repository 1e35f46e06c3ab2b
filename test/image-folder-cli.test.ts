/**
 * `onebit train --data DIR` on the usual image-folder layout (one subfolder of PNGs per class): the class
 * names come from the folder names into the checkpoint's spec, and a spec file and eval work with it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { lastJson, runCli } from './cli.js';

const CLASSES = ['circle', 'cross', 'stripe'];

/** A 12x12 grayscale image of the class's pattern with a little seeded noise. */
function image(kind: number, seed: number): Buffer {
  const png = new PNG({ width: 12, height: 12 });
  let s = seed;
  for (let y = 0; y < 12; y++) {
    for (let x = 0; x < 12; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const on =
        kind === 0
          ? Math.abs(Math.hypot(x - 5.5, y - 5.5) - 4) < 1
          : kind === 1
            ? x === y || x === 11 - y
            : y % 4 < 2;
      const v = Math.min(255, (on ? 200 : 20) + (s >>> 26));
      const i = 4 * (y * 12 + x);
      png.data[i] = png.data[i + 1] = png.data[i + 2] = v;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png, { colorType: 0, inputColorType: 6 });
}

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-folder-'));
  for (const [k, name] of CLASSES.entries()) {
    for (const split of ['train', 'test']) {
      mkdirSync(join(dir, 'images', split, name), { recursive: true });
      const count = split === 'train' ? 40 : 10;
      for (let i = 0; i < count; i++)
        writeFileSync(
          join(dir, 'images', split, name, `${i}.png`),
          image(k, 1000 * k + i + (split === 'test' ? 500 : 0)),
        );
    }
  }
  writeFileSync(
    join(dir, 'spec.json'),
    JSON.stringify({
      input: [1, 12, 12],
      classes: 3,
      layers: [
        { type: 'flatten' },
        { type: 'binaryDense', units: 32 },
        { type: 'batchNorm' },
        { type: 'hardtanh' },
        { type: 'binaryDense', units: 3, binarizer: 'sign' },
        { type: 'batchNorm' },
      ],
    }),
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('training on a folder of images', () => {
  test('class names from the folders reach the checkpoint; eval reads the same folder', async () => {
    const out = join(dir, 'run');
    const trained = await runCli([
      'train',
      '--data',
      join(dir, 'images'),
      '--model',
      join(dir, 'spec.json'),
      '--epochs',
      '3',
      '--batch-size',
      '20',
      '--lr',
      '0.01',
      '--backend',
      'reference',
      '--json',
      '--out',
      out,
    ]);
    assert.equal(trained.code, 0, trained.stderr);
    const result = lastJson(trained.stdout);
    assert.ok((result.testAccuracy as number) > 0.8, `accuracy ${String(result.testAccuracy)}`);
    const checkpoint = loadCheckpoint(join(out, 'checkpoint.ckpt'));
    assert.deepEqual(checkpoint.meta.config.spec?.classNames, CLASSES);
    const evaluated = await runCli([
      'eval',
      join(out, 'checkpoint.ckpt'),
      '--backend',
      'reference',
      '--json',
    ]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    assert.equal((lastJson(evaluated.stdout).mode as { accuracy: number }).accuracy, result.testAccuracy);
  });

  test('a folder that is not a data set is refused with what was expected', async () => {
    const bad = await runCli(['train', '--data', join(dir, 'nowhere'), '--epochs', '1']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--data: expected one of .*or a folder of PNG images/);
  });
});
