import type * as tf from '@tensorflow/tfjs';
import type { FeatureShape } from '../features/feature-set';

export type HeadKind = 'baseline' | 'infodisent';

export interface LossAndGradients {
  /** Left on the device: reading it back would stall an asynchronous backend at every step. */
  loss: tf.Scalar;
  gradients: Record<string, tf.Tensor>;
}

/**
 * A classification head on frozen feature maps. Methods that may read tensors back are asynchronous:
 * the webgpu backend has no synchronous read-back in Node. Parameters are plain tensors owned by the head;
 * the trainer computes the update and hands the new tensors back with `setTrainable`.
 */
export interface Head {
  readonly kind: HeadKind;
  readonly shape: FeatureShape;
  readonly classCount: number;
  /** Trainable parameters by name; their names are the optimiser's parameter-group keys. */
  trainable(): Record<string, tf.Tensor>;
  /** Trainable parameters constrained to x >= 0: the optimiser projects them as it updates them. */
  readonly nonNegative: readonly string[];
  /** Replaces the trainable parameters (the head disposes the old ones). */
  setTrainable(parameters: Record<string, tf.Tensor>): void;
  /** Every tensor needed to restore the head exactly (trainable parameters and buffers). */
  state(): Record<string, tf.Tensor>;
  restore(state: Record<string, tf.Tensor>): void;
  /** Mean cross-entropy over the batch and its gradients; `maps` is [n, H, W, C]. */
  lossAndGradients(maps: Float32Array, labels: Int32Array): Promise<LossAndGradients>;
  /** Class scores [n, K]. */
  logits(maps: Float32Array): Promise<tf.Tensor2D>;
  /** Called after every optimiser step with the 1-based step number. */
  afterStep(step: number): Promise<void>;
  dispose(): void;
}

export function batchCount(maps: Float32Array, shape: FeatureShape): number {
  const size = shape.height * shape.width * shape.channels;
  if (maps.length % size !== 0) {
    throw new Error(
      `feature batch of ${maps.length} values is not a whole number of ${shape.height}x${shape.width}x${shape.channels} maps`,
    );
  }
  return maps.length / size;
}
