import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { BackboneSpec } from '../core/backbones/registry';
import { openBackbone } from '../core/backbones/registry';
import type { DatasetManifest } from '../core/data/dataset';
import { extractFeaturesInProcesses } from '../core/features/extract-processes';
import type { ExtractionProgress } from '../core/features/feature-store';
import { extractFeatures, featureCacheKey, skippedImages } from '../core/features/feature-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { InputError } from '../core/util/errors';
import { cpuDescription } from '../core/util/machine';
import { writeNoiseDataset } from './support/extraction';
import { convStackModel } from './support/onnx-graph';

let dir: string;
let dataset: DatasetManifest;
let spec: BackboneSpec;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'extract-processes-'));
  const { model } = convStackModel({
    side: 224,
    stages: [{ channels: 16, stride: 32 }],
    seed: 5,
    output: 'nchw',
  });
  const file = path.join(dir, 'conv.onnx');
  await writeFile(file, model);
  spec = { name: 'conv', file, preset: 'resnet50', provider: 'cpu' };
  dataset = await writeNoiseDataset(
    path.join(dir, 'images'),
    Array.from({ length: 11 }, (_, i) => [200 + 17 * i, 180 + 23 * (i % 4)] as [number, number]),
  );
});
after(() => rm(dir, { recursive: true, force: true }));

/** Options shared by the runs below: shards of 2, batches of 3 (so batches straddle shards). */
function options(store: LocalArtifactStore, processes: number) {
  return {
    store,
    storeUrl: store.root,
    dataset,
    split: 'train' as const,
    backbone: spec,
    shardSize: 2,
    batchSize: 3,
    processes,
    preprocessThreads: 2,
  };
}

test('three processes store the shards and manifest that one process stores, and report progress', async () => {
  const single = new LocalArtifactStore(path.join(dir, 'single'));
  const backbone = await openBackbone(spec);
  const alone = await extractFeatures({ ...options(single, 1), backbone });
  backbone.dispose();

  const shared = new LocalArtifactStore(path.join(dir, 'shared'));
  const progress: ExtractionProgress[] = [];
  const result = await extractFeaturesInProcesses({
    ...options(shared, 3),
    onProgress: (p) => void progress.push(p),
  });
  assert.equal(result.reused, false);
  // The same manifest but for when and how long extracting took; both timed every image on the CPU provider.
  const { compute, ...manifest } = result.manifest;
  const { compute: aloneCompute, ...aloneManifest } = alone.manifest;
  assert.deepEqual(manifest, aloneManifest);
  for (const record of [compute, aloneCompute]) {
    assert.equal(record?.name, 'onnxruntime cpu');
    assert.equal(record?.hardware, cpuDescription());
    assert.equal(record?.items, alone.manifest.count);
    assert.ok(record.seconds > 0 && Number.isFinite(Date.parse(record.finishedAt)), JSON.stringify(record));
  }
  for (const shard of alone.manifest.shards)
    assert.deepEqual(await shared.get(shard.key), await single.get(shard.key), shard.key);
  const count = alone.manifest.count;
  assert.deepEqual(progress.at(-1), { done: count, total: count, reusedShards: 0 });
  assert.ok(progress.length > 3, `${progress.length} progress reports`);

  const again = await extractFeaturesInProcesses(options(shared, 2));
  assert.equal(again.reused, true);
});

test('a bad image fails it naming the file; the shards stored stay, and a rerun computes only the others', async () => {
  const store = new LocalArtifactStore(path.join(dir, 'failed'));
  const bad = path.join(dataset.root, dataset.items[9]!.path);
  await copyFile(bad, `${bad}.good`);
  await writeFile(bad, 'not an image');
  try {
    await assert.rejects(extractFeaturesInProcesses(options(store, 2)), (error: Error) => {
      // Still an InputError here, so the orchestration does not retry it.
      assert.ok(error instanceof InputError, `${error.name}: ${error.message}`);
      assert.ok(error.message.includes(bad), error.message);
      return true;
    });
    // Skipping unreadable images, the processes leave it out (a set of its own, which copies the shards stored).
    const skipping = await extractFeaturesInProcesses({ ...options(store, 2), skipUnreadable: true });
    assert.deepEqual(
      skippedImages(skipping.manifest).map((image) => image.path),
      [dataset.items[9]!.path],
    );
    assert.equal(skipping.manifest.count, dataset.items.length - 1);
    assert.ok(skipping.reusedShards > 0);
  } finally {
    await rename(`${bad}.good`, bad);
  }
  const backbone = await openBackbone(spec);
  const key = featureCacheKey(dataset, 'train', backbone);
  backbone.dispose();
  const stored = await store.list(`${key}/`);
  assert.ok(!stored.some((k) => k.endsWith('manifest.json')), 'nothing published');
  // Shard 4 (items 8, 9) cannot have been stored.
  assert.ok(!stored.includes(`${key}/shard-00004.f32`));

  const resumed = await extractFeaturesInProcesses(options(store, 2));
  assert.equal(resumed.reusedShards, stored.length);
  assert.equal(resumed.manifest.shards.length, 6);
});

/** This process's children running `script` that have not exited (zombies, not yet reaped, excepted). */
function liveChildren(script: string): string[] {
  const ps = execFileSync('ps', ['--ppid', String(process.pid), '-o', 'pid=,stat=,args='], {
    encoding: 'utf8',
  });
  return ps.split('\n').filter((line) => line.includes(script) && !/^\s*\d+\s+Z/.test(line));
}

test('the processes stop when the thread that started them ends midway, as a cancelled stage thread does', async () => {
  const store = new LocalArtifactStore(path.join(dir, 'cancelled'));
  const { store: _store, ...rest } = options(store, 2);
  // The images twenty times over, one a batch: the processes are still at work when the first report comes,
  // however fast this machine runs the 11.
  const repeated = { ...dataset, items: Array.from({ length: 20 }, () => dataset.items).flat() };
  const thread = new Worker(path.join(__dirname, 'support', 'extract-processes-thread.js'), {
    workerData: { ...rest, dataset: repeated, batchSize: 1 },
  });
  await new Promise<void>((resolve, reject) => {
    thread.on('message', (progress: ExtractionProgress) => {
      if (progress.done > 0) resolve();
    });
    thread.on('error', reject);
  });
  assert.equal(liveChildren('extract-process.js').length, 2);
  await thread.terminate();
  const deadline = Date.now() + 10_000;
  while (liveChildren('extract-process.js').length > 0 && Date.now() < deadline)
    await new Promise((done) => setTimeout(done, 100));
  assert.deepEqual(liveChildren('extract-process.js'), []);
});
