import * as tf from '@tensorflow/tfjs';
import { type AdamCoefficients, adamWebgpu, type MomentSlot } from './adam-webgpu';

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

type AdamUpdate = typeof adamWebgpu;

/** The update op by op: the path of every backend but webgpu, and what the fused kernels must agree with. */
const adamOps: AdamUpdate = (parameters, gradients, moments, slots, coefficients) =>
  tf.tidy(() => {
    const total = moments.size / 2;
    const firsts: tf.Tensor[] = [];
    const seconds: tf.Tensor[] = [];
    const values = slots.map((slot, i) => {
      const c = coefficients[i]!;
      const gradient = gradients[i]!;
      const old = (start: number) => tf.slice(moments, start + slot.offset, slot.size).reshape(slot.shape);
      const m = tf.add(tf.mul(old(0), c.beta1), tf.mul(gradient, 1 - c.beta1));
      const v = tf.add(tf.mul(old(total), c.beta2), tf.mul(tf.square(gradient), 1 - c.beta2));
      const denominator = tf.add(tf.div(tf.sqrt(v), c.sqrtCorrection2), c.epsilon);
      const decayed = c.decay === 1 ? parameters[i]! : tf.mul(parameters[i]!, c.decay);
      const next = tf.sub(decayed, tf.mul(tf.div(m, denominator), c.stepSize));
      firsts.push(m.reshape([-1]));
      seconds.push(v.reshape([-1]));
      return c.nonNegative ? tf.relu(next) : next;
    });
    return { moments: tf.concat([...firsts, ...seconds]) as tf.Tensor1D, values };
  });

/** Slots for parameters of these shapes, in the order of their names. */
function slotsOf(shapes: Record<string, number[]>): MomentSlot[] {
  let offset = 0;
  return Object.keys(shapes)
    .sort()
    .map((name) => {
      const shape = shapes[name]!;
      const size = tf.util.sizeFromShape(shape);
      offset += size;
      return { name, offset: offset - size, size, shape };
    });
}

/**
 * Adam with decoupled weight decay (PyTorch's AdamW update, bias-corrected), one group per parameter.
 * Written out rather than tf.train.adam: that optimizer has one learning rate and no weight decay,
 * and its moments cannot be checkpointed and restored exactly.
 */
export class Adam {
  step = 0;
  /** Every parameter's moments in one tensor (see MomentSlot), so that the fused update writes them at once. */
  private moments: tf.Tensor1D | undefined;
  private slots: MomentSlot[] = [];

  constructor(readonly options: AdamOptions = DEFAULT_ADAM) {}

  /**
   * Returns the updated parameters; the caller owns (and disposes) both the old and the new. Parameters named
   * in `nonNegative` are projected onto x >= 0 as part of the update (a head's constraint). On webgpu the
   * update takes one dispatch for all the moments and one a parameter (adam-webgpu.ts).
   */
  update(
    parameters: Record<string, tf.Tensor>,
    gradients: Record<string, tf.Tensor>,
    groups: Record<string, ParameterGroup>,
    learningRateScale = 1,
    nonNegative: readonly string[] = [],
  ): Record<string, tf.Tensor> {
    const slots = slotsOf(Object.fromEntries(Object.entries(parameters).map(([name, p]) => [name, p.shape])));
    if (!this.moments) {
      this.slots = slots;
      this.moments = tf.zeros([2 * slots.reduce((sum, slot) => sum + slot.size, 0)]);
    } else if (JSON.stringify(slots) !== JSON.stringify(this.slots))
      throw new Error(
        `Adam: the parameters changed (${slots.map((s) => s.name).join(', ')} against ${this.slots.map((s) => s.name).join(', ')}, or their shapes)`,
      );
    this.step += 1;
    const { beta1, beta2, epsilon } = this.options;
    const coefficients = slots.map(({ name }): AdamCoefficients => {
      const group = groups[name];
      if (!gradients[name] || !group) throw new Error(`Adam: no gradient or parameter group for '${name}'`);
      const lr = group.learningRate * learningRateScale;
      return {
        beta1,
        beta2,
        sqrtCorrection2: Math.sqrt(1 - beta2 ** this.step),
        epsilon,
        decay: 1 - lr * group.weightDecay,
        stepSize: lr / (1 - beta1 ** this.step),
        nonNegative: nonNegative.includes(name),
      };
    });
    const { moments, values } = (tf.getBackend() === 'webgpu' ? adamWebgpu : adamOps)(
      slots.map(({ name }) => parameters[name]!),
      slots.map(({ name }) => gradients[name]!),
      this.moments,
      slots,
      coefficients,
    );
    this.moments.dispose();
    this.moments = moments;
    return Object.fromEntries(slots.map(({ name }, i) => [name, values[i]!]));
  }

  /** A parameter's first (m) or second (v) moment; undefined before its first update. The caller disposes it. */
  moment(name: string, which: 'm' | 'v'): tf.Tensor | undefined {
    const slot = this.slots.find((candidate) => candidate.name === name);
    const moments = this.moments;
    if (!slot || !moments) return undefined;
    const start = (which === 'm' ? 0 : moments.size / 2) + slot.offset;
    return tf.tidy(() => tf.slice(moments, start, slot.size).reshape(slot.shape));
  }

  /** Moments as named tensors, adam.m.NAME and adam.v.NAME, for checkpoints. The caller disposes them. */
  checkpointTensors(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const { name } of this.slots) {
      out[`adam.m.${name}`] = this.moment(name, 'm')!;
      out[`adam.v.${name}`] = this.moment(name, 'v')!;
    }
    return out;
  }

  /** Resumes at `step` from checkpointTensors' entries among `tensors` (others are ignored); takes them over. */
  restore(step: number, tensors: Record<string, tf.Tensor>): void {
    this.step = step;
    const shapes: Record<string, number[]> = {};
    for (const [key, tensor] of Object.entries(tensors)) {
      const name = /^adam\.[mv]\.(.+)$/.exec(key)?.[1];
      if (name !== undefined) shapes[name] = tensor.shape;
    }
    const slots = slotsOf(shapes);
    if (slots.length === 0) return;
    const pick = (which: 'm' | 'v') =>
      slots.map(({ name }) => {
        const tensor = tensors[`adam.${which}.${name}`];
        if (!tensor) throw new Error(`checkpoint has only one of the Adam moments of '${name}'`);
        return tensor;
      });
    const parts = [...pick('m'), ...pick('v')];
    this.moments?.dispose();
    this.moments = tf.tidy(() => tf.concat(parts.map((part) => part.reshape([-1]))) as tf.Tensor1D);
    this.slots = slots;
    tf.dispose(parts);
  }

  dispose(): void {
    this.moments?.dispose();
  }
}
