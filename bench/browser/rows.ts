/** A row of `npm run bench -- browser --json` (images/s; ratio = engine / onnxruntime-web). */
export interface BrowserBenchRow {
  readonly bench: 'browser-engine-vs-onnxruntime-web';
  readonly model: string;
  readonly activations: 'binary' | 'real';
  readonly batch: number;
  readonly threads: number;
  readonly crossOriginIsolated: boolean;
  readonly engine: number;
  readonly onnxruntimeWeb: number;
  readonly ratio: number;
  /** With 2 threads: the engine's images/s over its own with 1 thread (same activations and batch). */
  readonly engineSpeedup?: number;
}
