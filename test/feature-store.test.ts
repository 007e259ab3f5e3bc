import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { loadOnnxBackbone, type OnnxBackbone } from '../core/backbones/onnx-backbone';
import { encodeOnnxModel } from '../core/backbones/onnx-encode';
import { parseSweep } from '../core/config/experiment';
import type { DatasetManifest } from '../core/data/dataset';
import { ImageDecodeError } from '../core/data/preprocess';
import {
  extractFeatures,
  featureCacheKey,
  StoredFeatureSet,
  skippedImages,
} from '../core/features/feature-store';
import { featureSettings } from '../core/pipeline/stages';
import { LocalArtifactStore } from '../core/store/local-store';
import { fromFloat16Bits, toFiniteFloat16Bits, toFloat16Bits } from '../core/util/float16';
import { SeededRandom } from '../core/util/random';
import { writeNoiseDataset } from './support/extraction';
import { convStackModel } from './support/onnx-graph';
import { runPythonReference } from './support/python';
import { minimalSweepDocument } from './support/sweep-documents';

/** Round to nearest: relative error at most half an ulp of the 11-bit significand, for normal halves. */
const RELATIVE_TOLERANCE = 2 ** -11;
const MIN_NORMAL = 2 ** -14;
/** Below MIN_NORMAL the spacing is 2^-24, so the error is at most half of it. */
const SUBNORMAL_TOLERANCE = 2 ** -25;

function assertFloat16Close(actual: Float32Array, expected: Float32Array): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const v = expected[i]!;
    const error = Math.abs(actual[i]! - v);
    const limit = Math.abs(v) >= MIN_NORMAL ? RELATIVE_TOLERANCE * Math.abs(v) : SUBNORMAL_TOLERANCE;
    assert.ok(error <= limit, `value ${i}: ${actual[i]} for ${v}, error ${error} > ${limit}`);
  }
}

/** Random magnitudes spread evenly over the normal float16 exponents, random signs. */
function normalRangeValues(count: number, random: SeededRandom): Float32Array {
  return Float32Array.from({ length: count }, () => {
    const magnitude = 2 ** (-14 + random.next() * 29.99);
    return random.next() < 0.5 ? -magnitude : magnitude;
  });
}

describe('float16 conversion', () => {
  test('equals numpy bit for bit: every tie, its neighbours, specials and random bit patterns', () => {
    const every = fromFloat16Bits(Uint16Array.from({ length: 65536 }, (_, h) => h));
    const values: number[] = [0, -0, Infinity, -Infinity, NaN, 65504, 65519.99, 65520, 1e6, 3.4e38, 1e-45];
    values.push(2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 2 ** -26, 1.5 * 2 ** -25);
    // Every midpoint between neighbouring finite halves is a tie (exact in float32); one float32 ulp either side is not.
    const tie = new Float32Array(1);
    const tieBits = new Uint32Array(tie.buffer);
    for (let h = 0; h < 0x7bff; h++) {
      tie[0] = (every[h]! + every[h + 1]!) / 2;
      const bits = tieBits[0]!;
      for (const b of [bits - 1, bits, bits + 1]) {
        tieBits[0] = b;
        values.push(tie[0], -tie[0]);
      }
    }
    const random = new SeededRandom(7);
    const randomBits = Uint32Array.from({ length: 100_000 }, () => Math.floor(random.next() * 2 ** 32));
    const input = Float32Array.from([...values, ...new Float32Array(randomBits.buffer)]);

    const reference = runPythonReference<{ float16: string; decoded: string }>('float16_reference.py', {
      float32: Buffer.from(input.buffer).toString('base64'),
    });
    const expectedBits = new Uint16Array(new Uint8Array(Buffer.from(reference.float16, 'base64')).buffer);
    const actualBits = toFloat16Bits(input);
    assert.equal(actualBits.length, expectedBits.length);
    for (let i = 0; i < input.length; i++)
      assert.equal(
        actualBits[i],
        expectedBits[i],
        `float32 ${input[i]} (0x${new Uint32Array(input.buffer)[i]!.toString(16)}): 0x${actualBits[i]!.toString(16)}, numpy 0x${expectedBits[i]!.toString(16)}`,
      );

    const decoded = new Float32Array(new Uint8Array(Buffer.from(reference.decoded, 'base64')).buffer);
    assert.equal(decoded.length, 65536);
    for (let h = 0; h < 65536; h++)
      assert.ok(
        Object.is(every[h], decoded[h]) || (Number.isNaN(every[h]) && Number.isNaN(decoded[h])),
        `half 0x${h.toString(16)}: ${every[h]}, numpy ${decoded[h]}`,
      );
  });

  test('the checked conversion stops at the first value float16 cannot hold, having written those before it', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, -65505, 65519]) {
      const out = new Uint16Array(5);
      assert.equal(toFiniteFloat16Bits(Float32Array.from([1, -2, 65504, bad, 3]), out), 3, `${bad}`);
      assert.deepEqual([...out], [0x3c00, 0xc000, 0x7bff, 0, 0]);
    }
    const values = normalRangeValues(1000, new SeededRandom(3));
    const out = new Uint16Array(values.length);
    assert.equal(toFiniteFloat16Bits(values, out), -1);
    assert.deepEqual(out, toFloat16Bits(values));
  });

  test('random normal-range features survive a round trip within 2^-11 relative error', () => {
    const values = normalRangeValues(200_000, new SeededRandom(11));
    assertFloat16Close(fromFloat16Bits(toFloat16Bits(values)), values);
  });
});

/** A one-configuration sweep document with `features` as given (absent when undefined). */
const sweep = (features?: unknown) => minimalSweepDocument(features === undefined ? {} : { features });

describe('float16 feature shards', () => {
  let dir: string;
  let backbone: OnnxBackbone;
  let dataset: DatasetManifest;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'feature-store-'));
    const { model } = convStackModel({
      side: 224,
      stages: [{ channels: 16, stride: 32 }],
      seed: 4,
      output: 'nchw',
    });
    const file = path.join(dir, 'conv.onnx');
    await writeFile(file, model);
    backbone = await loadOnnxBackbone({ file, preset: 'resnet50', intraOpNumThreads: 1 });
    dataset = await writeNoiseDataset(path.join(dir, 'images'), [
      [300, 200],
      [180, 320],
      [256, 256],
      [410, 333],
      [224, 500],
    ]);
  });
  after(async () => {
    backbone.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test('store half the bytes under another key and read back as float32 within tolerance', async () => {
    const store = new LocalArtifactStore(path.join(dir, 'store'));
    const options = { store, dataset, split: 'train' as const, backbone, shardSize: 2, batchSize: 2 };
    const full = await extractFeatures(options);
    const half = await extractFeatures({ ...options, dtype: 'float16' });
    assert.equal(half.reused, false);
    assert.equal(full.manifest.dtype, 'float32');
    assert.equal(half.manifest.dtype, 'float16');
    assert.notEqual(half.manifest.key, full.manifest.key);
    assert.equal(half.manifest.key, featureCacheKey(dataset, 'train', backbone, { dtype: 'float16' }));
    // float32 keys are unchanged by the dtype option.
    assert.equal(full.manifest.key, featureCacheKey(dataset, 'train', backbone));

    const fullSet = await StoredFeatureSet.open(store, full.manifest.key);
    const halfSet = await StoredFeatureSet.open(store, half.manifest.key);
    assert.equal(half.manifest.shards.length, 3);
    for (const [s, shard] of half.manifest.shards.entries()) {
      assert.match(shard.key, /\.f16$/);
      const fullBytes = (await store.get(full.manifest.shards[s]!.key))!.length;
      assert.equal((await store.get(shard.key))!.length * 2, fullBytes);
      const expected = await fullSet.readShard(s);
      assert.ok(expected.some((v) => v > 0.1));
      assertFloat16Close(await halfSet.readShard(s), expected);
    }
    assert.equal((await extractFeatures({ ...options, dtype: 'float16' })).reused, true);
  });

  test('a corrupt float16 shard and an unknown dtype are refused, naming the key', async () => {
    const store = new LocalArtifactStore(path.join(dir, 'corrupt'));
    const { manifest } = await extractFeatures({
      store,
      dataset,
      split: 'train',
      backbone,
      dtype: 'float16',
    });
    const shard = manifest.shards[0]!;
    const bytes = (await store.get(shard.key))!;
    bytes[0]! ^= 1;
    await store.put(shard.key, bytes);
    const set = await StoredFeatureSet.open(store, manifest.key);
    await assert.rejects(set.readShard(0), new RegExp(`/${shard.key}: feature shard damaged`));

    await store.put(
      `${manifest.key}/manifest.json`,
      Buffer.from(JSON.stringify({ ...manifest, dtype: 'int8' })),
    );
    await assert.rejects(
      StoredFeatureSet.open(store, manifest.key),
      new RegExp(`feature set '${manifest.key}': dtype = "int8" is not one of float32, float16`),
    );
  });
  test('features.dtype defaults to float32, takes float16, and names the field when wrong', () => {
    assert.equal(parseSweep(sweep()).configurations[0]!.features.dtype, 'float32');
    assert.equal(parseSweep(sweep({ dtype: 'float16' })).configurations[0]!.features.dtype, 'float16');
    assert.throws(
      () => parseSweep(sweep({ dtype: 'bfloat16' }), 'x.json'),
      /configurations\[0\]\.features\.dtype/,
    );
  });

  test('features.processes defaults to 1, takes up to 16, and names the field when wrong', () => {
    assert.equal(parseSweep(sweep()).configurations[0]!.features.processes, 1);
    assert.equal(parseSweep(sweep({ processes: 3 })).configurations[0]!.features.processes, 3);
    for (const processes of [0, 2.5, 17])
      assert.throws(
        () => parseSweep(sweep({ processes }), 'x.json'),
        /configurations\[0\]\.features\.processes/,
        String(processes),
      );
  });

  test('unreadable images fail an extraction naming them, or are left out of the set with skipUnreadable', async () => {
    const root = path.join(dir, 'unreadable');
    const images = await writeNoiseDataset(root, [
      [300, 200],
      [180, 320],
      [256, 256],
      [410, 333],
      [224, 500],
    ]);
    const [truncated, notAnImage] = [images.items[2]!.path, images.items[4]!.path];
    const good = await readFile(path.join(root, truncated));
    await writeFile(path.join(root, truncated), good.subarray(0, good.length / 2));
    await writeFile(path.join(root, notAnImage), 'not an image');
    const store = new LocalArtifactStore(path.join(dir, 'unreadable-store'));
    const options = { store, dataset: images, split: 'train' as const, backbone, shardSize: 2, batchSize: 2 };

    await assert.rejects(extractFeatures(options), (error: unknown) => {
      assert.ok(error instanceof ImageDecodeError, String(error));
      assert.equal(error.file, path.join(root, truncated));
      return true;
    });
    const strictKey = featureCacheKey(images, 'train', backbone);
    assert.deepEqual(
      await store.list(`${strictKey}/`),
      [`${strictKey}/shard-00000.f32`],
      'the shard before it is kept',
    );

    // Skipping: another set, which copies the shard the failed extraction stored instead of computing it.
    const skipping = await extractFeatures({ ...options, skipUnreadable: true });
    const { manifest } = skipping;
    assert.equal(manifest.key, featureCacheKey(images, 'train', backbone, { skipUnreadable: true }));
    assert.notEqual(manifest.key, strictKey);
    assert.equal(skipping.reusedShards, 1);
    assert.deepEqual(
      manifest.items,
      [0, 1, 3].map((i) => images.items[i]!.path),
    );
    assert.deepEqual(manifest.labels, [0, 1, 1]);
    assert.deepEqual(
      skippedImages(manifest).map(({ path: file, reason }) => [
        file,
        reason.split(': cannot decode image: ')[0],
      ]),
      [
        [truncated, path.join(root, truncated)],
        [notAnImage, path.join(root, notAnImage)],
      ],
    );
    assert.deepEqual(
      manifest.shards.map((shard) => [shard.count, shard.skipped?.map((row) => row.row)]),
      [
        [2, undefined],
        [1, [0]],
        [0, [0]],
      ],
    );

    // The set reads as the readable images alone, extracted on their own.
    const readable = { ...images, items: images.items.filter((_, i) => i !== 2 && i !== 4) };
    const alone = await extractFeatures({
      ...options,
      dataset: readable,
      store: new LocalArtifactStore(path.join(dir, 'readable')),
    });
    const read = async (key: string, at: LocalArtifactStore) => {
      const set = await StoredFeatureSet.open(at, key);
      assert.deepEqual(set.shardSizes, [2, 1], 'a shard that skipped all its images is left out');
      const shards = await Promise.all(set.shardSizes.map((_, i) => set.readShard(i)));
      return Float32Array.from(shards.flatMap((shard) => [...shard]));
    };
    const values = await read(manifest.key, store);
    const expected = await read(alone.manifest.key, new LocalArtifactStore(path.join(dir, 'readable')));
    assert.equal(values.length, expected.length);
    assert.ok(values.every((v, i) => Math.abs(v - expected[i]!) <= 1e-5 * (1 + Math.abs(expected[i]!))));

    // Cut off after its shards were stored: a resumed extraction keeps each shard's skipped rows.
    await rm(path.join(dir, 'unreadable-store', manifest.key, 'manifest.json'));
    const resumed = await extractFeatures({ ...options, skipUnreadable: true });
    assert.equal(resumed.reusedShards, 3);
    assert.deepEqual(resumed.manifest, { ...manifest, compute: resumed.manifest.compute });

    // With the images mended, the set that reads them all takes them.
    await writeFile(path.join(root, truncated), good);
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#808080' } })
      .jpeg()
      .toFile(path.join(root, notAnImage));
    const strict = await extractFeatures(options);
    assert.equal(strict.manifest.key, strictKey);
    assert.equal(strict.manifest.count, 5);
    assert.deepEqual(skippedImages(strict.manifest), []);
  });

  test('a float16 configuration addresses other features than a float32 one', () => {
    const keyFor = (features?: unknown) =>
      featureCacheKey(
        dataset,
        'train',
        backbone,
        featureSettings(parseSweep(sweep(features)).configurations[0]!),
      );
    assert.notEqual(keyFor({ dtype: 'float16' }), keyFor());
    assert.equal(keyFor({ dtype: 'float32' }), keyFor());
  });
});

describe('features that cannot be stored', () => {
  let dir: string;
  let backbone: OnnxBackbone;
  let dataset: DatasetManifest;
  /** A plain colour, which the resnet50 preset normalises to the same value everywhere. */
  const writeColour = (file: string, level: number) =>
    sharp({ create: { width: 240, height: 240, channels: 3, background: { r: level, g: level, b: level } } })
      .png()
      .toFile(file);

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'feature-store-bad-'));
    // sqrt(image) * 1e5, averaged over 32 px cells: NaN where the normalised image is negative (dark),
    // beyond float16's range where it is bright, finite in float32.
    const model = encodeOnnxModel({
      nodes: [
        { op: 'Sqrt', inputs: ['image'], outputs: ['root'] },
        { op: 'Mul', inputs: ['root', 'scale'], outputs: ['scaled'] },
        {
          op: 'AveragePool',
          inputs: ['scaled'],
          outputs: ['features'],
          attributes: { kernel_shape: [32, 32], strides: [32, 32] },
        },
      ],
      initializers: [{ name: 'scale', dims: [], data: Float32Array.from([1e5]) }],
      inputs: [{ name: 'image', shape: ['batch', 3, 224, 224] }],
      outputs: [{ name: 'features', shape: ['batch', 3, 7, 7] }],
    });
    const file = path.join(dir, 'sqrt.onnx');
    await writeFile(file, model);
    backbone = await loadOnnxBackbone({ file, preset: 'resnet50', intraOpNumThreads: 1 });
    const root = path.join(dir, 'images');
    await mkdir(root);
    const levels = [255, 250, 0, 255];
    for (const [i, level] of levels.entries()) await writeColour(path.join(root, `image-${i}.png`), level);
    dataset = {
      name: 'colours',
      root,
      classes: ['a'],
      items: levels.map((_, i) => ({ path: `image-${i}.png`, label: 0, split: 'train' as const })),
    };
  });
  after(async () => {
    backbone.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test('a NaN feature names its image; the shards before it stay and resume, nothing is published', async () => {
    const store = new LocalArtifactStore(path.join(dir, 'nan'));
    const options = { store, dataset, split: 'train' as const, backbone, shardSize: 1, batchSize: 3 };
    await assert.rejects(extractFeatures(options), /non-finite feature \(NaN\) for .*\/image-2\.png$/);
    const key = featureCacheKey(dataset, 'train', backbone);
    assert.equal(await store.get(`${key}/manifest.json`), undefined);

    await writeColour(path.join(dataset.root, 'image-2.png'), 255);
    const resumed = await extractFeatures(options);
    assert.equal(resumed.reusedShards, 2);
    // Timed on the images this run extracted: the report takes the whole set's time from that rate.
    assert.equal(resumed.manifest.compute?.items, resumed.manifest.count - 2);
    const features = await (await StoredFeatureSet.open(store, key)).readShard(3);
    assert.ok(features.every((v) => v > 65504));
    await writeColour(path.join(dataset.root, 'image-2.png'), 0);
  });

  test('a feature beyond float16 names its image and the dtype to use', async () => {
    const store = new LocalArtifactStore(path.join(dir, 'half'));
    await assert.rejects(
      extractFeatures({ store, dataset, split: 'train', backbone, dtype: 'float16' }),
      /feature value 1\d{5}(\.\d+)? of .*\/image-0\.png exceeds the float16 range \(65504\): extract with features.dtype 'float32'/,
    );
    assert.deepEqual(await store.list(''), []);
  });
});
