import * as tf from '@tensorflow/tfjs';
import { type FeatureShape, pixelsOf } from '../features/feature-set';
import { sparseRowSums } from './rotation-gradient';

/**
 * One share of a batch's images through an InfoDisent training step on the CPU backends: everything in
 * the step that is per image (Z^T = U X^T, the sparse pooling, the sparse gradient's sum of rows), as
 * plain arrays so that another thread can compute a share (batch-share-thread.ts).
 * tfjs' wasm backend runs one thread under Node; splitting the images between two threads uses two cores.
 */
export interface ShareForward {
  /** p [C, n] of the share's n images. */
  pooled: Float32Array;
  /** Pixel of each channel's max and min per image, [C, n]; whether the max is > 0 and the min < 0. */
  argmax: Int32Array;
  argmin: Int32Array;
  positive: Uint8Array;
  negative: Uint8Array;
  /**
   * The rows the gradient sums, [nHW, C]: Z = X U^T right after a fold (the sum is then dL/dE), else the
   * maps X themselves (the sum is dL/dU, and dL/dE = dL/dU B^T).
   */
  rows: Float32Array;
}

/**
 * The forward pass of the images `maps` ([n, H, W, C]) with the rotation `u`; `atBase` says whether U is
 * the base (right after a fold), which decides the rows the gradient sums.
 */
export function shareForward(
  u: tf.Tensor2D,
  maps: Float32Array,
  shape: FeatureShape,
  atBase: boolean,
): ShareForward {
  const c = shape.channels;
  const hw = pixelsOf(shape);
  const n = maps.length / (hw * c);
  const x = tf.tensor2d(maps, [n * hw, c]);
  const xT = tf.transpose(x);
  const zT = tf.matMul(u, xT);
  const values = zT.dataSync<'float32'>();
  let rows = maps;
  if (atBase) {
    const z = tf.transpose(zT);
    rows = z.dataSync<'float32'>();
    z.dispose();
  }
  tf.dispose([x, xT, zT]);
  const cells = c * n;
  const pooled = new Float32Array(cells);
  const argmax = new Int32Array(cells);
  const argmin = new Int32Array(cells);
  const positive = new Uint8Array(cells);
  const negative = new Uint8Array(cells);
  // One pass over each channel's pixels of each image (Z^T rows hold an image's pixels together); ties go
  // to the first pixel, as tfjs' argMax and argMin on wasm.
  for (let cell = 0; cell < cells; cell++) {
    const base = cell * hw;
    let high = values[base]!;
    let low = high;
    let highAt = 0;
    let lowAt = 0;
    for (let q = 1; q < hw; q++) {
      const v = values[base + q]!;
      if (v > high) {
        high = v;
        highAt = q;
      } else if (v < low) {
        low = v;
        lowAt = q;
      }
    }
    pooled[cell] = Math.max(high, 0) + Math.min(low, 0);
    argmax[cell] = highAt;
    argmin[cell] = lowAt;
    positive[cell] = high > 0 ? 1 : 0;
    negative[cell] = low < 0 ? 1 : 0;
  }
  return { pooled, argmax, argmin, positive, negative, rows };
}

/** The share's row sum [C, C] (float64): its dL/dE at the base, else its dL/dU; given dL/dp [C, n]. */
export function shareGradient(
  forward: ShareForward,
  gradPooled: Float32Array,
  channels: number,
): Float64Array {
  const gradMax = gradPooled.map((g, k) => (forward.positive[k] ? g : 0));
  const gradMin = gradPooled.map((g, k) => (forward.negative[k] ? g : 0));
  return sparseRowSums(
    { argmax: forward.argmax, argmin: forward.argmin, gradMax, gradMin },
    forward.rows,
    channels,
  );
}
