import * as tf from '@tensorflow/tfjs';
import { type FeatureShape, pixelsOf } from '../features/feature-set';
import { SeededRandom } from '../util/random';
import { crossEntropyClassMajor } from './cross-entropy';
import { batchCount, type Head, type LossAndGradients } from './head';

/** The default head of SPEC section 1: average pooling, then an unconstrained linear layer. */
export class BaselineHead implements Head {
  readonly kind = 'baseline' as const;
  readonly nonNegative = [];
  private weight: tf.Tensor2D;
  private bias: tf.Tensor2D;

  constructor(
    readonly shape: FeatureShape,
    readonly classCount: number,
    options: { seed: number },
  ) {
    const c = shape.channels;
    const random = new SeededRandom(options.seed);
    const bound = 1 / Math.sqrt(c);
    this.weight = tf.tensor2d(
      Float32Array.from({ length: classCount * c }, () => random.uniform(-bound, bound)),
      [classCount, c],
    );
    this.bias = tf.zeros([classCount, 1]);
  }

  trainable(): Record<string, tf.Tensor> {
    return { weight: this.weight, bias: this.bias };
  }

  setTrainable(parameters: Record<string, tf.Tensor>): void {
    tf.dispose([this.weight, this.bias]);
    this.weight = parameters['weight'] as tf.Tensor2D;
    this.bias = parameters['bias'] as tf.Tensor2D;
  }

  state(): Record<string, tf.Tensor> {
    return this.trainable();
  }

  restore(state: Record<string, tf.Tensor>): void {
    if (!state['weight'] || !state['bias']) throw new Error("baseline head state needs 'weight' and 'bias'");
    this.setTrainable(state);
  }

  classWeights(): tf.Tensor2D {
    return this.weight;
  }

  /** Average-pooled features p, [n, C]. */
  pool(maps: Float32Array): tf.Tensor2D {
    const n = batchCount(maps, this.shape);
    return tf.tidy(
      () => tf.mean(tf.tensor3d(maps, [n, pixelsOf(this.shape), this.shape.channels]), 1) as tf.Tensor2D,
    );
  }

  private logitsClassMajor(pooled: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.matMul(this.weight, tf.transpose(pooled)), this.bias) as tf.Tensor2D);
  }

  async logits(maps: Float32Array): Promise<tf.Tensor2D> {
    const pooled = this.pool(maps);
    const logitsT = this.logitsClassMajor(pooled);
    const logits = tf.tidy(() => tf.transpose(logitsT) as tf.Tensor2D);
    tf.dispose([pooled, logitsT]);
    return logits;
  }

  async lossAndGradients(maps: Float32Array, labels: Int32Array): Promise<LossAndGradients> {
    const pooled = this.pool(maps);
    const logitsT = this.logitsClassMajor(pooled);
    const { loss, gradLogitsT } = crossEntropyClassMajor(logitsT, labels);
    const gradients = tf.tidy(() => ({
      weight: tf.matMul(gradLogitsT, pooled),
      bias: tf.sum(gradLogitsT, 1, true),
    }));
    tf.dispose([pooled, logitsT, gradLogitsT]);
    return { loss, gradients };
  }

  async afterStep(): Promise<void> {}

  dispose(): void {
    tf.dispose([this.weight, this.bias]);
  }
}
