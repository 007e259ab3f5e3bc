import type * as tf from '@tensorflow/tfjs';
import { float32, int32, PerOutputProgram, runProgram } from './webgpu-program';

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
 * Where a parameter's moments sit in the optimiser's one moments tensor, [2 * total]: the first moments of
 * every parameter, then the second moments, each parameter's at its offset within either half.
 */
export interface MomentSlot {
  name: string;
  offset: number;
  size: number;
  shape: number[];
}

// The same operations in the same order as the op-by-op update in adam.ts.
const firstMoment = (old: string, g: string) => `${old} * uniforms.beta1 + ${g} * uniforms.oneMinusBeta1`;
const secondMoment = (old: string, g: string) =>
  `${old} * uniforms.beta2 + (${g} * ${g}) * uniforms.oneMinusBeta2`;

const BETAS = 'beta1 : f32, oneMinusBeta1 : f32, beta2 : f32, oneMinusBeta2 : f32,';

/**
 * The new moments of every parameter, [2 * total], one thread per value. A tfjs WebGPU program has one
 * output; with all moments in one tensor their update is one dispatch instead of two a parameter.
 */
class AdamMomentsProgram extends PerOutputProgram {
  variableNames: string[];
  uniforms: string;
  shaderKey: string;

  constructor(
    total: number,
    private readonly parameters: number,
  ) {
    super([2 * total]);
    const indices = Array.from({ length: parameters }, (_, i) => i);
    this.variableNames = [...indices.map((i) => `G${i}`), 'MV'];
    this.uniforms = `total : i32, ${indices.map((i) => `start${i} : i32,`).join(' ')} ${BETAS}`;
    this.shaderKey = `adamw_moments_${parameters}`;
  }

  getUserCode(): string {
    // The gradient of value `index`: from the last parameter whose slot starts at or before it.
    const gradient = Array.from({ length: this.parameters }, (_, i) => i)
      .reverse()
      .map((i) => `if (index >= uniforms.start${i}) { g = G${i}[index - uniforms.start${i}]; }`)
      .join(' else ');
    return `
      fn main(thread : i32) {
        if (thread < uniforms.size) {
          let index = thread % uniforms.total;
          var g = 0.0;
          ${gradient}
          if (thread < uniforms.total) {
            setOutputAtIndex(thread, ${firstMoment('MV[thread]', 'g')});
          } else {
            setOutputAtIndex(thread, ${secondMoment('MV[thread]', 'g')});
          }
        }
      }
    `;
  }
}

/** A parameter's new value, from the old moments (recomputing the new ones costs a few flops, not a dispatch). */
class AdamParameterProgram extends PerOutputProgram {
  variableNames = ['P', 'G', 'MV'];
  uniforms = `start : i32, total : i32, ${BETAS} sqrtCorrection2 : f32, epsilon : f32, decay : f32, stepSize : f32,`;
  shaderKey: string;

  constructor(
    shape: number[],
    private readonly nonNegative: boolean,
  ) {
    super(shape);
    this.shaderKey = `adamw_parameter_${nonNegative}`;
  }

  getUserCode(): string {
    const m = firstMoment('MV[uniforms.start + index]', 'G[index]');
    const v = secondMoment('MV[uniforms.total + uniforms.start + index]', 'G[index]');
    const value = `P[index] * uniforms.decay - ((${m}) / (sqrt(${v}) / uniforms.sqrtCorrection2 + uniforms.epsilon)) * uniforms.stepSize`;
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

function betas(c: AdamCoefficients) {
  return [c.beta1, 1 - c.beta1, c.beta2, 1 - c.beta2].map(float32);
}

/**
 * AdamW of every parameter on the webgpu backend in one dispatch for all the moments and one a parameter:
 * the new moments [2 * total] and the parameters' new values, in `slots` order.
 */
export function adamWebgpu(
  parameters: tf.Tensor[],
  gradients: tf.Tensor[],
  moments: tf.Tensor1D,
  slots: MomentSlot[],
  coefficients: AdamCoefficients[],
): { moments: tf.Tensor1D; values: tf.Tensor[] } {
  const total = moments.size / 2;
  const next = runProgram(
    new AdamMomentsProgram(total, slots.length),
    [...gradients, moments],
    [int32(total), ...slots.map((slot) => int32(slot.offset)), ...betas(coefficients[0]!)],
  ) as tf.Tensor1D;
  const values = slots.map((slot, i) => {
    const c = coefficients[i]!;
    return runProgram(
      new AdamParameterProgram(slot.shape, c.nonNegative),
      [parameters[i]!, gradients[i]!, moments],
      [
        int32(slot.offset),
        int32(total),
        ...betas(c),
        ...[c.sqrtCorrection2, c.epsilon, c.decay, c.stepSize].map(float32),
      ],
    );
  });
  return { moments: next, values };
}
