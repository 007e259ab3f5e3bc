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
const adamOps: AdamUpdate = (parameter, gradient, moments, c) =>
  tf.tidy(() => {
    const [firstMoment, secondMoment] = tf.unstack(moments);
    const m = tf.add(tf.mul(firstMoment!, c.beta1), tf.mul(gradient, 1 - c.beta1));
    const v = tf.add(tf.mul(secondMoment!, c.beta2), tf.mul(tf.square(gradient), 1 - c.beta2));
    const denominator = tf.add(tf.div(tf.sqrt(v), c.sqrtCorrection2), c.epsilon);
    const decayed = c.decay === 1 ? parameter : tf.mul(parameter, c.decay);
    const next = tf.sub(decayed, tf.mul(tf.div(m, denominator), c.stepSize));
    return [tf.stack([m, v]), c.nonNegative ? tf.relu(next) : next];
  });

/**
 * Adam with decoupled weight decay (PyTorch's AdamW update, bias-corrected), one group per parameter.
 * Written out rather than tf.train.adam: that optimizer has one learning rate and no weight decay,
 * and its moments cannot be checkpointed and restored exactly.
 */
export class Adam {
  step = 0;
  /** Each parameter's moments stacked as [2, ...shape], first then second: one tensor for the fused update. */
  private readonly moments: Record<string, tf.Tensor> = {};

  constructor(readonly options: AdamOptions = DEFAULT_ADAM) {}

  /**
   * Returns the updated parameters; the caller owns (and disposes) both the old and the new. Parameters named
   * in `nonNegative` are projected onto x >= 0 as part of the update (a head's constraint). On webgpu each
   * parameter takes two fused dispatches (adam-webgpu.ts) instead of one per op.
   */
  update(
    parameters: Record<string, tf.Tensor>,
    gradients: Record<string, tf.Tensor>,
    groups: Record<string, ParameterGroup>,
    learningRateScale = 1,
    nonNegative: readonly string[] = [],
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
        nonNegative: nonNegative.includes(name),
      };
      const moments = this.moments[name] ?? tf.zeros([2, ...parameter.shape]);
      const [nextMoments, next] = (fused ? adamWebgpu : adamOps)(parameter, gradient, moments, coefficients);
      moments.dispose();
      this.moments[name] = nextMoments;
      updated[name] = next;
    }
    return updated;
  }

  /** A parameter's first (m) or second (v) moment; undefined before its first update. The caller disposes it. */
  moment(name: string, which: 'm' | 'v'): tf.Tensor | undefined {
    const moments = this.moments[name];
    return moments && tf.tidy(() => tf.unstack(moments)[which === 'm' ? 0 : 1]!);
  }

  /** Moments as named tensors, adam.m.NAME and adam.v.NAME, for checkpoints. The caller disposes them. */
  checkpointTensors(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const name of Object.keys(this.moments)) {
      out[`adam.m.${name}`] = this.moment(name, 'm')!;
      out[`adam.v.${name}`] = this.moment(name, 'v')!;
    }
    return out;
  }

  /** Resumes at `step` from checkpointTensors' entries among `tensors` (others are ignored); takes them over. */
  restore(step: number, tensors: Record<string, tf.Tensor>): void {
    this.step = step;
    const names = new Set(
      Object.keys(tensors).flatMap((key) => /^adam\.[mv]\.(.+)$/.exec(key)?.slice(1) ?? []),
    );
    for (const name of names) {
      const [m, v] = [tensors[`adam.m.${name}`], tensors[`adam.v.${name}`]];
      if (!m || !v) throw new Error(`checkpoint has only one of the Adam moments of '${name}'`);
      this.moments[name]?.dispose();
      this.moments[name] = tf.stack([m, v]);
      tf.dispose([m, v]);
    }
  }

  dispose(): void {
    tf.dispose(Object.values(this.moments));
  }
}
