import * as tf from '@tensorflow/tfjs';
import { Adam } from '../../core/method/adam';
import { InfoDisentHead } from '../../core/method/infodisent-head';
import { optimiserStep } from '../../core/method/train';
import { type BackendName, selectBackend } from '../../core/tf/backend';
import { SeededRandom } from '../../core/util/random';
import { gaussian, relativeError } from './numeric';

/** Learning rates of the head benchmark and of the cross-backend checks. */
export const HEAD_GROUPS = {
  rotation: { learningRate: 5e-4, weightDecay: 0 },
  weight: { learningRate: 1e-2, weightDecay: 1e-4 },
  bias: { learningRate: 1e-2, weightDecay: 0 },
};

/**
 * Weights and rotation of an InfoDisent head after 3 training steps from fixed inputs, on the current backend,
 * and the logits it then gives the batch (the evaluation's forward pass).
 */
async function trainedState(
  channels: number,
  batch: number,
  classes: number,
  foldEvery: number,
): Promise<{ state: Float32Array; logits: Float32Array }> {
  const random = new SeededRandom(7);
  const maps = gaussian(random, batch * 49 * channels);
  const labels = Int32Array.from({ length: batch }, () => random.int(0, classes - 1));
  const head = new InfoDisentHead({ height: 7, width: 7, channels }, classes, { seed: 1, foldEvery });
  const adam = new Adam();
  for (let step = 1; step <= 3; step++) {
    (await optimiserStep(head, adam, { maps, labels }, HEAD_GROUPS, step)).dispose();
  }
  const rotation = await head.rotation();
  const state = new Float32Array([...(await head.classWeights().data()), ...(await rotation.data())]);
  const logits = await head.logits(maps);
  const out = { state, logits: (await logits.data()) as Float32Array };
  tf.dispose([rotation, logits]);
  head.dispose();
  adam.dispose();
  return out;
}

/**
 * Largest difference between `backend`'s and wasm's head state after 3 steps (C x 7x7 maps), and between the
 * logits each then gives the batch, each relative to its largest entry; by default folding every step (steps
 * start at the base, U = B), with `foldEvery` 2 also from a rotated base. Leaves `backend` selected.
 */
export async function agreementWithWasm(
  backend: BackendName,
  { channels = 256, batch = 32, classes = 20, foldEvery = 1 } = {},
): Promise<number> {
  await selectBackend(backend);
  const here = await trainedState(channels, batch, classes, foldEvery);
  await selectBackend('wasm');
  const wasm = await trainedState(channels, batch, classes, foldEvery);
  await selectBackend(backend);
  return Math.max(relativeError(here.state, wasm.state), relativeError(here.logits, wasm.logits));
}
