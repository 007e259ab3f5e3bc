import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { layersModelToOnnx } from '../core/backbones/keras-onnx';
import { loadNsfwjsLayersModel, loadNsfwjsMobileNetV2 } from '../core/backbones/nsfwjs-mobilenet';
import { loadImage } from '../core/features/feature-store';
import { selectBackend } from '../core/tf/backend';
import { writeNoiseDataset } from './support/extraction';
import { maxAbs, maxAbsDiff } from './support/numeric';

let dir: string;
/** The package's tfjs model: the reference the converted one is checked against. */
let reference: Awaited<ReturnType<typeof loadNsfwjsLayersModel>>;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'nsfwjs-'));
  await selectBackend('wasm');
  reference = await loadNsfwjsLayersModel();
});
after(async () => {
  reference.model.dispose();
  await rm(dir, { recursive: true, force: true });
});

test('the ONNX conversion computes what tfjs computes from the same weights', async (t) => {
  const dataset = await writeNoiseDataset(path.join(dir, 'images'), [
    [300, 200],
    [224, 224],
    [180, 320],
  ]);
  const pixels = 224 * 224 * 3;
  const images = new Float32Array(dataset.items.length * pixels);
  for (const [i, item] of dataset.items.entries())
    images.set(await loadImage(path.join(dataset.root, item.path), 224), i * pixels);

  const { model, fingerprint } = reference;
  const cut = tf.model({
    inputs: model.inputs,
    outputs: model.getLayer('out_relu').output as tf.SymbolicTensor,
  });
  const output = cut.predict(tf.tensor4d(images, [dataset.items.length, 224, 224, 3])) as tf.Tensor;
  const expected = (await output.data()) as Float32Array;
  output.dispose();

  const backbone = await loadNsfwjsMobileNetV2();
  try {
    assert.equal(backbone.fingerprint, fingerprint);
    assert.equal(backbone.preset, undefined);
    assert.deepEqual(backbone.featureShape, { height: 7, width: 7, channels: 1280 });
    const features = await backbone.extract(images, dataset.items.length);
    // Both float32, summed in different orders over 52 layers: agreement to 1e-4 of the range (~6, ReLU6).
    const range = maxAbs(expected);
    assert.ok(range > 1, `features span ${range}`);
    const diff = maxAbsDiff(features, expected);
    t.diagnostic(`max abs difference ${diff} of a range ${range}`);
    assert.ok(diff <= 1e-4 * range, `max abs difference ${diff} of a range ${range}`);
  } finally {
    backbone.dispose();
  }
});

test('a layer without a conversion is refused by name', async () => {
  const { model } = await loadNsfwjsLayersModel();
  try {
    assert.throws(
      () => layersModelToOnnx(model, 'dense_1'),
      /layer 'average_pooling2d_1' \(AveragePooling2D\)/,
    );
    assert.throws(() => layersModelToOnnx(model, 'nowhere'), /no layer 'nowhere'/);
  } finally {
    model.dispose();
  }
});
