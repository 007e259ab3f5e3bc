import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Adam } from '../core/method/adam';
import { InfoDisentHead } from '../core/method/infodisent-head';
import {
  defaultRotationGradientPath,
  denseRotationGradient,
  type ExtremeGradients,
  type RotationGradientPath,
  sparseRotationGradient,
} from '../core/method/rotation-gradient';
import { optimiserStep } from '../core/method/train';
import { selectBackend } from '../core/tf/backend';
import { SeededRandom } from '../core/util/random';
import { HEAD_GROUPS } from './support/backend-agreement';
import { gaussian, relativeError } from './support/numeric';

/**
 * The sparse dL/dU (a loop over the pooled pixels' rows, float64 sums) against the dense one (one-hot
 * dL/dZ^T times X, a float32 matmul), both on wasm. Both add the same 2n products per entry, so they differ
 * by float32 rounding only: at most ~2n ulps of the largest term, far below 1e-5 of max |dL/dU|
 * (measured 1.2e-7; through the head, where right after a fold the sparse path sums rows of Z = X U^T
 * instead of X and skips the product with B^T, 1.5e-7 on dL/dA).
 */
const TOLERANCE = 1e-5;

before(async () => {
  await selectBackend('wasm');
});

test('the CPU backends take the sparse path', () => {
  assert.equal(defaultRotationGradientPath(), 'sparse');
});

test('sparse dL/dU equals dense on random extremes, with skipped terms and channels without gradient', () => {
  const random = new SeededRandom(11);
  // n = 5: 2n = 10 terms, not a whole number of the loop's 8-row passes.
  for (const { c, n, hw } of [
    { c: 24, n: 5, hw: 9 },
    { c: 64, n: 8, hw: 49 },
  ]) {
    const maps = gaussian(random, n * hw * c);
    const index = () => Int32Array.from({ length: c * n }, () => random.int(0, hw - 1));
    // Some zero gradients (a branch that did not survive); channel 0 has none at all.
    const gradient = () =>
      Float32Array.from({ length: c * n }, (_, i) => (i < n || random.next() < 0.2 ? 0 : random.normal()));
    const extremes: ExtremeGradients = {
      argmax: tf.tensor2d(index(), [c, n], 'int32'),
      argmin: tf.tensor2d(index(), [c, n], 'int32'),
      gradMax: tf.tensor2d(gradient(), [c, n]),
      gradMin: tf.tensor2d(gradient(), [c, n]),
    };
    const x = tf.tensor2d(maps, [n * hw, c]);
    const sparse = sparseRotationGradient(extremes, maps).dataSync();
    const dense = denseRotationGradient(extremes, x).dataSync();
    const error = relativeError(sparse, dense);
    console.log(`sparse vs dense dL/dU, C=${c} n=${n}: ${error.toExponential(2)}`);
    assert.ok(error <= TOLERANCE, `C=${c} n=${n}: ${error}`);
    assert.ok(
      sparse.subarray(0, c).every((g) => g === 0),
      'a channel without gradient has a zero row',
    );
    tf.dispose([...Object.values(extremes), x]);
  }
});

test('InfoDisentHead: the same gradients on both paths, with channels whose max <= 0 or min >= 0', async () => {
  const random = new SeededRandom(12);
  const shape = { height: 3, width: 3, channels: 32 };
  const [hw, c, k, n] = [9, 32, 5, 6];
  const maps = gaussian(random, n * hw * c);
  // The base is a signed permutation P, so with A = 0, Z = X P^T carries the cases below to other channels
  // (some with flipped signs) but intact: in image 0, one channel all negative (no max branch), one all
  // positive (no min branch), one all zero (ties, neither).
  for (let pixel = 0; pixel < hw; pixel++) {
    const at = pixel * c;
    maps[at + 1] = -Math.abs(maps[at + 1]!);
    maps[at + 2] = Math.abs(maps[at + 2]!);
    maps[at + 3] = 0;
  }
  const labels = Int32Array.from({ length: n }, () => random.int(0, k - 1));
  const weight = Float32Array.from({ length: k * c }, () => random.uniform(0, 0.3));
  const permutation = random.shuffle(Array.from({ length: c }, (_, i) => i));
  const base = new Float32Array(c * c);
  permutation.forEach((j, i) => {
    base[i * c + j] = random.next() < 0.5 ? -1 : 1;
  });
  // A = 0: U is the base and the sparse path sums rows of Z; A != 0 (||A|| ~ 0.1): it sums rows of X.
  const generators = {
    'A = 0': new Float32Array(c * c),
    'A != 0': gaussian(random, c * c, 0.1 / (2 * Math.sqrt(c))),
  };
  for (const [label, a] of Object.entries(generators)) {
    const gradients = async (path: RotationGradientPath) => {
      const head = new InfoDisentHead(shape, k, { seed: 3, foldEvery: 0, rotationGradient: path });
      head.restore({
        rotation: tf.tensor2d(a, [c, c]),
        base: tf.tensor2d(base, [c, c]),
        baseT: tf.transpose(tf.tensor2d(base, [c, c])),
        weight: tf.tensor2d(weight, [k, c]),
        bias: tf.zeros([k, 1]),
      });
      const { loss, gradients } = await head.lossAndGradients(maps, labels);
      const out = Object.fromEntries(
        Object.entries(gradients).map(([name, t]) => [name, t.dataSync().slice()]),
      );
      tf.dispose([loss, ...Object.values(gradients)]);
      head.dispose();
      return out;
    };
    const sparse = await gradients('sparse');
    const dense = await gradients('dense');
    for (const name of ['rotation', 'weight', 'bias']) {
      const error = relativeError(sparse[name]!, dense[name]!);
      console.log(`${label}: sparse vs dense d loss / d ${name}: ${error.toExponential(2)}`);
      assert.ok(error <= TOLERANCE, `${label}: d loss / d ${name}: ${error}`);
    }
  }
});

test('steps split between two threads (on wasm) give the weights of one thread, bit for bit, folding or not', async () => {
  const random = new SeededRandom(21);
  const [c, n, k] = [40, 9, 6]; // an odd batch: shares of 5 and 4 images
  const shape = { height: 7, width: 7, channels: c };
  const maps = gaussian(random, n * 49 * c);
  const labels = Int32Array.from({ length: n }, () => random.int(0, k - 1));
  const train = async (splitBatch: boolean, foldEvery: number) => {
    const head = new InfoDisentHead(shape, k, { seed: 2, foldEvery, splitBatch });
    const adam = new Adam();
    for (let step = 1; step <= 3; step++)
      (await optimiserStep(head, adam, { maps, labels }, HEAD_GROUPS, step)).dispose();
    const rotation = await head.rotation();
    const state = [...(await head.classWeights().data()), ...(await rotation.data())];
    tf.dispose([rotation]);
    head.dispose();
    adam.dispose();
    return state;
  };
  // Every step at the base; never folding (U = expm(A - A^T)); folding every second step.
  for (const foldEvery of [1, 0, 2])
    assert.deepEqual(
      await train(true, foldEvery),
      await train(false, foldEvery),
      `folding every ${foldEvery}`,
    );
});
