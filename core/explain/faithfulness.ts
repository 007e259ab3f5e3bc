import path from 'node:path';
import sharp from 'sharp';
import type { Box, DatasetManifest, Split } from '../data/dataset';
import { itemsOfSplit } from '../data/dataset';
import { type CropGeometry, cropGeometry, type PreprocessPreset } from '../data/preprocess';
import type { FeatureShape } from '../features/feature-set';
import { SeededRandom } from '../util/random';
import { heatmapPeak } from './maps';
import { type ChannelPrototypes, cellBox, type LocatedPrototype } from './prototypes';

/**
 * Ground truth for SPEC section 6. A part is a box in original image coordinates; an annotated keypoint
 * (CUB) is a zero-area box at the point. Only visible keypoints are kept.
 */
export interface AnnotatedPart {
  part: string;
  box: Box;
  /** Clutter that is not evidence for the image's class (generated datasets): ignored by the pointing game. */
  distractor?: boolean;
}

export interface AnnotatedImage {
  /** Storage index in the split's feature set. */
  item: number;
  /** Path relative to the dataset root. */
  path: string;
  label: number;
  width: number;
  height: number;
  parts: AnnotatedPart[];
}

/**
 * The split's items in storage order with their original sizes (read from the image headers) and
 * their part boxes or visible keypoints; without those its extraction `skipped`, as its features are.
 */
export async function annotatedImages(
  manifest: DatasetManifest,
  split: Split,
  skipped: readonly { path: string }[] = [],
): Promise<AnnotatedImage[]> {
  const left = new Set(skipped.map((image) => image.path));
  const items = itemsOfSplit(manifest, split).filter((item) => !left.has(item.path));
  const sizes = await Promise.all(
    items.map(async (item) => {
      const file = path.join(manifest.root, item.path);
      const { width, height } = await sharp(file).metadata();
      if (!width || !height) throw new Error(`cannot read the size of ${file}`);
      return { width, height };
    }),
  );
  return items.map((item, index) => ({
    item: index,
    path: item.path,
    label: item.label,
    ...sizes[index]!,
    parts: [
      ...(item.parts ?? []).map(({ part, distractor, ...box }) => ({
        part,
        box,
        ...(distractor ? { distractor } : {}),
      })),
      ...(item.keypoints ?? [])
        .filter((point) => point.visible)
        .map((point) => ({ part: point.part, box: { x0: point.x, y0: point.y, x1: point.x, y1: point.y } })),
    ],
  }));
}

function area(box: Box): number {
  return Math.max(0, box.x1 - box.x0) * Math.max(0, box.y1 - box.y0);
}

/**
 * Whether a region (prototype box) shows a part: a keypoint must lie inside the region; a part box must
 * overlap it by at least `minOverlap` of the smaller of the two areas (so a region inside the part, or
 * the part inside the region, both count).
 */
export function regionHitsPart(region: Box, part: Box, minOverlap = 0.5): boolean {
  const partArea = area(part);
  if (partArea === 0)
    return part.x0 >= region.x0 && part.x0 <= region.x1 && part.y0 >= region.y0 && part.y0 <= region.y1;
  const w = Math.min(region.x1, part.x1) - Math.max(region.x0, part.x0);
  const h = Math.min(region.y1, part.y1) - Math.max(region.y0, part.y0);
  if (w <= 0 || h <= 0) return false;
  return w * h >= minOverlap * Math.min(area(region), partArea);
}

/** Whether a point lies within `tolerance` pixels of a part box (or keypoint). */
export function pointHitsPart(x: number, y: number, part: Box, tolerance = 0): boolean {
  const dx = Math.max(part.x0 - x, 0, x - part.x1);
  const dy = Math.max(part.y0 - y, 0, y - part.y1);
  return dx * dx + dy * dy <= tolerance * tolerance;
}

// ------------------------------------------------------------------------------------------- purity

export interface ChannelPurity {
  channel: number;
  /** Largest share of the channel's prototypes that show one same part. */
  purity: number;
  /** That part (first in name order on ties), or null when no prototype shows any part. */
  part: string | null;
  prototypes: number;
}

export interface PuritySummary {
  /** Channels evaluated: those with at least `minPrototypes` prototypes (and in the requested subset). */
  channels: number;
  mean: number;
  /** Channels with purity > 0.5. */
  pure: number;
}

export interface PurityResult extends PuritySummary {
  perChannel: ChannelPurity[];
}

/**
 * PIP-Net's purity, per channel: the largest fraction of its prototype boxes that show the same
 * annotated part (regionHitsPart). `imageOf` gives the annotation of a training item.
 */
export function prototypePurity(
  prototypes: readonly ChannelPrototypes<LocatedPrototype>[],
  imageOf: (item: number) => AnnotatedImage,
  options: { minOverlap?: number; minPrototypes?: number } = {},
): PurityResult {
  const minPrototypes = options.minPrototypes ?? 1;
  const perChannel: ChannelPurity[] = [];
  for (const { channel, prototypes: list } of prototypes) {
    if (list.length < minPrototypes || list.length === 0) continue;
    const counts = new Map<string, number>();
    for (const prototype of list) {
      const hit = new Set(
        imageOf(prototype.item)
          .parts.filter((part) => regionHitsPart(prototype.box, part.box, options.minOverlap))
          .map((part) => part.part),
      );
      for (const part of hit) counts.set(part, (counts.get(part) ?? 0) + 1);
    }
    let best: string | null = null;
    for (const [part, count] of [...counts].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (best === null || count > counts.get(best)!) best = part;
    }
    perChannel.push({
      channel,
      purity: best === null ? 0 : counts.get(best)! / list.length,
      part: best,
      prototypes: list.length,
    });
  }
  return { ...summarisePurity(perChannel), perChannel };
}

/** Mean purity and pure-channel count over `channels` (default: every evaluated channel). */
export function summarisePurity(
  perChannel: readonly ChannelPurity[],
  channels?: Iterable<number>,
): PuritySummary {
  const subset = channels ? new Set(channels) : undefined;
  const chosen = perChannel.filter((entry) => !subset || subset.has(entry.channel));
  const sum = chosen.reduce((total, entry) => total + entry.purity, 0);
  return {
    channels: chosen.length,
    mean: chosen.length > 0 ? sum / chosen.length : Number.NaN,
    pure: chosen.filter((entry) => entry.purity > 0.5).length,
  };
}

// -------------------------------------------------------------------------------------- pointing game

export interface PointingResult {
  /** Images with at least one evidence part (the others are skipped). */
  images: number;
  hits: number;
  accuracy: number;
  skipped: number;
}

/**
 * The pointing game: a hit when the peak of the class heatmap (of the image's true class) falls within
 * `tolerance` image pixels of an annotated part of that class (distractors excluded).
 */
export class PointingGame {
  private images = 0;
  private hits = 0;
  private skipped = 0;

  constructor(
    private readonly grid: Pick<FeatureShape, 'height' | 'width'>,
    private readonly preset: PreprocessPreset,
    private readonly tolerance = 0,
  ) {}

  /**
   * Scores one image's class heatmap [HW]; returns whether it hit (undefined when the image has no
   * evidence part, and then `heatmap` is not called: it costs O(C^2) per image for InfoDisent).
   */
  add(heatmap: () => ArrayLike<number>, image: AnnotatedImage): boolean | undefined {
    const evidence = image.parts.filter((part) => !part.distractor);
    if (evidence.length === 0) {
      this.skipped++;
      return undefined;
    }
    const peak = heatmapPeak(heatmap(), this.grid, cropGeometry(image.width, image.height, this.preset));
    const hit = evidence.some((part) => pointHitsPart(peak.x, peak.y, part.box, this.tolerance));
    this.images++;
    if (hit) this.hits++;
    return hit;
  }

  result(): PointingResult {
    return {
      images: this.images,
      hits: this.hits,
      accuracy: this.images > 0 ? this.hits / this.images : Number.NaN,
      skipped: this.skipped,
    };
  }
}

// ------------------------------------------------------------------------- consistency and stability

export interface ChannelClassPair {
  channel: number;
  label: number;
}

export interface PairConsistency extends ChannelClassPair {
  /** max over parts of (images where the part is in the box) / (images where the part is visible). */
  score: number;
  part: string | null;
  consistent: boolean;
}

export interface ConsistencyResult {
  threshold: number;
  pairs: PairConsistency[];
  /** Share of the pairs that are consistent. */
  consistency: number;
}

export interface PairStability extends ChannelClassPair {
  images: number;
  /** Share of the class's images whose set of hit parts is unchanged under input noise. */
  stability: number;
}

export interface StabilityResult {
  /** Test images compared with their noised re-extraction. */
  images: number;
  pairs: PairStability[];
  /** Mean stability over the pairs. */
  stability: number;
}

export interface PartHitOptions {
  /** Side of the square around the activation peak, in crop pixels (Huang et al.: 72 at 224 px). */
  boxSide?: number;
  minOverlap?: number;
}

/**
 * Consistency and stability of Huang et al., tallied over every (class, channel, part) in one pass over
 * the test images. A channel's box in an image is the `boxSide` square around its argmax cell; a part is
 * hit when regionHitsPart holds. Stability compares the hit sets with those under input noise.
 */
export class PartHitTally {
  private readonly partIndex: Map<string, number>;
  /** [K, C, P] images of class k where channel c's box hits part p. */
  private readonly hits: Int32Array;
  /** [K, P] images of class k where part p is visible. */
  private readonly visible: Int32Array;
  /** [K, P] images of class k where part p is visible as an annotated part, not as a distractor. */
  private readonly annotated: Int32Array;
  /** [K, C] images of class k whose hit set for channel c survives noise; [K] images compared. */
  private readonly stable: Int32Array;
  private readonly compared: Int32Array;
  private readonly images: Int32Array;

  constructor(
    readonly classes: number,
    readonly channels: number,
    readonly vocabulary: readonly string[],
    private readonly grid: Pick<FeatureShape, 'height' | 'width'>,
    private readonly preset: PreprocessPreset,
    private readonly options: PartHitOptions = {},
  ) {
    this.partIndex = new Map(vocabulary.map((part, i) => [part, i]));
    this.hits = new Int32Array(classes * channels * vocabulary.length);
    this.visible = new Int32Array(classes * vocabulary.length);
    this.annotated = new Int32Array(classes * vocabulary.length);
    this.stable = new Int32Array(classes * channels);
    this.compared = new Int32Array(classes);
    this.images = new Int32Array(classes);
  }

  /** Every part name of the images, sorted: the vocabulary of a tally over them. */
  static vocabularyOf(images: readonly AnnotatedImage[]): string[] {
    return [...new Set(images.flatMap((image) => image.parts.map((part) => part.part)))].sort();
  }

  /** Bit set (over the vocabulary) of the parts hit by each channel's box, [C][ceil(P/32)]. */
  private hitSets(image: AnnotatedImage, argmax: ArrayLike<number>, geometry: CropGeometry): Uint32Array {
    const words = Math.ceil(this.vocabulary.length / 32);
    const sets = new Uint32Array(this.channels * words);
    const boxes = new Map<number, Box>();
    for (let c = 0; c < this.channels; c++) {
      const pixel = argmax[c]!;
      let box = boxes.get(pixel);
      if (!box) {
        box = cellBox(geometry, this.grid, pixel, this.options.boxSide ?? 72);
        boxes.set(pixel, box);
      }
      for (const part of image.parts) {
        if (!regionHitsPart(box, part.box, this.options.minOverlap)) continue;
        const p = this.partIndex.get(part.part)!;
        sets[c * words + (p >> 5)]! |= 1 << (p & 31);
      }
    }
    return sets;
  }

  /**
   * Adds one test image with its channels' argmax pixels [C]; with `noisyArgmax` (the same image's
   * argmax under input noise) it also counts stability.
   */
  add(image: AnnotatedImage, argmax: ArrayLike<number>, noisyArgmax?: ArrayLike<number>): void {
    const k = image.label;
    const { channels } = this;
    const parts = this.vocabulary.length;
    const words = Math.ceil(parts / 32);
    const geometry = cropGeometry(image.width, image.height, this.preset);
    for (const part of new Set(image.parts.map((entry) => entry.part))) {
      const p = this.partIndex.get(part);
      if (p === undefined) throw new Error(`part '${part}' is not in the tally's vocabulary`);
      this.visible[k * parts + p]!++;
    }
    for (const part of new Set(image.parts.filter((entry) => !entry.distractor).map((entry) => entry.part)))
      this.annotated[k * parts + this.partIndex.get(part)!]!++;
    this.images[k]!++;
    const sets = this.hitSets(image, argmax, geometry);
    for (let c = 0; c < channels; c++) {
      for (let p = 0; p < parts; p++) {
        if (sets[c * words + (p >> 5)]! & (1 << (p & 31))) this.hits[(k * channels + c) * parts + p]!++;
      }
    }
    if (!noisyArgmax) return;
    const noisy = this.hitSets(image, noisyArgmax, geometry);
    this.compared[k]!++;
    for (let c = 0; c < channels; c++) {
      let same = true;
      for (let w = 0; w < words && same; w++) same = sets[c * words + w] === noisy[c * words + w];
      if (same) this.stable[k * channels + c]!++;
    }
  }

  /**
   * Consistency of each pair: the best part, its share of hits over the class's images that show it
   * (Huang et al.: an annotated part counts wherever visible, however rarely). A part that is only ever
   * a distractor in the class's images (clutter of generated datasets) counts only when visible in at
   * least `minVisibleFraction` of them, so a distractor seen once cannot make a channel consistent.
   */
  consistency(
    pairs: readonly ChannelClassPair[],
    options: { threshold?: number; minVisibleFraction?: number } = {},
  ): ConsistencyResult {
    const threshold = options.threshold ?? 0.8;
    const minVisible = options.minVisibleFraction ?? 0.25;
    const parts = this.vocabulary.length;
    const result = pairs.map(({ channel, label }) => {
      let score = 0;
      let part: string | null = null;
      for (let p = 0; p < parts; p++) {
        const visible = this.visible[label * parts + p]!;
        if (visible === 0) continue;
        const clutter = this.annotated[label * parts + p] === 0;
        if (clutter && visible < minVisible * this.images[label]!) continue;
        const share = this.hits[(label * this.channels + channel) * parts + p]! / visible;
        if (share > score) {
          score = share;
          part = this.vocabulary[p]!;
        }
      }
      return { channel, label, score, part, consistent: score >= threshold };
    });
    return {
      threshold,
      pairs: result,
      consistency:
        result.length > 0 ? result.filter((pair) => pair.consistent).length / result.length : Number.NaN,
    };
  }

  /** Stability of each pair; null when no image was added with its noisy counterpart. */
  stability(pairs: readonly ChannelClassPair[]): StabilityResult | null {
    if (this.compared.every((n) => n === 0)) return null;
    const result = pairs.map(({ channel, label }) => {
      const images = this.compared[label]!;
      return {
        channel,
        label,
        images,
        stability: images > 0 ? this.stable[label * this.channels + channel]! / images : Number.NaN,
      };
    });
    const defined = result.filter((pair) => pair.images > 0);
    return {
      images: this.compared.reduce((sum, n) => sum + n, 0),
      pairs: result,
      stability:
        defined.length > 0
          ? defined.reduce((sum, pair) => sum + pair.stability, 0) / defined.length
          : Number.NaN,
    };
  }
}

/**
 * A copy of a preprocessed input with i.i.d. Gaussian noise of standard deviation `sigma` (in the
 * input's own units), seeded: the perturbation stability is measured under. An array gives one deviation
 * per channel of an interleaved (HWC) input, for inputs normalised channel by channel.
 */
export function addGaussianNoise(
  input: Float32Array,
  sigma: number | readonly number[],
  seed: number,
): Float32Array {
  const random = new SeededRandom(seed);
  const deviations = typeof sigma === 'number' ? [sigma] : sigma;
  return Float32Array.from(input, (v, i) => v + deviations[i % deviations.length]! * random.normal());
}

/**
 * The test images stability is measured on: at most `count` of those with part annotations, taken from
 * the classes in turn (the first image of every class, then the second, ...), so every class is compared.
 */
export function stabilityImages(images: readonly AnnotatedImage[], count: number): AnnotatedImage[] {
  const byClass = new Map<number, AnnotatedImage[]>();
  for (const image of images) {
    if (image.parts.length === 0) continue;
    const list = byClass.get(image.label);
    if (list) list.push(image);
    else byClass.set(image.label, [image]);
  }
  const queues = [...byClass.entries()].sort(([a], [b]) => a - b).map(([, list]) => list);
  const chosen: AnnotatedImage[] = [];
  for (let round = 0; chosen.length < count && queues.some((list) => list.length > round); round++) {
    for (const list of queues) if (list[round] && chosen.length < count) chosen.push(list[round]!);
  }
  return chosen;
}
