import { rowStride } from '../src/methods/float-free/reference.js';
import type { Backend } from '../src/backend/backend.js';
import { Normalizer } from '../src/data/pipeline.js';
import type { LearnerSetup } from '../src/methods/learner.js';
import { namedModelSpec } from '../src/nn/models.js';
import { measureTrainingMemory } from '../src/train/summary.js';
/**
 * Float-free training (issue 7) end to end, on small models and synthetic data so the suite stays fast:
 * - the wasm module contains no floating-point instruction (opcode listing by wasm-objdump, and the value
 *   types of every function signature and local read from the binary); nor do the native addon's float-free
 *   objects at any level (x86 disassembly by objdump: no floating-point arithmetic, comparison or conversion);
 * - whole training steps on the wasm kernels (three threads), and on the native ones at every level, equal the
 *   integer reference, state and logits;
 * - two runs with the same seed write byte-identical checkpoints, and a resumed run ends byte-identical;
 * - the summary's memory figures next to STE's; configuration errors.
 */
import { ConfigError } from '../src/errors.js';
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createBackend } from '../src/backend/index.js';
import { createReferenceBackend } from '../src/backend/reference/index.js';
import { syntheticDataset } from '../src/data/dataset.js';
import {
  FLOAT_FREE_DEFAULTS,
  FloatFreeMethod,
  type FloatFreeOptions,
  floatFreeActivationBytes,
  floatFreeLayers,
  scheduleExtraShift,
} from '../src/methods/float-free.js';
import { createReferenceKernels } from '../src/methods/float-free/kernels.js';
import { createWasmKernels, FLOAT_FREE_MODULE_URL } from '../src/methods/float-free/wasm-kernels.js';
import { createNativeKernels } from '../src/methods/float-free/native-kernels.js';
import { loadNativeAddon } from '../src/native/addon.js';
import type { FfKernels } from '../src/methods/float-free/kernels.js';
import { resolveMethodConfig } from '../src/methods/registry.js';
import { buildModel } from '../src/nn/models.js';
import { Rng } from '../src/tensor/rng.js';
import { TRAIN_DEFAULTS, validateConfig, type TrainConfig } from '../src/config/train-config.js';
import { summarizeModel } from '../src/train/summary.js';
import { CHECKPOINT_FILE, train } from '../src/train/trainer.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { createRun, disposeRun, restoreRun } from '../src/train/run.js';
import { exportCheckpoint } from '../src/io/export-file.js';
import { argmax, createEngine } from '../src/engine/engine.js';
import * as ort from 'onnxruntime-node';
import { decodeSafetensors } from '../src/io/safetensors.js';

const SHAPE = [1, 28, 28] as const;
const CLI = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'onebit-float-free-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Reads a LEB128 unsigned integer at `at`; returns [value, next offset]. */
function leb(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [value, at];
  }
}

/** Every value type named in the type section (signatures) and in the code section's local declarations. */
function valueTypes(bytes: Uint8Array): number[] {
  const types: number[] = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, start] = leb(bytes, at + 1);
    const end = start + size;
    if (id === 1) {
      let [count, p] = leb(bytes, start);
      for (; count > 0; count--) {
        assert.equal(bytes[p], 0x60, 'function type');
        p++;
        for (let side = 0; side < 2; side++) {
          let n: number;
          [n, p] = leb(bytes, p);
          for (; n > 0; n--) types.push(bytes[p++]);
        }
      }
    } else if (id === 10) {
      let [count, p] = leb(bytes, start);
      for (; count > 0; count--) {
        let bodySize: number;
        [bodySize, p] = leb(bytes, p);
        const bodyEnd = p + bodySize;
        let groups: number;
        [groups, p] = leb(bytes, p);
        for (; groups > 0; groups--) {
          [, p] = leb(bytes, p);
          types.push(bytes[p++]);
        }
        p = bodyEnd;
      }
    }
    at = end;
  }
  return types;
}

/**
 * Bytes per weight of float-free's state tensors: an int16 counter per weight with rows padded to
 * rowStride(fan-in), an int32 running mean per unit, and the output's two int32 scale statistics.
 */
function floatFreeStateBytes(widths: readonly number[]): number {
  let bytes = 8;
  let weights = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    bytes += 2 * widths[l + 1] * rowStride(widths[l]) + 4 * widths[l + 1];
    weights += widths[l + 1] * widths[l];
  }
  return bytes / weights;
}

/** A learner setup for float-free's integer mlp-100 with 1-bit activations. */
function mlp100Setup(
  backend: Backend,
  rng: Rng,
  context: { trainingExamples: number; stepsPerEpoch: number; totalSteps?: number; maxBatch: number },
): LearnerSetup {
  const { maxBatch, ...rest } = context;
  return {
    spec: namedModelSpec('mlp-100', { activations: 'binary', inputShape: SHAPE }),
    backend,
    rng,
    maxBatch,
    context: rest,
    realOptimizer: { kind: 'adam', learningRate: () => 0, weightDecay: 0 },
    normalizer: Normalizer.unit(SHAPE),
  };
}

describe('the float-free module has no floating-point instruction', () => {
  const bytes = readFileSync(FLOAT_FREE_MODULE_URL);

  test('wasm-objdump lists no f32.* / f64.* opcode (nor a conversion or SIMD float op)', () => {
    let listing: string;
    try {
      listing = execFileSync('wasm-objdump', ['-d', FLOAT_FREE_MODULE_URL.pathname], {
        encoding: 'utf8',
        maxBuffer: 1 << 28,
      });
    } catch (error) {
      assert.fail(`wasm-objdump (wabt) is needed for this test: apt-get install wabt (${String(error)})`);
    }
    const opcodes = listing
      .split('\n')
      .filter((line) => line.includes('|'))
      .map((line) => line.split('|')[1].trim().split(/\s+/)[0])
      .filter((op) => op !== undefined && op !== '');
    assert.ok(opcodes.length > 1000, `only ${opcodes.length} instructions listed`);
    const distinct = [...new Set(opcodes)].sort();
    // The listing is real: the kernels' integer SIMD and popcount are there.
    for (const op of ['i8x16.popcnt', 'i32x4.dot_i16x8_s', 'i16x8.add', 'i64.div_s', 'v128.and']) {
      assert.ok(distinct.includes(op), `${op} is missing from ${distinct.join(' ')}`);
    }
    const floats = distinct.filter((op) => /f32|f64/.test(op));
    assert.deepEqual(floats, [], `floating-point opcodes: ${floats.join(' ')}`);
  });

  test('no signature or local has a float type (f32 0x7d, f64 0x7c)', () => {
    const types = valueTypes(bytes);
    assert.ok(types.length > 20);
    assert.ok(
      types.every((t) => t === 0x7f || t === 0x7e || t === 0x7b),
      `value types ${[...new Set(types)]}`,
    );
  });
});

const NATIVE = loadNativeAddon();
const NATIVE_BUILD = join(import.meta.dirname, '..', '.native-build');

/**
 * x86 instructions that compute with floating-point values: SSE/AVX arithmetic, comparisons, min/max, square
 * roots and fused multiply-adds on ss/sd/ps/pd/sh/ph, every conversion (cvt*), (u)comis*, and x87 (f*).
 * Moves, shuffles and bitwise operations on float-domain registers are not computation and are allowed.
 */
const X86_FLOAT =
  /^v?(add|sub|mul|div|sqrt|min|max|rcp\w*|rsqrt\w*|f[n]?m(add|sub)\w*|cmp\w*|round|dp|hadd|hsub|addsub|getexp|getmant|scalef|range|reduce|fixupimm)(ss|sd|ps|pd|sh|ph)$|^v?cvt|^v?u?comis|^f(add|sub|mul|div|ld|st|ild|ist|com|ucom|sqrt|abs|chs|prem|sin|cos|xch|rndint|scale)\w*$/;

describe('the native float-free kernels have no floating-point instruction', () => {
  const skip = NATIVE.available
    ? false
    : `native addon not available: ${NATIVE.available ? '' : NATIVE.reason}`;
  for (const level of NATIVE.available ? NATIVE.levels : ['avx512']) {
    test(
      `objdump of the ${level} objects lists no x86 floating-point arithmetic or conversion`,
      { skip },
      () => {
        const objects = ['forward', 'backward', 'update'].map((f) =>
          join(NATIVE_BUILD, level, `float-free-${f}.o`),
        );
        let listing: string;
        try {
          listing = execFileSync('objdump', ['-d', '--no-show-raw-insn', ...objects], {
            encoding: 'utf8',
            maxBuffer: 1 << 28,
          });
        } catch (error) {
          assert.fail(`objdump (binutils) and a built addon are needed for this test (${String(error)})`);
        }
        // Instruction lines: "  address:<tab>mnemonic operands", attributed to the function above them.
        let fn = '';
        const found: string[] = [];
        let count = 0;
        const kernels = new Set<string>();
        for (const line of listing.split('\n')) {
          const header = /^[0-9a-f]+ <([^>]+)>:$/.exec(line);
          if (header !== null) {
            fn = header[1];
            if (fn.startsWith('ff_')) kernels.add(fn);
            continue;
          }
          const insn = /^\s+[0-9a-f]+:\s+(\S+)/.exec(line);
          if (insn === null) continue;
          count++;
          if (X86_FLOAT.test(insn[1])) found.push(`${fn}: ${insn[1]}`);
        }
        // The listing is real: every kernel of this level is there, with its integer code.
        assert.equal(kernels.size, 14, [...kernels].join(' '));
        assert.ok(count > 2000, `only ${count} instructions listed`);
        assert.ok(
          /\bp(add|sub)[bwdq]\b|\bvp(add|sub)[bwdq]\b/.test(listing),
          'no integer SIMD add in the listing',
        );
        assert.deepEqual(found, [], `floating-point instructions: ${found.slice(0, 20).join(', ')}`);
      },
    );
  }
  test('the pattern catches float arithmetic and conversions, and lets integer and move instructions pass', () => {
    for (const op of [
      'addss',
      'vmulps',
      'vfmadd231ps',
      'cvttps2dq',
      'vcvtdq2ps',
      'ucomiss',
      'fld',
      'vcmpltps',
      'maxsd',
    ]) {
      assert.ok(X86_FLOAT.test(op), op);
    }
    for (const op of [
      'paddd',
      'vpmaddwd',
      'vmovaps',
      'vxorps',
      'vshufps',
      'vpcmpgtd',
      'movss',
      'vpermps',
      'add',
    ]) {
      assert.ok(!X86_FLOAT.test(op), op);
    }
  });
});

/** The float-free kernels a whole-step test runs against the reference: wasm, and native at every level. */
const STEP_KERNELS: { label: string; create: () => FfKernels }[] = [
  {
    label: 'wasm kernels (3 threads)',
    create: () => createWasmKernels({ threads: 3, alwaysParallel: true }),
  },
  ...(NATIVE.available ? NATIVE.levels : []).map((level) => ({
    label: `native ${level} kernels (3 threads)`,
    create: () => createNativeKernels({ level, threads: 3, alwaysParallel: true }),
  })),
];

describe('whole float-free steps: wasm and native kernels = integer reference', () => {
  const variants: readonly [string, FloatFreeOptions][] = [
    ['the defaults', { ...FLOAT_FREE_DEFAULTS, shift: 0 }],
    [
      'every other option',
      {
        ...FLOAT_FREE_DEFAULTS,
        project: false,
        projectHidden: false,
        center: false,
        schedule: 'constant',
        shift: 5,
        clip: 3000,
        init: 200,
      },
    ],
  ];
  for (const [label, options] of variants)
    for (const kernels of STEP_KERNELS) {
      test(`state and logits are identical after 4 steps of mlp-100 on synthetic data (${label}; ${kernels.label})`, async () => {
        const data = syntheticDataset({ shape: SHAPE, count: 64, classes: 10, seed: 5 });
        const order = new Rng(9).shuffle(Uint32Array.from({ length: data.count }, (_, i) => i));
        const wasmKernels = kernels.create();
        const methods = [
          new FloatFreeMethod(options, () => wasmKernels),
          new FloatFreeMethod(options, () => createReferenceKernels()),
        ];
        const backend = createReferenceBackend('float32');
        try {
          for (const m of methods) {
            m.bind(
              mlp100Setup(backend, new Rng(3), {
                trainingExamples: 64,
                stepsPerEpoch: 4,
                totalSteps: 4,
                maxBatch: 20,
              }),
            );
            await m.prepare();
          }
          const results = methods.map((m) => {
            const losses: number[] = [];
            for (let s = 0; s < 4; s++) {
              const n = s === 3 ? 4 : 20; // a short last batch
              losses.push(
                m.trainBatch(data, order, s * 20, n, { step: s + 1, learningRate: 0, scheduleStep: 0 }).loss,
              );
            }
            const logits = Float64Array.from(m.logits(data, order, 0, 17));
            return { losses, logits, state: m.stateTensors(), scalars: m.stateScalars() };
          });
          const [w, r] = results;
          assert.deepEqual(w.losses, r.losses);
          assert.deepEqual(w.logits, r.logits);
          assert.deepEqual(w.scalars, r.scalars);
          assert.equal(w.state.length, r.state.length);
          for (let i = 0; i < w.state.length; i++) {
            assert.equal(w.state[i].name, r.state[i].name);
            assert.deepEqual(Array.from(w.state[i].value), Array.from(r.state[i].value), w.state[i].name);
          }
          // Training moved the counters (the test is not vacuous).
          const fresh = new FloatFreeMethod(options, () => createReferenceKernels());
          fresh.bind(
            mlp100Setup(backend, new Rng(3), {
              trainingExamples: 64,
              stepsPerEpoch: 4,
              maxBatch: 20,
            }),
          );
          assert.notDeepEqual(Array.from(fresh.stateTensors()[2].value), Array.from(r.state[2].value));
          fresh.dispose();
        } finally {
          for (const m of methods) m.dispose();
          backend.dispose();
        }
      });
    }
});

describe('the learning-rate shifts reach the right layers', () => {
  test('--ff-pixel-shift slows the first layer only; --ff-shift every layer', () => {
    const data = syntheticDataset({ shape: SHAPE, count: 20, classes: 10, seed: 6 });
    const order = Uint32Array.from({ length: 20 }, (_, i) => i);
    const backend = createReferenceBackend('float32');
    const after = (options: FloatFreeOptions): { start: Int16Array[]; end: Int16Array[] } => {
      const m = new FloatFreeMethod(options, () => createReferenceKernels());
      m.bind(
        mlp100Setup(backend, new Rng(3), {
          trainingExamples: 20,
          stepsPerEpoch: 1,
          maxBatch: 20,
        }),
      );
      const counters = (): Int16Array[] =>
        m
          .stateTensors()
          .filter((t) => t.name.endsWith('/counters'))
          .map((t) => Int16Array.from(t.value as Int16Array));
      const start = counters();
      m.trainBatch(data, order, 0, 20, { step: 1, learningRate: 0, scheduleStep: 0 });
      const end = counters();
      m.dispose();
      return { start, end };
    };
    const moved = (r: { start: Int16Array[]; end: Int16Array[] }, l: number): number =>
      r.end[l].reduce((acc, v, i) => acc + Math.abs(v - r.start[l][i]), 0);
    const base = { ...FLOAT_FREE_DEFAULTS, schedule: 'constant' as const, shift: 0 };
    const fast = after({ ...base, pixelShift: 0 });
    const slow = after({ ...base, pixelShift: 12 });
    assert.ok(moved(fast, 0) > 0);
    assert.ok(moved(slow, 0) * 100 < moved(fast, 0), `${moved(slow, 0)} vs ${moved(fast, 0)}`);
    for (const l of [1, 2]) assert.deepEqual(Array.from(slow.end[l]), Array.from(fast.end[l]));
    const shifted = after({ ...base, shift: 6, pixelShift: 0 });
    for (const l of [0, 1, 2]) assert.ok(moved(shifted, l) * 16 < moved(fast, l), `layer ${l}`);
    backend.dispose();
  });
});

function smallConfig(overrides: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data: 'synthetic-mnist',
    model: 'mlp-100',
    method: 'float-free',
    activations: 'binary',
    epochs: 2,
    batchSize: 32,
    trainLimit: 192,
    ...overrides,
  };
}

describe('float-free runs: determinism and resumption', () => {
  const trainSet = syntheticDataset({ shape: SHAPE, count: 240, classes: 10, seed: 3 });
  const testSet = syntheticDataset({ shape: SHAPE, count: 100, classes: 10, seed: 3, split: 'test' });

  async function run(outDir: string, config: TrainConfig, resume = false): Promise<number> {
    const backend = await createBackend({ kind: 'wasm', threads: 2 });
    try {
      const result = await train({ config, backend, train: trainSet, test: testSet, outDir, resume });
      return result.test.accuracy;
    } finally {
      backend.dispose();
    }
  }

  test('two runs with the same seed write byte-identical checkpoints, and learn', async () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    const accuracy = await run(a, smallConfig());
    await run(b, smallConfig());
    const bytesA = readFileSync(join(a, CHECKPOINT_FILE));
    assert.ok(bytesA.equals(readFileSync(join(b, CHECKPOINT_FILE))), 'checkpoints differ');
    assert.ok(accuracy > 0.5, `test accuracy ${accuracy} on the synthetic blobs`);
    // A different seed gives a different run.
    const c = join(dir, 'c');
    await run(c, smallConfig({ seed: 2 }));
    assert.ok(!bytesA.equals(readFileSync(join(c, CHECKPOINT_FILE))));
  });

  test('stopping after epoch 1 and resuming ends byte-identical to the straight run', async () => {
    const straight = join(dir, 'straight');
    const resumed = join(dir, 'resumed');
    await run(straight, smallConfig());
    const backend = await createBackend({ kind: 'wasm', threads: 2 });
    try {
      // Stop right after the first epoch's checkpoint, as a killed process would.
      await assert.rejects(
        train({
          config: smallConfig(),
          backend,
          train: trainSet,
          test: testSet,
          outDir: resumed,
          resume: false,
          callbacks: {
            onEpoch: () => {
              throw new Error('stop');
            },
          },
        }),
        /stop/,
      );
    } finally {
      backend.dispose();
    }
    await run(resumed, smallConfig(), true);
    assert.ok(
      readFileSync(join(resumed, CHECKPOINT_FILE)).equals(readFileSync(join(straight, CHECKPOINT_FILE))),
    );
  });
});

describe('a trained float-free model exported to .onebit runs in the engine with identical predictions', () => {
  test('mlp-100 on synthetic data: logits equal bit for bit on every first-layer kernel', async () => {
    const trainSet = syntheticDataset({ shape: SHAPE, count: 240, classes: 10, seed: 4 });
    const testSet = syntheticDataset({ shape: SHAPE, count: 150, classes: 10, seed: 4, split: 'test' });
    const outDir = join(dir, 'export');
    const backend = await createBackend({ kind: 'wasm', threads: 2 });
    try {
      await train({ config: smallConfig(), backend, train: trainSet, test: testSet, outDir, resume: false });
      const ckpt = join(outDir, CHECKPOINT_FILE);
      const file = join(outDir, 'model.onebit');
      exportCheckpoint(ckpt, 'onebit', file, backend);
      const checkpoint = loadCheckpoint(ckpt);
      const run = createRun(
        checkpoint.meta.config,
        backend,
        { inputShape: SHAPE, classes: 10, stepsPerEpoch: 1, trainingExamples: 1 },
        testSet.count,
      );
      try {
        restoreRun(run, ckpt, checkpoint);
        assert.ok(run.learner instanceof FloatFreeMethod);
        const order = Uint32Array.from({ length: testSet.count }, (_, i) => i);
        const expected = Float64Array.from(run.learner.logits(testSet, order, 0, testSet.count));
        const predictions = Array.from({ length: testSet.count }, (_, i) => argmax(expected, i * 10, 10));
        // Not a degenerate model: it predicts several classes and mostly right.
        assert.ok(new Set(predictions).size > 5);
        const hits = predictions.filter((p, i) => p === testSet.labels[i]).length;
        assert.ok(hits > testSet.count / 2, `${hits} of ${testSet.count} right`);
        const bytes = new Uint8Array(readFileSync(file));
        for (const firstLayer of ['lut', 'masked', 'float'] as const) {
          const engine = await createEngine(bytes, { threads: 1, firstLayer, maxBatch: 64 });
          try {
            const logits = engine.logits(testSet.images, testSet.count);
            assert.deepEqual(
              Array.from(logits),
              Array.from(expected, (v) => Math.fround(v)),
              firstLayer,
            );
            assert.deepEqual(Array.from(engine.classify(testSet.images, testSet.count)), predictions);
          } finally {
            engine.dispose();
          }
        }
      } finally {
        disposeRun(run);
      }
    } finally {
      backend.dispose();
    }
  });
});

describe('a trained float-free model exported to ONNX and safetensors', () => {
  test("mlp-100 on synthetic data: onnxruntime gives the learner's logits on every example; safetensors holds every tensor", async () => {
    const trainSet = syntheticDataset({ shape: SHAPE, count: 240, classes: 10, seed: 5 });
    const testSet = syntheticDataset({ shape: SHAPE, count: 150, classes: 10, seed: 5, split: 'test' });
    const outDir = join(dir, 'export-onnx');
    const backend = await createBackend({ kind: 'wasm', threads: 2 });
    try {
      await train({ config: smallConfig(), backend, train: trainSet, test: testSet, outDir, resume: false });
      const ckpt = join(outDir, CHECKPOINT_FILE);
      const onnxFile = join(outDir, 'model.onnx');
      const safetensorsFile = join(outDir, 'model.safetensors');
      exportCheckpoint(ckpt, 'onnx', onnxFile, backend);
      exportCheckpoint(ckpt, 'safetensors', safetensorsFile, backend);
      const checkpoint = loadCheckpoint(ckpt);
      const { mean, std } = checkpoint.meta.normalization;
      // The data's own statistics, not the identity: the graph must undo a real normalisation.
      assert.ok(mean[0] !== 0 && std[0] !== 1, JSON.stringify(checkpoint.meta.normalization));

      const run = createRun(
        checkpoint.meta.config,
        backend,
        { inputShape: SHAPE, classes: 10, stepsPerEpoch: 1, trainingExamples: 1 },
        testSet.count,
      );
      let expected: Float64Array;
      try {
        restoreRun(run, ckpt, checkpoint);
        assert.ok(run.learner instanceof FloatFreeMethod);
        const order = Uint32Array.from({ length: testSet.count }, (_, i) => i);
        expected = Float64Array.from(run.learner.logits(testSet, order, 0, testSet.count));
      } finally {
        disposeRun(run);
      }
      const predictions = Array.from({ length: testSet.count }, (_, i) => argmax(expected, i * 10, 10));
      assert.ok(new Set(predictions).size > 5, 'a degenerate model');

      // The float-model export's input convention: (v / 255 - mean) / std, [N, C, H, W].
      const session = await ort.InferenceSession.create(readFileSync(onnxFile), {
        intraOpNumThreads: 1,
        logSeverityLevel: 3,
      });
      try {
        const x = Float32Array.from(testSet.images, (v) => (v / 255 - mean[0]) / std[0]);
        const out = await session.run({ input: new ort.Tensor('float32', x, [testSet.count, ...SHAPE]) });
        const logits = out.logits.data as Float32Array;
        assert.deepEqual(out.logits.dims, [testSet.count, 10]);
        // Exact: every step of the graph is exact in float32, as the method's integer arithmetic.
        assert.deepEqual(
          Array.from(logits),
          Array.from(expected, (v) => Math.fround(v)),
        );
        const classes = Array.from({ length: testSet.count }, (_, i) => argmax(logits, i * 10, 10));
        assert.deepEqual(classes, predictions);
      } finally {
        await session.release();
      }

      const file = decodeSafetensors(new Uint8Array(readFileSync(safetensorsFile)));
      assert.deepEqual([...file.tensors.keys()].sort(), [...checkpoint.tensors.keys()].sort());
      assert.equal(file.metadata.format, 'onebit-checkpoint');
      assert.deepEqual(JSON.parse(file.metadata.spec), checkpoint.meta.config.spec);
      assert.deepEqual(JSON.parse(file.metadata.config), checkpoint.meta.config);
      assert.deepEqual(JSON.parse(file.metadata.normalization), checkpoint.meta.normalization);
      assert.equal(file.metadata.epoch, String(checkpoint.meta.epoch));
      assert.equal(file.metadata.step, String(checkpoint.meta.step));
      for (const [k, n, name] of [
        [784, 100, 'fc1'],
        [100, 100, 'fc2'],
        [100, 10, 'fc3'],
      ] as const) {
        const counters = file.tensors.get(`method/${name}/counters`)!;
        assert.equal(counters.dtype, 'I16');
        assert.deepEqual(counters.shape, [n, k]);
        // The checkpoint's rows without their zero padding.
        const p = rowStride(k);
        const padded = checkpoint.tensors.get(`method/${name}/counters`)!;
        for (let i = 0; i < n; i++) {
          assert.deepEqual(
            Array.from(counters.data.subarray(i * k, (i + 1) * k)),
            Array.from(padded.subarray(i * p, i * p + k)),
            `${name} row ${i}`,
          );
        }
        const running = file.tensors.get(`method/${name}/running_mean_q8`)!;
        assert.deepEqual(running.shape, [n]);
        assert.deepEqual(
          Array.from(running.data),
          Array.from(checkpoint.tensors.get(`method/${name}/running_mean_q8`)!),
        );
      }
      assert.deepEqual(
        Array.from(file.tensors.get('method/output/scale_stats')!.data),
        Array.from(checkpoint.tensors.get('method/output/scale_stats')!),
      );
    } finally {
      backend.dispose();
    }
  });
});

describe('the onebit command with --method float-free', () => {
  test('train --json on synthetic data, then summary of its checkpoint; a clear error without binary activations', () => {
    const out = join(dir, 'cli');
    const common = [
      '--data',
      'synthetic-mnist',
      '--model',
      'mlp-100',
      '--method',
      'float-free',
      '--epochs',
      '1',
    ];
    const bad = cli(['train', ...common, '--out', out]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /activations: expected binary for --method float-free/);
    const r = cli([
      'train',
      ...common,
      '--activations',
      'binary',
      '--train-limit',
      '200',
      '--ff-shift',
      '2',
      '--json',
      '--out',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as {
      testAccuracy: number;
      config: { methodOptions: Record<string, unknown> };
    };
    assert.ok(result.testAccuracy > 0.3, `test accuracy ${result.testAccuracy}`);
    assert.deepEqual(result.config.methodOptions, { ffShift: 2 });
    const summary = cli(['summary', join(out, CHECKPOINT_FILE), '--json']);
    assert.equal(summary.code, 0, summary.stderr);
    const s = JSON.parse(summary.stdout.trim()) as {
      method: string;
      stateBytesPerBinaryWeight: number;
      activationBytesPerExample: number;
      ste: { stateBytesPerBinaryWeight: number; activationBytesPerExample: number };
    };
    assert.equal(s.method, 'float-free');
    // Measured from the state tensors: an int16 counter per weight and a little per unit.
    assert.equal(s.stateBytesPerBinaryWeight, floatFreeStateBytes([784, 100, 100, 10]));
    assert.equal(s.activationBytesPerExample, 784 + (2 * 2 * 100) / 8);
    assert.equal(s.ste.stateBytesPerBinaryWeight, 12);
    assert.equal(s.ste.activationBytesPerExample, 4 * (784 + 2 * 3 * 100 + 10));
  });
});

describe('float-free summary figures and configuration', () => {
  test('mlp-2x2048: 2 bytes of state per weight against 12; 1,808 activation bytes against 52,328', () => {
    const model = buildModel('mlp-2x2048', { activations: 'binary' });
    const ste = summarizeModel(model, model.inputShape);
    // STE keeps float32: fc1's input (784), then per hidden layer bn's output, hardtanh's output and the
    // next layer's signs (3 x 2048), and the logits' batch-norm output (10).
    assert.equal(ste.activationBytesPerExample, 4 * (784 + 2 * 3 * 2048 + 10));
    // Measured from the state tensors of each method's learner on the same model.
    const spec = namedModelSpec('mlp-2x2048', { activations: 'binary' });
    assert.equal(
      measureTrainingMemory(spec, 'float-free', {}).stateBytesPerWeight,
      floatFreeStateBytes([784, 2048, 2048, 10]),
    );
    assert.ok(floatFreeStateBytes([784, 2048, 2048, 10]) < 2.02);
    assert.equal(measureTrainingMemory(spec, 'ste', {}).stateBytesPerWeight, 12);
    const layers = floatFreeLayers(namedModelSpec('mlp-2x2048', { activations: 'binary' }));
    // 784 input bytes + (1 sign bit + 1 gate bit) x 2048 units x 2 hidden layers.
    assert.equal(floatFreeActivationBytes(layers), 784 + (2 * 2 * 2048) / 8);
    assert.ok(floatFreeActivationBytes(layers) * 8 <= ste.activationBytesPerExample);
  });

  test('float-free needs binary activations and a binary MLP', () => {
    assert.throws(
      () => validateConfig(smallConfig({ activations: 'real' })),
      (e: unknown) => e instanceof ConfigError && e.field === '--activations',
    );
    assert.throws(
      () => floatFreeLayers(namedModelSpec('cnn-small', { activations: 'binary' })),
      (e: unknown) => e instanceof ConfigError && e.field === '--model',
    );
    assert.throws(
      () => floatFreeLayers(namedModelSpec('mlp-100', { activations: 'real' })),
      (e: unknown) => e instanceof ConfigError && e.field === '--activations',
    );
    assert.throws(
      () => resolveMethodConfig('float-free', { ffShift: 99 }),
      (e: unknown) => e instanceof ConfigError && e.field === '--ff-shift',
    );
    assert.throws(
      () => resolveMethodConfig('ste', { ffShift: 1 }),
      (e: unknown) => e instanceof ConfigError && e.field === '--ff-shift' && /float-free/.test(e.message),
    );
  });

  test('the halving schedule: one more shift each time the remaining steps halve', () => {
    const extra = Array.from({ length: 16 }, (_, t) => scheduleExtraShift('halving', t, 16));
    assert.deepEqual(extra, [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4]);
    assert.equal(scheduleExtraShift('constant', 15, 16), 0);
  });
});
