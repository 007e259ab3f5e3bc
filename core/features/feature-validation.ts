import { InputError } from '../util/errors';
import { firstNonFinite } from '../util/finite';
import {
  FEATURE_DTYPE_BYTES,
  FEATURE_DTYPES,
  type FeatureDtype,
  type FeatureSet,
  type FeatureShape,
  itemSize,
} from './feature-set';
import type { FeatureManifest } from './feature-store';

/** Where in a feature set a problem lies: the shard (index and store key) and the item when known. */
export interface FeatureLocation {
  shard?: { index: number; key: string };
  item?: { index: number; name: string };
}

/**
 * Bad features for training or evaluation: a map geometry or class count that disagrees with the head,
 * a non-finite value, a label outside the class range, an empty split, a manifest that contradicts
 * itself or its shards. The message names the set, the shard, the field and the value.
 */
export class FeatureInputError extends InputError {
  constructor(
    readonly featureSet: string,
    readonly location: FeatureLocation,
    readonly field: string,
    readonly value: unknown,
    reason: string,
  ) {
    const where = [
      location.shard ? `shard ${location.shard.index} ('${location.shard.key}')` : '',
      location.item ? `item ${location.item.index} ('${location.item.name}')` : '',
    ].filter(Boolean);
    super(
      `feature set '${featureSet}'${where.length ? `, ${where.join(', ')}` : ''}: ${field} = ${String(value)} ${reason}`,
    );
    this.name = 'FeatureInputError';
  }
}

export function describeShape(shape: FeatureShape): string {
  return `${shape.height}x${shape.width}x${shape.channels}`;
}

/** Storage index of the shard holding each item, from the shards' item counts. */
function shardOfItem(shardSizes: readonly number[], item: number): number {
  let end = 0;
  for (const [index, size] of shardSizes.entries()) {
    end += size;
    if (item < end) return index;
  }
  return shardSizes.length - 1;
}

/**
 * The set's maps and labels fit a head: the same H x W x C geometry and class count, every label a class.
 * Runs before training or evaluation reads any shard.
 */
export function checkSetFitsHead(set: FeatureSet, head: { shape: FeatureShape; classCount: number }): void {
  for (const field of ['height', 'width', 'channels'] as const) {
    if (set.shape[field] !== head.shape[field])
      throw new FeatureInputError(
        set.name,
        {},
        `shape.${field}`,
        set.shape[field],
        `but the head takes ${describeShape(head.shape)} maps (${field} ${head.shape[field]}); the set's maps are ${describeShape(set.shape)}`,
      );
  }
  if (set.classCount !== head.classCount)
    throw new FeatureInputError(
      set.name,
      {},
      'classCount',
      set.classCount,
      `but the head has ${head.classCount} classes`,
    );
  checkLabels(set.name, set.labels, head.classCount, (item) => {
    const shard = shardOfItem(set.shardSizes, item);
    return {
      shard: { index: shard, key: set.shardKey(shard) },
      item: { index: item, name: set.itemName(item) },
    };
  });
}

export function checkLabels(
  setName: string,
  labels: ArrayLike<number>,
  classCount: number,
  locate: (item: number) => FeatureLocation,
): void {
  for (let item = 0; item < labels.length; item++) {
    const label = labels[item]!;
    if (!(Number.isInteger(label) && label >= 0 && label < classCount))
      throw new FeatureInputError(
        setName,
        locate(item),
        `labels[${item}]`,
        label,
        `is outside the class range 0..${classCount - 1}`,
      );
  }
}

/**
 * One shard's values as read: the byte length its rows (its items, and the rows of images skipped, where
 * `rows` counts them) and the map geometry imply, and every value of `data` (its items') finite.
 * `firstItem` is the storage index of the shard's first item.
 */
export function checkShardData(
  set: Pick<FeatureSet, 'name' | 'shape' | 'itemName'>,
  shard: { index: number; key: string; count: number; rows?: number; firstItem: number },
  dtype: FeatureDtype,
  byteLength: number,
  data: () => Float32Array,
): Float32Array {
  const location = { shard: { index: shard.index, key: shard.key } };
  const rows = shard.rows ?? shard.count;
  const expected = rows * itemSize(set.shape) * FEATURE_DTYPE_BYTES[dtype];
  if (byteLength !== expected)
    throw new FeatureInputError(
      set.name,
      location,
      'byte length',
      byteLength,
      `but the manifest's ${rows} items of ${describeShape(set.shape)} ${dtype} maps take ${expected} bytes`,
    );
  const values = data();
  const i = firstNonFinite(values);
  if (i >= 0) {
    const size = itemSize(set.shape);
    const within = i % size;
    const channel = within % set.shape.channels;
    const pixel = Math.floor(within / set.shape.channels);
    const item = shard.firstItem + Math.floor(i / size);
    throw new FeatureInputError(
      set.name,
      { ...location, item: { index: item, name: set.itemName(item) } },
      `value at pixel (${Math.floor(pixel / set.shape.width)}, ${pixel % set.shape.width}), channel ${channel}`,
      values[i],
      'is not finite',
    );
  }
  return values;
}

function isPositiveInteger(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) > 0;
}

/**
 * Everything a stored set's manifest must satisfy before a shard is read: a known dtype, a map geometry of
 * positive integers, item counts that add up, one label and one item name per item, every label a class.
 */
export function checkManifest(manifest: FeatureManifest): void {
  const fail = (field: string, value: unknown, reason: string, location: FeatureLocation = {}) => {
    throw new FeatureInputError(manifest.key, location, field, JSON.stringify(value), reason);
  };
  if (!FEATURE_DTYPES.includes(manifest.dtype))
    fail('dtype', manifest.dtype, `is not one of ${FEATURE_DTYPES.join(', ')}`);
  for (const field of ['height', 'width', 'channels'] as const) {
    if (!isPositiveInteger(manifest.shape?.[field]))
      fail(`shape.${field}`, manifest.shape?.[field], 'is not a positive integer');
  }
  if (!isPositiveInteger(manifest.classCount))
    fail('classCount', manifest.classCount, 'is not a positive integer');
  manifest.shards.forEach((shard, index) => {
    // A shard whose every image was skipped holds no item.
    const skipped = shard.skipped?.length ?? 0;
    if (!(Number.isInteger(shard.count) && shard.count >= 0 && shard.count + skipped > 0))
      fail('count', shard.count, 'is not a positive integer', { shard: { index, key: shard.key } });
  });
  const total = manifest.shards.reduce((sum, shard) => sum + shard.count, 0);
  if (manifest.count !== total) fail('count', manifest.count, `but the shards hold ${total} items`);
  if (manifest.labels.length !== total)
    fail('labels.length', manifest.labels.length, `but the shards hold ${total} items`);
  if (manifest.items.length !== total)
    fail('items.length', manifest.items.length, `but the shards hold ${total} items`);
  const shardSizes = manifest.shards.map((shard) => shard.count);
  checkLabels(manifest.key, manifest.labels, manifest.classCount, (item) => {
    const index = shardOfItem(shardSizes, item);
    return {
      shard: { index, key: manifest.shards[index]!.key },
      item: { index: item, name: manifest.items[item]! },
    };
  });
}
