import * as tf from '@tensorflow/tfjs';

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

  /** Returns the updated parameters; the caller owns (and disposes) both the old and the new. */
  update(
    parameters: Record<string, tf.Tensor>,
    gradients: Record<string, tf.Tensor>,
    groups: Record<string, ParameterGroup>,
    learningRateScale = 1,
  ): Record<string, tf.Tensor> {
    this.step += 1;
    const { beta1, beta2, epsilon } = this.options;
    const correction1 = 1 - beta1 ** this.step;
    const correction2 = 1 - beta2 ** this.step;
    const updated: Record<string, tf.Tensor> = {};
    for (const [name, parameter] of Object.entries(parameters)) {
      const gradient = gradients[name];
      const group = groups[name];
      if (!gradient || !group) throw new Error(`Adam: no gradient or parameter group for '${name}'`);
      const lr = group.learningRate * learningRateScale;
      const [m, v, next] = tf.tidy(() => {
        const m = tf.add(
          tf.mul(this.firstMoments[name] ?? tf.zerosLike(parameter), beta1),
          tf.mul(gradient, 1 - beta1),
        );
        const v = tf.add(
          tf.mul(this.secondMoments[name] ?? tf.zerosLike(parameter), beta2),
          tf.mul(tf.square(gradient), 1 - beta2),
        );
        const denominator = tf.add(tf.div(tf.sqrt(v), Math.sqrt(correction2)), epsilon);
        const decayed = group.weightDecay === 0 ? parameter : tf.mul(parameter, 1 - lr * group.weightDecay);
        return [m, v, tf.sub(decayed, tf.mul(tf.div(m, denominator), lr / correction1))];
      });
      tf.dispose([this.firstMoments[name]!, this.secondMoments[name]!].filter(Boolean));
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
