import * as tf from '@tensorflow/tfjs';

/**
 * dL/dU of the InfoDisent head. With Z^T = U X^T and sparse pooling keeping one pixel per branch, channel
 * and image, dL/dZ^T has at most 2n non-zeros per channel, so
 *   dL/dU[c, :] = sum_b gradMax[c, b] X[b HW + argmax[c, b], :] + gradMin[c, b] X[b HW + argmin[c, b], :].
 */

/** The gradient at the pooled extremes, [C, n] each. */
export interface ExtremeGradients {
  /** Pixel index (within its image) of each channel's max and min, int32. */
  argmax: tf.Tensor2D;
  argmin: tf.Tensor2D;
  /** dL/dp where that branch survived the pooling (max > 0, min < 0), else 0. */
  gradMax: tf.Tensor2D;
  gradMin: tf.Tensor2D;
}

export type RotationGradientPath = 'sparse' | 'dense';

/**
 * Sparse on the CPU backends, where reading the [C, n] indices and gradients back synchronously is cheap:
 * 2 n C^2 multiply-adds instead of the dense product's n HW C^2 (2 x 64 x 512^2 against 3136 x 512^2).
 * Dense on webgpu (and tensorflow, which may be a GPU), where a read-back stalls the device queue and the
 * matmul is fast.
 */
export function defaultRotationGradientPath(): RotationGradientPath {
  const backend = tf.getBackend();
  return backend === 'wasm' || backend === 'cpu' ? 'sparse' : 'dense';
}

/** dL/dU [C, C]: dL/dZ^T [C, nHW] built from one-hot masks, then one matmul with X: no read-back. */
export function denseRotationGradient(extremes: ExtremeGradients, x: tf.Tensor2D): tf.Tensor2D {
  const [c, n] = extremes.argmax.shape;
  const hw = x.shape[0] / n;
  return tf.tidy(() => {
    const isMax = tf.oneHot(extremes.argmax.reshape([-1]).toInt(), hw).reshape([c, n, hw]);
    const isMin = tf.oneHot(extremes.argmin.reshape([-1]).toInt(), hw).reshape([c, n, hw]);
    const gradZT = tf.add(
      tf.mul(isMax, extremes.gradMax.expandDims(2)),
      tf.mul(isMin, extremes.gradMin.expandDims(2)),
    );
    return tf.matMul(gradZT.reshape([c, n * hw]) as tf.Tensor2D, x);
  });
}

/**
 * Rows summed per pass over a channel's accumulator (addScaledRows is unrolled to it): fewer passes
 * mean fewer loads and stores of the accumulator. Measured in V8 at C = 512..1024: ~0.9 ns per
 * multiply-add with 8 rows, ~1.0 with 4, ~2 with 1 (float64 sums no slower than float32 ones); blocking
 * channels for cache reuse of the rows gained nothing (the loop is compute-bound).
 */
const ROWS_PER_PASS = 8;

/**
 * The sum above as a loop over `rows` [nHW, C] row-major: with the maps X it is dL/dU; with any Y = X M
 * (such as Z = X U^T) it is dL/dU M. Each channel's terms are taken in a fixed order (image, then max
 * before min) and summed in float64, so the result is deterministic and at least as accurate as the dense
 * float32 matmul. Terms with a zero gradient are skipped; the last pass is padded with zero-scale terms.
 */
export function sparseRotationGradient(extremes: ExtremeGradients, rows: Float32Array): tf.Tensor2D {
  const c = extremes.argmax.shape[0];
  const sums = sparseRowSums(
    {
      argmax: extremes.argmax.dataSync<'int32'>(),
      argmin: extremes.argmin.dataSync<'int32'>(),
      gradMax: extremes.gradMax.dataSync<'float32'>(),
      gradMin: extremes.gradMin.dataSync<'float32'>(),
    },
    rows,
    c,
  );
  return tf.tensor2d(Float32Array.from(sums), [c, c]);
}

/** ExtremeGradients as plain arrays, [C, n] each. */
export interface ExtremeValues {
  argmax: ArrayLike<number>;
  argmin: ArrayLike<number>;
  gradMax: ArrayLike<number>;
  gradMin: ArrayLike<number>;
}

/** The sum above for `c` channels over the n images of `rows` [nHW, C], in float64, [C, C] row-major. */
export function sparseRowSums(extremes: ExtremeValues, rows: Float32Array, c: number): Float64Array {
  const { argmax, argmin, gradMax, gradMin } = extremes;
  const n = argmax.length / c;
  const hw = rows.length / (n * c);
  const out = new Float64Array(c * c);
  const capacity = Math.ceil((2 * n) / ROWS_PER_PASS) * ROWS_PER_PASS;
  const offsets = new Int32Array(capacity);
  const scales = new Float64Array(capacity);
  for (let channel = 0; channel < c; channel++) {
    let terms = 0;
    for (let image = 0; image < n; image++) {
      const k = channel * n + image;
      if (gradMax[k] !== 0) {
        offsets[terms] = (image * hw + argmax[k]!) * c;
        scales[terms++] = gradMax[k]!;
      }
      if (gradMin[k] !== 0) {
        offsets[terms] = (image * hw + argmin[k]!) * c;
        scales[terms++] = gradMin[k]!;
      }
    }
    offsets.fill(0, terms);
    scales.fill(0, terms);
    const sum = out.subarray(channel * c, (channel + 1) * c);
    for (let first = 0; first < terms; first += ROWS_PER_PASS)
      addScaledRows(sum, rows, offsets, scales, first);
  }
  return out;
}

/** sum += the sum over i < 8 of scales[first + i] * rows[offsets[first + i] + (0 .. C-1)], unrolled. */
function addScaledRows(
  sum: Float64Array,
  rows: Float32Array,
  offsets: Int32Array,
  scales: Float64Array,
  first: number,
): void {
  const o0 = offsets[first]!;
  const o1 = offsets[first + 1]!;
  const o2 = offsets[first + 2]!;
  const o3 = offsets[first + 3]!;
  const o4 = offsets[first + 4]!;
  const o5 = offsets[first + 5]!;
  const o6 = offsets[first + 6]!;
  const o7 = offsets[first + 7]!;
  const s0 = scales[first]!;
  const s1 = scales[first + 1]!;
  const s2 = scales[first + 2]!;
  const s3 = scales[first + 3]!;
  const s4 = scales[first + 4]!;
  const s5 = scales[first + 5]!;
  const s6 = scales[first + 6]!;
  const s7 = scales[first + 7]!;
  const c = sum.length;
  for (let j = 0; j < c; j++) {
    sum[j]! +=
      s0 * rows[o0 + j]! +
      s1 * rows[o1 + j]! +
      s2 * rows[o2 + j]! +
      s3 * rows[o3 + j]! +
      s4 * rows[o4 + j]! +
      s5 * rows[o5 + j]! +
      s6 * rows[o6 + j]! +
      s7 * rows[o7 + j]!;
  }
}
