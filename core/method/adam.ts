import * as tf from '@tensorflow/tfjs';
import { type AdamCoefficients, type AdamUpdate, adamWebgpu } from './adam-webgpu';

/** Learning rate and decoupled weight decay of one parameter group. */
export interface ParameterGroup {
  learningRate: number;
  weightDecay: number;
}

export interface AdamOptions {
  beta1: number;
  beta2: number;
  epsilon: number;
}

export const DEFAULT_ADAM: AdamOptions = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

/** The update op by op: the path of every backend but webgpu, and what the fused kernel must agree with. */
const adamOps: AdamUpdate = (parameter, gradient, firstMoment, secondMoment, c) =>
  tf.tidy(() => {
    const m = tf.add(tf.mul(firstMoment, c.beta1), tf.mul(gradient, 1 - c.beta1));
    const v = tf.add(tf.mul(secondMoment, c.beta2), tf.mul(tf.square(gradient), 1 - c.beta2));
    const denominator = tf.add(tf.div(tf.sqrt(v), c.sqrtCorrection2), c.epsilon);
    const decayed = c.decay === 1 ? parameter : tf.mul(parameter, c.decay);
    return [m, v, tf.sub(decayed, tf.mul(tf.div(m, denominator), c.stepSize))];
  });

/**
 * Adam with decoupled weight decay (PyTorch's AdamW update, bias-corrected), one group per parameter.
 * Written out rather than tf.train.adam: that optimizer has one learning rate and no weight decay,
 * and its moments cannot be checkpointed and restored exactly.
 */
export class Adam {
  step = 0;
  readonly firstMoments: Record<string, tf.Tensor> = {};
  readonly secondMoments: Record<string, tf.Tensor> = {};

  constructor(readonly options: AdamOptions = DEFAULT_ADAM) {}

  /**
   * Returns the updated parameters; the caller owns (and disposes) both the old and the new. On webgpu each
   * parameter takes three fused dispatches (adam-webgpu.ts) instead of one per op.
   */
  update(
    parameters: Record<string, tf.Tensor>,
    gradients: Record<string, tf.Tensor>,
    groups: Record<string, ParameterGroup>,
    learningRateScale = 1,
  ): Record<string, tf.Tensor> {
    this.step += 1;
    const { beta1, beta2, epsilon } = this.options;
    const fused = tf.getBackend() === 'webgpu';
    const updated: Record<string, tf.Tensor> = {};
    for (const [name, parameter] of Object.entries(parameters)) {
      const gradient = gradients[name];
      const group = groups[name];
      if (!gradient || !group) throw new Error(`Adam: no gradient or parameter group for '${name}'`);
      const lr = group.learningRate * learningRateScale;
      const coefficients: AdamCoefficients = {
        beta1,
        beta2,
        sqrtCorrection2: Math.sqrt(1 - beta2 ** this.step),
        epsilon,
        decay: 1 - lr * group.weightDecay,
        stepSize: lr / (1 - beta1 ** this.step),
      };
      const firstMoment = this.firstMoments[name] ?? tf.zerosLike(parameter);
      const secondMoment = this.secondMoments[name] ?? tf.zerosLike(parameter);
      const [m, v, next] = fused
        ? adamWebgpu(parameter, gradient, firstMoment, secondMoment, coefficients)
        : adamOps(parameter, gradient, firstMoment, secondMoment, coefficients);
      tf.dispose([firstMoment, secondMoment]);
      this.firstMoments[name] = m;
      this.secondMoments[name] = v;
      updated[name] = next;
    }
    return updated;
  }

  /** Moments as named tensors, for checkpoints. */
  moments(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [name, m] of Object.entries(this.firstMoments)) out[`adam.m.${name}`] = m;
    for (const [name, v] of Object.entries(this.secondMoments)) out[`adam.v.${name}`] = v;
    return out;
  }

  restore(step: number, tensors: Record<string, tf.Tensor>): void {
    this.step = step;
    for (const [key, tensor] of Object.entries(tensors)) {
      const match = /^adam\.([mv])\.(.+)$/.exec(key);
      if (!match) continue;
      (match[1] === 'm' ? this.firstMoments : this.secondMoments)[match[2]!] = tensor;
    }
  }

  dispose(): void {
    tf.dispose([...Object.values(this.firstMoments), ...Object.values(this.secondMoments)]);
  }
}
