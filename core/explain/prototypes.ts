import type { Backbone } from '../backbones/backbone';
import type { Box } from '../data/dataset';
import {
  type CropGeometry,
  cropBoxToImage,
  cropGeometry,
  featureCellToImage,
  PRESETS,
  type PreprocessPreset,
} from '../data/preprocess';
import type { FeatureSet, FeatureShape } from '../features/feature-set';
import { itemSize } from '../features/feature-set';
import type { ChannelPooling } from './models';

/** One training image's evidence for a channel: its pooled value and the feature cell of the peak. */
export interface PrototypeCell {
  /** Storage index of the image in the training feature set. */
  item: number;
  /** p_c of the image (> 0). */
  value: number;
  /** Flat index (row * W + col) of the channel's argmax pixel. */
  pixel: number;
}

export interface LocatedPrototype extends PrototypeCell {
  row: number;
  col: number;
  /** The argmax cell in original image coordinates. */
  box: Box;
}

export interface ChannelPrototypes<P extends PrototypeCell = PrototypeCell> {
  channel: number;
  /** At most `count` images, by descending value (lower storage index first on ties). */
  prototypes: P[];
}

/**
 * The `k` best (value, item, pixel) entries of every channel: one min-heap of fixed capacity per channel,
 * so memory is O(C k) however many images stream through. An entry is better when its value is larger,
 * or equal and its item index smaller, which is the order a full sort would give.
 */
export class TopPrototypes {
  private readonly values: Float64Array;
  private readonly items: Int32Array;
  private readonly pixels: Int32Array;
  private readonly sizes: Int32Array;

  constructor(
    readonly channels: number,
    readonly k = 5,
  ) {
    if (!(Number.isInteger(k) && k > 0))
      throw new Error(`prototype count must be a positive integer, got ${k}`);
    this.values = new Float64Array(channels * k);
    this.items = new Int32Array(channels * k);
    this.pixels = new Int32Array(channels * k);
    this.sizes = new Int32Array(channels);
  }

  /** a worse than b (the heap keeps the worst entry at the root). */
  private worse(a: number, b: number): boolean {
    const va = this.values[a]!;
    const vb = this.values[b]!;
    return va < vb || (va === vb && this.items[a]! > this.items[b]!);
  }

  private swap(a: number, b: number): void {
    for (const array of [this.values, this.items, this.pixels]) {
      const t = array[a]!;
      array[a] = array[b]!;
      array[b] = t;
    }
  }

  offer(channel: number, value: number, item: number, pixel: number): void {
    if (!(value > 0)) return;
    const base = channel * this.k;
    const size = this.sizes[channel]!;
    if (size < this.k) {
      // Sift up from the new leaf.
      let at = size;
      this.values[base + at] = value;
      this.items[base + at] = item;
      this.pixels[base + at] = pixel;
      this.sizes[channel] = size + 1;
      while (at > 0) {
        const parent = (at - 1) >> 1;
        if (!this.worse(base + at, base + parent)) break;
        this.swap(base + at, base + parent);
        at = parent;
      }
      return;
    }
    const root = this.values[base]!;
    if (value < root || (value === root && item > this.items[base]!)) return;
    this.values[base] = value;
    this.items[base] = item;
    this.pixels[base] = pixel;
    // Sift down from the root.
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= this.k) break;
      const right = left + 1;
      const child = right < this.k && this.worse(base + right, base + left) ? right : left;
      if (!this.worse(base + child, base + at)) break;
      this.swap(base + child, base + at);
      at = child;
    }
  }

  /** Adds a pooled batch whose first image has storage index `firstItem`. */
  addPooling(pooling: ChannelPooling, firstItem: number): void {
    const { n, channels, pooled, argmax } = pooling;
    if (channels !== this.channels)
      throw new Error(`pooling has ${channels} channels, expected ${this.channels}`);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++)
        this.offer(c, pooled[i * channels + c]!, firstItem + i, argmax[i * channels + c]!);
    }
  }

  result(): ChannelPrototypes[] {
    return Array.from({ length: this.channels }, (_, channel) => {
      const base = channel * this.k;
      const prototypes = Array.from({ length: this.sizes[channel]! }, (_, j) => ({
        item: this.items[base + j]!,
        value: this.values[base + j]!,
        pixel: this.pixels[base + j]!,
      }));
      prototypes.sort((a, b) => b.value - a.value || a.item - b.item);
      return { channel, prototypes };
    });
  }
}

/**
 * Prototypes of every channel (SPEC section 1): the `count` training images with the largest positive
 * p_c, with the argmax pixel. Streams the set shard by shard in batches of `batchSize` through `pool`,
 * so at most one shard and C x count entries are held.
 */
export async function findPrototypes(
  set: FeatureSet,
  pool: (maps: Float32Array) => Promise<ChannelPooling>,
  options: { count?: number; batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<ChannelPrototypes[]> {
  const top = new TopPrototypes(set.shape.channels, options.count ?? 5);
  for await (const { maps, first, n } of storageBatches(set, options.batchSize ?? 64)) {
    top.addPooling(await pool(maps), first);
    options.onProgress?.(first + n, set.labels.length);
  }
  return top.result();
}

/** A set's items in storage order, in batches of at most `batchSize` cut within shards (one shard held). */
export async function* storageBatches(
  set: FeatureSet,
  batchSize: number,
): AsyncGenerator<{ maps: Float32Array; first: number; n: number }> {
  const size = itemSize(set.shape);
  let start = 0;
  for (const [index, count] of set.shardSizes.entries()) {
    const shard = await set.readShard(index);
    for (let b = 0; b < count; b += batchSize) {
      const n = Math.min(batchSize, count - b);
      yield { maps: shard.subarray(b * size, (b + n) * size), first: start + b, n };
    }
    start += count;
  }
}

/**
 * The geometry a backbone's inputs were cut with, which maps its feature cells back to image pixels: its
 * torchvision preset, or (none given) the whole image stretched to inputSize x inputSize (`loadImage`).
 */
export function backbonePreset(backbone: Pick<Backbone, 'preset' | 'inputSize'>): PreprocessPreset {
  if (backbone.preset) return PRESETS[backbone.preset];
  return { ...PRESETS.mobilenet_v2_tfjs, resizeTo: backbone.inputSize, cropSize: backbone.inputSize };
}

/**
 * The image region of feature cell `pixel`: the cell itself (`side` undefined), or a square of `side`
 * crop pixels centred on the cell (e.g. 72 for Huang et al.'s consistency), clipped to the crop and
 * mapped to original image coordinates.
 */
export function cellBox(
  geometry: CropGeometry,
  grid: Pick<FeatureShape, 'height' | 'width'>,
  pixel: number,
  side?: number,
): Box {
  const row = Math.floor(pixel / grid.width);
  const col = pixel % grid.width;
  if (side === undefined) return featureCellToImage(geometry, grid, row, col);
  const cx = ((col + 0.5) * geometry.cropSize) / grid.width;
  const cy = ((row + 0.5) * geometry.cropSize) / grid.height;
  const clip = (v: number) => Math.min(geometry.cropSize, Math.max(0, v));
  return cropBoxToImage(geometry, {
    x0: clip(cx - side / 2),
    y0: clip(cy - side / 2),
    x1: clip(cx + side / 2),
    y1: clip(cy + side / 2),
  });
}

/**
 * Maps every prototype's argmax cell to a box in its original image. `preset` is the backbone's
 * preprocessing (e.g. PRESETS.mobilenet_v2_tfjs: the image stretched to 224, so a 7x7 cell is a 32 px
 * square scaled back to the image); `sizeOf` gives an item's original size.
 */
export function locatePrototypes(
  prototypes: readonly ChannelPrototypes[],
  grid: Pick<FeatureShape, 'height' | 'width'>,
  preset: PreprocessPreset,
  sizeOf: (item: number) => { width: number; height: number },
): ChannelPrototypes<LocatedPrototype>[] {
  return prototypes.map(({ channel, prototypes: cells }) => ({
    channel,
    prototypes: cells.map((cell) => {
      const { width, height } = sizeOf(cell.item);
      return {
        ...cell,
        row: Math.floor(cell.pixel / grid.width),
        col: cell.pixel % grid.width,
        box: cellBox(cropGeometry(width, height, preset), grid, cell.pixel),
      };
    }),
  }));
}
