/**
 * The page `onebit serve` shows (docs/browser.md): a model classifies what the user draws or drops, on the
 * WebAssembly engine in this page, with Web Worker threads when the page is cross-origin isolated (the
 * server sends the headers) and one thread otherwise; and the user trains mlp-100 in the page (a Web
 * Worker, train-worker.ts), watches its curves, then classifies with it and downloads it. Everything the
 * page loads comes from its own server.
 */
import { createEngine, type Engine, type WasmModule } from '../engine/index.js';
import { drawCurves, type CurvePoint } from './curves.js';
import type { TrainReply, TrainRequest } from './train-messages.js';

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

/** Loads a model into the classifier; `source` (served, dropped, trained) is kept on #model for tests. */
async function load(bytes: Uint8Array, source: 'served' | 'dropped' | 'trained'): Promise<Engine> {
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
  element('model').dataset.source = source;
  element('error').textContent = '';
  return next;
}

async function served(): Promise<Engine> {
  knownClassNames = (await (await fetch('api/class-names')).json()) as typeof knownClassNames;
  const response = await fetch('api/model');
  if (!response.ok)
    throw new Error('no model served: start `onebit serve MODEL.onebit`, or drop a .onebit file here');
  return load(new Uint8Array(await response.arrayBuffer()), 'served');
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
      await load(new Uint8Array(await file.arrayBuffer()), 'dropped');
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

// Training in the page.
const status = element('train-status');
const trainButton = element<HTMLButtonElement>('train');
const curves = element<HTMLCanvasElement>('curves');
const download = element<HTMLAnchorElement>('download');
let points: CurvePoint[] = [];
let drawPending = false;

function setStatus(text: string, state: 'running' | 'done' | 'error'): void {
  status.textContent = text;
  status.dataset.state = state;
}

function redraw(): void {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    drawCurves(curves, points);
  });
}

/** The page's defaults per method: STE reaches 0.80 in one epoch on 10,000 examples with these. */
const LEARNING_RATE: Readonly<Record<TrainRequest['method'], string>> = { ste: '0.005', 'float-free': '' };
const methodSelect = element<HTMLSelectElement>('method');
methodSelect.addEventListener('change', () => {
  element<HTMLInputElement>('lr').value =
    LEARNING_RATE[methodSelect.value === 'float-free' ? 'float-free' : 'ste'];
});

function startTraining(): void {
  const lrText = element<HTMLInputElement>('lr').value.trim();
  const request: TrainRequest = {
    method: methodSelect.value === 'float-free' ? 'float-free' : 'ste',
    examples: Number(element<HTMLInputElement>('examples').value),
    epochs: Number(element<HTMLInputElement>('epochs').value),
    batchSize: Number(element<HTMLInputElement>('batch').value),
    learningRate: lrText === '' ? null : Number(lrText),
    seed: 1,
  };
  if (!(Number.isInteger(request.examples) && request.examples >= 100 && request.examples <= 60000))
    return setStatus('Examples: a whole number from 100 to 60000.', 'error');
  if (!(Number.isInteger(request.epochs) && request.epochs >= 1 && request.epochs <= 20))
    return setStatus('Epochs: a whole number from 1 to 20.', 'error');
  if (!(
    Number.isInteger(request.batchSize) &&
    request.batchSize >= 1 &&
    request.batchSize <= request.examples
  ))
    return setStatus('Batch: a whole number from 1 to the number of examples.', 'error');
  if (request.learningRate !== null && !(request.learningRate > 0 && Number.isFinite(request.learningRate)))
    return setStatus('Learning rate: a positive number, or empty for the method default.', 'error');
  trainButton.disabled = true;
  download.hidden = true;
  setStatus('starting…', 'running');
  points = [];
  redraw();
  const worker = new Worker('train-worker.js', { type: 'module' });
  const finish = (): void => {
    worker.terminate();
    trainButton.disabled = false;
  };
  worker.onerror = (event) => {
    setStatus(`training failed: ${event.message}`, 'error');
    finish();
  };
  worker.onmessage = (event: MessageEvent<TrainReply>) => {
    const reply = event.data;
    switch (reply.type) {
      case 'status':
        setStatus(reply.text, 'running');
        break;
      case 'batch':
        points.push({ step: reply.step, loss: reply.batchLoss, accuracy: reply.accuracy });
        setStatus(
          `epoch ${reply.epoch}/${reply.epochs}, batch ${reply.batch}/${reply.batches}: loss ${reply.loss.toFixed(3)}, ` +
            `accuracy ${reply.accuracy.toFixed(3)}, ${Math.round(reply.samplesPerSecond)} examples/s`,
          'running',
        );
        redraw();
        break;
      case 'epoch':
        break;
      case 'done': {
        status.dataset.testAccuracy = String(reply.testAccuracy);
        setStatus(
          `test accuracy ${reply.testAccuracy.toFixed(4)} (NLL ${reply.testNll.toFixed(3)}) on ${reply.testExamples} ` +
            `test images; ${Math.round(reply.samplesPerSecond)} examples/s. The model now classifies above.`,
          'done',
        );
        const bytes = reply.model;
        URL.revokeObjectURL(download.href);
        download.href = URL.createObjectURL(new Blob([bytes.slice()], { type: 'application/octet-stream' }));
        download.download = `mlp-100-${request.method}.onebit`;
        download.hidden = false;
        void load(bytes, 'trained')
          .then(() => clearPad())
          .catch(showError);
        finish();
        break;
      }
      case 'error':
        setStatus(`training failed: ${reply.message}`, 'error');
        finish();
        break;
    }
  };
  worker.postMessage(request);
}
trainButton.addEventListener('click', startTraining);

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
