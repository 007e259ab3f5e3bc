import * as tf from '@tensorflow/tfjs';
// Types only: loading the package registers the webgpu backend, which backend.ts does when a GPU exists.
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/**
 * The InfoDisent head's sparse pooling and its gradient as two fused WGSL kernels for the webgpu backend,
 * where a training step is bound by its number of dispatches, not by arithmetic: the op-by-op pooling
 * (max, min, their signs, argmax, argmin) and the one-hot gradient take about twenty. Both kernels scan
 * the HW pixels of one channel and image; ties go to the first pixel, as tfjs' argMax and argMin do.
 */

const WORKGROUP_SIZE = 64;

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

abstract class PoolingProgram implements WebGPUProgram {
  abstract variableNames: string[];
  uniforms = 'hw : i32,';
  workgroupSize: [number, number, number] = [WORKGROUP_SIZE, 1, 1];
  size = true;
  outputShape: number[];
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  abstract shaderKey: string;

  constructor(outputShape: number[]) {
    this.outputShape = outputShape;
    this.dispatchLayout = { x: outputShape.map((_, i) => i) };
    this.dispatch = [Math.ceil(tf.util.sizeFromShape(outputShape) / WORKGROUP_SIZE), 1, 1];
  }

  abstract getUserCode(): string;
}

/** p[c, b] = relu(max_q Z[c, b HW + q]) + min(min_q Z[c, b HW + q], 0), one thread per (c, b). */
class SparsePoolProgram extends PoolingProgram {
  variableNames = ['Z'];
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
class SparsePoolGradientProgram extends PoolingProgram {
  variableNames = ['Z', 'G'];
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

function run(program: WebGPUProgram, inputs: tf.Tensor[], hw: number): tf.Tensor {
  const backend = tf.backend() as unknown as WebGPUBackend;
  return tf
    .engine()
    .makeTensorFromTensorInfo(
      backend.runWebGPUProgram(program, inputs, 'float32', [{ type: 'int32', data: [hw] }]),
    );
}

/** Sparse pooling of Z^T [C, n HW] (pixels of an image contiguous): p [C, n]. */
export function sparsePoolWebgpu(zT: tf.Tensor2D, n: number, hw: number): tf.Tensor2D {
  const channels = zT.shape[0];
  return run(new SparsePoolProgram([channels, n]), [zT], hw) as tf.Tensor2D;
}

/** dL/dZ^T [C, n HW] from Z^T and dL/dp [C, n]. */
export function sparsePoolGradientWebgpu(zT: tf.Tensor2D, gradPooled: tf.Tensor2D, hw: number): tf.Tensor2D {
  return run(new SparsePoolGradientProgram(zT.shape), [zT, gradPooled], hw) as tf.Tensor2D;
}
