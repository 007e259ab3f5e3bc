import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadOnnxBackbone, type OnnxBackbone } from '../core/backbones/onnx-backbone';
import type { DatasetManifest } from '../core/data/dataset';
import {
  type ExtractionProgress,
  extractFeatures,
  featureCacheKey,
  StoredFeatureSet,
} from '../core/features/feature-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { S3ArtifactStore, type S3StoreOptions } from '../core/store/s3-store';
import type { SeaweedFs } from '../infra/seaweedfs';
import type { ExtractChildRequest } from './support/extract-child';
import { writeNoiseDataset } from './support/extraction';
import { convStackModel } from './support/onnx-graph';
import { startTestSeaweedFs } from './support/seaweedfs';

// Ten images in shards of three: shards 0-2 full, shard 3 holds one image.
const SIZES = [
  [300, 200],
  [180, 320],
  [256, 256],
  [410, 333],
  [224, 500],
  [640, 480],
  [333, 250],
  [200, 300],
  [500, 375],
  [260, 260],
] as const;
const SHARD_SIZE = 3;
const BATCH_SIZE = 2;

let dir: string;
let server: SeaweedFs;
let disposeServer: (() => Promise<void>) | undefined;
let modelFile: string;
let backbone: OnnxBackbone;
let dataset: DatasetManifest;
/** The features of every image, shard by shard, from an uninterrupted extraction to a local folder. */
let expected: Float32Array[];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'extract-s3-'));
  ({ server, dispose: disposeServer } = await startTestSeaweedFs());
  const { model } = convStackModel({
    side: 224,
    stages: [{ channels: 8, stride: 32 }],
    seed: 9,
    output: 'nchw',
  });
  modelFile = path.join(dir, 'conv.onnx');
  await writeFile(modelFile, model);
  backbone = await loadOnnxBackbone({ file: modelFile, preset: 'resnet50', intraOpNumThreads: 1 });
  dataset = await writeNoiseDataset(path.join(dir, 'images'), SIZES);
  const local = new LocalArtifactStore(path.join(dir, 'local'));
  const { manifest } = await extractFeatures({ ...extraction(local) });
  const set = await StoredFeatureSet.open(local, manifest.key);
  expected = await Promise.all(manifest.shards.map((_, s) => set.readShard(s)));
});

after(async () => {
  backbone?.dispose();
  await disposeServer?.();
  await rm(dir, { recursive: true, force: true });
});

/** A store in its own prefix of one bucket, so each test starts from an empty cache. */
function s3Options(prefix: string): S3StoreOptions {
  return {
    bucket: 'features',
    prefix,
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    createBucket: true,
  };
}

function extraction(store: LocalArtifactStore | S3ArtifactStore) {
  return { store, dataset, split: 'train' as const, backbone, shardSize: SHARD_SIZE, batchSize: BATCH_SIZE };
}

/** Every shard of the stored set, read (checksums verified) and compared with the uninterrupted extraction. */
async function assertStoredSet(store: S3ArtifactStore, key: string): Promise<void> {
  const keys = await store.list(`${key}/`);
  assert.deepEqual(keys, [`${key}/manifest.json`, ...[0, 1, 2, 3].map((s) => `${key}/shard-0000${s}.f32`)]);
  const set = await StoredFeatureSet.open(store, key);
  assert.equal(set.manifest.count, SIZES.length);
  assert.deepEqual(set.shardSizes, [3, 3, 3, 1]);
  assert.deepEqual([...set.labels], [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  for (const [s, values] of expected.entries()) assert.deepEqual(await set.readShard(s), values);
}

test('extracts to S3, verifies every shard on reading, then hits the cache with no work', async () => {
  const store = new S3ArtifactStore(s3Options('complete'));
  const progress: ExtractionProgress[] = [];
  const first = await extractFeatures({ ...extraction(store), onProgress: (p) => void progress.push(p) });
  assert.equal(first.reused, false);
  assert.equal(first.reusedShards, 0);
  assert.equal(first.manifest.key, featureCacheKey(dataset, 'train', backbone));
  assert.deepEqual(progress.at(-1), { done: SIZES.length, total: SIZES.length, reusedShards: 0 });
  await assertStoredSet(store, first.manifest.key);

  // A shard whose bytes no longer match the manifest is refused, even when S3's own checksum agrees.
  const shard = first.manifest.shards[1]!;
  const original = (await store.get(shard.key))!;
  const altered = Buffer.from(original);
  altered[5]! ^= 0x40;
  await store.put(shard.key, altered);
  const set = await StoredFeatureSet.open(store, first.manifest.key);
  await assert.rejects(set.readShard(1), new RegExp(`/${shard.key}: feature shard damaged`));
  await store.put(shard.key, original);

  // With the images gone, only a cache hit can succeed: nothing is decoded, computed or reported.
  const images = path.join(dir, 'images');
  await rename(images, `${images}-away`);
  try {
    const again = await extractFeatures({ ...extraction(store), onProgress: () => assert.fail('no work') });
    assert.equal(again.reused, true);
    assert.deepEqual(again.manifest, first.manifest);
  } finally {
    await rename(`${images}-away`, images);
  }
});

test('an extraction killed midway publishes nothing and resumes shard by shard', async () => {
  const options = s3Options('killed');
  const store = new S3ArtifactStore(options);
  const key = featureCacheKey(dataset, 'train', backbone);
  const request: ExtractChildRequest = {
    store: options,
    model: modelFile,
    dataset,
    shardSize: SHARD_SIZE,
    batchSize: BATCH_SIZE,
  };
  const child = fork(path.join(__dirname, 'support', 'extract-child.js'), [JSON.stringify(request)], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(signal ?? code)),
  );
  // The child waits for a reply after each progress step: kill it, standing still, once shard 0 is stored.
  // A shard's write goes on while the next batches run, so shard 1 may be stored by then too.
  child.on('message', async () => {
    if (await store.exists(`${key}/shard-00000.f32`)) child.kill('SIGKILL');
    else child.send('go');
  });
  assert.equal(await exited, 'SIGKILL', `the child ended on its own: ${stderr}`);
  const stored = await store.list(`${key}/`);
  const shardKeys = [0, 1].map((i) => `${key}/shard-0000${i}.f32`);
  assert.ok(
    [shardKeys.slice(0, 1), shardKeys].some((prefix) => prefix.join() === stored.join()),
    `stored: ${stored.join(', ')}`,
  );
  await assert.rejects(StoredFeatureSet.open(store, key), /no feature set/);

  const resumed = await extractFeatures(extraction(store));
  assert.equal(resumed.reused, false);
  assert.equal(resumed.reusedShards, stored.length);
  await assertStoredSet(store, key);
});

test('an extraction failing on a bad image publishes nothing and resumes after the fix', async () => {
  const store = new S3ArtifactStore(s3Options('failed'));
  const key = featureCacheKey(dataset, 'train', backbone);
  // Image 7 sits in shard 2: shards 0 and 1 are stored before it fails.
  const bad = path.join(dataset.root, dataset.items[7]!.path);
  await copyFile(bad, `${bad}.good`);
  await writeFile(bad, 'not an image');
  try {
    await assert.rejects(extractFeatures(extraction(store)), (error: Error) => {
      assert.ok(error.message.includes(bad), error.message);
      return true;
    });
  } finally {
    await rename(`${bad}.good`, bad);
  }
  assert.deepEqual(await store.list(`${key}/`), [`${key}/shard-00000.f32`, `${key}/shard-00001.f32`]);

  const resumed = await extractFeatures(extraction(store));
  assert.equal(resumed.reusedShards, 2);
  await assertStoredSet(store, key);
});
