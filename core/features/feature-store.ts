import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { Backbone } from '../backbones/backbone';
import type { DatasetItem, DatasetManifest, Split } from '../data/dataset';
import { itemsOfSplit } from '../data/dataset';
import type { SkippedInput } from '../data/loaders';
import { ImageDecodeError, PRESETS } from '../data/preprocess';
import { PreprocessPool, type UnreadableImage } from '../data/preprocess-pool';
import { type ArtifactStore, getJson, getRequired, putJson } from '../store/artifact-store';
import { type ComputeRecord, computeRecord } from '../util/compute-record';
import { InputError } from '../util/errors';
import { firstNonFinite } from '../util/finite';
import { FLOAT16_MAX, fromFloat16Bits, toFiniteFloat16Bits } from '../util/float16';
import { contentKey, sha256 } from '../util/hash';
import { Sha256Thread } from '../util/sha256-thread';
import {
  FEATURE_DTYPE_BYTES,
  type FeatureDtype,
  type FeatureSet,
  type FeatureShape,
  itemSize,
  shardStarts,
} from './feature-set';
import { checkManifest, checkShardData } from './feature-validation';

const SHARD_SUFFIX: Record<FeatureDtype, string> = { float32: 'f32', float16: 'f16' };

export interface FeatureManifest {
  version: 1;
  key: string;
  dataset: string;
  split: Split;
  backbone: string;
  backboneFingerprint: string;
  shape: FeatureShape;
  classCount: number;
  count: number;
  labels: number[];
  /** Item paths in storage order, so results can point back at images. */
  items: string[];
  /**
   * `count`: the shard's items, those of `labels` and `items`. An extraction told to skip unreadable images
   * stores a row for each (the features of a blank image), listed in `skipped` by its row in the shard, and
   * left out of the set.
   */
  shards: { key: string; count: number; sha256: string; skipped?: SkippedRow[] }[];
  dtype: FeatureDtype;
  /** What extracting the set took, and on what; absent in sets extracted before it was recorded. */
  compute?: ComputeRecord;
}

/** How a split's features are stored and read, beyond its images and backbone: part of their cache key. */
export interface FeatureSettings {
  /** Storage type of the shards. Default 'float32'. */
  dtype?: FeatureDtype;
  /** Leave out the images that cannot be decoded (listed in the shards' `skipped`) instead of failing. */
  skipUnreadable?: boolean;
}

/**
 * The cache address of one split's features: a hash of the split's file list, sizes and labels (or a
 * generated dataset's settings), the backbone's
 * weights and its preprocessing, the storage dtype, and whether unreadable images are skipped. Any change to
 * these re-extracts; nothing else does. Skipping is in the key since the set then depends on which files
 * decode: a set that skipped images is never taken for one that read them all, nor are the heads trained on
 * it (the shards both would hold alike are copied over: see planExtraction).
 */
export function featureCacheKey(
  dataset: DatasetManifest,
  split: Split,
  backbone: Pick<Backbone, 'name' | 'fingerprint' | 'preprocessing' | 'preset'>,
  { dtype = 'float32', skipUnreadable = false }: FeatureSettings = {},
): string {
  const items = itemsOfSplit(dataset, split).map((item) =>
    item.bytes === undefined ? [item.path, item.label] : [item.path, item.label, item.bytes],
  );
  return `features/${backbone.name}/${contentKey({
    files: sha256(JSON.stringify(items)),
    // A generated dataset's settings, which decide its images' content as the sizes above do for files on disk.
    source: dataset.contentSource,
    classes: dataset.classes.length,
    backbone: backbone.fingerprint,
    preprocessing: backbone.preprocessing,
    // Undefined for backbones without a preset, so their keys are what they were before presets.
    preset: backbone.preset,
    // Likewise float32 adds nothing, so keys of float32 sets are what they were before dtypes.
    dtype: dtype === 'float32' ? undefined : dtype,
    skipUnreadable: skipUnreadable || undefined,
  })}`;
}

/**
 * One thread per core beyond the two the backbone is expected to keep busy. sharp decodes in libuv's
 * pool, which the entry points size to the machine (infra/libuv-pool.ts); the resize runs in the thread.
 */
export const DEFAULT_PREPROCESS_THREADS = Math.max(1, os.availableParallelism() - 2);

/** Images per backbone call unless the backbone or the configuration says otherwise. */
const DEFAULT_BATCH_SIZE = 16;

/** A row of a shard whose image could not be decoded (an extraction that skips them): it holds a blank image's features. */
export interface SkippedRow {
  row: number;
  /** The image, relative to the dataset root. */
  path: string;
  reason: string;
}

/** Decodes and resizes one image to the backbone's input, scaled to [0, 1]; errors name the file. */
export async function loadImage(file: string, size: number): Promise<Float32Array> {
  let pixels: Buffer;
  try {
    pixels = await sharp(file)
      .removeAlpha()
      .toColourspace('srgb')
      .resize(size, size, { fit: 'fill' })
      .raw()
      .toBuffer();
  } catch (error) {
    throw new ImageDecodeError(file, (error as Error).message);
  }
  if (pixels.length !== size * size * 3)
    throw new Error(`image ${file} did not decode to ${size}x${size} RGB`);
  const image = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) image[i] = pixels[i]! / 255;
  return image;
}

/**
 * Prepares batches as `backbone.extract` takes them: with its preset's transform, in a PreprocessPool
 * started on first use (`close` stops it), else with `loadImage` (sharp's resize, which also runs off
 * this thread). Either way this thread is free while a batch is prepared.
 */
function batchPreparer(backbone: Backbone, threads: number) {
  const { preset } = backbone;
  if (preset && PRESETS[preset].cropSize !== backbone.inputSize)
    throw new Error(
      `preset '${preset}' crops ${PRESETS[preset].cropSize} px but backbone '${backbone.name}' takes ${backbone.inputSize} px`,
    );
  const pixels = backbone.inputSize * backbone.inputSize * 3;
  let pool: PreprocessPool | undefined;
  const started = () => {
    pool ??= PreprocessPool.start(threads);
    return pool;
  };
  return {
    /** As PreprocessPool.prepare: with `unreadable`, a file that cannot be decoded is listed there, its image zero. */
    async prepare(files: readonly string[], unreadable?: UnreadableImage[]): Promise<Float32Array> {
      if (preset) return started().prepare(files, preset, unreadable);
      const images = new Float32Array(files.length * pixels);
      await Promise.all(
        files.map(async (file, i) => {
          try {
            images.set(await loadImage(file, backbone.inputSize), i * pixels);
          } catch (error) {
            if (!(unreadable && error instanceof ImageDecodeError)) throw error;
            unreadable.push({ index: i, file, reason: error.reason });
          }
        }),
      );
      return images;
    },
    /** The crops' pixels, for a backbone with a preset that takes them (`extractPixels`); else `prepare`. */
    prepareForExtraction(
      files: readonly string[],
      unreadable?: UnreadableImage[],
    ): Promise<Float32Array | Uint8Array> {
      if (preset && backbone.extractPixels) return started().preparePixels(files, preset, unreadable);
      return this.prepare(files, unreadable);
    },
    close: async () => pool?.close(),
  };
}

/** Batches being prepared while the backbone runs one: two, so the preprocessing threads never wait for a batch to be taken. */
const PREPARED_AHEAD = 2;

/**
 * Features [count, H, W, C] of `files`, batch by batch (`start` is the batch's first file), not yet checked
 * (see badFeatureError). The next batches are prepared while the backbone runs the current one, and
 * the next is given to the backbone before the current one is handed out: a backbone in its own thread
 * (openBackboneInThread) computes it while the caller stores this one.
 */
async function* featureBatches(
  backbone: Backbone,
  files: readonly string[],
  batchSize: number,
  prepare: (files: readonly string[], first: number) => Promise<Float32Array | Uint8Array>,
): AsyncGenerator<{ start: number; features: Float32Array }> {
  const computed = async (batch: { start: number; features: Promise<Float32Array> }) => ({
    start: batch.start,
    features: await batch.features,
  });
  const prepared: Promise<Float32Array | Uint8Array>[] = [];
  let toPrepare = 0;
  const prepareNext = () => {
    if (toPrepare >= files.length) return;
    const batch = prepare(files.slice(toPrepare, toPrepare + batchSize), toPrepare);
    // Awaited in its turn; a failure before then must not count as unhandled.
    batch.catch(() => undefined);
    prepared.push(batch);
    toPrepare += batchSize;
  };
  for (let i = 0; i < PREPARED_AHEAD; i++) prepareNext();
  let running: { start: number; features: Promise<Float32Array> } | undefined;
  for (let start = 0; start < files.length; start += batchSize) {
    let images: Float32Array | Uint8Array;
    try {
      images = await prepared.shift()!;
    } catch (error) {
      // The batch already computed is handed out first, so its shard can be stored before the failure.
      if (running) yield await computed(running);
      throw error;
    }
    prepareNext();
    const count = Math.min(batchSize, files.length - start);
    const submitted = {
      start,
      // Pixels come only for a backbone that takes them (batchPreparer.prepareForExtraction).
      features:
        images instanceof Uint8Array
          ? backbone.extractPixels!(images, count)
          : backbone.extract(images, count),
    };
    submitted.features.catch(() => undefined); // likewise, awaited once the batch before is out
    if (running) yield await computed(running);
    running = submitted;
  }
  if (running) yield await computed(running);
}

/**
 * The error for value `index` of a batch of `size`-value maps from `files[start]` on, which cannot be stored:
 * non-finite, or beyond float16 where the shards are float16. The backbone gives the same value again, so
 * it is an input error (not retried), naming the image file.
 */
function badFeatureError(
  files: readonly string[],
  start: number,
  index: number,
  value: number,
  size: number,
) {
  const file = files[start + Math.floor(index / size)];
  if (!Number.isFinite(value))
    return new InputError(`backbone produced a non-finite feature (${value}) for ${file}`);
  return new InputError(
    `feature value ${value} of ${file} exceeds the float16 range (${FLOAT16_MAX}): extract with features.dtype 'float32'`,
  );
}

/**
 * Features of image files outside any stored set (one image to explain, stability's noised copies),
 * prepared as extraction prepares them, in the backbone's batches. `perturb` may alter a prepared input first
 * (its index is the file's).
 */
export async function* imageFileFeatures(
  backbone: Backbone,
  files: readonly string[],
  perturb?: (input: Float32Array, index: number) => Float32Array,
): AsyncGenerator<{ start: number; features: Float32Array }> {
  const pixels = backbone.inputSize * backbone.inputSize * 3;
  const preparer = batchPreparer(backbone, 1);
  const batches = featureBatches(
    backbone,
    files,
    backbone.batchSize ?? DEFAULT_BATCH_SIZE,
    async (batch, first) => {
      const images = await preparer.prepare(batch);
      if (perturb)
        batch.forEach((_, i) => {
          images.set(perturb(images.slice(i * pixels, (i + 1) * pixels), first + i), i * pixels);
        });
      return images;
    },
  );
  try {
    for await (const batch of batches) {
      const bad = firstNonFinite(batch.features);
      if (bad >= 0)
        throw badFeatureError(files, batch.start, bad, batch.features[bad]!, itemSize(backbone.featureShape));
      yield batch;
    }
  } finally {
    await preparer.close();
  }
}

export interface ExtractionProgress {
  done: number;
  total: number;
  /** Shards found already stored (a resumed or repeated extraction). */
  reusedShards: number;
}

export interface ExtractionResult {
  manifest: FeatureManifest;
  /** True when the complete feature set was already in the store and nothing was computed. */
  reused: boolean;
  reusedShards: number;
}

/**
 * Features as a shard stores them, written into `out` (their byte length): float32 values as they are,
 * float16 rounded to nearest even. Returns the index of the first value that cannot be stored (NaN or
 * infinite; in float16, also beyond its range), else -1; in float16 this is the conversion's own pass.
 */
function encodeFeatures(features: Float32Array, dtype: FeatureDtype, out: Uint8Array): number {
  if (dtype === 'float16')
    return toFiniteFloat16Bits(features, new Uint16Array(out.buffer, out.byteOffset, features.length));
  const bad = firstNonFinite(features);
  if (bad < 0) out.set(new Uint8Array(features.buffer, features.byteOffset, features.byteLength));
  return bad;
}

/** `values` of rows of `size` values, without the `skipped` ones. */
function withoutRows(values: Float32Array, size: number, skipped: readonly SkippedRow[] = []): Float32Array {
  if (skipped.length === 0) return values;
  const left = new Set(skipped.map(({ row }) => row));
  const kept = new Float32Array(values.length - skipped.length * size);
  for (let row = 0, at = 0; row < values.length / size; row++) {
    if (left.has(row)) continue;
    kept.set(values.subarray(row * size, (row + 1) * size), at);
    at += size;
  }
  return kept;
}

/** The float32 values of a stored shard. */
function decodeShard(data: Buffer, dtype: FeatureDtype): Float32Array {
  // Copied out of the buffer: Node pools small reads, and typed arrays need aligned offsets.
  const bytes = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
  return dtype === 'float16' ? fromFloat16Bits(new Uint16Array(bytes)) : new Float32Array(bytes);
}

/** What of a backbone an extraction's cache key and manifest need: known without loading it (see BackboneInfo). */
export type BackboneIdentity = Pick<
  Backbone,
  'name' | 'fingerprint' | 'preprocessing' | 'preset' | 'featureShape' | 'runtime'
>;

interface ExtractionTarget extends FeatureSettings {
  store: ArtifactStore;
  dataset: DatasetManifest;
  split: Split;
  shardSize?: number;
}

interface BatchOptions {
  /** Images per backbone call. Default: the backbone's own (`Backbone.batchSize`), else 16. */
  batchSize?: number;
  /** Threads preparing images of preset backbones. Default DEFAULT_PREPROCESS_THREADS. */
  preprocessThreads?: number;
}

interface ExtractionOptions extends ExtractionTarget, BatchOptions {
  backbone: Backbone;
  onProgress?: (progress: ExtractionProgress) => void | Promise<void>;
}

/** Where a shard's skipped rows are kept (SkippedRows), beside the shard. */
function skippedRowsKey(shardKey: string): string {
  return `${shardKey}.skipped.json`;
}

/**
 * A shard's skipped rows, stored before the shard with the shard's hash: they belong to the shard only while
 * its bytes hash to it, so a shard computed again without skipping (which leaves this file) has none.
 */
interface SkippedRows {
  sha256: string;
  rows: SkippedRow[];
}

/** Whether a file under a feature set's key is one of its shards (not its manifest or a shard's skipped rows). */
export function isShardFile(name: string): boolean {
  return name !== 'manifest.json' && !name.endsWith('.skipped.json');
}

/** The images an extraction left out, as a dataset's loader lists the files it skipped. */
export function skippedImages(manifest: Pick<FeatureManifest, 'shards'>): SkippedInput[] {
  return manifest.shards.flatMap((shard) =>
    (shard.skipped ?? []).map(({ path, reason }) => ({ path, reason })),
  );
}

/** A shard no stored copy of which was found whole: its index, key and items. */
export interface ShardToCompute {
  index: number;
  key: string;
  items: DatasetItem[];
}

export type ShardEntry = FeatureManifest['shards'][number];

/** What an extraction finds in the store before it computes anything. */
type ExtractionPlan =
  | { manifest: FeatureManifest }
  | {
      key: string;
      items: DatasetItem[];
      /** The entries of the shards stored whole, by index; holes where one is missing. */
      shards: ShardEntry[];
      missing: ShardToCompute[];
      reusedShards: number;
      /** Items of the stored shards. */
      done: number;
    };

/** The published manifest of this extraction, else the shards stored whole (hashed) and those missing. */
async function planExtraction(target: ExtractionTarget, backbone: BackboneIdentity): Promise<ExtractionPlan> {
  const { store, dataset, split } = target;
  const dtype = target.dtype ?? 'float32';
  const key = featureCacheKey(dataset, split, backbone, target);
  const existing = await getJson<FeatureManifest>(store, `${key}/manifest.json`);
  if (existing) return { manifest: existing };
  // The shards an extraction that reads every image stored hold what this one would (it skipped none).
  const readingAll = target.skipUnreadable ? featureCacheKey(dataset, split, backbone, { dtype }) : undefined;

  const items = itemsOfSplit(dataset, split);
  if (items.length === 0)
    throw new InputError(`${dataset.root}: dataset '${dataset.name}' has no ${split} images`);
  const shardSize = target.shardSize ?? 256;
  const length = itemSize(backbone.featureShape) * FEATURE_DTYPE_BYTES[dtype];
  const shards: ShardEntry[] = [];
  const missing: ShardToCompute[] = [];
  for (let start = 0, index = 0; start < items.length; start += shardSize, index++) {
    const shardItems = items.slice(start, start + shardSize);
    const name = `shard-${String(index).padStart(5, '0')}.${SHARD_SUFFIX[dtype]}`;
    const shardKey = `${key}/${name}`;
    const whole = (data: Buffer | undefined): data is Buffer => data?.length === shardItems.length * length;
    const data = await store.get(shardKey);
    if (whole(data)) {
      // Only an extraction that skips images stores skipped rows.
      shards[index] = target.skipUnreadable
        ? await storedShard(store, shardKey, data, shardItems.length)
        : shardEntry(shardKey, shardItems.length, sha256(data), []);
      continue;
    }
    const copied = readingAll === undefined ? undefined : await store.get(`${readingAll}/${name}`);
    if (whole(copied)) {
      const hash = sha256(copied);
      await store.put(shardKey, copied, hash);
      shards[index] = shardEntry(shardKey, shardItems.length, hash, []);
    } else missing.push({ index, key: shardKey, items: shardItems });
  }
  const computing = missing.reduce((sum, shard) => sum + shard.items.length, 0);
  return {
    key,
    items,
    shards,
    missing,
    reusedShards: shards.filter(Boolean).length,
    done: items.length - computing,
  };
}

/** The entry of a shard stored whole, with the rows it skipped where its SkippedRows match its bytes. */
async function storedShard(
  store: ArtifactStore,
  key: string,
  data: Buffer,
  rows: number,
): Promise<ShardEntry> {
  const hash = sha256(data);
  const skipped = await getJson<SkippedRows>(store, skippedRowsKey(key));
  return shardEntry(key, rows, hash, skipped?.sha256 === hash ? skipped.rows : []);
}

/** A shard's manifest entry; `rows` is its stored row count, of which `skipped` are left out. */
function shardEntry(key: string, rows: number, sha: string, skipped: SkippedRow[]): ShardEntry {
  return { key, count: rows - skipped.length, sha256: sha, ...(skipped.length > 0 ? { skipped } : {}) };
}

/** A shard being computed: its bytes, in memory the hashing thread reads, are filled batch by batch. */
interface ShardInProgress extends ShardToCompute {
  memory: SharedArrayBuffer;
  filled: number;
  /** Index of its first item among the files computed. */
  firstFile: number;
}

/**
 * Computes `shards` and stores each whole. Their images run as one stream of batches, and each shard is
 * hashed as its batches come (in a thread of its own, Sha256Thread) and stored while the next ones run:
 * at a GPU's rate, a pause at each shard's end to hash and write ~100 MB would leave the device idle.
 * `onBatch` hears of each batch's item count, `onShard` of each shard stored (a failure keeps those: the
 * shard being stored is written whole first).
 */
export async function computeShards(
  options: BatchOptions & {
    store: ArtifactStore;
    dataset: DatasetManifest;
    backbone: Backbone;
    dtype?: FeatureDtype;
    shards: readonly ShardToCompute[];
    skipUnreadable?: boolean;
    onBatch?: (count: number) => void | Promise<void>;
    onShard?: (index: number, entry: ShardEntry) => void;
  },
): Promise<void> {
  const { store, dataset, backbone, shards } = options;
  // The files that could not be decoded, by index among `files`, with why (only when skipping them).
  const unreadable = new Map<number, string>();
  const firstFiles = shardStarts(shards.map((shard) => shard.items.length));
  const dtype = options.dtype ?? 'float32';
  const batchSize = options.batchSize ?? backbone.batchSize ?? DEFAULT_BATCH_SIZE;
  const bytes = FEATURE_DTYPE_BYTES[dtype];
  const size = itemSize(backbone.featureShape);
  const files = shards.flatMap((shard) => shard.items.map((item) => path.join(dataset.root, item.path)));
  let filling: ShardInProgress | undefined;
  let next = 0;
  // One shard stored at a time, while the batches of the next run.
  let storing: Promise<void> = Promise.resolve();
  const preparer = batchPreparer(backbone, options.preprocessThreads ?? DEFAULT_PREPROCESS_THREADS);
  const hasher = Sha256Thread.start();
  // A stored shard's memory is filled again by a later shard: writing into fresh memory costs the first
  // touch of its pages, 14 ms of main thread per 64 ResNet-50 maps against 2 ms (bench/NOTES.md).
  const stored: SharedArrayBuffer[] = [];
  const shardMemory = (length: number) => {
    const reusable = stored.findIndex((memory) => memory.byteLength === length);
    return reusable >= 0 ? stored.splice(reusable, 1)[0]! : new SharedArrayBuffer(length);
  };
  try {
    const prepare = async (batch: readonly string[], first: number) => {
      if (!options.skipUnreadable) return preparer.prepareForExtraction(batch);
      const failed: UnreadableImage[] = [];
      const images = await preparer.prepareForExtraction(batch, failed);
      for (const { index, file, reason } of failed)
        unreadable.set(first + index, new ImageDecodeError(file, reason).message);
      return images;
    };
    for await (const batch of featureBatches(backbone, files, batchSize, prepare)) {
      const count = batch.features.length / size;
      for (let taken = 0; taken < count; ) {
        if (!filling) {
          const shard = shards[next]!;
          const length = shard.items.length * size * bytes;
          filling = { ...shard, memory: shardMemory(length), filled: 0, firstFile: firstFiles[next++]! };
        }
        const shard = filling;
        const take = Math.min(count - taken, shard.items.length - shard.filled);
        const start = shard.filled * size * bytes;
        const out = new Uint8Array(shard.memory, start, take * size * bytes);
        const features = batch.features.subarray(taken * size, (taken + take) * size);
        const bad = encodeFeatures(features, dtype, out);
        if (bad >= 0) throw badFeatureError(files, batch.start + taken, bad, features[bad]!, size);
        hasher.update(shard.index, shard.memory, start, start + out.length);
        shard.filled += take;
        taken += take;
        if (shard.filled === shard.items.length) {
          filling = undefined;
          await storing;
          const skipped = shard.items.flatMap((item, row) => {
            const reason = unreadable.get(shard.firstFile + row);
            return reason === undefined ? [] : [{ row, path: item.path, reason }];
          });
          storing = hasher.digest(shard.index).then(async (sha256) => {
            // The rows first: a shard stored without them would pass its blank images' rows off as images.
            if (skipped.length > 0)
              await putJson(store, skippedRowsKey(shard.key), {
                sha256,
                rows: skipped,
              } satisfies SkippedRows);
            await store.put(shard.key, Buffer.from(shard.memory), sha256);
            stored.push(shard.memory);
            options.onShard?.(shard.index, shardEntry(shard.key, shard.items.length, sha256, skipped));
          });
          storing.catch(() => undefined); // awaited before the next shard is stored, and at the end
        }
      }
      await options.onBatch?.(count);
    }
    await storing;
  } finally {
    await storing.catch(() => undefined);
    await preparer.close();
    hasher.close();
  }
}

/** Writes the manifest of a split whose shards are all stored, which publishes the set to the cache. */
async function publishFeatures(
  target: ExtractionTarget,
  backbone: BackboneIdentity,
  key: string,
  items: readonly DatasetItem[],
  shards: ShardEntry[],
  compute: ComputeRecord,
): Promise<FeatureManifest> {
  const skipped = new Set(skippedImages({ shards }).map((image) => image.path));
  const kept = items.filter((item) => !skipped.has(item.path));
  const manifest: FeatureManifest = {
    version: 1,
    key,
    dataset: target.dataset.name,
    split: target.split,
    backbone: backbone.name,
    backboneFingerprint: backbone.fingerprint,
    shape: backbone.featureShape,
    classCount: target.dataset.classes.length,
    count: kept.length,
    labels: kept.map((item) => item.label),
    items: kept.map((item) => item.path),
    shards,
    dtype: target.dtype ?? 'float32',
    compute,
  };
  await putJson(target.store, `${key}/manifest.json`, manifest);
  return manifest;
}

/** How the shards computed are heard of: each batch's item count, each shard stored with its entry. */
export interface ShardReports {
  batch(count: number): Promise<void>;
  shard(index: number, entry: ShardEntry): void;
}

/**
 * An extraction around `compute`, which stores the missing shards: plans it, reports progress, and
 * publishes the manifest once every shard is stored; or the manifest already published.
 */
export async function runExtraction(
  target: ExtractionTarget & { onProgress?: ExtractionOptions['onProgress'] },
  backbone: BackboneIdentity,
  compute: (missing: ShardToCompute[], reports: ShardReports) => Promise<unknown>,
): Promise<ExtractionResult> {
  const plan = await planExtraction(target, backbone);
  if ('manifest' in plan)
    return { manifest: plan.manifest, reused: true, reusedShards: plan.manifest.shards.length };
  const total = plan.items.length;
  const { reusedShards } = plan;
  let done = plan.done;
  await target.onProgress?.({ done, total, reusedShards });
  const started = performance.now();
  await compute(plan.missing, {
    async batch(count) {
      done += count;
      await target.onProgress?.({ done, total, reusedShards });
    },
    shard(index, entry) {
      plan.shards[index] = entry;
    },
  });
  const record = computeRecord(backbone.runtime, (performance.now() - started) / 1000, total - plan.done);
  const manifest = await publishFeatures(target, backbone, plan.key, plan.items, plan.shards, record);
  return { manifest, reused: false, reusedShards };
}

/**
 * Extracts one split's features into the store, shard by shard. Each shard is written whole, so an
 * interrupted extraction resumes with the shards missing; the manifest is written last, which is what
 * publishes the set to the cache.
 */
export function extractFeatures(options: ExtractionOptions): Promise<ExtractionResult> {
  return runExtraction(options, options.backbone, (missing, reports) =>
    computeShards({ ...options, shards: missing, onBatch: reports.batch, onShard: reports.shard }),
  );
}

/**
 * A stored feature set. Its manifest is checked when it is opened (checkManifest), and each shard as it
 * is read: checksum, byte length, finite values (checkShardData), so bad features fail before they reach
 * a head, with an error naming the shard.
 */
export class StoredFeatureSet implements FeatureSet {
  readonly labels: Int32Array;
  readonly shardSizes: number[];
  private readonly shardStarts: number[];
  /** The manifest's shards that hold items (one whose every image was skipped holds none). */
  private readonly shards: FeatureManifest['shards'];

  private constructor(
    private readonly store: ArtifactStore,
    readonly manifest: FeatureManifest,
  ) {
    this.labels = Int32Array.from(manifest.labels);
    this.shards = manifest.shards.filter((shard) => shard.count > 0);
    this.shardSizes = this.shards.map((shard) => shard.count);
    this.shardStarts = shardStarts(this.shardSizes);
  }

  static async open(store: ArtifactStore, key: string): Promise<StoredFeatureSet> {
    const manifest = await getJson<FeatureManifest>(store, `${key}/manifest.json`);
    if (!manifest) throw new Error(`no feature set at '${key}' in ${store.location} (extract it first)`);
    checkManifest(manifest);
    return new StoredFeatureSet(store, manifest);
  }

  get name(): string {
    return this.manifest.key;
  }

  get shape(): FeatureShape {
    return this.manifest.shape;
  }

  get classCount(): number {
    return this.manifest.classCount;
  }

  async readShard(index: number): Promise<Float32Array> {
    const shard = this.shards[index];
    if (!shard) throw new Error(`feature set '${this.manifest.key}' has no shard ${index}`);
    const data = await getRequired(this.store, shard.key);
    if (sha256(data) !== shard.sha256)
      throw new InputError(
        `${this.store.location}/${shard.key}: feature shard damaged (its SHA-256 is not the manifest's): delete the feature set ${this.store.location}/${this.manifest.key} and run again to extract it anew`,
      );
    const rows = shard.count + (shard.skipped?.length ?? 0);
    return checkShardData(
      this,
      { index, key: shard.key, count: shard.count, rows, firstItem: this.shardStarts[index]! },
      this.manifest.dtype,
      data.byteLength,
      () => withoutRows(decodeShard(data, this.manifest.dtype), itemSize(this.shape), shard.skipped),
    );
  }

  shardKey(index: number): string {
    return this.shards[index]?.key ?? `shard ${index}`;
  }

  itemName(index: number): string {
    return this.manifest.items[index] ?? `item ${index}`;
  }
}
