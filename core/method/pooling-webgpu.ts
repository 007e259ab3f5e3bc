import type * as tf from '@tensorflow/tfjs';
import { PerOutputProgram, runProgram } from './webgpu-program';

/**
 * The InfoDisent head's sparse pooling and its gradient as two fused WGSL kernels for the webgpu backend,
 * where a training step is bound by its number of dispatches, not by arithmetic: the op-by-op pooling
 * (max, min, their signs, argmax, argmin) and the one-hot gradient take about twenty. Both kernels scan
 * the HW pixels of one channel and image; ties go to the first pixel, as on the CPU backends.
 */

/** WGSL computing max, min and their first pixels over Z[base .. base + hw). */
const SCAN = `
  var high = Z[base];
  var low = high;
  var highAt = 0;
  var lowAt = 0;
  for (var q = 1; q < uniforms.hw; q = q + 1) {
    let v = Z[base + q];
    if (v > high) { high = v; highAt = q; }
    if (v < low) { low = v; lowAt = q; }
  }
`;

/** p[c, b] = relu(max_q Z[c, b HW + q]) + min(min_q Z[c, b HW + q], 0), one thread per (c, b). */
class SparsePoolProgram extends PerOutputProgram {
  variableNames = ['Z'];
  uniforms = 'hw : i32,';
  shaderKey = 'infodisent_sparse_pool';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let base = index * uniforms.hw;
          ${SCAN}
          setOutputAtIndex(index, max(high, 0.0) + min(low, 0.0));
        }
      }
    `;
  }
}

/**
 * dL/dZ^T [C, n HW]: dL/dp[c, b] at the pixel of the max where the max is positive, plus at the pixel of
 * the min where the min is negative, 0 elsewhere; one thread per element, each rescanning its HW pixels.
 */
class SparsePoolGradientProgram extends PerOutputProgram {
  variableNames = ['Z', 'G'];
  uniforms = 'hw : i32,';
  shaderKey = 'infodisent_sparse_pool_gradient';

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let cell = index / uniforms.hw;
          let pixel = index - cell * uniforms.hw;
          let base = cell * uniforms.hw;
          ${SCAN}
          let g = G[cell];
          var grad = 0.0;
          if (pixel == highAt && high > 0.0) { grad = grad + g; }
          if (pixel == lowAt && low < 0.0) { grad = grad + g; }
          setOutputAtIndex(index, grad);
        }
      }
    `;
  }
}

/** Sparse pooling of Z^T [C, n HW] (pixels of an image contiguous): p [C, n]. */
export function sparsePoolWebgpu(zT: tf.Tensor2D, n: number, hw: number): tf.Tensor2D {
  const channels = zT.shape[0];
  return runProgram(
    new SparsePoolProgram([channels, n]),
    [zT],
    [{ type: 'int32', data: [hw] }],
  ) as tf.Tensor2D;
}

/** dL/dZ^T [C, n HW] from Z^T and dL/dp [C, n]. */
export function sparsePoolGradientWebgpu(zT: tf.Tensor2D, gradPooled: tf.Tensor2D, hw: number): tf.Tensor2D {
  return runProgram(
    new SparsePoolGradientProgram(zT.shape),
    [zT, gradPooled],
    [{ type: 'int32', data: [hw] }],
  ) as tf.Tensor2D;
}
