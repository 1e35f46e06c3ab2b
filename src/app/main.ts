/**
 * The page `onebit serve` shows (docs/browser.md): a model classifies what the user draws or drops, on the
 * WebAssembly engine in this page, with Web Worker threads when the page is cross-origin isolated (the
 * server sends the headers) and one thread otherwise. Everything it loads comes from the page's own server.
 */
import { createEngine, type Engine, type WasmModule } from '../engine/index.js';

/** What tests (and the curious, from the console) can call on the running app. */
interface AppHandle {
  readonly ready: Promise<{
    threads: number;
    classes: number;
    inputSize: number;
    crossOriginIsolated: boolean;
  }>;
  classify(images: readonly number[]): number[];
}

declare global {
  interface Window {
    onebitApp: AppHandle;
  }
}

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page lacks #${id}`);
  return found as T;
}

const pad = element<HTMLCanvasElement>('pad');
const context = pad.getContext('2d', { willReadFrequently: true });
if (context === null) throw new Error('no 2D canvas');
const ctx = context;

let engine: Engine | null = null;
let engineModule: WasmModule | null = null;
let classNames: readonly string[] = [];
/** Class names of the data sets the server knows, by the name a model records as its `data`. */
let knownClassNames: Readonly<Record<string, readonly string[]>> = {};

function showError(error: unknown): void {
  element('error').textContent = error instanceof Error ? error.message : String(error);
}

function clearPad(): void {
  ctx.fillStyle = 'black';
  ctx.fillRect(0, 0, pad.width, pad.height);
  element('bars').replaceChildren();
  element('latency').innerHTML = '&nbsp;';
}

/** The pad's picture at the model's input size, as 8-bit NCHW pixels. */
function padPixels(model: Engine): Uint8Array {
  const [channels, height, width] = model.model.input.shape;
  const small = document.createElement('canvas');
  small.width = width;
  small.height = height;
  const smallCtx = small.getContext('2d');
  if (smallCtx === null) throw new Error('no 2D canvas');
  smallCtx.imageSmoothingQuality = 'high';
  smallCtx.drawImage(pad, 0, 0, width, height);
  const rgba = smallCtx.getImageData(0, 0, width, height).data;
  const pixels = new Uint8Array(channels * height * width);
  for (let i = 0; i < height * width; i++) {
    if (channels === 1) {
      pixels[i] = Math.round((rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 3);
    } else {
      for (let c = 0; c < channels; c++) pixels[c * height * width + i] = rgba[4 * i + Math.min(c, 2)];
    }
  }
  return pixels;
}

function classifyPad(): void {
  if (engine === null) return;
  const pixels = padPixels(engine);
  const start = performance.now();
  const probabilities = engine.probabilities(pixels, 1);
  const milliseconds = performance.now() - start;
  const order = [...probabilities.keys()].sort((a, b) => probabilities[b] - probabilities[a]);
  const bars = order.map((k, rank) => {
    const row = document.createElement('div');
    row.className = rank === 0 ? 'bar top' : 'bar';
    const name = document.createElement('span');
    name.textContent = classNames[k] ?? `class ${k}`;
    const track = document.createElement('div');
    track.className = 'track';
    const fill = document.createElement('div');
    fill.className = 'fill';
    fill.style.width = `${(100 * probabilities[k]).toFixed(1)}%`;
    track.append(fill);
    const value = document.createElement('span');
    value.className = 'value';
    value.textContent = `${(100 * probabilities[k]).toFixed(1)}%`;
    row.append(name, track, value);
    return row;
  });
  element('bars').replaceChildren(...bars);
  element('latency').textContent =
    `${milliseconds.toFixed(2)} ms for one image on ${engine.threads} thread(s)`;
}

function describeModel(model: Engine): void {
  const meta = model.model.metadata;
  const facts: [string, string][] = [
    ['model', String(meta.model ?? 'from a spec')],
    ['method', String(meta.method ?? 'unknown')],
    ['activations', String(meta.activations ?? 'unknown')],
    ['input', model.model.input.shape.join(' x ')],
    ['classes', String(model.classes)],
    ['engine memory', `${(model.memoryBytes() / 2 ** 20).toFixed(1)} MiB`],
    [
      'threads',
      `${model.threads}${crossOriginIsolated ? ' (cross-origin isolated)' : ' (not isolated: one thread)'}`,
    ],
  ];
  element('model').replaceChildren(
    ...facts.flatMap(([k, v], i) => {
      const label = document.createElement('b');
      label.textContent = `${k}: `;
      return [label, document.createTextNode(v + (i < facts.length - 1 ? ' · ' : ''))];
    }),
  );
}

async function load(bytes: Uint8Array): Promise<Engine> {
  if (engineModule === null) {
    engineModule = (await WebAssembly.compileStreaming(fetch('wasm/onebit-engine.wasm'))) as WasmModule;
  }
  const threads = crossOriginIsolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency)) : 1;
  const next = await createEngine(bytes, { module: engineModule, threads, maxBatch: 100 });
  engine?.dispose();
  engine = next;
  const names = knownClassNames[String(next.model.metadata.data)];
  classNames = names !== undefined && names.length === next.classes ? names : [];
  describeModel(next);
  element('error').textContent = '';
  return next;
}

async function served(): Promise<Engine> {
  knownClassNames = (await (await fetch('api/class-names')).json()) as typeof knownClassNames;
  const response = await fetch('api/model');
  if (!response.ok)
    throw new Error('no model served: start `onebit serve MODEL.onebit`, or drop a .onebit file here');
  return load(new Uint8Array(await response.arrayBuffer()));
}

// Drawing: white strokes on black, as Fashion-MNIST's items are bright on a dark ground.
let drawing = false;
function stroke(event: PointerEvent): void {
  const box = pad.getBoundingClientRect();
  const x = ((event.clientX - box.left) * pad.width) / box.width;
  const y = ((event.clientY - box.top) * pad.height) / box.height;
  ctx.fillStyle = 'white';
  ctx.beginPath();
  ctx.arc(x, y, 14, 0, 2 * Math.PI);
  ctx.fill();
}
pad.addEventListener('pointerdown', (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  stroke(event);
});
pad.addEventListener('pointermove', (event) => {
  if (drawing) stroke(event);
});
pad.addEventListener('pointerup', () => {
  drawing = false;
  classifyPad();
});
element('clear').addEventListener('click', clearPad);

// Dropping: an image is drawn onto the pad and classified; a .onebit file replaces the model.
pad.addEventListener('dragover', (event) => {
  event.preventDefault();
  pad.classList.add('over');
});
pad.addEventListener('dragleave', () => pad.classList.remove('over'));
pad.addEventListener('drop', (event) => {
  event.preventDefault();
  pad.classList.remove('over');
  const file = event.dataTransfer?.files[0];
  if (file === undefined) return;
  void (async () => {
    if (file.name.endsWith('.onebit')) {
      await load(new Uint8Array(await file.arrayBuffer()));
      clearPad();
      return;
    }
    const bitmap = await createImageBitmap(file);
    clearPad();
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    classifyPad();
  })().catch(showError);
});

clearPad();
const ready = served().then((model) => ({
  threads: model.threads,
  classes: model.classes,
  inputSize: model.inputSize,
  crossOriginIsolated,
}));
ready.catch(showError);

window.onebitApp = {
  ready,
  classify(images) {
    if (engine === null) throw new Error('no model loaded');
    return [...engine.classify(Uint8Array.from(images), images.length / engine.inputSize)];
  },
};
