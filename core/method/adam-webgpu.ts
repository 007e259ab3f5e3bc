import type * as tf from '@tensorflow/tfjs';
import { PerOutputProgram, runProgram } from './webgpu-program';

/** The constants of one AdamW update of one parameter, as both implementations take them. */
export interface AdamCoefficients {
  beta1: number;
  beta2: number;
  /** sqrt(1 - beta2^t): v is bias-corrected inside the square root's denominator. */
  sqrtCorrection2: number;
  epsilon: number;
  /** 1 - lr * weightDecay: the decoupled decay as a factor (1 without decay). */
  decay: number;
  /** lr / (1 - beta1^t). */
  stepSize: number;
}

/** One AdamW update of a parameter: its new first moment, second moment and value. */
export type AdamUpdate = (
  parameter: tf.Tensor,
  gradient: tf.Tensor,
  firstMoment: tf.Tensor,
  secondMoment: tf.Tensor,
  c: AdamCoefficients,
) => [tf.Tensor, tf.Tensor, tf.Tensor];

type AdamOutput = 'firstMoment' | 'secondMoment' | 'parameter';

/**
 * One elementwise AdamW pass writing one of its three results. Each of the three dispatches recomputes the
 * new moments from the old ones (a few flops) instead of reading them back: a tfjs WebGPU program has one
 * output, and three dispatches replace the ~13 of the op-by-op update.
 */
class AdamWProgram extends PerOutputProgram {
  variableNames = ['P', 'G', 'M', 'V'];
  uniforms =
    'beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, sqrtCorrection2 : f32, epsilon : f32, decay : f32, stepSize : f32,';
  shaderKey: string;

  constructor(
    shape: number[],
    private readonly output: AdamOutput,
  ) {
    super(shape);
    this.shaderKey = `adamw_${output}`;
  }

  getUserCode(): string {
    // The same operations in the same order as the op-by-op update in adam.ts.
    const m = 'm0 * uniforms.beta1 + g * uniforms.oneMinusBeta1';
    const v = 'v0 * uniforms.beta2 + (g * g) * uniforms.oneMinusBeta2';
    const result = {
      firstMoment: m,
      secondMoment: v,
      parameter: `p * uniforms.decay - ((${m}) / (sqrt(${v}) / uniforms.sqrtCorrection2 + uniforms.epsilon)) * uniforms.stepSize`,
    }[this.output];
    // Every variant reads all four inputs: tfjs binds them all, and a binding no statement uses is
    // dropped from the pipeline's automatic layout, which then rejects the bind group.
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let p = P[index];
          let g = G[index];
          let m0 = M[index];
          let v0 = V[index];
          setOutputAtIndex(index, ${result});
        }
      }
    `;
  }
}

/** AdamW of one parameter on the webgpu backend in three dispatches: the new m, v and parameter. */
export const adamWebgpu: AdamUpdate = (parameter, gradient, firstMoment, secondMoment, c) => {
  const uniforms = [
    c.beta1,
    1 - c.beta1,
    c.beta2,
    1 - c.beta2,
    c.sqrtCorrection2,
    c.epsilon,
    c.decay,
    c.stepSize,
  ];
  const run = (output: AdamOutput) =>
    runProgram(
      new AdamWProgram(parameter.shape, output),
      [parameter, gradient, firstMoment, secondMoment],
      uniforms.map((value) => ({ type: 'float32' as const, data: [value] })),
    );
  return [run('firstMoment'), run('secondMoment'), run('parameter')];
};
