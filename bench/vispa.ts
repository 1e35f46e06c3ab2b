/**
 * VISPA's cost against STE on one model: ms per training step (forward, backward and the method's update)
 * for STE (latent weights + Adam) and VISPA at ranks K = 0, 1, 4, 8, and the training state each keeps per
 * binary weight. The contenders run interleaved in rounds on the same backend and the same synthetic
 * batch, and the figure is each one's median over the rounds, so a machine whose load changes during the
 * run affects them alike. Ratios are against STE measured in the same run.
 */
import { createBackend } from '../src/backend/index.js';
import { defaultLearningRate, defaultRunSettings } from '../src/methods/registry.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../src/config/train-config.js';
import { createRun, disposeRun } from '../src/train/run.js';
import { syntheticDataset } from '../src/data/dataset.js';

const MODEL = 'mlp-2x2048';
const BATCH = 100;
const STEPS = 20;
const ROUNDS = 5;

interface Contender {
  readonly label: string;
  readonly config: TrainConfig;
}

function contender(label: string, method: string, methodOptions: Record<string, number>): Contender {
  const config: TrainConfig = {
    ...TRAIN_DEFAULTS,
    ...defaultRunSettings(method, 5),
    data: 'fashion-mnist',
    model: MODEL,
    method,
    methodOptions,
    learningRate: defaultLearningRate(method) ?? TRAIN_DEFAULTS.learningRate,
  };
  return { label, config };
}

export async function runVispaBench(opts: { json: boolean; print: (line: string) => void }): Promise<void> {
  const contenders = [
    contender('ste', 'ste', {}),
    ...[0, 1, 4, 8].map((rank) => contender(`vispa K=${rank}`, 'vispa', { rank })),
  ];
  const backend = await createBackend({ kind: 'wasm' });
  const shape = {
    inputShape: [1, 28, 28] as const,
    classes: 10,
    stepsPerEpoch: 540,
    trainingExamples: 54000,
  };
  const data = syntheticDataset({ shape: [1, 28, 28], count: BATCH, classes: 10, seed: 1 });
  const order = Uint32Array.from({ length: BATCH }, (_, i) => i);
  const times = new Map<string, number[]>();
  const stateBytes = new Map<string, { perWeight: number; binaryWeights: number }>();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const { label, config } of contenders) {
        const run = createRun(config, backend, shape, BATCH);
        try {
          const step = (s: number): void => {
            run.learner.trainBatch(data, order, 0, BATCH, {
              step: s + 1,
              learningRate: 1e-3,
              scheduleStep: s,
            });
          };
          step(0); // first call: plans and tiers up
          const t0 = performance.now();
          for (let s = 1; s <= STEPS; s++) step(s);
          const ms = (performance.now() - t0) / STEPS;
          times.set(label, [...(times.get(label) ?? []), ms]);
          const binaryWeights = run.learner.binaryWeights;
          stateBytes.set(label, { perWeight: run.learner.stateBytesPerWeight(), binaryWeights });
        } finally {
          disposeRun(run);
        }
      }
    }
  } finally {
    backend.dispose();
  }
  const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(times.get('ste') ?? [Number.NaN]);
  const rows = contenders.map(({ label }) => {
    const ms = median(times.get(label) ?? [Number.NaN]);
    const state = stateBytes.get(label) ?? { perWeight: Number.NaN, binaryWeights: 0 };
    return {
      label,
      msPerStep: ms,
      ratioToSte: ms / base,
      stateBytesPerWeight: state.perWeight,
      stateMiB: (state.perWeight * state.binaryWeights) / 2 ** 20,
    };
  });
  if (opts.json) {
    opts.print(JSON.stringify({ bench: 'vispa', model: MODEL, batch: BATCH, rounds: ROUNDS, rows }));
    return;
  }
  opts.print(
    `${MODEL}, batch ${BATCH}, wasm backend; median of ${ROUNDS} interleaved rounds of ${STEPS} steps`,
  );
  opts.print('method         ms/step   x STE   state B/weight   state MiB');
  for (const r of rows) {
    opts.print(
      `${r.label.padEnd(13)} ${r.msPerStep.toFixed(1).padStart(8)} ${r.ratioToSte.toFixed(2).padStart(7)} ` +
        `${String(r.stateBytesPerWeight).padStart(16)} ${r.stateMiB.toFixed(1).padStart(11)}`,
    );
  }
}
