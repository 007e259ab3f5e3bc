import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InfoDisentHead } from '../core/method/infodisent-head';
import {
  defaultRotationGradientPath,
  type ExtremeGradients,
  type RotationGradientPath,
  rotationGradient,
} from '../core/method/rotation-gradient';
import { selectBackend } from '../core/tf/backend';
import { SeededRandom } from '../core/util/random';
import { gaussian, relativeError } from './support/numeric';

/**
 * The sparse dL/dU (a loop over the pooled pixels' rows, float64 sums) against the dense one (one-hot
 * dL/dZ^T times X, a float32 matmul), both on wasm. Both add the same 2n products per entry, so they differ
 * by float32 rounding only: at most ~2n ulps of the largest term, far below 1e-5 of max |dL/dU|.
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
    const batch = { maps, x: tf.tensor2d(maps, [n * hw, c]) };
    const [sparse, dense] = (['sparse', 'dense'] as const).map(
      (path) => rotationGradient(extremes, batch, path).dataSync() as Float32Array,
    );
    const error = relativeError(sparse!, dense!);
    console.log(`sparse vs dense dL/dU, C=${c} n=${n}: ${error.toExponential(2)}`);
    assert.ok(error <= TOLERANCE, `C=${c} n=${n}: ${error}`);
    assert.ok(
      sparse!.subarray(0, c).every((g) => g === 0),
      'a channel without gradient has a zero row',
    );
    tf.dispose([...Object.values(extremes), batch.x]);
  }
});

test('InfoDisentHead: the same gradients on both paths, with channels whose max <= 0 or min >= 0', async () => {
  const random = new SeededRandom(12);
  const shape = { height: 3, width: 3, channels: 32 };
  const [hw, c, k, n] = [9, 32, 5, 6];
  const maps = gaussian(random, n * hw * c);
  // U = I, so Z = X and the signs below reach the pooling unchanged: in image 0, channel 1 is all
  // negative (no max branch), channel 2 all positive (no min branch), channel 3 all zero (ties, neither).
  for (let pixel = 0; pixel < hw; pixel++) {
    const at = pixel * c;
    maps[at + 1] = -Math.abs(maps[at + 1]!);
    maps[at + 2] = Math.abs(maps[at + 2]!);
    maps[at + 3] = 0;
  }
  const labels = Int32Array.from({ length: n }, () => random.int(0, k - 1));
  const weight = Float32Array.from({ length: k * c }, () => random.uniform(0, 0.3));
  const gradients = async (path: RotationGradientPath) => {
    const head = new InfoDisentHead(shape, k, { seed: 3, foldEvery: 0, rotationGradient: path });
    head.restore({
      rotation: tf.zeros([c, c]),
      base: tf.eye(c),
      baseT: tf.eye(c),
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
    console.log(`sparse vs dense d loss / d ${name}: ${error.toExponential(2)}`);
    assert.ok(error <= TOLERANCE, `d loss / d ${name}: ${error}`);
  }
});
