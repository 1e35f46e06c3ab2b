/**
 * In-page training (docs/browser.md), in a Web Worker so the page stays responsive: fetches a Fashion-MNIST
 * subset and the test set from the page's server, trains with onebit's own `train` loop on the WebAssembly
 * backend (the library's browser entry), evaluates on the test set, and posts back progress, the figures
 * and the trained model as the bytes of a .onebit file.
 */
import {
  checkpointExportBytes,
  createBackend,
  createDataset,
  provideModule,
  runSnapshot,
  train,
  trainConfig,
  type Checkpoint,
  type Dataset,
  type PackagedWasmFile,
} from '../browser.js';
import type { TrainReply, TrainRequest } from './train-messages.js';

/** The worker's global scope (the project's DOM typings describe a window). */
const scope = self as unknown as {
  postMessage(message: TrainReply, transfer: Transferable[]): void;
  onmessage: ((event: MessageEvent<TrainRequest>) => void) | null;
};
const post = (reply: TrainReply, transfer: Transferable[] = []): void => scope.postMessage(reply, transfer);

/** A data set as the server sends it: five uint32 (count, C, H, W, classes), the pixels, the labels. */
async function fetchDataset(split: 'train' | 'test', limit: number | null): Promise<Dataset> {
  const response = await fetch(`api/data/${split}${limit === null ? '' : `?limit=${limit}`}`);
  if (!response.ok) throw new Error(`the server has no ${split} data: ${await response.text()}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const [count, c, h, w, classes] = new Uint32Array(bytes.buffer, 0, 5);
  const size = count * c * h * w;
  return createDataset({
    name: 'fashion-mnist',
    images: bytes.subarray(20, 20 + size),
    labels: bytes.subarray(20 + size, 20 + size + count),
    shape: [c, h, w],
    classes,
  });
}

async function loadModules(): Promise<void> {
  const files: PackagedWasmFile[] = ['onebit-kernels.wasm', 'onebit-float-free.wasm'];
  await Promise.all(
    files.map(async (file) => provideModule(file, await WebAssembly.compileStreaming(fetch(`wasm/${file}`)))),
  );
}

async function run(request: TrainRequest): Promise<void> {
  post({ type: 'status', text: 'loading the data and the kernels…' });
  const [trainSet, testSet] = await Promise.all([
    fetchDataset('train', request.examples),
    fetchDataset('test', null),
    loadModules(),
  ]);
  const config = trainConfig({
    data: 'fashion-mnist',
    model: 'mlp-100',
    method: request.method,
    activations: request.method === 'float-free' ? 'binary' : 'real',
    epochs: request.epochs,
    batchSize: request.batchSize,
    ...(request.learningRate !== null ? { learningRate: request.learningRate } : {}),
    seed: request.seed,
    // Every example trains: the figures the page shows are on the test set.
    validationFraction: 0,
  });
  const backend = await createBackend({ kind: 'wasm', threads: 1 });
  let checkpoint: Checkpoint | null = null;
  try {
    post({ type: 'status', text: `training ${config.model} with ${config.method}…` });
    const result = await train({
      config,
      backend,
      train: trainSet,
      test: testSet,
      outDir: null,
      callbacks: {
        onBatch(progress) {
          post({ type: 'batch', ...progress });
        },
        onEpoch(record) {
          post({ type: 'epoch', record });
        },
      },
      keep(live, counters, calibration) {
        checkpoint = runSnapshot(live, counters, calibration);
      },
    });
    if (checkpoint === null) throw new Error('training ended without a model');
    const model = checkpointExportBytes('in-page run', checkpoint, 'onebit', backend).data;
    post(
      {
        type: 'done',
        testAccuracy: result.test.accuracy,
        testNll: result.test.nll,
        samplesPerSecond: result.samplesPerSecond,
        testExamples: testSet.count,
        model,
      },
      [model.buffer],
    );
  } finally {
    backend.dispose();
  }
}

scope.onmessage = (event) => {
  run(event.data).catch((error: unknown) =>
    post({ type: 'error', message: error instanceof Error ? error.message : String(error) }),
  );
};
