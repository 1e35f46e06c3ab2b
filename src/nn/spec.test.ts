import { EVERY_LAYER_SPEC } from '../../test/learners.js';
/**
 * Model specs (spec.ts): the named models built from specs keep the parameter and state names and shapes
 * they always had (checkpoints depend on them); specs survive JSON; the builder API writes the same spec
 * as hand-written JSON; broken specs are refused naming the place; every layer type builds, plans and
 * trains a step from a spec (residual, PReLU and average pooling included); layerShapes agrees with plan.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '../backend/backend.js';
import { createReferenceBackend } from '../backend/reference/index.js';
import { SpecError } from '../errors.js';
import { Rng } from '../tensor/rng.js';
import type { Shape } from '../tensor/shape.js';
import { shapeSize } from '../tensor/shape.js';
import { SoftmaxCrossEntropy } from './losses.js';
import { MODEL_NAMES, buildModel, buildModelFromSpec, namedModelSpec, type Model } from './models.js';
import type { ModelName, ModelOptions } from './models.js';
import {
  LAYER_TYPES,
  avgPool2d,
  batchNorm,
  binaryConv2d,
  binaryDense,
  channelScale,
  conv2d,
  dense,
  dropout,
  flatten,
  hardtanh,
  layerShapes,
  maxPool2d,
  parseModelSpec,
  prelu,
  relu,
  residual,
  sequential,
  type LayerSpec,
  type LayerType,
  type ModelSpec,
} from './spec.js';

/** Small inputs where the default would be slow on the reference backend. */
const TINY_INPUT: Partial<Record<ModelName, Shape>> = { 'vgg-small': [3, 8, 8] };

interface Inventory {
  /** Top-level layer names. */
  readonly layers: string[];
  /** "name kind [shape] decay" per parameter, in model order. */
  readonly parameters: string[];
  /** "name length" per state buffer, in model order. */
  readonly state: string[];
}

/** What a checkpoint sees of a model: its parameters and state, after planning for one example. */
function inventory(model: Model): Inventory {
  const be = createReferenceBackend('float32');
  model.planFor(be, 1);
  const result = {
    layers: model.layers.map((l) => l.name),
    parameters: model
      .parameters()
      .map((p) => `${p.name} ${p.kind} [${p.shape.join(', ')}]${p.decay ? ' decay' : ''}`),
    state: model.stateBuffers().map((s) => `${s.name} ${s.value.length}`),
  };
  model.dispose();
  assert.equal(be.bytesInUse(), 0);
  return result;
}

/** Running mean and variance of the batch norms bn<k> for k in `ks` with the given channel counts. */
function bnState(channels: readonly [number, number][]): string[] {
  return channels.flatMap(([k, c]) => [`bn${k}.running_mean ${c}`, `bn${k}.running_var ${c}`]);
}

describe('named models as specs keep their names and shapes', () => {
  const mlp100Layers = ['flatten', 'fc1', 'bn1', 'act1', 'fc2', 'bn2', 'act2', 'fc3', 'bn3'];
  const mlp100Parameters = [
    'fc1.weight binary [100, 784] decay',
    'fc2.weight binary [100, 100] decay',
    'fc3.weight binary [10, 100] decay',
  ];
  const mlp100State = bnState([
    [1, 100],
    [2, 100],
    [3, 10],
  ]);

  for (const activations of ['real', 'binary'] as const) {
    it(`mlp-100, ${activations} activations`, () => {
      const spec = namedModelSpec('mlp-100', { activations });
      assert.deepEqual(inventory(buildModelFromSpec(spec)), {
        layers: mlp100Layers,
        parameters: mlp100Parameters,
        state: mlp100State,
      });
      // The activations: ReLU for real, hardtanh with sign-binarized inputs after the first layer for binary.
      const act = activations === 'real' ? 'relu' : 'hardtanh';
      assert.deepEqual(
        spec.layers.map((l) => l.type),
        [
          'flatten',
          'binaryDense',
          'batchNorm',
          act,
          'binaryDense',
          'batchNorm',
          act,
          'binaryDense',
          'batchNorm',
        ],
      );
      const binarizers = spec.layers.flatMap((l) =>
        l.type === 'binaryDense' ? [l.binarizer ?? 'none'] : [],
      );
      assert.deepEqual(
        binarizers,
        activations === 'real' ? ['none', 'none', 'none'] : ['none', 'sign', 'sign'],
      );
    });
  }

  it('cnn-small', () => {
    assert.deepEqual(inventory(buildModelFromSpec(namedModelSpec('cnn-small'))), {
      layers: ['conv1', 'bn1', 'act1', 'pool1', 'conv2', 'bn2', 'act2', 'pool2', 'flatten', 'fc3', 'bn3'],
      parameters: [
        'conv1.weight binary [16, 1, 3, 3] decay',
        'conv2.weight binary [32, 16, 3, 3] decay',
        // 32 channels x 7 x 7 after two 2x2 poolings of 28 x 28.
        'fc3.weight binary [10, 1568] decay',
      ],
      state: bnState([
        [1, 16],
        [2, 32],
        [3, 10],
      ]),
    });
  });

  it('cnn-small with channel scales and affine batch norms', () => {
    const spec = namedModelSpec('cnn-small', { channelScale: true, batchNormAffine: true });
    const { parameters, state } = inventory(buildModelFromSpec(spec));
    assert.deepEqual(parameters, [
      'conv1.weight binary [16, 1, 3, 3] decay',
      'scale1.weight real [16] decay',
      'bn1.weight real [16]',
      'bn1.bias real [16]',
      'conv2.weight binary [32, 16, 3, 3] decay',
      'scale2.weight real [32] decay',
      'bn2.weight real [32]',
      'bn2.bias real [32]',
      'fc3.weight binary [10, 1568] decay',
      'scale3.weight real [10] decay',
      'bn3.weight real [10]',
      'bn3.bias real [10]',
    ]);
    assert.deepEqual(
      state,
      bnState([
        [1, 16],
        [2, 32],
        [3, 10],
      ]),
    );
  });

  /** The linear layers' names and weight shapes, from the architecture's widths. */
  function expectedLinear(widths: readonly (readonly number[])[]): string[] {
    return widths.map((shape, i) => {
      const prefix = shape.length === 4 ? 'conv' : 'fc';
      return `${prefix}${i + 1}.weight binary [${shape.join(', ')}] decay`;
    });
  }

  it('mlp-2x2048, mlp-3x2048 and vgg-small: fc<k>/conv<k> weights, bn<k> statistics, drop<k>', () => {
    const two = inventory(buildModel('mlp-2x2048'));
    assert.deepEqual(
      two.parameters,
      expectedLinear([
        [2048, 784],
        [2048, 2048],
        [10, 2048],
      ]),
    );
    assert.deepEqual(
      two.state,
      bnState([
        [1, 2048],
        [2, 2048],
        [3, 10],
      ]),
    );

    const three = inventory(buildModel('mlp-3x2048'));
    assert.deepEqual(
      three.parameters,
      expectedLinear([
        [2048, 784],
        [2048, 2048],
        [2048, 2048],
        [10, 2048],
      ]),
    );
    assert.deepEqual(
      three.state,
      bnState([
        [1, 2048],
        [2, 2048],
        [3, 2048],
        [4, 10],
      ]),
    );
    // Dropout on the input and after each hidden activation.
    assert.deepEqual(
      three.layers.filter((n) => n.startsWith('drop')),
      ['drop0', 'drop1', 'drop2', 'drop3'],
    );

    const vgg = inventory(buildModel('vgg-small', { inputShape: TINY_INPUT['vgg-small'] }));
    const convs = [128, 128, 256, 256, 512, 512];
    // Three 2x2 poolings take 8 x 8 to 1 x 1: the classifier sees 512 features.
    assert.deepEqual(
      vgg.parameters,
      expectedLinear([
        ...convs.map((c, i) => [c, i === 0 ? 3 : convs[i - 1], 3, 3]),
        [1024, 512],
        [1024, 1024],
        [10, 1024],
      ]),
    );
    assert.deepEqual(
      vgg.state,
      bnState([...convs, 1024, 1024, 10].map((c, i) => [i + 1, c] as [number, number])),
    );
    assert.equal(vgg.layers.filter((n) => /^pool\d+$/.test(n)).length, 3);
  });

  it('buildModel(name) is buildModelFromSpec(namedModelSpec(name))', () => {
    for (const options of [{}, { activations: 'binary', channelScale: true }] as ModelOptions[]) {
      assert.deepEqual(
        inventory(buildModel('mlp-2x2048', options)),
        inventory(buildModelFromSpec(namedModelSpec('mlp-2x2048', options))),
      );
    }
  });
});

describe('specs as JSON', () => {
  for (const name of MODEL_NAMES) {
    it(`${name}: JSON round trip gives the same spec`, () => {
      for (const activations of ['real', 'binary'] as const) {
        for (const scale of [false, true]) {
          const spec = namedModelSpec(name, { activations, channelScale: scale });
          const back = parseModelSpec(JSON.parse(JSON.stringify(spec)));
          // Strict deep equality: an optional field left `undefined` in the spec would fail here.
          assert.deepStrictEqual(back, spec);
          assert.equal(JSON.stringify(back), JSON.stringify(spec));
        }
      }
    });
  }

  it('class names survive the round trip', () => {
    const names = ['zero', 'one', 'two'];
    const spec = namedModelSpec('mlp-100', { classes: 3, classNames: names });
    assert.deepEqual(spec.classNames, names);
    assert.deepStrictEqual(parseModelSpec(JSON.parse(JSON.stringify(spec))), spec);
  });

  it('the builder API writes the spec of the hand-written JSON (784-256-256-10, 1-bit activations)', () => {
    const built = sequential({ input: [1, 28, 28], classes: 10 }, [
      flatten(),
      binaryDense(256),
      batchNorm(),
      hardtanh(),
      binaryDense(256, { binarizer: 'sign' }),
      batchNorm(),
      hardtanh(),
      binaryDense(10, { binarizer: 'sign' }),
      batchNorm(),
    ]);
    const json = `{
      "input": [1, 28, 28],
      "classes": 10,
      "layers": [
        { "type": "flatten" },
        { "type": "binaryDense", "units": 256 },
        { "type": "batchNorm" },
        { "type": "hardtanh" },
        { "type": "binaryDense", "units": 256, "binarizer": "sign" },
        { "type": "batchNorm" },
        { "type": "hardtanh" },
        { "type": "binaryDense", "units": 10, "binarizer": "sign" },
        { "type": "batchNorm" }
      ]
    }`;
    assert.deepStrictEqual(built, parseModelSpec(JSON.parse(json)));
  });

  it('the builder API writes the spec of the hand-written JSON (a CNN with every option)', () => {
    const built = sequential({ input: [3, 16, 16], classes: 2, classNames: ['cat', 'dog'] }, [
      binaryConv2d(8, { padding: 1, name: 'stem' }),
      batchNorm({ affine: true, eps: 1e-3, momentum: 0.2 }),
      prelu({ init: 0.1 }),
      residual([binaryConv2d(8, { padding: 1, binarizer: 'sign', surrogate: 'identity' }), relu()]),
      maxPool2d(),
      binaryConv2d(16, { kernelSize: 3, stride: 2 }),
      avgPool2d(3, { stride: 1, padding: 1 }),
      residual([conv2d(16, { kernelSize: 1, bias: false })], [conv2d(16, { kernelSize: 1 })]),
      channelScale(),
      flatten(),
      dropout(0.5),
      dense(2, { bias: false }),
    ]);
    const json = `{
      "input": [3, 16, 16], "classes": 2, "classNames": ["cat", "dog"],
      "layers": [
        { "type": "binaryConv2d", "filters": 8, "kernelSize": 3, "padding": 1, "name": "stem" },
        { "type": "batchNorm", "affine": true, "eps": 0.001, "momentum": 0.2 },
        { "type": "prelu", "init": 0.1 },
        { "type": "residual", "body": [
          { "type": "binaryConv2d", "filters": 8, "kernelSize": 3, "padding": 1, "binarizer": "sign",
            "surrogate": "identity" },
          { "type": "relu" }
        ] },
        { "type": "maxPool2d", "kernelSize": 2 },
        { "type": "binaryConv2d", "filters": 16, "kernelSize": 3, "stride": 2 },
        { "type": "avgPool2d", "kernelSize": 3, "stride": 1, "padding": 1 },
        { "type": "residual",
          "body": [{ "type": "conv2d", "filters": 16, "kernelSize": 1, "bias": false }],
          "shortcut": [{ "type": "conv2d", "filters": 16, "kernelSize": 1 }] },
        { "type": "channelScale" },
        { "type": "flatten" },
        { "type": "dropout", "rate": 0.5 },
        { "type": "dense", "units": 2, "bias": false }
      ]
    }`;
    assert.deepStrictEqual(built, parseModelSpec(JSON.parse(json)));
  });
});

describe('broken specs are refused naming the place, what was expected and what was found', () => {
  const mlp = (): Record<string, unknown> =>
    JSON.parse(
      JSON.stringify({
        input: [1, 28, 28],
        classes: 10,
        layers: [flatten(), binaryDense(32), batchNorm(), relu(), binaryDense(10), batchNorm()],
      }),
    ) as Record<string, unknown>;
  const cnn = (): Record<string, unknown> =>
    JSON.parse(
      JSON.stringify({
        input: [1, 28, 28],
        classes: 10,
        layers: [
          binaryConv2d(8, { padding: 1 }),
          batchNorm(),
          binaryConv2d(8, { padding: 1 }),
          maxPool2d(),
          flatten(),
          binaryDense(10),
        ],
      }),
    ) as Record<string, unknown>;
  const layer = (spec: Record<string, unknown>, i: number): Record<string, unknown> =>
    (spec.layers as Record<string, unknown>[])[i];
  /** `spec` after `change`. */
  const edit = (spec: Record<string, unknown>, change: (s: Record<string, unknown>) => void): unknown => {
    change(spec);
    return spec;
  };

  interface Case {
    readonly what: string;
    readonly spec: unknown;
    readonly where: string;
    readonly expected: RegExp;
    readonly found: string;
  }
  const cases: Case[] = [
    {
      what: 'unknown layer type',
      spec: edit(mlp(), (s) => (layer(s, 1).type = 'binaryDence')),
      where: 'layers[1].type',
      expected: /^one of binaryDense, .*residual$/,
      found: '"binaryDence"',
    },
    {
      what: 'missing units',
      spec: edit(mlp(), (s) => delete layer(s, 4).units),
      where: 'layers[4].units',
      expected: /^a positive integer$/,
      found: 'nothing',
    },
    {
      what: 'filters 0',
      spec: edit(cnn(), (s) => (layer(s, 2).filters = 0)),
      where: 'layers[2].filters',
      expected: /^a positive integer$/,
      found: '0',
    },
    {
      what: 'stride 0',
      spec: edit(cnn(), (s) => (layer(s, 2).stride = 0)),
      where: 'layers[2].stride',
      expected: /^a positive integer$/,
      found: '0',
    },
    {
      what: 'kernel larger than the input',
      spec: edit(cnn(), (s) => Object.assign(layer(s, 0), { kernelSize: 31, padding: 0 })),
      where: 'layers[0]',
      expected: /at least 31 x 31 for kernel 31/,
      found: '[1, 28, 28]',
    },
    {
      what: 'a typo in a field name',
      spec: edit(cnn(), (s) => {
        const conv = layer(s, 2);
        conv.filter = conv.filters;
        delete conv.filters;
      }),
      where: 'layers[2].filter',
      expected: /^one of the fields of binaryConv2d \(.*filters/,
      found: '"filter", an unknown field',
    },
    {
      what: 'dense on an image input (no flatten)',
      spec: edit(mlp(), (s) => (s.layers as unknown[]).shift()),
      where: 'layers[0]',
      expected: /add a flatten layer/,
      found: '[1, 28, 28]',
    },
    {
      what: 'last layer width other than the number of classes',
      spec: edit(mlp(), (s) => (s.classes = 12)),
      where: 'layers',
      expected: /output \[12\]/,
      found: 'output [10]',
    },
    {
      what: 'class names of another count',
      spec: edit(mlp(), (s) => (s.classNames = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'])),
      where: 'classNames',
      expected: /^10 names/,
      found: '9',
    },
    {
      what: 'residual body that changes the shape (identity shortcut)',
      spec: edit(mlp(), (s) => (s.layers as unknown[]).splice(3, 0, residual([binaryDense(16)]))),
      where: 'layers[3]',
      expected: /body gives \[16\]/,
      found: 'shortcut [32]',
    },
    {
      what: 'a mistake inside a residual body',
      spec: edit(mlp(), (s) =>
        (s.layers as unknown[]).splice(3, 0, residual([relu(), { type: 'dense' } as unknown as LayerSpec])),
      ),
      where: 'layers[3].body[1].units',
      expected: /^a positive integer$/,
      found: 'nothing',
    },
    {
      what: 'input of two dimensions',
      spec: edit(mlp(), (s) => (s.input = [28, 28])),
      where: 'input',
      expected: /\[channels, height, width\] or \[features\]/,
      found: '[28,28]',
    },
    {
      what: 'dropout rate 1',
      spec: edit(mlp(), (s) => (s.layers as unknown[]).splice(4, 0, { type: 'dropout', rate: 1 })),
      where: 'layers[4].rate',
      expected: /^a number in \[0, 1\)$/,
      found: '1',
    },
    {
      what: 'pool padding over half the kernel',
      spec: edit(cnn(), (s) => (layer(s, 3).padding = 2)),
      where: 'layers[3].padding',
      expected: /^at most half the kernel size \(1\)$/,
      found: '2',
    },
    {
      what: 'unknown top-level field',
      spec: edit(mlp(), (s) => (s.layer = [])),
      where: 'layer',
      expected: /^one of the fields input, classes/,
      found: '"layer", an unknown field',
    },
  ];

  for (const c of cases) {
    it(`${c.what}: ${c.where}`, () => {
      assert.throws(
        () => parseModelSpec(c.spec, 'model.json'),
        (e: unknown) => {
          assert.ok(e instanceof SpecError, `a SpecError, got ${String(e)}`);
          assert.equal(e.code, 'spec');
          assert.equal(e.where, c.where);
          assert.match(e.expected, c.expected);
          assert.equal(e.found, c.found);
          assert.ok(e.message.startsWith(`model.json: ${c.where}: `), e.message);
          assert.ok(e.message.includes(e.expected) && e.message.includes(e.found), e.message);
          return true;
        },
      );
    });
  }

  it('the builder API refuses the same way', () => {
    assert.throws(
      () => sequential({ input: [1, 28, 28], classes: 10 }, [flatten(), binaryDense(0), batchNorm()]),
      (e: unknown) => e instanceof SpecError && e.where === 'layers[1].units' && e.file === null,
    );
  });
});

const EVERY_LAYER: ModelSpec = EVERY_LAYER_SPEC;

function typesIn(layers: readonly LayerSpec[]): Set<LayerType> {
  const types = new Set<LayerType>();
  for (const l of layers) {
    types.add(l.type);
    if (l.type === 'residual') for (const t of typesIn([...l.body, ...(l.shortcut ?? [])])) types.add(t);
  }
  return types;
}

/** Gaussian values in a new backend buffer. */
function randomInput(be: Backend, size: number, rng: Rng): Float32Array | Float64Array {
  const x = be.alloc(size);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  return x;
}

describe('every layer type from a spec', () => {
  it('the test network uses every layer type', () => {
    assert.deepEqual([...typesIn(EVERY_LAYER.layers)].sort(), [...LAYER_TYPES].sort());
  });

  it('builds with position-derived names, plans, and trains a step on the reference backend', () => {
    const be = createReferenceBackend('float32');
    const rng = new Rng(3);
    const model = buildModelFromSpec(EVERY_LAYER);
    const batch = 3;
    assert.deepEqual(model.planFor(be, batch), [4]);
    model.initialize(rng);
    assert.deepEqual(
      model.parameters().map((p) => `${p.name} ${p.kind} [${p.shape.join(', ')}]`),
      [
        'conv1.weight real [4, 2, 3, 3]',
        'conv1.bias real [4]',
        'act1.weight real [4]',
        'block1.body.conv2.weight binary [4, 4, 3, 3]',
        'block1.body.bn2.weight real [4]',
        'block1.body.bn2.bias real [4]',
        'block2.body.conv3.weight binary [6, 4, 3, 3]',
        'block2.shortcut.conv4.weight real [6, 4, 1, 1]',
        'scale4.weight real [6]',
        'fc5.weight real [8, 6]',
        'fc5.bias real [8]',
        'fc6.weight binary [4, 8]',
      ],
    );
    assert.deepEqual(
      model.stateBuffers().map((s) => s.name),
      [
        'block1.body.bn2.running_mean',
        'block1.body.bn2.running_var',
        'block2.body.bn3.running_mean',
        'block2.body.bn3.running_var',
        'bn6.running_mean',
        'bn6.running_var',
      ],
    );
    // A method's proposal: +-1 binary weights.
    for (const p of model.binaryParameters())
      for (let i = 0; i < p.value.length; i++) p.value[i] = Math.sign(p.value[i]) || 1;
    const loss = new SoftmaxCrossEntropy();
    loss.plan(be, 4, batch);
    const x = randomInput(be, batch * shapeSize(EVERY_LAYER.input), rng);
    const logits = model.forward(x, batch, { training: true, rng });
    const value = loss.forward(logits, Int32Array.from([0, 1, 2]), batch);
    assert.ok(Number.isFinite(value) && value > 0);
    const gx = model.backward(loss.backward(), batch);
    assert.equal(gx.length >= batch * shapeSize(EVERY_LAYER.input), true);
    for (let i = 0; i < batch * shapeSize(EVERY_LAYER.input); i++) assert.ok(Number.isFinite(gx[i]));
    // Every parameter got a finite gradient, not all zero: each layer is on the backward path.
    for (const p of model.parameters()) {
      let norm = 0;
      for (const g of p.grad) {
        assert.ok(Number.isFinite(g), p.name);
        norm += g * g;
      }
      assert.ok(norm > 0, `${p.name} has a gradient`);
    }
    // Evaluation runs too (batch norm from running statistics, dropout off).
    const evalLogits = model.forward(x, batch, { training: false, rng });
    for (let i = 0; i < batch * 4; i++) assert.ok(Number.isFinite(evalLogits[i]));
    model.dispose();
    loss.dispose();
    be.free(x);
    assert.equal(be.bytesInUse(), 0);
  });

  it('residual blocks (with and without shortcut), PReLU and average pooling: backward matches finite differences', () => {
    // Real layers only (no sign, no batch statistics, no dropout), so the loss is smooth in the input.
    const spec = sequential({ input: [3, 4, 4], classes: 3 }, [
      residual([conv2d(3, { padding: 1 }), prelu({ init: 0.3 })]),
      residual([conv2d(2, { padding: 1 }), prelu()], [conv2d(2, { kernelSize: 1 })]),
      avgPool2d(2),
      flatten(),
      dense(3),
    ]);
    const be = createReferenceBackend('float64');
    const rng = new Rng(11);
    const model = buildModelFromSpec(spec);
    const batch = 2;
    model.planFor(be, batch);
    model.initialize(rng);
    const loss = new SoftmaxCrossEntropy();
    loss.plan(be, 3, batch);
    const labels = Int32Array.from([2, 0]);
    const n = batch * shapeSize(spec.input);
    const x = randomInput(be, n, rng);
    const ctx = { training: true, rng };
    const lossAt = (): number => loss.forward(model.forward(x, batch, ctx), labels, batch);
    lossAt();
    const gx = Float64Array.from(model.backward(loss.backward(), batch).subarray(0, n));
    const h = 1e-6;
    for (let i = 0; i < n; i += 5) {
      const saved = x[i];
      x[i] = saved + h;
      const up = lossAt();
      x[i] = saved - h;
      const down = lossAt();
      x[i] = saved;
      const numeric = (up - down) / (2 * h);
      assert.ok(
        Math.abs(numeric - gx[i]) < 1e-6 + 1e-4 * Math.abs(numeric),
        `d/dx[${i}]: ${numeric} vs ${gx[i]}`,
      );
    }
    model.dispose();
    loss.dispose();
    be.free(x);
    assert.equal(be.bytesInUse(), 0);
  });
});

describe('layerShapes', () => {
  /** Each top-level layer's planned output shape. */
  function plannedShapes(spec: ModelSpec): Shape[] {
    const be = createReferenceBackend('float32');
    const model = buildModelFromSpec(spec);
    let shape: Shape = spec.input;
    const shapes = model.layers.map((layer) => (shape = layer.plan(be, shape, 1)));
    model.dispose();
    assert.equal(be.bytesInUse(), 0);
    return shapes;
  }

  it('gives the planned output shapes, every layer type and the small named models', () => {
    const specs = [
      EVERY_LAYER,
      namedModelSpec('mlp-100'),
      namedModelSpec('cnn-small', { channelScale: true }),
      namedModelSpec('vgg-small', { inputShape: [3, 8, 8] }),
    ];
    for (const spec of specs) assert.deepEqual(layerShapes(spec), plannedShapes(spec));
    assert.deepEqual(layerShapes(EVERY_LAYER), [
      [4, 8, 8],
      [4, 8, 8],
      [4, 8, 8],
      [4, 4, 4],
      [6, 2, 2],
      [6, 2, 2],
      [6, 2, 2],
      [6, 1, 1],
      [6],
      [6],
      [8],
      [4],
      [4],
    ]);
  });
});
