import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { matMul } from '../core/method/matmul';
import { type MatMulTile, tiledMatMulWebgpu } from '../core/method/matmul-webgpu';
import { selectBackend, TILED_MATMUL_FLAG } from '../core/tf/backend';
import { SeededRandom } from '../core/util/random';
import { agreementWithWasm } from './support/backend-agreement';
import { gaussian, relativeError } from './support/numeric';

/**
 * The register-tiled webgpu product against a float64 product of the same float32 inputs, for both tile
 * shapes, every transpose combination and sizes that leave partial tiles on every side. Needs a WebGPU
 * adapter (on a CPU machine infra/lavapipe.sh provides one); skipped elsewhere.
 */

/** op(A) op(B) in float64, A stored [rows, cols] row-major. */
function referenceProduct(
  a: Float32Array,
  aShape: [number, number],
  b: Float32Array,
  bShape: [number, number],
  transposeA: boolean,
  transposeB: boolean,
): Float64Array {
  const [m, k] = transposeA ? [aShape[1], aShape[0]] : aShape;
  const n = transposeB ? bShape[0] : bShape[1];
  const at = (i: number, p: number) => (transposeA ? a[p * aShape[1] + i]! : a[i * aShape[1] + p]!);
  const bt = (p: number, j: number) => (transposeB ? b[j * bShape[1] + p]! : b[p * bShape[1] + j]!);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += at(i, p) * bt(p, j);
      out[i * n + j] = sum;
    }
  return out;
}

async function webgpuAvailable(): Promise<string | undefined> {
  try {
    await selectBackend('webgpu');
    return undefined;
  } catch (error) {
    return `webgpu unavailable: ${(error as Error).message}`;
  }
}

const TILES: MatMulTile[] = [
  { side: 128, depth: 8 },
  { side: 64, depth: 16 },
];

test('tiled webgpu matMul equals a float64 product: both tiles, all transposes, partial tiles', async (t) => {
  const unavailable = await webgpuAvailable();
  if (unavailable) return t.skip(unavailable);
  const random = new SeededRandom(5);
  // [m, k, n]: partial tiles on every side and a K that is not a multiple of either slice depth; one
  // product of several whole tiles.
  for (const [m, k, n] of [
    [130, 45, 70],
    [7, 3, 201],
    [256, 64, 192],
  ] as const) {
    for (const transposeA of [false, true])
      for (const transposeB of [false, true]) {
        const aShape: [number, number] = transposeA ? [k, m] : [m, k];
        const bShape: [number, number] = transposeB ? [n, k] : [k, n];
        const a = gaussian(random, m * k);
        const b = gaussian(random, k * n);
        const expected = referenceProduct(a, aShape, b, bShape, transposeA, transposeB);
        const aTensor = tf.tensor2d(a, aShape);
        const bTensor = tf.tensor2d(b, bShape);
        for (const tile of TILES) {
          const product = tiledMatMulWebgpu(aTensor, bTensor, transposeA, transposeB, tile);
          assert.deepEqual(product.shape, [m, n]);
          const error = relativeError(await product.data(), expected);
          product.dispose();
          // float32 sums of k products in order: a few units of float32 rounding relative to the scale
          assert.ok(
            error < 1e-6 * Math.sqrt(k),
            `${m}x${k}x${n} transposeA=${transposeA} transposeB=${transposeB} tile ${tile.side}: ${error}`,
          );
        }
        tf.dispose([aTensor, bTensor]);
      }
  }
});

test('the tiled product with an epilogue adds identity I + sum_i c_i T_i as it writes (a Horner step), equal to float64', async (t) => {
  const unavailable = await webgpuAvailable();
  if (unavailable) return t.skip(unavailable);
  const random = new SeededRandom(8);
  for (const n of [70, 130]) {
    const [a, b, t0, t1] = [0, 1, 2, 3].map(() => gaussian(random, n * n));
    const product = referenceProduct(a!, [n, n], b!, [n, n], false, false);
    const expected = product.map((value, at) => {
      const diagonal = Math.floor(at / n) === at % n ? 0.5 : 0;
      return value + diagonal + 2 * t0![at]! - 3 * t1![at]!;
    });
    const tensors = [a, b, t0, t1].map((values) => tf.tensor2d(values!, [n, n]));
    const [aTensor, bTensor, ...terms] = tensors as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
    for (const tile of TILES) {
      const out = tiledMatMulWebgpu(aTensor, bTensor, false, false, tile, {
        identity: 0.5,
        terms,
        coefficients: [2, -3],
      });
      const error = relativeError(await out.data(), expected);
      out.dispose();
      assert.ok(error < 1e-6 * Math.sqrt(n), `${n}x${n}, tile ${tile.side}: ${error}`);
    }
    tf.dispose(tensors);
  }
});

test('matMul takes the tiled kernel on webgpu only with its flag, and only for products that fill the device', async (t) => {
  const unavailable = await webgpuAvailable();
  if (unavailable) return t.skip(unavailable);
  const random = new SeededRandom(6);
  const large = [
    tf.tensor2d(gaussian(random, 512 * 64), [512, 64]),
    tf.tensor2d(gaussian(random, 64 * 512), [64, 512]),
  ];
  const small = [
    tf.tensor2d(gaussian(random, 64 * 8), [64, 8]),
    tf.tensor2d(gaussian(random, 8 * 64), [8, 64]),
  ];
  // Every result stays alive until the end: a disposed one's buffer, handed to the next product of the
  // same size, would already hold the right answer.
  const results: tf.Tensor[] = [];
  const tfjsKernels = async (a: tf.Tensor2D, b: tf.Tensor2D) => {
    const expected = tf.matMul(a, b);
    const profile = await tf.profile(() => matMul(a, b));
    results.push(expected, profile.result as tf.Tensor);
    assert.ok(relativeError(await (profile.result as tf.Tensor).data(), await expected.data()) < 1e-5);
    return profile.kernels.filter((kernel) => kernel.name === 'BatchMatMul').length;
  };
  const [largeA, largeB] = large as [tf.Tensor2D, tf.Tensor2D];
  const [smallA, smallB] = small as [tf.Tensor2D, tf.Tensor2D];
  try {
    assert.equal(await tfjsKernels(largeA, largeB), 1, 'flag off: tfjs kernel');
    tf.env().set(TILED_MATMUL_FLAG, true);
    assert.equal(await tfjsKernels(largeA, largeB), 0, 'flag on, 512x512 output: tiled kernel');
    assert.equal(await tfjsKernels(smallA, smallB), 1, 'flag on, 64x64 output: too few tiles, tfjs kernel');
  } finally {
    tf.env().set(TILED_MATMUL_FLAG, false);
    tf.dispose([...large, ...small, ...results]);
  }
});

test('three InfoDisent training steps on webgpu with the tiled matMul agree with wasm', async (t) => {
  const unavailable = await webgpuAvailable();
  if (unavailable) return t.skip(unavailable);
  tf.env().set(TILED_MATMUL_FLAG, true);
  try {
    for (const foldEvery of [1, 2]) {
      // C = 512, 16 images: the expm's, the fold's and the forward's products are large enough to be tiled.
      const relative = await agreementWithWasm('webgpu', {
        channels: 512,
        batch: 16,
        classes: 10,
        foldEvery,
      });
      assert.ok(
        relative < 2e-5,
        `tiled webgpu vs wasm after 3 steps, folding every ${foldEvery}: ${relative}`,
      );
      console.log(
        `tiled matMul, webgpu vs wasm after 3 steps folding every ${foldEvery}: ${relative.toExponential(2)}`,
      );
    }
  } finally {
    tf.env().set(TILED_MATMUL_FLAG, false);
    await selectBackend('wasm');
  }
});
