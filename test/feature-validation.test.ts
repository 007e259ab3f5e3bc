import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type Configuration, loadSweepFile } from '../core/config/experiment';
import type { FeatureShape } from '../core/features/feature-set';
import type { FeatureManifest } from '../core/features/feature-store';
import { StoredFeatureSet } from '../core/features/feature-store';
import { FeatureInputError } from '../core/features/feature-validation';
import { BaselineHead } from '../core/method/baseline-head';
import { decodeTensors, encodeTensors } from '../core/method/tensor-io';
import { type TrainOptions, trainHead } from '../core/method/train';
import {
  evaluateStage,
  type FeaturesRef,
  type TrainedHeadRef,
  trainHeadStage,
} from '../core/pipeline/stages';
import { putJson } from '../core/store/artifact-store';
import { LocalArtifactStore } from '../core/store/local-store';
import { selectBackend } from '../core/tf/backend';
import { InputError } from '../core/util/errors';
import { sha256 } from '../core/util/hash';
import { SeededRandom } from '../core/util/random';
import { repoRoot } from '../infra/paths';

/**
 * Bad features fail training and evaluation at once, with a FeatureInputError (an InputError, so the
 * orchestration does not retry it) naming the set, the shard, the field and the value; the stages leave
 * the store as it was. Every set here is written as real shards and a manifest into a real local store.
 */

const SHAPE: FeatureShape = { height: 2, width: 2, channels: 4 };
const CLASSES = 3;

let dir: string;
let store: LocalArtifactStore;
let configuration: Configuration;
let trained: TrainedHeadRef;

interface SetSpec {
  shape?: FeatureShape;
  /** Items per shard. */
  shards?: number[];
  /** Changes to the values (storage order, all shards) before they are written. */
  edit?: (values: Float32Array) => void;
  /** Bytes to store for a shard instead of its values (the manifest's checksum follows them). */
  shardBytes?: (index: number, bytes: Buffer) => Buffer;
  manifest?: Partial<FeatureManifest>;
}

/** Writes shards and a manifest the way extraction does, with each shard's true checksum. */
async function writeSet(key: string, spec: SetSpec = {}): Promise<FeaturesRef> {
  const shape = spec.shape ?? SHAPE;
  const sizes = spec.shards ?? [3, 3];
  const count = sizes.reduce((a, b) => a + b, 0);
  const size = shape.height * shape.width * shape.channels;
  const random = new SeededRandom(count * 31 + size);
  const values = Float32Array.from({ length: count * size }, () => random.normal());
  spec.edit?.(values);
  const shards: FeatureManifest['shards'] = [];
  let start = 0;
  for (const [index, n] of sizes.entries()) {
    const shardKey = `${key}/shard-${String(index).padStart(5, '0')}.f32`;
    const own = values.slice(start * size, (start + n) * size);
    const bytes = spec.shardBytes?.(index, Buffer.from(own.buffer)) ?? Buffer.from(own.buffer);
    await store.put(shardKey, bytes);
    shards.push({ key: shardKey, count: n, sha256: sha256(bytes) });
    start += n;
  }
  const manifest: FeatureManifest = {
    version: 1,
    key,
    dataset: 'generated',
    split: 'train',
    backbone: 'generated',
    backboneFingerprint: 'generated',
    shape,
    classCount: CLASSES,
    count,
    labels: Array.from({ length: count }, (_, i) => i % CLASSES),
    items: Array.from({ length: count }, (_, i) => `images/${i}.png`),
    shards,
    dtype: 'float32',
    ...spec.manifest,
  };
  await putJson(store, `${key}/manifest.json`, manifest);
  return { key, split: 'train', count, reused: true, reusedShards: shards.length, shape };
}

/** Every file under the store with its checksum: what "left as it was" is compared on. */
async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out[path.relative(dir, file)] = sha256(await readFile(file));
  }
  return out;
}

/** `run` rejects with a FeatureInputError whose message holds every fragment, and the store is unchanged. */
async function assertFailsCleanly(
  run: () => Promise<unknown>,
  fragments: string[],
): Promise<FeatureInputError> {
  const before = await snapshot();
  let caught: unknown;
  await run().catch((error: unknown) => {
    caught = error;
  });
  assert.ok(caught instanceof FeatureInputError, `expected a FeatureInputError, got ${String(caught)}`);
  assert.ok(caught instanceof InputError);
  for (const fragment of fragments)
    assert.ok(caught.message.includes(fragment), `'${fragment}' missing from: ${caught.message}`);
  assert.deepEqual(await snapshot(), before, 'the failed stage changed the store');
  console.log(`rejected: ${caught.message}`);
  return caught;
}

const train = (features: FeaturesRef) =>
  trainHeadStage({ store, dataDir: dir }, configuration, 'baseline', features);
const evaluate = (features: FeaturesRef) =>
  evaluateStage({ store, dataDir: dir }, configuration, trained, features);

before(async () => {
  await selectBackend('wasm');
  dir = await mkdtemp(path.join(os.tmpdir(), 'infodisent-validation-'));
  store = new LocalArtifactStore(dir);
  const sweep = await loadSweepFile(path.join(repoRoot(), 'experiments', 'tiny.json'));
  const base = sweep.configurations[0]!;
  configuration = { ...base, heads: { ...base.heads, baseline: { ...base.heads.baseline, epochs: 2 } } };
  // A trained head and its evaluation already in the store: what a failing stage must not touch.
  trained = await train(await writeSet('features/good-train'));
  await evaluate(await writeSet('features/good-test'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a label outside the class range fails when the set is opened, naming shard, item and label', async () => {
  const features = await writeSet('features/bad-label', {
    manifest: { labels: [0, 1, 2, 0, 3, 2] },
  });
  await assertFailsCleanly(
    () => train(features),
    [
      "feature set 'features/bad-label'",
      "shard 1 ('features/bad-label/shard-00001.f32')",
      "item 4 ('images/4.png')",
      'labels[4] = 3 is outside the class range 0..2',
    ],
  );
  await assertFailsCleanly(() => evaluate(features), ['labels[4] = 3']);
  const negative = await writeSet('features/negative-label', { manifest: { labels: [0, -1, 2, 0, 1, 2] } });
  await assertFailsCleanly(
    () => train(negative),
    ["shard 0 ('features/negative-label/shard-00000.f32')", "item 1 ('images/1.png')", 'labels[1] = -1'],
  );
});

test('a NaN or infinite value fails as its shard is read, naming shard, item, pixel, channel and value', async () => {
  const size = 2 * 2 * 4;
  // Item 4 (shard 1), pixel (1, 0) = flat pixel 2, channel 3.
  const nan = await writeSet('features/nan', {
    edit: (values) => {
      values[4 * size + 2 * 4 + 3] = Number.NaN;
    },
  });
  await assertFailsCleanly(
    () => train(nan),
    [
      "shard 1 ('features/nan/shard-00001.f32')",
      "item 4 ('images/4.png')",
      'value at pixel (1, 0), channel 3 = NaN is not finite',
    ],
  );
  const infinite = await writeSet('features/infinite', {
    edit: (values) => {
      values[size + 1] = Number.NEGATIVE_INFINITY;
    },
  });
  await assertFailsCleanly(
    () => evaluate(infinite),
    ["shard 0 ('features/infinite/shard-00000.f32')", "item 1 ('images/1.png')", 'channel 1 = -Infinity'],
  );
});

test('a shard whose size disagrees with the manifest (another channel count) fails naming its byte length', async () => {
  // Shard 1 holds 5-channel maps while the manifest says 4.
  const features = await writeSet('features/short-shard', {
    shardBytes: (index, bytes) => (index === 1 ? Buffer.concat([bytes, Buffer.alloc(3 * 2 * 2 * 4)]) : bytes),
  });
  await assertFailsCleanly(
    () => train(features),
    [
      "shard 1 ('features/short-shard/shard-00001.f32')",
      "byte length = 240 but the manifest's 3 items of 2x2x4 float32 maps take 192 bytes",
    ],
  );
});

test('features of another channel count or map size than the trained head fail before any shard is read', async () => {
  const fiveChannels = await writeSet('features/five-channels', {
    shape: { height: 2, width: 2, channels: 5 },
  });
  await assertFailsCleanly(
    () => evaluate(fiveChannels),
    ["feature set 'features/five-channels'", 'shape.channels = 5 but the head takes 2x2x4 maps'],
  );
  // A head stored before its meta recorded the geometry: its tensors' shapes are checked instead.
  const { meta, tensors } = decodeTensors((await store.get(`${trained.key}/head.bin`))!, trained.key);
  const { shape: _shape, classCount: _classCount, ...olderMeta } = meta as Record<string, unknown>;
  const older: TrainedHeadRef = { ...trained, key: 'heads/baseline/older' };
  await store.put(`${older.key}/head.bin`, await encodeTensors(tensors, olderMeta));
  await assertFailsCleanly(
    () => evaluateStage({ store, dataDir: dir }, configuration, older, fiveChannels),
    [
      "shape of tensor 'weight' in trained head 'heads/baseline/older' = [3, 4] but 2x2x5 maps of 3 classes need [3, 5]",
    ],
  );
  const larger = await writeSet('features/three-by-three', { shape: { height: 3, width: 3, channels: 4 } });
  await assertFailsCleanly(
    () => evaluate(larger),
    ['shape.height = 3 but the head takes 2x2x4 maps (height 2)'],
  );
});

test('an empty split fails at once: no items, or a validation fraction that holds out none or all', async () => {
  const empty = await writeSet('features/empty', { shards: [] });
  await assertFailsCleanly(
    () => train(empty),
    ["feature set 'features/empty'", 'items = 0 means an empty training split'],
  );
  await assertFailsCleanly(() => evaluate(empty), ['evaluated items = 0 of 0 means an empty split']);

  const set = await StoredFeatureSet.open(store, (await writeSet('features/six')).key);
  const options: TrainOptions = {
    epochs: 1,
    batchSize: 4,
    seed: 1,
    groups: { weight: { learningRate: 0.1, weightDecay: 0 }, bias: { learningRate: 0.1, weightDecay: 0 } },
    schedule: 'constant',
    validationFraction: 0.05,
    patience: 0,
    checkpointEvery: 0,
  };
  const head = new BaselineHead(SHAPE, CLASSES, { seed: 1 });
  await assertFailsCleanly(
    () => trainHead(head, set, options),
    ['validationFraction = 0.05 holds out 0 of the 6 items: the validation split is empty'],
  );
  await assertFailsCleanly(
    () => trainHead(head, set, { ...options, validationFraction: 1 }),
    ['validationFraction = 1 holds out 6 of the 6 items: the training split is empty'],
  );
  // A head of another class count than the set's.
  const fourClasses = new BaselineHead(SHAPE, 4, { seed: 1 });
  await assertFailsCleanly(
    () => trainHead(fourClasses, set, { ...options, validationFraction: 0 }),
    ["feature set 'features/six'", 'classCount = 3 but the head has 4 classes'],
  );
  head.dispose();
  fourClasses.dispose();
});

test('a manifest whose counts contradict its shards fails when opened', async () => {
  const miscounted = await writeSet('features/miscounted', { manifest: { count: 7 } });
  await assertFailsCleanly(
    () => train(miscounted),
    ["feature set 'features/miscounted'", 'count = 7 but the shards hold 6 items'],
  );
  const unlabelled = await writeSet('features/unlabelled', { manifest: { labels: [0, 1, 2, 0, 1] } });
  await assertFailsCleanly(() => train(unlabelled), ['labels.length = 5 but the shards hold 6 items']);
});
