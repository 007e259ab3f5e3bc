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
  /** Project the updated parameter onto x >= 0 (a head's constraint, e.g. InfoDisent's class weights). */
  nonNegative: boolean;
}

/**
 * One AdamW update of a parameter from its moments stacked as [2, ...shape] (first, then second): the new
 * moments, stacked the same way, and the new value.
 */
export type AdamUpdate = (
  parameter: tf.Tensor,
  gradient: tf.Tensor,
  moments: tf.Tensor,
  c: AdamCoefficients,
) => [tf.Tensor, tf.Tensor];

const UNIFORMS =
  'count : i32, beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32, sqrtCorrection2 : f32, epsilon : f32, decay : f32, stepSize : f32,';

// The same operations in the same order as the op-by-op update in adam.ts.
const FIRST_MOMENT = 'MV[index] * uniforms.beta1 + G[index] * uniforms.oneMinusBeta1';
const SECOND_MOMENT =
  'MV[uniforms.count + index] * uniforms.beta2 + (G[index] * G[index]) * uniforms.oneMinusBeta2';

/**
 * The new moments, [2, ...shape]: one thread per value, the first half m, the second v. A tfjs WebGPU
 * program has one output; stacking the moments makes their update one dispatch instead of two.
 */
class AdamMomentsProgram extends PerOutputProgram {
  variableNames = ['G', 'MV'];
  uniforms = UNIFORMS;
  shaderKey = 'adamw_moments';

  getUserCode(): string {
    return `
      fn main(thread : i32) {
        if (thread < uniforms.size) {
          let index = thread % uniforms.count;
          if (thread < uniforms.count) {
            setOutputAtIndex(thread, ${FIRST_MOMENT});
          } else {
            setOutputAtIndex(thread, ${SECOND_MOMENT});
          }
        }
      }
    `;
  }
}

/** The new parameter, from the old moments (recomputing the new ones costs a few flops, not a dispatch). */
class AdamParameterProgram extends PerOutputProgram {
  variableNames = ['P', 'G', 'MV'];
  uniforms = UNIFORMS;
  shaderKey: string;

  constructor(
    shape: number[],
    private readonly nonNegative: boolean,
  ) {
    super(shape);
    this.shaderKey = `adamw_parameter_${nonNegative}`;
  }

  getUserCode(): string {
    const value = `P[index] * uniforms.decay - ((${FIRST_MOMENT}) / (sqrt(${SECOND_MOMENT}) / uniforms.sqrtCorrection2 + uniforms.epsilon)) * uniforms.stepSize`;
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let value = ${value};
          setOutputAtIndex(index, ${this.nonNegative ? 'max(value, 0.0)' : 'value'});
        }
      }
    `;
  }
}

/** AdamW of one parameter on the webgpu backend in two dispatches: the new moments, then the parameter. */
export const adamWebgpu: AdamUpdate = (parameter, gradient, moments, c) => {
  const uniforms = [
    { type: 'int32' as const, data: [parameter.size] },
    ...[c.beta1, 1 - c.beta1, c.beta2, 1 - c.beta2, c.sqrtCorrection2, c.epsilon, c.decay, c.stepSize].map(
      (value) => ({ type: 'float32' as const, data: [value] }),
    ),
  ];
  return [
    runProgram(new AdamMomentsProgram(moments.shape), [gradient, moments], uniforms),
    runProgram(
      new AdamParameterProgram(parameter.shape, c.nonNegative),
      [parameter, gradient, moments],
      uniforms,
    ),
  ];
};
