/**
 * `onebit upgrade`: converts an older checkpoint into the current format. Version 2 lacks only the
 * checksums (docs/architecture.md, "Checkpoints"), so it is rewritten as it is. A version-1 file keeps the
 * method's last proposal in its `model/` tensors, not its test-time weights, so it cannot be exported from
 * its tensors alone; upgrading rebuilds the run once (from the config, whose spec the loader derived from the
 * builder name), restores it, writes the method's mode weights (`predict('mode')`) and saves a current
 * checkpoint that says where its test-time network is (`inference`). Everything else is kept as it was, so
 * the upgraded file also resumes training.
 */
import type { Backend } from '../backend/backend.js';
import { datasetShape } from '../data/dataset.js';
import { TensorFileError } from '../errors.js';
import { Rng } from '../tensor/rng.js';
import { CHECKPOINT_VERSION, loadCheckpoint, saveCheckpoint } from '../io/checkpoint.js';
import { createRun, disposeRun, restoreRun, runTensors } from './run.js';

/** Upgrades the checkpoint at `path` and writes it to `out` (which may be `path`); returns whether it changed. */
export function upgradeCheckpoint(path: string, out: string, backend: Backend): { upgraded: boolean } {
  const checkpoint = loadCheckpoint(path);
  const { meta } = checkpoint;
  if (meta.inference !== 'stale') {
    // The test-time network is in place (or float-free, whose counters are it): rewritten as it is, which
    // adds the checksums to a version-2 file; a current file is left alone unless copied elsewhere.
    const current = checkpoint.version === CHECKPOINT_VERSION;
    if (!current || out !== path)
      saveCheckpoint(
        out,
        meta,
        [...checkpoint.tensors].map(([name, value]) => ({ name, value })),
      );
    return { upgraded: !current };
  }
  const config = meta.config;
  const spec = config.spec;
  const inputShape = datasetShape(config.data);
  if (spec === undefined || inputShape === undefined)
    throw new TensorFileError(path, `cannot rebuild the run of data set "${config.data}"`);
  const run = createRun(
    config,
    backend,
    { inputShape, classes: spec.classes, stepsPerEpoch: 1, trainingExamples: 1 },
    Math.max(1, config.batchSize),
    meta.normalization,
  );
  try {
    restoreRun(run, path, checkpoint);
    run.learner.predict('mode', new Rng(0));
    saveCheckpoint(out, { ...meta, config: run.config, inference: run.learner.inference }, runTensors(run));
  } finally {
    disposeRun(run);
  }
  return { upgraded: true };
}
