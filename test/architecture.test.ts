/**
 * The layers of the code (docs/architecture.md, "Layers of the code"): no import cycle anywhere in src/,
 * imports only flow down the layer order, and the engine stands alone. Every import counts, type-only ones
 * included: a cycle of types is still a tangle a reader has to hold in their head.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';

const SRC = resolve(import.meta.dirname, '..', 'src');

/**
 * Rank of each top-level folder of src/: a module may import its own folder or a folder of lower rank.
 * errors.ts imports nothing; index.ts (the public API) re-exports everything.
 */
const RANKS: Readonly<Record<string, number>> = {
  'errors.ts': 0,
  'node-builtins.ts': 2,
  tensor: 1,
  wasm: 1,
  native: 1.5,
  backend: 2,
  engine: 2,
  data: 2,
  nn: 3,
  optim: 4,
  config: 5,
  methods: 6,
  io: 7,
  train: 8,
  sweep: 8,
  report: 9,
  cli: 10,
  app: 12,
  'index.ts': 12,
  'browser.ts': 11,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative imports and re-exports of a file, static and dynamic, type-only included. */
function importsOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const specs = [
    ...source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms),
    ...source.matchAll(/import\(\s*'([^']+)'\s*\)/g),
  ].map((m) => m[1]);
  return specs.filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s.replace(/\.js$/, '.ts')));
}

function topFolder(file: string): string {
  return relative(SRC, file).split('/')[0];
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

/** Strongly connected components with more than one file (Tarjan), or a file importing itself. */
function cycles(): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(relative(SRC, w));
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component);
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return found;
}

describe('the layers of the code', () => {
  test('every import resolves to a file in src/', () => {
    for (const [file, deps] of graph) {
      for (const dep of deps)
        assert.ok(graph.has(dep), `${relative(SRC, file)} imports ${relative(SRC, dep)}`);
    }
  });

  test('no import cycle anywhere in src/', () => {
    assert.deepEqual(cycles(), []);
  });

  test('the cycle check finds a cycle when there is one', () => {
    const [a, b] = files;
    const saved = [graph.get(a)!, graph.get(b)!];
    graph.set(a, [...saved[0], b]);
    graph.set(b, [...saved[1], a]);
    try {
      assert.ok(cycles().length > 0);
    } finally {
      graph.set(a, saved[0]);
      graph.set(b, saved[1]);
    }
  });

  test('imports flow down the layer order (cli -> train -> io -> methods -> optim -> nn -> backend -> tensor)', () => {
    const wrong: string[] = [];
    for (const [file, deps] of graph) {
      const from = topFolder(file);
      assert.ok(from in RANKS, `${relative(SRC, file)}: folder ${from} has no rank in this test`);
      for (const dep of deps) {
        const to = topFolder(dep);
        if (to !== from && !(RANKS[to] < RANKS[from]))
          wrong.push(`${relative(SRC, file)} -> ${relative(SRC, dep)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('the engine imports nothing but itself, the shared wasm loader, the native addon loader and errors.ts', () => {
    for (const [file, deps] of graph) {
      if (topFolder(file) !== 'engine') continue;
      for (const dep of deps) {
        assert.match(
          relative(SRC, dep),
          /^(engine\/|wasm\/|native\/addon\.ts$|errors\.ts$)/,
          `${relative(SRC, file)} imports ${dep}`,
        );
      }
    }
  });
});
