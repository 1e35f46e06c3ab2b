// A page that classifies an image with a .onebit model, bundled by esbuild from the package's browser
// entry (build.mjs). The engine's WebAssembly module is fetched from beside the bundle and handed to
// createEngine, so the bundle works wherever the folder is served.
import { createEngine } from 'onebit/engine';

const output = document.getElementById('output');
try {
  const module = await WebAssembly.compileStreaming(fetch('onebit-engine.wasm'));
  const model = new Uint8Array(await (await fetch('model.onebit')).arrayBuffer());
  // Threads need a cross-origin-isolated page (COOP and COEP headers); one thread works anywhere.
  const engine = await createEngine(model, { module, threads: 1 });
  const [channels, height, width] = engine.model.input.shape;
  const image = new Uint8Array(channels * height * width); // a blank image: replace with your pixels
  const probabilities = engine.probabilities(image, 1);
  const best = engine.classify(image, 1)[0];
  output.textContent = `class ${best} (p = ${probabilities[best].toFixed(3)})`;
  output.dataset.classes = String(engine.classes);
  engine.dispose();
} catch (error) {
  output.textContent = `error: ${error.message}`;
}
