import path from 'node:path';
import sharp from 'sharp';
import type { Backbone } from '../backbones/backbone';
import type { DatasetManifest, Split } from '../data/dataset';
import { itemsOfSplit } from '../data/dataset';
import { preprocessImage } from '../data/preprocess';
import { type ArtifactStore, getJson, getRequired, putJson } from '../store/artifact-store';
import { contentKey, sha256 } from '../util/hash';
import { type FeatureSet, type FeatureShape, itemSize, shardStarts } from './feature-set';
import { checkManifest, checkShardData } from './feature-validation';

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
  shards: { key: string; count: number; sha256: string }[];
  dtype: 'float32';
}

/**
 * The cache address of one split's features: a hash of the split's file list and labels, the backbone's
 * weights and its preprocessing. Any change to these re-extracts; nothing else does.
 */
export function featureCacheKey(dataset: DatasetManifest, split: Split, backbone: Backbone): string {
  const items = itemsOfSplit(dataset, split).map((item) => [item.path, item.label]);
  return `features/${backbone.name}/${contentKey({
    files: sha256(JSON.stringify(items)),
    classes: dataset.classes.length,
    backbone: backbone.fingerprint,
    preprocessing: backbone.preprocessing,
    // Undefined for backbones without a preset, so their keys are what they were before presets.
    preset: backbone.preset,
  })}`;
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
    throw new Error(`cannot decode image ${file}: ${(error as Error).message}`);
  }
  if (pixels.length !== size * size * 3)
    throw new Error(`image ${file} did not decode to ${size}x${size} RGB`);
  return Float32Array.from(pixels, (v) => v / 255);
}

/** One image as `backbone.extract` takes it: its preset's transform where it has one, else `loadImage`. */
export async function prepareImage(backbone: Backbone, file: string): Promise<Float32Array> {
  if (!backbone.preset) return loadImage(file, backbone.inputSize);
  const image = await preprocessImage(file, backbone.preset);
  if (image.width !== backbone.inputSize || image.height !== backbone.inputSize)
    throw new Error(
      `preset '${backbone.preset}' crops ${image.width} px but backbone '${backbone.name}' takes ${backbone.inputSize} px`,
    );
  return image.data;
}

/**
 * Features [n, H, W, C] of image files, each prepared as extraction prepares it (`prepareImage`) and run
 * through the backbone as one batch. `perturb` may alter a prepared input first (stability's noise); a
 * non-finite feature names its file.
 */
export async function extractImageFiles(
  backbone: Backbone,
  files: readonly string[],
  perturb?: (input: Float32Array, index: number) => Float32Array,
): Promise<Float32Array> {
  const pixels = backbone.inputSize * backbone.inputSize * 3;
  const images = new Float32Array(files.length * pixels);
  const prepared = await Promise.all(files.map((file) => prepareImage(backbone, file)));
  prepared.forEach((image, i) => {
    images.set(perturb ? perturb(image, i) : image, i * pixels);
  });
  const output = await backbone.extract(images, files.length);
  const bad = output.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0)
    throw new Error(
      `backbone produced a non-finite feature for ${files[Math.floor(bad / itemSize(backbone.featureShape))]}`,
    );
  return output;
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
 * Extracts one split's features into the store, shard by shard. Each shard is written whole, so an
 * interrupted extraction resumes at the first missing shard; the manifest is written last, which is
 * what publishes the set to the cache.
 */
export async function extractFeatures(options: {
  store: ArtifactStore;
  dataset: DatasetManifest;
  split: Split;
  backbone: Backbone;
  shardSize?: number;
  batchSize?: number;
  onProgress?: (progress: ExtractionProgress) => void | Promise<void>;
}): Promise<ExtractionResult> {
  const { store, dataset, split, backbone } = options;
  const key = featureCacheKey(dataset, split, backbone);
  const existing = await getJson<FeatureManifest>(store, `${key}/manifest.json`);
  if (existing) return { manifest: existing, reused: true, reusedShards: existing.shards.length };

  const items = itemsOfSplit(dataset, split);
  if (items.length === 0) throw new Error(`dataset '${dataset.name}' has no ${split} items`);
  const shardSize = options.shardSize ?? 256;
  const batchSize = options.batchSize ?? 16;
  const size = itemSize(backbone.featureShape);
  const shards: FeatureManifest['shards'] = [];
  let reusedShards = 0;
  let done = 0;
  for (let start = 0, index = 0; start < items.length; start += shardSize, index++) {
    const shardItems = items.slice(start, start + shardSize);
    const shardKey = `${key}/shard-${String(index).padStart(5, '0')}.f32`;
    let data = await store.get(shardKey);
    if (data && data.length === shardItems.length * size * 4) {
      reusedShards += 1;
    } else {
      const features = new Float32Array(shardItems.length * size);
      for (let b = 0; b < shardItems.length; b += batchSize) {
        const batch = shardItems.slice(b, b + batchSize);
        const output = await extractImageFiles(
          backbone,
          batch.map((item) => path.join(dataset.root, item.path)),
        );
        features.set(output, b * size);
        await options.onProgress?.({ done: done + b + batch.length, total: items.length, reusedShards });
      }
      data = Buffer.from(features.buffer, features.byteOffset, features.byteLength);
      await store.put(shardKey, data);
    }
    shards.push({ key: shardKey, count: shardItems.length, sha256: sha256(data) });
    done += shardItems.length;
    await options.onProgress?.({ done, total: items.length, reusedShards });
  }
  const manifest: FeatureManifest = {
    version: 1,
    key,
    dataset: dataset.name,
    split,
    backbone: backbone.name,
    backboneFingerprint: backbone.fingerprint,
    shape: backbone.featureShape,
    classCount: dataset.classes.length,
    count: items.length,
    labels: items.map((item) => item.label),
    items: items.map((item) => item.path),
    shards,
    dtype: 'float32',
  };
  await putJson(store, `${key}/manifest.json`, manifest);
  return { manifest, reused: false, reusedShards };
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

  private constructor(
    private readonly store: ArtifactStore,
    readonly manifest: FeatureManifest,
  ) {
    this.labels = Int32Array.from(manifest.labels);
    this.shardSizes = manifest.shards.map((shard) => shard.count);
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
    const shard = this.manifest.shards[index];
    if (!shard) throw new Error(`feature set '${this.manifest.key}' has no shard ${index}`);
    const data = await getRequired(this.store, shard.key);
    if (sha256(data) !== shard.sha256)
      throw new Error(`feature shard '${shard.key}' is corrupt (checksum mismatch)`);
    return checkShardData(
      this,
      { index, key: shard.key, count: shard.count, firstItem: this.shardStarts[index]! },
      data.byteLength,
      () => new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
    );
  }

  shardKey(index: number): string {
    return this.manifest.shards[index]?.key ?? `shard ${index}`;
  }

  itemName(index: number): string {
    return this.manifest.items[index] ?? `item ${index}`;
  }
}
