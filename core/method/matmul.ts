import * as tf from '@tensorflow/tfjs';
import { TILED_MATMUL_FLAG } from '../tf/backend';
import { type Epilogue, type MatMulTile, tiledMatMulWebgpu } from './matmul-webgpu';

/**
 * The head's matrix products. On webgpu with TILED_MATMUL_FLAG set, those large enough to fill the device
 * go to the register-tiled kernel (matmul-webgpu.ts); everything else, and every other backend, to
 * tf.matMul.
 */

/** Fewer workgroups than this leave much of a GPU idle: a smaller tile, or tfjs' 32x32 one. */
const MIN_WORKGROUPS = 64;

const TILES: MatMulTile[] = [
  { side: 128, depth: 8 },
  { side: 64, depth: 16 },
];

/** The tile an m x n product takes on the tiled kernel; none where too few tiles would fill the device. */
export function tileFor(m: number, n: number): MatMulTile | undefined {
  return TILES.find((tile) => Math.ceil(m / tile.side) * Math.ceil(n / tile.side) >= MIN_WORKGROUPS);
}

/**
 * op(A) op(B). On wasm transposes are materialised first: it leaves its fast path for any transpose flag
 * (SPEC section 5). Elsewhere they are read in place (on webgpu by the tiled kernel or tfjs').
 */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D, transposeA = false, transposeB = false): tf.Tensor2D {
  const backend = tf.getBackend();
  if (backend === 'wasm')
    return tf.tidy(() => tf.matMul(transposeA ? tf.transpose(a) : a, transposeB ? tf.transpose(b) : b));
  if (backend === 'webgpu' && tf.env().getBool(TILED_MATMUL_FLAG)) {
    const m = transposeA ? a.shape[1] : a.shape[0];
    const n = transposeB ? b.shape[0] : b.shape[1];
    const tile = tileFor(m, n);
    if (tile) return tiledMatMulWebgpu(a, b, transposeA, transposeB, tile);
  }
  return tf.matMul(a, b, transposeA, transposeB);
}

/**
 * scale op(A) op(B) + identity I + sum_i c_i T_i (an Epilogue) on webgpu in one dispatch whatever
 * TILED_MATMUL_FLAG says (tfjs takes one for the product and one or more for the rest): the tiled kernel, on
 * its smaller tile where the larger would leave too few workgroups.
 */
export function matMulWithEpilogueWebgpu(
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  epilogue: Epilogue,
  transposeA = false,
  transposeB = false,
): tf.Tensor2D {
  const m = transposeA ? a.shape[1] : a.shape[0];
  const n = transposeB ? b.shape[0] : b.shape[1];
  return tiledMatMulWebgpu(a, b, transposeA, transposeB, tileFor(m, n) ?? TILES[TILES.length - 1]!, epilogue);
}
