/**
 * The source of a pool worker: a CommonJS snippet for Node's `new Worker(source, { eval: true })` and a
 * classic script for a browser's Web Worker (started from a Blob URL, host.ts).
 *
 * Why a string rather than a worker file: under Node 20 a worker does not inherit the TypeScript loader
 * hooks (`--import tsx`) of its parent, so a worker.ts entry cannot load when running from sources, and
 * a file also has to be located next to dist/ or inside a bundle. A string works the same everywhere. It
 * is deliberately tiny: instantiate the module over the shared memory with its own stack, then loop
 * running its share of each job posted in the control block (protocol.ts, pool.ts). Only how it gets its
 * init and says it is ready differ between the two hosts.
 */
import { ARGS_BYTE, ERRORS, FN, GEN, MAX_ARGS, NT, PENDING, QUIT } from './protocol.js';

const args = Array.from({ length: MAX_ARGS }, (_, i) => `a[${i}]`).join(', ');

/** GEN checks before a browser worker sleeps (a few hundred microseconds); Node wakes its workers fast. */
const BROWSER_SPIN = 200_000;

/**
 * Runs with `init` (a WorkerInit), `post(message)` and `SPIN` in scope. Before it sleeps a worker checks GEN
 * `SPIN` times: a browser wakes a sleeping Web Worker slowly (tens of microseconds), about as long as one
 * layer of a small batch takes, so a worker that has just finished a share stays awake for the next one.
 */
const LOOP = `
const instance = new WebAssembly.Instance(init.module, { env: { memory: init.memory } });
instance.exports.__stack_pointer.value = init.stackTop;
const fns = init.names.map((name) => instance.exports[name]);
const ctl = new Int32Array(init.memory.buffer, init.control, ${ARGS_BYTE / 4});
const a = new Float64Array(init.memory.buffer, init.control + ${ARGS_BYTE}, ${MAX_ARGS});
const tid = init.tid;
let seen = Atomics.load(ctl, ${GEN});
post('ready');
for (;;) {
  for (let spin = 0; spin < SPIN && Atomics.load(ctl, ${GEN}) === seen; spin++);
  Atomics.wait(ctl, ${GEN}, seen);
  const gen = Atomics.load(ctl, ${GEN});
  if (gen === seen) continue;
  seen = gen;
  if (Atomics.load(ctl, ${QUIT}) !== 0) break;
  try {
    // Arguments past a kernel's arity are ignored by the wasm call.
    fns[ctl[${FN}]](tid, ctl[${NT}], ${args});
  } catch {
    Atomics.add(ctl, ${ERRORS}, 1);
  }
  if (Atomics.sub(ctl, ${PENDING}, 1) === 1) Atomics.notify(ctl, ${PENDING});
}
`;

export const WORKER_SOURCE = {
  node: `'use strict';
const { parentPort, workerData: init } = require('node:worker_threads');
const post = (message) => parentPort.postMessage(message);
const SPIN = 0;
${LOOP}`,
  browser: `'use strict';
self.onmessage = (event) => {
  self.onmessage = null;
  const init = event.data;
  const post = (message) => self.postMessage(message);
  const SPIN = ${BROWSER_SPIN};
${LOOP}
};
`,
};
