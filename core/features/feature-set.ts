import { SeededRandom } from '../util/random';

/** Geometry of a backbone's last feature map: H x W pixels of C channels, stored HWC (channels innermost). */
export interface FeatureShape {
  height: number;
  width: number;
  channels: number;
}

/**
 * How shard values are stored. float16 halves storage and reads (relative error at most 2^-11 for
 * |v| in [6.1e-5, 65504]); readers always get float32.
 */
export const FEATURE_DTYPES = ['float32', 'float16'] as const;
export type FeatureDtype = (typeof FEATURE_DTYPES)[number];
export const FEATURE_DTYPE_BYTES: Record<FeatureDtype, number> = { float32: 4, float16: 2 };

/**
 * Features of one dataset split, stored as shards that are read one at a time,
 * so a set larger than memory can be trained on and analysed.
 */
export interface FeatureSet {
  /** For messages: the set's store key. */
  readonly name: string;
  readonly shape: FeatureShape;
  readonly classCount: number;
  /** Label of every item, in storage order. */
  readonly labels: Int32Array;
  /** Item count of each shard, in storage order. */
  readonly shardSizes: readonly number[];
  /** The shard's maps, [n, H, W, C] row-major. */
  readShard(index: number): Promise<Float32Array>;
  /** For messages: where a shard is stored, and what an item is (its image path). */
  shardKey(index: number): string;
  itemName(index: number): string;
}

export function pixelsOf(shape: FeatureShape): number {
  return shape.height * shape.width;
}

export function itemSize(shape: FeatureShape): number {
  return shape.height * shape.width * shape.channels;
}

/** Storage index of each shard's first item. */
export function shardStarts(shardSizes: readonly number[]): number[] {
  const starts: number[] = [];
  let offset = 0;
  for (const n of shardSizes) {
    starts.push(offset);
    offset += n;
  }
  return starts;
}

/** A feature set held in memory as one shard per `shardSize` items: for tests and small runs. */
export class InMemoryFeatureSet implements FeatureSet {
  readonly name = 'in-memory';
  readonly shardSizes: number[];

  constructor(
    readonly shape: FeatureShape,
    readonly classCount: number,
    readonly labels: Int32Array,
    private readonly maps: Float32Array,
    shardSize = labels.length,
  ) {
    if (maps.length !== labels.length * itemSize(shape)) {
      throw new Error(
        `feature maps hold ${maps.length} values, expected ${labels.length} x ${itemSize(shape)}`,
      );
    }
    this.shardSizes = [];
    for (let start = 0; start < labels.length; start += shardSize) {
      this.shardSizes.push(Math.min(shardSize, labels.length - start));
    }
  }

  async readShard(index: number): Promise<Float32Array> {
    const start = this.shardSizes.slice(0, index).reduce((a, b) => a + b, 0);
    const size = itemSize(this.shape);
    return this.maps.subarray(start * size, (start + this.shardSizes[index]!) * size);
  }

  shardKey(index: number): string {
    return `memory shard ${index}`;
  }

  itemName(index: number): string {
    return `item ${index}`;
  }
}

export interface Batch {
  /** [n, H, W, C] row-major. */
  maps: Float32Array;
  labels: Int32Array;
  /** Storage-order indices of the items, for bookkeeping (prototypes, explanations). */
  indices: Int32Array;
}

/**
 * Yields batches in a seeded order: shards in a shuffled order, items shuffled within each shard
 * (at most one shard in memory). `include` filters items by storage index (e.g. a validation split).
 * The same seed gives the same batches, which is what makes a resumed run equal an uninterrupted one.
 */
export async function* iterateBatches(
  set: FeatureSet,
  batchSize: number,
  options: { seed?: number; include?: (index: number) => boolean; dropLast?: boolean } = {},
): AsyncGenerator<Batch> {
  const size = itemSize(set.shape);
  const random = options.seed === undefined ? undefined : new SeededRandom(options.seed);
  const starts = shardStarts(set.shardSizes);
  const shardOrder = set.shardSizes.map((_, i) => i);
  const orderedShards = random ? random.shuffle(shardOrder) : shardOrder;

  let maps = new Float32Array(batchSize * size);
  let labels = new Int32Array(batchSize);
  let indices = new Int32Array(batchSize);
  let filled = 0;
  for (const shard of orderedShards) {
    const start = starts[shard]!;
    const local = [...Array(set.shardSizes[shard]!).keys()].filter(
      (i) => options.include?.(start + i) ?? true,
    );
    if (local.length === 0) continue;
    const data = await set.readShard(shard);
    for (const i of random ? random.shuffle(local) : local) {
      maps.set(data.subarray(i * size, (i + 1) * size), filled * size);
      labels[filled] = set.labels[start + i]!;
      indices[filled] = start + i;
      filled++;
      if (filled === batchSize) {
        yield { maps, labels, indices };
        maps = new Float32Array(batchSize * size);
        labels = new Int32Array(batchSize);
        indices = new Int32Array(batchSize);
        filled = 0;
      }
    }
  }
  if (filled > 0 && !options.dropLast) {
    yield {
      maps: maps.subarray(0, filled * size),
      labels: labels.subarray(0, filled),
      indices: indices.subarray(0, filled),
    };
  }
}
