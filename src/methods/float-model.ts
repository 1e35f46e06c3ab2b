/**
 * The float-model learner: a model built from its spec, a binary-weight method over its binary layers and an
 * optimizer over its real-valued parameters (docs/architecture.md, "Learners"; docs/methods.md).
 *
 * One step: the method proposes this step's weights into the binary parameters, the model runs forward and
 * backward, the method turns dL/dw into its new state and the optimizer updates the real parameters. Random
 * draws happen in a fixed order from the run's one generator: the model's initialisation, then the method's.
 */
import type { FloatArray } from '../backend/backend.js';
import type { Dataset } from '../data/dataset.js';
import { fillBatch, type BatchBuffers } from '../data/pipeline.js';
import type { ForwardContext, Parameter } from '../nn/layer.js';
import { countCorrect, SoftmaxCrossEntropy } from '../nn/losses.js';
import { buildModelFromSpec, type Model } from '../nn/models.js';
import { adam } from '../optim/adam.js';
import type { Optimizer, OptimizerState } from '../optim/optimizer.js';
import { restoreOptimizerState, saveOptimizerState } from '../optim/optimizer.js';
import { routeParameters } from '../optim/router.js';
import { sgd } from '../optim/sgd.js';
import { Rng } from '../tensor/rng.js';
import type { NamedTensor } from '../tensor/tensor-data.js';
import {
  measuredStateBytes,
  type Learner,
  type BinarySigns,
  type LearnerScalars,
  type LearnerSetup,
  type LearnerStep,
  type StepResult,
} from './learner.js';
import type { BinaryMethod, MethodContext, PredictionKind, WeightUncertainty } from './method.js';
import { recalibrateBatchNorm, RECALIBRATION_EXAMPLES } from './recalibrate.js';

class FloatModelLearner implements Learner {
  readonly inference = 'float-model' as const;
  readonly spec;
  readonly model: Model;
  readonly binaryParameters: readonly Parameter[];
  readonly realParameters: readonly Parameter[];
  readonly binaryWeights: number;
  private readonly loss: SoftmaxCrossEntropy;
  private readonly optimizer: Optimizer;
  private readonly optimizerState: OptimizerState;
  private readonly images: FloatArray;
  private readonly labels: Int32Array;
  private readonly trainCtx: ForwardContext;
  /** The model's state buffers (batch-norm running statistics) and a copy taken before each step. */
  private readonly stateBuffers: readonly FloatArray[];
  private readonly stateBackup: readonly Float64Array[];
  private readonly evalCtx: ForwardContext;

  constructor(
    readonly methodObject: BinaryMethod,
    private readonly setup: LearnerSetup,
  ) {
    const { spec, backend, rng, maxBatch } = setup;
    this.spec = spec;
    this.model = buildModelFromSpec(spec);
    this.loss = new SoftmaxCrossEntropy('loss');
    try {
      this.model.planFor(backend, maxBatch);
      this.model.initialize(rng);
      this.loss.plan(backend, spec.classes, maxBatch);
      // Binary weights to the method, real parameters to the optimizer (which applies each one's decay flag);
      // the router throws, naming the parameter, if one were claimed twice or by nobody.
      const groups = routeParameters(this.model.parameters(), [
        { target: 'method', match: { kind: 'binary' } },
        { target: 'optimizer', match: { kind: 'real' } },
      ]);
      this.binaryParameters = groups.method;
      this.realParameters = groups.optimizer;
      this.binaryWeights = this.binaryParameters.reduce((sum, p) => sum + p.value.length, 0);
      methodObject.attach(this.binaryParameters, backend, rng, setup.context);
      const { kind, learningRate, weightDecay } = setup.realOptimizer;
      this.optimizer =
        kind === 'sgd'
          ? sgd(backend, { learningRate, momentum: 0.9, weightDecay })
          : adam(backend, { learningRate, weightDecay });
      this.optimizerState = this.optimizer.init(this.realParameters);
      this.images = backend.alloc(maxBatch * spec.input.reduce((a, b) => a * b, 1));
    } catch (error) {
      methodObject.dispose();
      this.loss.dispose();
      this.model.dispose();
      throw error;
    }
    this.stateBuffers = this.model.stateBuffers().map((b) => b.value);
    this.stateBackup = this.stateBuffers.map((b) => new Float64Array(b.length));
    this.labels = new Int32Array(maxBatch);
    this.trainCtx = { training: true, rng };
    // Evaluation draws nothing (dropout is off); its generator is its own so it never moves the run's.
    this.evalCtx = { training: false, rng: new Rng(0) };
  }

  get method(): string {
    return this.methodObject.name;
  }

  get stochastic(): boolean {
    return this.methodObject.stochastic;
  }

  prepare(): Promise<void> {
    return Promise.resolve();
  }

  /** Normalised inputs of the items order[start .. start+n) in the planned buffers. */
  private fill(data: Dataset, order: ArrayLike<number>, start: number, n: number): void {
    const buffers: BatchBuffers = { images: this.images, labels: this.labels, capacity: n };
    fillBatch(data, order, start, buffers, {
      normalizer: this.setup.normalizer,
      ...(this.setup.augment !== undefined ? { augment: this.setup.augment } : {}),
    });
  }

  trainBatch(
    data: Dataset,
    order: ArrayLike<number>,
    start: number,
    n: number,
    step: LearnerStep,
  ): StepResult {
    this.fill(data, order, start, n);
    this.methodObject.propose(this.setup.rng);
    // The forward pass moves the batch-norm running statistics; a step that diverges must not keep that.
    this.stateBuffers.forEach((b, i) => this.stateBackup[i].set(b));
    const logits = this.model.forward(this.images, n, this.trainCtx);
    const loss = this.loss.forward(logits, this.labels, n);
    const correct = countCorrect(logits, this.labels, n, this.spec.classes);
    // A non-finite loss stops the step before backward: nothing is updated, the statistics are put back.
    if (!Number.isFinite(loss)) {
      this.stateBuffers.forEach((b, i) => b.set(this.stateBackup[i]));
      return { loss, correct };
    }
    this.model.backward(this.loss.backward(), n);
    this.methodObject.update({ step: step.step, learningRate: step.learningRate });
    this.optimizer.update(this.optimizerState, this.realParameters, { step: step.scheduleStep });
    return { loss, correct };
  }

  predict(kind: PredictionKind, rng: Rng): void {
    this.methodObject.predict(kind, rng);
  }

  binarySigns(): BinarySigns[] {
    return this.binaryParameters.map((p) => {
      const negative = new Uint8Array(p.value.length);
      for (let i = 0; i < negative.length; i++) negative[i] = p.value[i] < 0 ? 1 : 0;
      return { name: p.name, negative };
    });
  }

  get hasMean(): boolean {
    return this.methodObject.predictMean !== undefined;
  }

  predictMean(): void {
    if (this.methodObject.predictMean === undefined) {
      throw new Error(`${this.methodObject.name} has no posterior mean predictor`);
    }
    this.methodObject.predictMean();
  }

  weightUncertainty(): WeightUncertainty | null {
    return this.methodObject.weightUncertainty?.() ?? null;
  }

  recalibrate(data: Dataset, order: ArrayLike<number>, seed: number): void {
    recalibrateBatchNorm(
      this.model,
      data,
      order,
      this.setup.normalizer,
      { images: this.images, labels: this.labels, capacity: this.setup.maxBatch },
      { examples: RECALIBRATION_EXAMPLES, seed },
    );
  }

  logits(data: Dataset, order: ArrayLike<number>, start: number, n: number): ArrayLike<number> {
    this.fill(data, order, start, n);
    return this.model.forward(this.images, n, this.evalCtx);
  }

  beginTask(task: number, context: MethodContext): void {
    this.methodObject.beginTask?.(task, context);
  }

  stateTensors(): NamedTensor[] {
    return [
      ...this.model.parameters().map((p) => ({ name: `model/${p.name}`, value: p.value })),
      ...this.model.stateBuffers().map((s) => ({ name: `model/${s.name}`, value: s.value })),
      ...this.methodObject.stateTensors().map((t) => ({ name: `method/${t.name}`, value: t.value })),
      ...this.optimizerState.buffers.map((b) => ({ name: `optimizer/${b.name}`, value: b.value })),
    ];
  }

  stateScalars(): LearnerScalars {
    return { method: this.methodObject.stateScalars(), optimizer: { count: this.optimizerState.count } };
  }

  loadStateScalars(scalars: LearnerScalars): void {
    this.methodObject.loadStateScalars(scalars.method);
    restoreOptimizerState(this.optimizerState, {
      ...saveOptimizerState(this.optimizerState),
      count: scalars.optimizer.count ?? 0,
    });
  }

  stateBytesPerWeight(): number {
    return measuredStateBytes(this.stateTensors(), this.binaryWeights);
  }

  dispose(): void {
    this.setup.backend.free(this.images);
    this.optimizer.dispose(this.optimizerState);
    this.methodObject.dispose();
    this.loss.dispose();
    this.model.dispose();
  }
}

/** Binds a binary-weight method to a model built from `setup.spec`, planned and initialised. */
export function createFloatModelLearner(
  method: BinaryMethod,
  setup: LearnerSetup,
): Learner & {
  readonly model: Model;
  readonly binaryParameters: readonly Parameter[];
  readonly realParameters: readonly Parameter[];
} {
  return new FloatModelLearner(method, setup);
}
