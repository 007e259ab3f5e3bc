import type * as tf from '@tensorflow/tfjs';
import { int32, PerOutputProgram, runProgram } from './webgpu-program';

/**
 * The InfoDisent head's class layer on webgpu, reading the pooled values p [C, n] from the first block of
 * the packed pooling output (pooling-webgpu.ts) in place: slicing them out would be one more dispatch, and
 * the bias add another. Each thread computes one output as a plain sum in order.
 */

/** Logits [K, n]: W p + b, one thread per class and image. */
class ClassLogitsProgram extends PerOutputProgram {
  variableNames = ['W', 'P', 'Bias'];
  uniforms = 'channels : i32, samples : i32,';
  shaderKey = 'infodisent_class_logits';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let k = index / uniforms.samples;
          let b = index - k * uniforms.samples;
          var sum = 0.0;
          for (var c = 0; c < uniforms.channels; c = c + 1) {
            sum = sum + W[k * uniforms.channels + c] * P[c * uniforms.samples + b];
          }
          setOutputAtIndex(index, sum + Bias[k]);
        }
      }
    `;
  }
}

/** dL/dW [K, C] = dL/dlogits p^T, one thread per class and channel. */
class ClassWeightGradientProgram extends PerOutputProgram {
  variableNames = ['G', 'P'];
  uniforms = 'channels : i32, samples : i32,';
  shaderKey = 'infodisent_class_weight_gradient';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let k = index / uniforms.channels;
          let c = index - k * uniforms.channels;
          var sum = 0.0;
          for (var b = 0; b < uniforms.samples; b = b + 1) {
            sum = sum + G[k * uniforms.samples + b] * P[c * uniforms.samples + b];
          }
          setOutputAtIndex(index, sum);
        }
      }
    `;
  }
}

function shapeUniforms(pooling: tf.Tensor3D) {
  const [, channels, samples] = pooling.shape;
  return [channels, samples].map(int32);
}

/** Class scores [K, n] of the packed pooling [3, C, n] with weights W [K, C] and bias [K, 1]. */
export function classLogitsWebgpu(weight: tf.Tensor2D, pooling: tf.Tensor3D, bias: tf.Tensor2D): tf.Tensor2D {
  const [classes] = weight.shape;
  return runProgram(
    new ClassLogitsProgram([classes, pooling.shape[2]]),
    [weight, pooling, bias],
    shapeUniforms(pooling),
  ) as tf.Tensor2D;
}

/** dL/dW [K, C] from dL/dlogits [K, n] and the packed pooling [3, C, n]. */
export function classWeightGradientWebgpu(gradLogitsT: tf.Tensor2D, pooling: tf.Tensor3D): tf.Tensor2D {
  return runProgram(
    new ClassWeightGradientProgram([gradLogitsT.shape[0], pooling.shape[1]]),
    [gradLogitsT, pooling],
    shapeUniforms(pooling),
  ) as tf.Tensor2D;
}
