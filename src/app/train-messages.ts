/** The messages between the page and its training worker (train-worker.ts). */
import type { BatchProgress, EpochRecord } from '../browser.js';

export interface TrainRequest {
  readonly method: 'ste' | 'float-free';
  /** Training examples: the first ones of Fashion-MNIST's training set. */
  readonly examples: number;
  readonly epochs: number;
  readonly batchSize: number;
  /** The method's learning rate; null: the method's default. */
  readonly learningRate: number | null;
  readonly seed: number;
}

export type TrainReply =
  | { readonly type: 'status'; readonly text: string }
  | ({ readonly type: 'batch' } & BatchProgress)
  | { readonly type: 'epoch'; readonly record: EpochRecord }
  | {
      readonly type: 'done';
      readonly testAccuracy: number;
      readonly testNll: number;
      readonly samplesPerSecond: number;
      readonly testExamples: number;
      /** The trained model, a .onebit file. */
      readonly model: Uint8Array;
    }
  | { readonly type: 'error'; readonly message: string };
