import { RoutingError } from '../errors.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Parameter } from '../nn/layer.js';
import { routeParameters } from './router.js';

// The router reads names, kinds and decay flags only, so plain arrays stand in for backend buffers.
function param(name: string, kind: Parameter['kind'], decay = true): Parameter {
  return { name, shape: [1], kind, value: new Float64Array(1), grad: new Float64Array(1), decay };
}

// A Bi-Real-style model: real first conv and classifier, binary block convs, batch norms, a PReLU.
const model: Parameter[] = [
  param('conv0.weight', 'real'),
  param('bn0.gamma', 'real', false),
  param('bn0.beta', 'real', false),
  param('block1.conv.weight', 'binary'),
  param('block1.bn.gamma', 'real', false),
  param('block1.prelu.slope', 'real', false),
  param('fc.weight', 'real'),
  param('fc.bias', 'real', false),
];
const names = (ps: readonly Parameter[]): string[] => ps.map((p) => p.name);

test('router: binary weights to the method, real parameters to an optimizer', () => {
  const g = routeParameters(model, [
    { target: 'method', match: { kind: 'binary' } },
    { target: 'adam', match: { kind: 'real' } },
  ]);
  assert.deepEqual(names(g.method), ['block1.conv.weight']);
  assert.deepEqual(names(g.adam), [
    'conv0.weight',
    'bn0.gamma',
    'bn0.beta',
    'block1.bn.gamma',
    'block1.prelu.slope',
    'fc.weight',
    'fc.bias',
  ]);
});

test('router: name globs, RegExps and predicates, with an otherwise target', () => {
  const g = routeParameters(
    model,
    [
      { target: 'method', match: { kind: 'binary' } },
      { target: 'norm', match: { name: '*bn*.*' } },
      { target: 'norm', match: { name: /prelu/g } }, // same target twice is fine; /g must not make it stateful
      { target: 'head', match: (p) => p.name.startsWith('fc.') },
    ],
    { otherwise: 'sgd' },
  );
  assert.deepEqual(names(g.method), ['block1.conv.weight']);
  assert.deepEqual(names(g.norm), ['bn0.gamma', 'bn0.beta', 'block1.bn.gamma', 'block1.prelu.slope']);
  assert.deepEqual(names(g.head), ['fc.weight', 'fc.bias']);
  assert.deepEqual(names(g.sgd), ['conv0.weight']);
  // Every parameter lands in exactly one group.
  const all = [...g.method, ...g.norm, ...g.head, ...g.sgd];
  assert.equal(all.length, model.length);
  assert.equal(new Set(all).size, model.length);
});

test('router: a glob does not treat dots as wildcards, and must match the whole name', () => {
  const ps = [param('fc.weight', 'real'), param('fcxweight', 'real'), param('pre.fc.weight', 'real')];
  const g = routeParameters(ps, [{ target: 'a', match: { name: 'fc.weight' } }], { otherwise: 'b' });
  assert.deepEqual(names(g.a), ['fc.weight']);
  assert.deepEqual(names(g.b), ['fcxweight', 'pre.fc.weight']);
});

test('router: matching on decay, and every target gets an entry even when empty', () => {
  const g = routeParameters(model, [
    { target: 'decayed', match: { decay: true } },
    { target: 'undecayed', match: { decay: false } },
    { target: 'unused', match: { name: 'nothing.*' } },
  ]);
  assert.deepEqual(names(g.decayed), ['conv0.weight', 'block1.conv.weight', 'fc.weight']);
  assert.equal(g.undecayed.length, 5);
  assert.deepEqual(g.unused, []);
});

test('router: a parameter no rule claims is an error naming it', () => {
  assert.throws(
    () => routeParameters(model, [{ target: 'method', match: { kind: 'binary' } }]),
    (e: unknown) =>
      e instanceof RoutingError && e.parameter === 'conv0.weight' && /conv0\.weight.*no rule/.test(e.message),
  );
});

test('router: a parameter claimed by two targets is an error naming it and both targets', () => {
  assert.throws(
    () =>
      routeParameters(model, [
        { target: 'method', match: { kind: 'binary' } },
        { target: 'adam', match: { kind: 'real' } },
        { target: 'sgd', match: { name: 'fc.*' } },
      ]),
    (e: unknown) =>
      e instanceof RoutingError && e.parameter === 'fc.weight' && /fc\.weight.*adam, sgd/.test(e.message),
  );
});

test('router: two parameters with one name is an error', () => {
  assert.throws(
    () =>
      routeParameters(
        [param('w', 'real'), param('w', 'real')],
        [{ target: 'adam', match: { kind: 'real' } }],
      ),
    (e: unknown) => e instanceof RoutingError && e.parameter === 'w' && /twice/.test(e.message),
  );
});
