/**
 * The package as a user gets it: `npm pack`, install the tarball into a new project, and run a script there
 * that uses only the public entry points (`onebit` and `onebit/engine`): a custom model defined in code, fit for
 * one epoch on a subset with callbacks, exported to `.onebit`, loaded by the engine, and its predictions
 * compared with the library's own evaluation. Slow-ish (a build and an install), so it runs once.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '..');

const SCRIPT = `
import { batchNorm, binaryDense, datasetFromArrays, exportModel, fit, flatten, hardtanh, sequential } from 'onebit';
import { createEngine } from 'onebit/engine';

// Ten classes of 8x8 images: class c lights up row c % 8 and column c (mod 8) with noise.
function makeSet(count, seed) {
  let s = seed;
  const random = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const images = new Uint8Array(count * 64);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const c = i % 10;
    labels[i] = c;
    for (let p = 0; p < 64; p++) {
      const lit = Math.floor(p / 8) === c % 8 || p % 8 === (c * 3) % 8;
      images[i * 64 + p] = Math.min(255, Math.floor((lit ? 180 : 30) + 60 * random()));
    }
  }
  return datasetFromArrays({ images, labels, shape: [1, 8, 8], classes: 10, name: 'toy' });
}

const model = sequential({ input: [1, 8, 8], classes: 10 }, [
  flatten(),
  binaryDense(64),
  batchNorm(),
  hardtanh(),
  binaryDense(10, { binarizer: 'sign' }),
  batchNorm(),
]);
let batches = 0;
let epochs = 0;
const result = await fit({
  model,
  method: 'ste',
  data: { train: makeSet(1000, 1), test: makeSet(300, 2) },
  epochs: 1,
  batchSize: 50,
  learningRate: 0.01,
  trainLimit: 600,
  onBatch: () => void batches++,
  onEpoch: () => void epochs++,
});
const bytes = await exportModel(result.model, 'onebit');
const engine = await createEngine(bytes, { threads: 1 });
const test = makeSet(300, 2);
const predictions = Array.from(engine.classify(test.images, test.count));
engine.dispose();
const hits = predictions.filter((p, i) => p === test.labels[i]).length;
console.log(JSON.stringify({ batches, epochs, accuracy: result.test.accuracy, engineAccuracy: hits / test.count, bytes: bytes.byteLength }));
`;

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-package-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the packed package', () => {
  test('installs into a new project and trains, exports and predicts through the public API', () => {
    const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Packing rebuilt dist/ (the prepare script): the CLI there must still be executable for `npx onebit`.
    assert.ok(
      (statSync(join(ROOT, 'dist', 'cli', 'main.js')).mode & 0o111) !== 0,
      'dist/cli/main.js is executable',
    );
    const tarball = join(
      dir,
      (JSON.parse(packed.slice(packed.indexOf('['))) as { filename: string }[])[0].filename,
    );
    const project = join(dir, 'project');
    execFileSync('mkdir', ['-p', project]);
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'user', type: 'module', private: true }),
    );
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], {
      cwd: project,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    writeFileSync(join(project, 'main.js'), SCRIPT);
    const out = execFileSync(process.execPath, ['main.js'], { cwd: project, encoding: 'utf8' });
    const result = JSON.parse(out.trim().split('\n').at(-1)!) as {
      batches: number;
      epochs: number;
      accuracy: number;
      engineAccuracy: number;
      bytes: number;
    };
    // 1000 examples, 10% held out for validation, limited to 600: 12 batches of 50 in one epoch.
    assert.equal(result.batches, 12);
    assert.equal(result.epochs, 1);
    // The exported model predicts exactly what the trained model does, and it learned something.
    assert.equal(result.engineAccuracy, result.accuracy);
    assert.ok(result.accuracy > 0.3, `accuracy ${result.accuracy}`);
    assert.ok(result.bytes > 0);
    // The command line is installed too, and runs.
    const shown = execFileSync(
      join(project, 'node_modules', '.bin', 'onebit'),
      ['model', 'show', 'mlp-100', '--json'],
      {
        cwd: project,
        encoding: 'utf8',
      },
    );
    assert.equal((JSON.parse(shown) as { classes: number }).classes, 10);
  });
});
