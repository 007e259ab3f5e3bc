import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { loadOnnxBackbone, type OnnxBackbone, ortSessionConfig } from '../core/backbones/onnx-backbone';
import { cutOnnxModel, withChannelsLast } from '../core/backbones/onnx-graph-edit';
import {
  normalisationTable,
  PRESETS,
  type PreprocessPreset,
  type PresetName,
  preprocessImage,
} from '../core/data/preprocess';
import { extractFeatures, featureCacheKey, StoredFeatureSet } from '../core/features/feature-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { findWebgpuAdapter } from '../core/tf/webgpu-adapter';
import { InputError } from '../core/util/errors';
import { SeededRandom } from '../core/util/random';
import { repoRoot } from '../infra/paths';
import { conv3x3ReluReference } from './support/conv-reference';
import { writeNoiseDataset } from './support/extraction';
import { convStackModel, seededWeights, type TestModelOutput } from './support/onnx-graph';
import { torchPython } from './support/python';

const SIDE = 224;
const CHANNELS = 8;
const SEED = 3;

let dir: string;
const opened: OnnxBackbone[] = [];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'onnx-backbone-'));
});
after(async () => {
  for (const backbone of opened) backbone.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** Writes the test network (one 3x3 conv + ReLU, stride `stride`) ending as `output` says. */
async function writeModel(name: string, output: TestModelOutput, stride: number, seed = SEED) {
  const built = convStackModel({ side: SIDE, stages: [{ channels: CHANNELS, stride }], seed, output });
  const file = path.join(dir, `${name}.onnx`);
  await writeFile(file, built.model);
  return { file, weights: built.weights[0]!, bias: built.biases[0]! };
}

async function open(options: Parameters<typeof loadOnnxBackbone>[0]): Promise<OnnxBackbone> {
  const backbone = await loadOnnxBackbone({ intraOpNumThreads: 1, ...options });
  opened.push(backbone);
  return backbone;
}

/** The models' convolution (OIHW weights, pad 1, `stride`) + ReLU, computed directly: [n, H, W, C]. */
function convReluReference(
  images: Float32Array,
  n: number,
  weights: Float32Array,
  bias: Float32Array,
  stride: number,
): Float32Array {
  return conv3x3ReluReference(images, n, {
    side: SIDE,
    channels: CHANNELS,
    stride,
    pad: 1,
    weight: (c, ci, ky, kx) => weights[((c * 3 + ci) * 3 + ky) * 3 + kx]!,
    bias,
  });
}

function assertClose(actual: Float32Array, expected: Float32Array, tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst <= tolerance, `max abs difference ${worst} > ${tolerance}`);
}

const images = (n: number) => seededWeights(n * SIDE * SIDE * 3, 11, 2);
const fileHash = async (file: string) =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

describe('loadOnnxBackbone on the CPU provider', () => {
  test('NCHW map: shape, layout conversion to HWC and values equal a direct convolution', async () => {
    const { file, weights, bias } = await writeModel('nchw', 'nchw', 32);
    const backbone = await open({ file, preset: 'resnet50' });
    assert.equal(backbone.name, 'nchw');
    assert.equal(backbone.provider, 'cpu');
    assert.equal(backbone.inputName, 'image');
    assert.equal(backbone.outputName, 'features');
    assert.equal(backbone.outputLayout, 'NCHW');
    assert.equal(backbone.inputSize, 224);
    assert.deepEqual(backbone.featureShape, { height: 7, width: 7, channels: CHANNELS });
    assert.deepEqual(backbone.preprocessing, { resize: 256, crop: 224, scale: 'imagenet' });
    assert.equal(backbone.preset, 'resnet50');
    assert.equal(backbone.fingerprint, (await fileHash(file)).slice(0, 16));
    const input = images(3);
    const features = await backbone.extract(input, 3);
    const expected = convReluReference(input, 3, weights, bias, 32);
    assertClose(features, expected);
    assert.ok(features.some((v) => v > 0.1));
    // The result is the provider's output itself: a later run must not reuse its memory.
    await backbone.extract(
      images(3).map((v) => -v),
      3,
    );
    assertClose(features, expected);
  });

  test('an NHWC model is detected from its input and gives the same features', async () => {
    const { file, weights, bias } = await writeModel('nhwc', 'nhwc', 32);
    const backbone = await open({ file, preset: 'resnet50' });
    assert.equal(backbone.outputLayout, 'NHWC');
    assert.deepEqual(backbone.featureShape, { height: 7, width: 7, channels: CHANNELS });
    const input = images(2);
    assertClose(await backbone.extract(input, 2), convReluReference(input, 2, weights, bias, 32));
  });

  test('ViT tokens [n, 1 + 14*14, D] become a 14x14 map without the class token', async () => {
    const { file, weights, bias } = await writeModel('tokens', 'tokens', 16);
    const backbone = await open({ file, preset: 'vit_b_16' });
    assert.equal(backbone.outputLayout, 'tokens');
    assert.deepEqual(backbone.featureShape, { height: 14, width: 14, channels: CHANNELS });
    const input = images(2);
    const features = await backbone.extract(input, 2);
    // The class token is all 7s, far above any patch value: none may leak into the map.
    assert.ok(features.every((v) => v < 7));
    assertClose(features, convReluReference(input, 2, weights, bias, 16));
  });

  test('a classifier output is rejected with the file and the shape; cutting at the map works', async () => {
    const { file, weights, bias } = await writeModel('logits', 'logits', 32);
    await assert.rejects(open({ file, preset: 'resnet50' }), (error: Error) => {
      assert.ok(error.message.includes(file), error.message);
      assert.ok(error.message.includes('[batch, 8]'), error.message);
      assert.match(error.message, /not a feature map/);
      return true;
    });
    const backbone = await open({ file, preset: 'resnet50', output: 'features' });
    assert.equal(backbone.outputName, 'features');
    assert.deepEqual(backbone.featureShape, { height: 7, width: 7, channels: CHANNELS });
    const input = images(2);
    assertClose(await backbone.extract(input, 2), convReluReference(input, 2, weights, bias, 32));
    // A cut computes something else than the whole file: its fingerprint says so.
    assert.notEqual(backbone.fingerprint, (await fileHash(file)).slice(0, 16));
    await assert.rejects(
      open({ file, preset: 'resnet50', output: 'nowhere' }),
      /no node producing 'nowhere'/,
    );
  });

  test('cutting prunes what the cut value does not depend on', async () => {
    const { file } = await writeModel('prune', 'logits', 32);
    const whole = await readFile(file);
    const cut = Buffer.from(cutOnnxModel(whole, file, 'features'));
    assert.ok(whole.includes('GlobalAveragePool') && whole.includes('Flatten'));
    assert.ok(!cut.includes('GlobalAveragePool') && !cut.includes('Flatten'));
    assert.ok(cut.includes('Conv') && cut.includes('Relu'));
  });

  test('a model with its weights in an external data file loads, is cut, and hashes that file', async () => {
    const built = convStackModel({
      side: SIDE,
      stages: [{ channels: CHANNELS, stride: 32 }],
      seed: SEED,
      output: 'logits',
      externalData: 'external.weights',
    });
    const folder = await mkdtemp(path.join(dir, 'external-'));
    const file = path.join(folder, 'external.onnx');
    await writeFile(file, built.model);
    await writeFile(path.join(folder, 'external.weights'), built.data!);
    const backbone = await open({ file, preset: 'resnet50', output: 'features' });
    const input = images(2);
    assertClose(
      await backbone.extract(input, 2),
      convReluReference(input, 2, built.weights[0]!, built.biases[0]!, 32),
    );
    // Other weights in the external file give another fingerprint, the model file being unchanged.
    await writeFile(path.join(folder, 'external.weights'), Buffer.alloc(built.data!.length, 1));
    const changed = await open({ file, preset: 'resnet50', output: 'features' });
    assert.notEqual(changed.fingerprint, backbone.fingerprint);
  });

  test('NCHW models run channels-last: the layout transposes are graph nodes, not a loop in JS', async () => {
    const { file } = await writeModel('boundaries', 'nchw', 32);
    const model = await readFile(file);
    const edited = withChannelsLast(
      model,
      file,
      { name: 'image', shape: ['batch', 3, SIDE, SIDE] },
      { name: 'features', shape: ['batch', CHANNELS, 7, 7] },
    );
    assert.deepEqual([edited.input, edited.output], ['image_nhwc', 'features_nhwc']);
    const session = await ort.InferenceSession.create(edited.model);
    try {
      assert.deepEqual(session.inputNames, ['image_nhwc']);
      assert.deepEqual(session.outputNames, ['features_nhwc']);
      const nhwc = images(1);
      const result = await session.run({ image_nhwc: new ort.Tensor('float32', nhwc, [1, SIDE, SIDE, 3]) }, [
        'features_nhwc',
      ]);
      assert.deepEqual(result.features_nhwc!.dims, [1, 7, 7, CHANNELS]);
      const backbone = await open({ file, preset: 'resnet50' });
      assertClose(result.features_nhwc!.data as Float32Array, await backbone.extract(nhwc, 1), 0);
    } finally {
      await session.release();
    }
  });

  test('the fingerprint is the file hash and follows the file', async () => {
    const first = await writeModel('changing', 'nchw', 32, 5);
    const a = await open({ file: first.file, preset: 'resnet50' });
    await writeModel('changing', 'nchw', 32, 6);
    const b = await open({ file: first.file, preset: 'resnet50' });
    assert.notEqual(a.fingerprint, b.fingerprint);
    assert.equal(b.fingerprint, (await fileHash(first.file)).slice(0, 16));
  });

  test('a float16 model (float32 in and out) runs on the CPU below the optimisation level that crashes', async () => {
    const built = convStackModel({
      side: SIDE,
      stages: [{ channels: CHANNELS, stride: 32 }],
      seed: SEED,
      output: 'nchw',
      float16: true,
    });
    const file = path.join(dir, 'half.onnx');
    await writeFile(file, built.model);
    const backbone = await open({ file, preset: 'resnet50' });
    assert.equal(backbone.graphOptimizationLevel, 'extended');
    const input = images(2);
    // The image is cast to float16 too: about 3 significant digits.
    assertClose(
      await backbone.extract(input, 2),
      convReluReference(input, 2, built.weights[0]!, built.biases[0]!, 32),
      2e-2,
    );
    const fp32 = await open({ file: (await writeModel('full', 'nchw', 32)).file, preset: 'resnet50' });
    assert.equal(fp32.graphOptimizationLevel, 'all');
  });

  test('a file that is not an ONNX model, a folder and a missing file are input errors naming them', async () => {
    const garbage = path.join(dir, 'garbage.onnx');
    await writeFile(garbage, Buffer.from([0x0c, 0xff, 0xff, 0x07, 0x01]));
    for (const [file, message] of [
      [garbage, `${garbage} is not an ONNX model (`],
      [dir, `${dir} is a folder, not an ONNX model file`],
      [path.join(dir, 'none.onnx'), `${path.join(dir, 'none.onnx')}: no such ONNX model file`],
    ] as const) {
      await assert.rejects(open({ file, preset: 'resnet50' }), (error: Error) => {
        assert.ok(error instanceof InputError, error.stack);
        assert.ok(error.message.startsWith(message), error.message);
        return true;
      });
    }
  });

  test('a preset whose crop is not the model input is refused', async () => {
    const { file } = await writeModel('size', 'nchw', 32);
    await assert.rejects(
      open({ file, preset: 'swin_v2_s' }),
      /is not 256x256, the crop of preset 'swin_v2_s'/,
    );
  });

  test("'auto' runs the first provider that starts and says why the others did not", async () => {
    const { file } = await writeModel('auto', 'nchw', 32);
    const backbone = await open({ file, preset: 'resnet50', provider: 'auto' });
    assert.ok(['cuda', 'webgpu', 'cpu'].includes(backbone.provider));
    // Without a GPU (CI), WebGPU finds no adapter, or only lavapipe's software one, which auto passes
    // over; the CPU runs it.
    const { status } = await findWebgpuAdapter();
    if (status.found && status.software) {
      assert.equal(backbone.provider, 'cpu');
      assert.match(
        backbone.providerFailures.join('; '),
        /webgpu: passed over, the adapter is a software rasteriser/,
      );
    }
    if (backbone.provider === 'cpu')
      assert.ok(backbone.providerFailures.some((f) => f.startsWith('webgpu:')));
  });
});

describe('pixel input (extractPixels): the graph normalises the crops itself', () => {
  /** Crops of `n` images as uint8, and the same normalised as preprocessRgb does (the preset's table). */
  function crops(n: number, preset: PreprocessPreset) {
    const random = new SeededRandom(11);
    const pixels = Uint8Array.from({ length: n * SIDE * SIDE * 3 }, () => Math.floor(random.next() * 256));
    const table = normalisationTable(preset);
    const normalised = Float32Array.from(pixels, (v, i) => table[(i % 3) * 256 + v]!);
    return { pixels, normalised };
  }

  const cases: { output: TestModelOutput; stride: number; preset: PresetName; batch?: number }[] = [
    { output: 'nchw', stride: 32, preset: 'resnet50' },
    { output: 'nhwc', stride: 32, preset: 'convnext_tiny' },
    { output: 'tokens', stride: 16, preset: 'vit_b_16' },
    { output: 'nchw', stride: 32, preset: 'resnet50', batch: 2 },
  ];
  for (const { output, stride, preset, batch } of cases)
    test(`${output}${batch ? `, fixed batch ${batch}` : ''}: the same features as the normalised values, bit for bit`, async () => {
      const built = convStackModel({
        side: SIDE,
        stages: [{ channels: CHANNELS, stride }],
        seed: SEED,
        output,
        ...(batch ? { batch } : {}),
      });
      const file = path.join(dir, `pixels-${output}-${batch ?? 'any'}.onnx`);
      await writeFile(file, built.model);
      const backbone = await open({ file, preset });
      assert.ok(backbone.extractPixels);
      // Three images: with a fixed batch of 2, the last run is padded.
      const { pixels, normalised } = crops(3, PRESETS[preset]);
      const expected = await backbone.extract(normalised, 3);
      assert.deepEqual(await backbone.extractPixels(pixels, 3), expected);
      assertClose(expected, convReluReference(normalised, 3, built.weights[0]!, built.biases[0]!, stride));
    });

  test('on WebGPU where Dawn finds an adapter (lavapipe in CI): the CPU features, within float32 rounding', async (t) => {
    const { status } = await findWebgpuAdapter();
    if (!status.found) {
      t.skip(`no WebGPU adapter: ${status.reason}`);
      return;
    }
    const built = convStackModel({
      side: SIDE,
      stages: [{ channels: CHANNELS, stride: 32 }],
      seed: SEED,
      output: 'nchw',
    });
    const file = path.join(dir, 'pixels-webgpu.onnx');
    await writeFile(file, built.model);
    const gpu = await open({ file, preset: 'resnet50', provider: 'webgpu' });
    const cpu = await open({ file, preset: 'resnet50', provider: 'cpu' });
    assert.equal(gpu.provider, 'webgpu');
    const { pixels } = crops(2, PRESETS.resnet50);
    assertClose(await gpu.extractPixels!(pixels, 2), await cpu.extractPixels!(pixels, 2));
  });
});

describe('extractFeatures with an ONNX backbone', () => {
  test('stores the preset-preprocessed features of every image, then reuses them', async () => {
    const { file, weights, bias } = await writeModel('extract', 'nchw', 32);
    const backbone = await open({ file, preset: 'resnet50' });
    const root = path.join(dir, 'images');
    const dataset = await writeNoiseDataset(root, [
      [300, 200],
      [180, 320],
      [256, 256],
      [410, 333],
      [224, 500],
    ]);
    const { items } = dataset;
    const store = new LocalArtifactStore(path.join(dir, 'store'));

    const first = await extractFeatures({
      store,
      dataset,
      split: 'train',
      backbone,
      shardSize: 2,
      batchSize: 2,
    });
    assert.equal(first.reused, false);
    assert.equal(first.manifest.count, 5);
    assert.equal(first.manifest.shards.length, 3);
    assert.equal(first.manifest.backboneFingerprint, backbone.fingerprint);
    assert.deepEqual(first.manifest.shape, { height: 7, width: 7, channels: CHANNELS });

    const set = await StoredFeatureSet.open(store, first.manifest.key);
    const stored = new Float32Array(5 * 7 * 7 * CHANNELS);
    for (let s = 0, offset = 0; s < 3; s++) {
      const shard = await set.readShard(s);
      stored.set(shard, offset);
      offset += shard.length;
    }
    const prepared = new Float32Array(5 * SIDE * SIDE * 3);
    for (const [i, item] of items.entries())
      prepared.set((await preprocessImage(path.join(root, item.path), 'resnet50')).data, i * SIDE * SIDE * 3);
    assertClose(stored, convReluReference(prepared, 5, weights, bias, 32));

    const again = await extractFeatures({ store, dataset, split: 'train', backbone });
    assert.equal(again.reused, true);
    assert.equal(again.manifest.key, first.manifest.key);
    // Another transform of the same images is another feature set.
    const other = await open({ file, preset: 'convnext_tiny' });
    assert.notEqual(featureCacheKey(dataset, 'train', other), first.manifest.key);
  });
});

describe('infra/export_backbones.py', () => {
  test('exports ResNet-34 cut at its 7x7x512 map, which loadOnnxBackbone reads', async (t) => {
    const found = torchPython(['torch', 'torchvision', 'onnx', 'onnxruntime']);
    if ('skip' in found) {
      t.skip(`${found.skip}: the export script is untested here`);
      return;
    }
    const { python } = found;
    const out = path.join(dir, 'exported');
    const script = path.join(repoRoot(), 'infra', 'export_backbones.py');
    execFileSync(python, [script, 'resnet34', '--weights', 'none', '--out', out], { stdio: 'pipe' });
    const sidecar = JSON.parse(await readFile(path.join(out, 'resnet34.json'), 'utf8')) as {
      preset: 'resnet34';
      fingerprint: string;
      check: { ok: boolean; max_abs_diff: number };
    };
    assert.ok(sidecar.check.ok, `ONNX vs PyTorch max abs diff ${sidecar.check.max_abs_diff}`);
    const backbone = await open({ file: path.join(out, 'resnet34.onnx'), preset: sidecar.preset });
    assert.equal(backbone.fingerprint, sidecar.fingerprint);
    assert.deepEqual(backbone.featureShape, { height: 7, width: 7, channels: 512 });
    const features = await backbone.extract(images(2), 2);
    // The map follows layer4's final ReLU.
    assert.ok(features.every((v) => Number.isFinite(v) && v >= 0));
    assert.ok(features.some((v) => v > 0));
  });
});

test('INFODISENT_ORT_CONFIG sets onnxruntime session entries on every session; a malformed one names itself', async () => {
  assert.deepEqual(
    ortSessionConfig(
      ' ep.webgpuexecutionprovider.maxNumPendingDispatches=64, session.intra_op.allow_spinning=0',
    ),
    { 'ep.webgpuexecutionprovider.maxNumPendingDispatches': '64', 'session.intra_op.allow_spinning': '0' },
  );
  assert.deepEqual(ortSessionConfig(''), {});
  assert.throws(() => ortSessionConfig('maxNumPendingDispatches 64'), {
    message:
      "INFODISENT_ORT_CONFIG: 'maxNumPendingDispatches 64' is not KEY=VALUE (e.g. session.intra_op.allow_spinning=0)",
  });
  // An entry the session cannot honour shows that it reached it: this ONNX model is not in ORT's own format.
  const { model } = convStackModel({
    side: SIDE,
    stages: [{ channels: CHANNELS, stride: 2 }],
    seed: SEED,
    output: 'nchw',
  });
  const previous = process.env['INFODISENT_ORT_CONFIG'];
  process.env['INFODISENT_ORT_CONFIG'] = 'session.load_model_format=ORT';
  try {
    await assert.rejects(loadOnnxBackbone({ file: 'stack.onnx', model, preset: 'resnet50' }), /ORT model/);
  } finally {
    if (previous === undefined) delete process.env['INFODISENT_ORT_CONFIG'];
    else process.env['INFODISENT_ORT_CONFIG'] = previous;
  }
  const backbone = await loadOnnxBackbone({ file: 'stack.onnx', model, preset: 'resnet50' });
  assert.equal(backbone.featureShape.channels, CHANNELS);
  backbone.dispose();
});
