import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadTfjsBackbone } from '../core/backbones/tfjs-graph-backbone';
import { selectBackend } from '../core/tf/backend';
import { conv3x3ReluReference } from './support/conv-reference';
import { seededWeights } from './support/onnx-graph';

const SIDE = 224;
const CHANNELS = 8;
const STRIDE = 32;

let dir: string;
before(async () => {
  await selectBackend('cpu');
  dir = await mkdtemp(path.join(os.tmpdir(), 'tfjs-backbone-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** 3x3 kernel [kh, kw, in, out] (tfjs HWIO), stride 32, TF 'SAME' padding, which is none here (6*32+3 <= 224). */
const kernel = seededWeights(3 * 3 * 3 * CHANNELS, 9);
const bias = seededWeights(CHANNELS, 10, 0.1);

/** The convolution + ReLU computed directly on NHWC images: [n, 7, 7, C]. */
function reference(images: Float32Array, n: number): Float32Array {
  return conv3x3ReluReference(images, n, {
    side: SIDE,
    channels: CHANNELS,
    stride: STRIDE,
    pad: 0,
    weight: (c, ci, ky, kx) => kernel[((ky * 3 + kx) * 3 + ci) * CHANNELS + c]!,
    bias,
  });
}

function assertClose(actual: Float32Array, expected: Float32Array): void {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst <= 1e-5, `max abs difference ${worst}`);
}

/** Writes model.json and one weight shard into `folder`, as tfjs' converter and model.save lay them out. */
async function writeTfjsModel(
  folder: string,
  json: object,
  weights: tf.io.WeightsManifestEntry[],
  data: ArrayBuffer,
) {
  await mkdir(folder, { recursive: true });
  const manifest = [{ paths: ['group1-shard1of1.bin'], weights }];
  await writeFile(path.join(folder, 'model.json'), JSON.stringify({ ...json, weightsManifest: manifest }));
  await writeFile(path.join(folder, 'group1-shard1of1.bin'), Buffer.from(data));
}

const images = (n: number) => seededWeights(n * SIDE * SIDE * 3, 11, 1);

describe('loadTfjsBackbone', () => {
  test('a layers model cut at a named layer gives that layer map; its classifier output is refused', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [SIDE, SIDE, 3],
          filters: CHANNELS,
          kernelSize: 3,
          strides: STRIDE,
          padding: 'same',
          activation: 'relu',
          name: 'features',
        }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 4, name: 'logits' }),
      ],
    });
    model.getLayer('features').setWeights([tf.tensor4d(kernel, [3, 3, 3, CHANNELS]), tf.tensor1d(bias)]);
    const folder = path.join(dir, 'layers');
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        const { modelTopology, weightSpecs, weightData } = artifacts;
        await writeTfjsModel(
          folder,
          { format: 'layers-model', modelTopology },
          weightSpecs!,
          weightData as ArrayBuffer,
        );
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    model.dispose();

    await assert.rejects(
      loadTfjsBackbone({ path: folder }),
      /output 'logits' has shape \[n, 4\], which is not a feature map/,
    );
    const backbone = await loadTfjsBackbone({ path: folder, output: 'features' });
    assert.equal(backbone.format, 'layers-model');
    assert.equal(backbone.inputSize, SIDE);
    assert.equal(backbone.preset, undefined);
    assert.deepEqual(backbone.featureShape, { height: 7, width: 7, channels: CHANNELS });
    const input = images(2);
    assertClose(await backbone.extract(input, 2), reference(input, 2));
    const whole = createHash('sha256')
      .update(await readFile(path.join(folder, 'model.json')))
      .update(await readFile(path.join(folder, 'group1-shard1of1.bin')))
      .digest('hex');
    // The cut is part of what the features depend on.
    assert.notEqual(backbone.fingerprint, whole.slice(0, 16));
    assert.equal(backbone.fingerprint.length, 16);
    backbone.dispose();
    await assert.rejects(loadTfjsBackbone({ path: folder, output: 'nowhere' }), /has no layer 'nowhere'/);
  });

  test('a graph model cut at a named node, with a preset', async () => {
    const dim = (sizes: number[]) => ({ dim: sizes.map((size) => ({ size: String(size) })) });
    const ints = (values: number[]) => ({ list: { i: values.map(String) } });
    const text = (value: string) => ({ s: Buffer.from(value).toString('base64') });
    const float = { type: 'DT_FLOAT' };
    const node = [
      {
        name: 'image',
        op: 'Placeholder',
        attr: { dtype: float, shape: { shape: dim([-1, SIDE, SIDE, 3]) } },
      },
      {
        name: 'kernel',
        op: 'Const',
        attr: {
          dtype: float,
          value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dim([3, 3, 3, CHANNELS]) } },
        },
      },
      {
        name: 'bias',
        op: 'Const',
        attr: { dtype: float, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dim([CHANNELS]) } } },
      },
      {
        name: 'axes',
        op: 'Const',
        attr: {
          dtype: { type: 'DT_INT32' },
          value: { tensor: { dtype: 'DT_INT32', tensorShape: dim([2]) } },
        },
      },
      {
        name: 'conv',
        op: 'Conv2D',
        input: ['image', 'kernel'],
        attr: {
          T: float,
          strides: ints([1, STRIDE, STRIDE, 1]),
          padding: text('SAME'),
          data_format: text('NHWC'),
          dilations: ints([1, 1, 1, 1]),
        },
      },
      {
        name: 'biased',
        op: 'BiasAdd',
        input: ['conv', 'bias'],
        attr: { T: float, data_format: text('NHWC') },
      },
      { name: 'features', op: 'Relu', input: ['biased'], attr: { T: float } },
      {
        name: 'pooled',
        op: 'Mean',
        input: ['features', 'axes'],
        attr: { T: float, keep_dims: { b: false } },
      },
    ];
    const folder = path.join(dir, 'graph');
    const data = Buffer.concat([
      Buffer.from(kernel.buffer),
      Buffer.from(bias.buffer),
      Buffer.from(Int32Array.from([1, 2]).buffer),
    ]);
    await writeTfjsModel(
      folder,
      { format: 'graph-model', modelTopology: { node, versions: { producer: 1 } } },
      [
        { name: 'kernel', shape: [3, 3, 3, CHANNELS], dtype: 'float32' },
        { name: 'bias', shape: [CHANNELS], dtype: 'float32' },
        { name: 'axes', shape: [2], dtype: 'int32' },
      ],
      data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
    );

    await assert.rejects(
      loadTfjsBackbone({ path: folder }),
      /output 'pooled' has shape \[1, 8\], which is not a feature map/,
    );
    const backbone = await loadTfjsBackbone({
      path: path.join(folder, 'model.json'),
      output: 'features',
      preset: 'resnet50',
    });
    assert.equal(backbone.format, 'graph-model');
    assert.equal(backbone.preset, 'resnet50');
    assert.deepEqual(backbone.preprocessing, { resize: 256, crop: 224, scale: 'imagenet' });
    assert.deepEqual(backbone.featureShape, { height: 7, width: 7, channels: CHANNELS });
    const input = images(3);
    assertClose(await backbone.extract(input, 3), reference(input, 3));
    backbone.dispose();
    await assert.rejects(
      loadTfjsBackbone({ path: folder, preset: 'swin_v2_s' }),
      /is not 256x256, the crop of preset 'swin_v2_s'/,
    );
  });
});
