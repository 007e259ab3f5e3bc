import type * as tf from '@tensorflow/tfjs';
import type { WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { int32, PerOutputProgram, runProgram } from './webgpu-program';

/**
 * The InfoDisent head's sparse pooling and its gradient as fused WGSL kernels for the webgpu backend, where
 * a training step is bound by its number of dispatches, not by arithmetic. Both read the rotated maps as
 * Z = X U^T [n HW, C] (pixel-major, so threads of neighbouring channels read neighbouring values).
 *
 * The pooling writes one tensor of three [C, n] blocks: the pooled values p, then the pixel of each
 * channel's max where the max is positive and of its min where the min is negative (-1 where that branch
 * is dropped), as exact float32 integers. The class layer's kernels read p from its first block
 * (class-layer-webgpu.ts) and the gradient kernel the pixels from the others: no rescan, no one-hot.
 * Ties go to the first pixel, as on the CPU backends.
 */

/** Blocks of the packed pooling output: values, max pixel, min pixel. */
const POOLING_BLOCKS = 3;

class SparsePoolProgram extends PerOutputProgram {
  variableNames = ['Z'];
  uniforms = 'hw : i32, samples : i32, channels : i32,';
  shaderKey = 'infodisent_sparse_pool_packed';

  constructor(channels: number, samples: number) {
    super([POOLING_BLOCKS, channels, samples], channels * samples);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        let cells = uniforms.channels * uniforms.samples;
        if (index < cells) {
          let c = index % uniforms.channels;
          let b = index / uniforms.channels;
          let first = b * uniforms.hw * uniforms.channels + c;
          var high = Z[first];
          var low = high;
          var highAt = 0;
          var lowAt = 0;
          for (var q = 1; q < uniforms.hw; q = q + 1) {
            let v = Z[first + q * uniforms.channels];
            if (v > high) { high = v; highAt = q; }
            if (v < low) { low = v; lowAt = q; }
          }
          let cell = c * uniforms.samples + b;
          setOutputAtIndex(cell, max(high, 0.0) + min(low, 0.0));
          setOutputAtIndex(cells + cell, select(-1.0, f32(highAt), high > 0.0));
          setOutputAtIndex(2 * cells + cell, select(-1.0, f32(lowAt), low < 0.0));
        }
      }
    `;
  }
}

/**
 * Sparse pooling of Z [n HW, C]: [3, C, n], the pooled values p [C, n] and the surviving extremes' pixels
 * (see above).
 */
export function sparsePoolWebgpu(z: tf.Tensor2D, n: number, hw: number): tf.Tensor3D {
  const channels = z.shape[1];
  return runProgram(new SparsePoolProgram(channels, n), [z], [hw, n, channels].map(int32)) as tf.Tensor3D;
}

/** Images whose extremes a workgroup stages at a time, and output columns per workgroup (4 a thread). */
const CHUNK = 64;
const COLUMNS_PER_THREAD = 4;

/**
 * dL/dU[c, :] = sum_b dL/dp[c, b] (R[b HW + max pixel, :] + R[b HW + min pixel, :]) over the surviving
 * branches, with dL/dp = W^T dL/dlogits computed here too. R is X for dL/dU or, right after a fold (U = B),
 * Z for dL/dE = dL/dU B^T. dL/dZ has two non-zeros per channel and image, so this reads 2n rows instead of
 * multiplying [C, n HW] by [n HW, C]: 2n C^2 multiply-adds instead of n HW C^2, in one dispatch instead of
 * three (dL/dp, the one-hot dL/dZ, the product). A workgroup owns one channel and 256 columns: it stages a
 * chunk of images' (row, gradient) pairs in workgroup memory, then each thread adds them to its columns,
 * image by image, max before min, as the CPU's sparse sum does.
 */
class ExtremeRowsGradientProgram implements WebGPUProgram {
  variableNames = ['P', 'W', 'G', 'R'];
  uniforms = 'hw : i32, samples : i32, channels : i32, classes : i32,';
  shaderKey = 'infodisent_extreme_rows_gradient';
  outputShape: number[];
  workgroupSize: [number, number, number] = [CHUNK, 1, 1];
  dispatchLayout = { x: [1], y: [0] };
  dispatch: [number, number, number];

  constructor(channels: number) {
    this.outputShape = [channels, channels];
    this.dispatch = [Math.ceil(channels / (CHUNK * COLUMNS_PER_THREAD)), channels, 1];
  }

  getUserCode(): string {
    const columns = Array.from({ length: COLUMNS_PER_THREAD }, (_, i) => i);
    return `
      var<workgroup> highRow : array<i32, ${CHUNK}>;
      var<workgroup> highGrad : array<f32, ${CHUNK}>;
      var<workgroup> lowRow : array<i32, ${CHUNK}>;
      var<workgroup> lowGrad : array<f32, ${CHUNK}>;

      fn main() {
        let lane = i32(localId.x);
        let c = i32(workgroupId.y);
        let j0 = i32(workgroupId.x) * ${CHUNK * COLUMNS_PER_THREAD} + lane;
        let cells = uniforms.channels * uniforms.samples;
        ${columns.map((i) => `var sum${i} = 0.0;`).join('\n')}
        for (var first = 0; first < uniforms.samples; first = first + ${CHUNK}) {
          workgroupBarrier();
          let b = first + lane;
          var hr = 0; var hg = 0.0; var lr = 0; var lg = 0.0;
          if (b < uniforms.samples) {
            var g = 0.0;
            for (var k = 0; k < uniforms.classes; k = k + 1) {
              g = g + W[k * uniforms.channels + c] * G[k * uniforms.samples + b];
            }
            let cell = c * uniforms.samples + b;
            let high = i32(P[cells + cell]);
            let low = i32(P[2 * cells + cell]);
            if (high >= 0) { hr = (b * uniforms.hw + high) * uniforms.channels; hg = g; }
            if (low >= 0) { lr = (b * uniforms.hw + low) * uniforms.channels; lg = g; }
          }
          highRow[lane] = hr; highGrad[lane] = hg; lowRow[lane] = lr; lowGrad[lane] = lg;
          workgroupBarrier();
          let count = min(${CHUNK}, uniforms.samples - first);
          for (var t = 0; t < count; t = t + 1) {
            let h = highRow[t]; let gh = highGrad[t]; let l = lowRow[t]; let gl = lowGrad[t];
            ${columns
              .map(
                (i) => `if (j0 + ${i * CHUNK} < uniforms.channels) {
              sum${i} = sum${i} + gh * R[h + j0 + ${i * CHUNK}] + gl * R[l + j0 + ${i * CHUNK}];
            }`,
              )
              .join('\n')}
          }
        }
        ${columns
          .map(
            (i) => `if (j0 + ${i * CHUNK} < uniforms.channels) {
          setOutputAtIndex(c * uniforms.channels + j0 + ${i * CHUNK}, sum${i});
        }`,
          )
          .join('\n')}
      }
    `;
  }
}

/**
 * [C, C]: dL/dU from the packed pooling [3, C, n], the class weights W [K, C], dL/dlogits [K, n] and the
 * rows R [n HW, C] (X, or Z right after a fold for dL/dE).
 */
export function extremeRowsGradientWebgpu(
  pooling: tf.Tensor3D,
  weight: tf.Tensor2D,
  gradLogitsT: tf.Tensor2D,
  rows: tf.Tensor2D,
  hw: number,
): tf.Tensor2D {
  const [, channels, samples] = pooling.shape;
  const classes = weight.shape[0];
  return runProgram(
    new ExtremeRowsGradientProgram(channels),
    [pooling, weight, gradLogitsT, rows],
    [hw, samples, channels, classes].map(int32),
  ) as tf.Tensor2D;
}
